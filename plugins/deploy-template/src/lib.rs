//! A minimal deploy plugin: on each `deployment` event for its environment it checks the commit
//! out, runs `command`, and reports `in_progress`, then `success` or `failure`, to GitHub. Copy
//! it, then change `handle` to do what your deploys need.

use serde::Deserialize;
use switchyard_plugin_api::{payload::DeploymentEvent, prelude::*};

/// The entry's `[plugins.settings]`. Unknown keys are errors, so typos are caught at startup.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Run by `sh -c` in a checkout of the deployment's commit.
    command: String,
    #[serde(default = "production")]
    environment: String,
    /// For mirrors or local repositories, e.g. `file:///srv/git/{full_name}.git`.
    clone_url: Option<String>,
}

fn production() -> String {
    "production".into()
}

struct MyDeploy {
    settings: Settings,
    source: Source,
}

impl MyDeploy {
    fn new(config: &PluginConfig) -> Result<Self, PluginError> {
        let mut settings: Settings = config.settings()?;
        let source = Source::from_settings(config, settings.clone_url.take(), true, None)?;
        Ok(Self { settings, source })
    }
}

#[async_trait]
impl Plugin for MyDeploy {
    fn subscriptions(&self) -> Vec<Subscription> {
        vec![Subscription::event("deployment")]
    }

    /// What a GitHub App's token for this plugin's jobs may do: report deployment statuses
    /// and check the code out. Add what your deploy calls (and no more).
    fn permissions(&self) -> Option<Permissions> {
        Some(Permissions::none().write("deployments").read("contents"))
    }

    async fn handle(&self, event: &Event, host: &Host) -> Result<Outcome, PluginError> {
        let DeploymentEvent {
            deployment,
            repository,
            ..
        } = event.parse()?;
        if deployment.environment != self.settings.environment {
            return Ok(Outcome::Skipped("another environment".into()));
        }
        let status = |state, description: &str| {
            let mut status = NewDeploymentStatus::new(state, description);
            status.log_url = Some(event.job.log_url.clone());
            status
        };
        let repo = &repository.full_name;
        // Every way this ends posts a final status: GitHub never shows a deploy stuck
        // "in progress".
        let (done, failed) = tokio::select! {
            output = self.deploy(host, &repository, &deployment, &event.job.log_url) => match output {
                Ok(output) if output.success() => (status(DeploymentState::Success, "Deployed"), None),
                Ok(output) => (
                    status(DeploymentState::Failure, &format!("Deploy failed: {}", output.ending())),
                    None,
                ),
                Err(error) => (
                    status(DeploymentState::Error, &format!("Deploy errored: {error}")),
                    Some(error),
                ),
            },
            // The host is stopping the job (its timeout, a shutdown): say so, then return.
            reason = host.cancelled() => (
                status(DeploymentState::Error, &reason.to_string()),
                Some(PluginError::fatal(reason.to_string())),
            ),
        };
        host.create_deployment_status(repo, deployment.id, &done)
            .await?;
        if let Some(error) = failed {
            return Err(error);
        }
        Ok(Outcome::Done)
    }
}

impl MyDeploy {
    /// Takes the environment's lock, reports `in_progress`, checks out and runs the command.
    async fn deploy(
        &self,
        host: &Host,
        repository: &payload::Repository,
        deployment: &payload::Deployment,
        log_url: &str,
    ) -> Result<RunOutput, PluginError> {
        let repo = &repository.full_name;
        // One deploy at a time per repository and environment; freed when this job ends.
        host.lock(&format!("deploy:{repo}:{}", deployment.environment))
            .await?;
        let mut running = NewDeploymentStatus::new(DeploymentState::InProgress, "Deploying");
        running.log_url = Some(log_url.to_owned());
        host.create_deployment_status(repo, deployment.id, &running)
            .await?;
        let dir = self
            .source
            .prepare(host, repository, &deployment.sha)
            .await?;
        let command = RunRequest::shell(&self.settings.command)
            .cwd(dir)
            .env("SWITCHYARD_ENVIRONMENT", &deployment.environment)
            .env("SWITCHYARD_SHA", &deployment.sha)
            .timeout_secs(1800);
        Ok(host.run(&command).await?)
    }
}

declare_plugin!(MyDeploy, MyDeploy::new);
