//! `switchyard-ci`: the CI runner. On each push to a pull request it sets a commit status
//! `pending`, checks the head out, runs the test command, and sets `success`, `failure` or
//! `error`, each status linking to the live build log.

mod target;

use std::path::PathBuf;

use serde::Deserialize;
use switchyard_plugin_api::prelude::*;
use tokio::sync::Semaphore;

use crate::target::Target;

/// `[plugins.settings]` of a `ci` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The test command, run by `sh -c` in the workspace.
    command: String,
    /// The commit status context: the check's name on the pull request.
    #[serde(default = "default_context")]
    context: String,
    /// The command's process group is killed after this long.
    #[serde(default = "default_timeout_secs")]
    timeout_secs: u64,
    /// Clone URL template with `{full_name}`, `{owner}`, `{repo}`; default: the payload's.
    #[serde(default)]
    clone_url: Option<String>,
    /// False: run in `workdir` as it is, without checking anything out.
    #[serde(default = "default_checkout")]
    checkout: bool,
    #[serde(default)]
    workdir: Option<PathBuf>,
    /// Build pull requests from forks (their code is untrusted).
    #[serde(default)]
    allow_forks: bool,
    /// Builds running at once; the rest wait with a `pending` "queued" status.
    #[serde(default = "default_max_builds")]
    max_builds: usize,
}

fn default_context() -> String {
    "ci/switchyard".to_owned()
}
fn default_timeout_secs() -> u64 {
    3600
}
fn default_checkout() -> bool {
    true
}
fn default_max_builds() -> usize {
    2
}

struct Ci {
    settings: Settings,
    source: Source,
    slots: Semaphore,
}

impl Ci {
    fn new(config: &PluginConfig) -> Result<Self, PluginError> {
        let mut settings: Settings = config.settings()?;
        if settings.command.trim().is_empty() {
            return Err(PluginError::fatal("settings.command is empty"));
        }
        if settings.max_builds == 0 {
            return Err(PluginError::fatal("settings.max_builds must be at least 1"));
        }
        let source = Source::from_settings(
            config,
            settings.clone_url.take(),
            settings.checkout,
            settings.workdir.take(),
        )?;
        Ok(Self {
            slots: Semaphore::new(settings.max_builds),
            settings,
            source,
        })
    }
}

/// Reports one build's progress as commit statuses on its sha.
struct Reporter<'a> {
    host: &'a Host,
    target: &'a Target,
    context: &'a str,
    log_url: &'a str,
    build: i64,
}

impl Reporter<'_> {
    async fn status(&self, state: StatusState, description: &str) -> Result<(), PluginError> {
        let description = format!("Build #{} {description}", self.build);
        self.host.log(format!("switchyard: {description}")).await;
        let status =
            CommitStatus::new(state, self.context, &description).with_target_url(self.log_url);
        let repo = &self.target.repository.full_name;
        self.host
            .create_status(repo, &self.target.sha, &status)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Plugin for Ci {
    fn subscriptions(&self) -> Vec<Subscription> {
        ["opened", "reopened", "synchronize"]
            .map(|action| Subscription::action("pull_request", action))
            .into()
    }

    fn permissions(&self) -> Option<Permissions> {
        // Check runs are the next step after statuses; the checkout reads the code.
        Some(
            Permissions::none()
                .write("checks")
                .write("statuses")
                .read("contents"),
        )
    }

    async fn handle(&self, event: &Event, host: &Host) -> Result<Outcome, PluginError> {
        let target = match Target::from_event(event)? {
            Ok(target) => target,
            Err(reason) => return Ok(Outcome::Skipped(reason)),
        };
        if let (Some(fork), false) = (&target.fork, self.settings.allow_forks) {
            let reason = format!(
                "not building pull request #{} from fork {fork}: its code is untrusted \
                 (set allow_forks = true to build forks)",
                target.pull_request.unwrap_or_default()
            );
            host.log(format!("switchyard: {reason}")).await;
            return Ok(Outcome::Skipped(reason));
        }
        let report = Reporter {
            host,
            target: &target,
            context: &self.settings.context,
            log_url: &event.job.log_url,
            build: event.job.id,
        };
        // The latest build of the line; an older one still running is cancelled, on
        // whichever host runs it, with `CancelReason::Superseded`.
        if let Superseding::Stale { newer_sha } =
            host.supersede(&target.line().key(), &target.sha).await?
        {
            return superseded(&report, &newer_sha).await;
        }
        tokio::select! {
            ended = self.build(&report) => ended,
            // Dropping the build's future kills its command (the host kills the process group).
            reason = host.cancelled() => cancelled(&report, &reason).await,
        }
    }
}

impl Ci {
    /// Waits for a build slot, then checks out, runs the command and reports how it ended.
    async fn build(&self, report: &Reporter<'_>) -> Result<Outcome, PluginError> {
        let slot = match self.slots.try_acquire() {
            Ok(slot) => slot,
            Err(_) => {
                report.status(StatusState::Pending, "queued").await?;
                self.slots
                    .acquire()
                    .await
                    .map_err(|_| PluginError::fatal("build slots closed"))?
            }
        };
        report.status(StatusState::Pending, "running").await?;
        let ended = self.run(report).await;
        drop(slot);
        match ended {
            Ok(output) if output.success() => {
                let description = format!("passed in {} s", output.seconds());
                report.status(StatusState::Success, &description).await?;
                Ok(Outcome::Done)
            }
            Ok(output) if !output.timed_out => {
                let description =
                    format!("failed: {} after {} s", output.ending(), output.seconds());
                report.status(StatusState::Failure, &description).await?;
                Ok(Outcome::Done)
            }
            Ok(_) => {
                let description = format!("timed out after {} s", self.settings.timeout_secs);
                report.status(StatusState::Error, &description).await?;
                Err(PluginError::fatal(description))
            }
            Err(error) => {
                let description = format!("errored: {error}");
                report.status(StatusState::Error, &description).await?;
                Err(PluginError::fatal(description))
            }
        }
    }

    /// Checks out and runs the command; an error means it could not run.
    async fn run(&self, report: &Reporter<'_>) -> Result<RunOutput, HostError> {
        let (host, target) = (report.host, report.target);
        let dir = self
            .source
            .prepare(host, &target.repository, &target.sha)
            .await?;
        let mut request = RunRequest::shell(&self.settings.command)
            .cwd(dir)
            .timeout_secs(self.settings.timeout_secs)
            .env("CI", "true")
            .env("SWITCHYARD_SHA", &target.sha)
            .env("SWITCHYARD_REF", &target.branch)
            .env("SWITCHYARD_REPO", &target.repository.full_name)
            .env("SWITCHYARD_BUILD_ID", report.build.to_string());
        if let Some(number) = target.pull_request {
            request = request.env("SWITCHYARD_PR", number.to_string());
        }
        host.log(format!("switchyard: $ {}", self.settings.command))
            .await;
        host.run(&request).await
    }
}

async fn superseded(report: &Reporter<'_>, newer_sha: &str) -> Result<Outcome, PluginError> {
    let reason = format!("superseded by {}", short_sha(newer_sha));
    report.status(StatusState::Error, &reason).await?;
    Ok(Outcome::Skipped(reason))
}

/// The host cancelled the build (its job's timeout, a shutdown, a person, a newer push): say so
/// on the pull request within the cancel grace. A shutdown's build runs again after the restart.
async fn cancelled(report: &Reporter<'_>, reason: &CancelReason) -> Result<Outcome, PluginError> {
    if let CancelReason::Superseded { sha } = reason {
        return superseded(report, sha).await;
    }
    if reason.runs_again() {
        let description = "interrupted; runs again after the restart";
        report.status(StatusState::Pending, description).await?;
    } else {
        report
            .status(StatusState::Error, &reason.to_string())
            .await?;
    }
    Err(PluginError::fatal(reason.to_string()))
}

declare_plugin!(Ci, Ci::new);
