//! A plugin for the host's tests: its settings choose what it does with each event, so one
//! library covers panics, hangs, retries and every host service.

use std::time::Duration;

use serde::Deserialize;
use switchyard_plugin_api::prelude::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, tag = "behaviour", rename_all = "snake_case")]
enum Behaviour {
    /// Panics with a message naming the delivery.
    Panic,
    /// Sleeps on the plugin's own tokio runtime, then succeeds.
    Sleep { millis: u64 },
    /// Fails retryably until the given attempt, then succeeds.
    SucceedOnAttempt { attempt: u32 },
    /// Sets a commit status on the pull request's head sha.
    CommitStatus,
    /// Runs a shell command through the host.
    Run {
        script: String,
        #[serde(default)]
        timeout_secs: Option<u64>,
    },
    /// Refuses to start, as a plugin with bad settings would.
    RefuseToStart,
}

struct Behaving(Behaviour);

#[async_trait]
impl Plugin for Behaving {
    fn subscriptions(&self) -> Vec<Subscription> {
        vec!["pull_request".parse().expect("valid subscription")]
    }

    async fn handle(&self, event: &Event, host: &Host) -> Result<Outcome, PluginError> {
        match &self.0 {
            Behaviour::Panic => panic!("boom in delivery {}", event.delivery),
            Behaviour::Sleep { millis } => {
                // Spawning and sleeping prove the plugin's own runtime is up.
                let slept = tokio::spawn(tokio::time::sleep(Duration::from_millis(*millis)));
                slept.await.map_err(|e| PluginError::fatal(e.to_string()))?;
                host.log(format!("slept {millis} ms")).await;
                Ok(Outcome::Done)
            }
            Behaviour::SucceedOnAttempt { attempt } if event.job.attempt < *attempt => Err(
                PluginError::retryable(format!("attempt {} is too early", event.job.attempt)),
            ),
            Behaviour::SucceedOnAttempt { .. } => Ok(Outcome::Done),
            Behaviour::CommitStatus => {
                let repo = event.repository.as_deref().unwrap_or_default();
                let sha = event.payload()["pull_request"]["head"]["sha"]
                    .as_str()
                    .unwrap_or_default();
                let status = CommitStatus::new(StatusState::Success, "test/behaviours", "ok")
                    .with_target_url(&event.job.log_url);
                host.create_status(repo, sha, &status).await?;
                Ok(Outcome::Done)
            }
            Behaviour::Run {
                script,
                timeout_secs,
            } => {
                let mut request = RunRequest::shell(script.clone());
                request.timeout_secs = *timeout_secs;
                let output = host.run(&request).await?;
                if output.success() {
                    Ok(Outcome::Done)
                } else {
                    Err(PluginError::fatal(format!("command ended: {output:?}")))
                }
            }
            Behaviour::RefuseToStart => unreachable!("never constructed"),
        }
    }
}

declare_plugin!(Behaving, |config: &PluginConfig| {
    match config.settings()? {
        Behaviour::RefuseToStart => Err(PluginError::fatal("refusing to start, as asked")),
        behaviour => Ok(Behaving(behaviour)),
    }
});
