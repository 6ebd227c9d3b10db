//! `switchyard-ci`: the CI runner. On each push to a pull request it checks the head out,
//! runs the test command and reports how it went, linking to the live build log: as commit
//! statuses (`pending`, then `success`, `failure` or `error`), or, as a GitHub App, as a check
//! run with the log's last lines, annotations, a Cancel button and GitHub's Re-run buttons.

mod builds;
mod changes;
mod checks;
mod commands;
mod forks;
mod report;
mod reported;
mod target;

use std::{collections::HashMap, path::PathBuf, sync::Mutex};

use serde::Deserialize;
use switchyard_plugin_api::{GitHubApp, prelude::*};
use tokio::sync::Semaphore;

use crate::{
    builds::{Only, Reports},
    checks::Bounds,
    commands::Asked,
    forks::Approves,
    report::{Ending, Kind, Printed, Reporter},
    target::Target,
};

/// `[plugins.settings]` of a `ci` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The test command, run by `sh -c` in the workspace.
    command: String,
    /// The commit status context, or the check run's name: the check's name on the pull
    /// request.
    #[serde(default = "default_context")]
    context: String,
    /// `checks` (a check run; only as a GitHub App, where it is the default) or `statuses`.
    #[serde(default)]
    report: Option<Kind>,
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
    /// Which approvals let a fork's head be built: `head` (each push needs its own) or
    /// `pull_request` (trusted for its life once approved).
    #[serde(default)]
    ok_to_test: Approves,
    /// Builds running at once; the rest wait, reported queued.
    #[serde(default = "default_max_builds")]
    max_builds: usize,
    /// How much a repository's `.switchyard.toml` may ask for.
    #[serde(default)]
    bounds: Bounds,
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
    kind: Kind,
    /// The App the host acts as: whose check runs' events are this plugin's.
    app: Option<GitHubApp>,
    source: Source,
    slots: Semaphore,
    /// The sha of the latest build started here of each line (a pull request or a branch), so
    /// a check suite GitHub asks for on a push does not build that push twice.
    latest: Mutex<HashMap<String, String>>,
}

/// Bytes of the output kept for a check run: its text shows the end, annotations come from all
/// of it.
const KEPT_OUTPUT: usize = 1 << 20;

impl Ci {
    fn new(config: &PluginConfig) -> Result<Self, PluginError> {
        let mut settings: Settings = config.settings()?;
        if settings.command.trim().is_empty() {
            return Err(PluginError::fatal("settings.command is empty"));
        }
        if settings.max_builds == 0 {
            return Err(PluginError::fatal("settings.max_builds must be at least 1"));
        }
        let bounds = &settings.bounds;
        if bounds.max_checks == 0
            || bounds.max_timeout_secs == 0
            || bounds.max_matrix_cells == 0
            || bounds.max_file_bytes == 0
        {
            return Err(PluginError::fatal(
                "settings.bounds: max_checks, max_timeout_secs, max_matrix_cells and max_file_bytes must each be at least 1",
            ));
        }
        let source = Source::from_settings(
            config,
            settings.clone_url.take(),
            settings.checkout,
            settings.workdir.take(),
        )?;
        let kind = match (settings.report, &config.github_app) {
            (Some(Kind::Checks), None) => {
                return Err(PluginError::fatal(
                    "settings.report = \"checks\": check runs are only open to GitHub Apps; set [github] auth = \"app\", or report = \"statuses\"",
                ));
            }
            (Some(kind), _) => kind,
            (None, Some(_)) => Kind::Checks,
            (None, None) => Kind::Statuses,
        };
        Ok(Self {
            slots: Semaphore::new(settings.max_builds),
            settings,
            kind,
            app: config.github_app.clone(),
            source,
            latest: Mutex::default(),
        })
    }
}

#[async_trait]
impl Plugin for Ci {
    fn subscriptions(&self) -> Vec<Subscription> {
        let mut wanted = vec![
            ("pull_request", "opened"),
            ("pull_request", "reopened"),
            ("pull_request", "synchronize"),
        ];
        if self.kind == Kind::Checks {
            wanted.extend([
                ("check_suite", "requested"),
                ("check_suite", "rerequested"),
                ("check_run", "rerequested"),
                ("check_run", "requested_action"),
            ]);
        }
        wanted
            .into_iter()
            .map(|(event, action)| Subscription::action(event, action))
            .collect()
    }

    fn commands(&self) -> Vec<CommandSpec> {
        let mut specs = commands::specs();
        specs.push(forks::spec());
        specs
    }

    fn permissions(&self) -> Option<Permissions> {
        // Check runs or statuses, whichever `report` says; the checkout reads the code.
        // Issues: the one comment a fork's pull request gets, and `/ok-to-test`'s answers.
        // Pull requests: the files one changes, for the checks' `paths`.
        Some(
            Permissions::none()
                .write("checks")
                .write("statuses")
                .read("contents")
                .write("issues")
                .read("pull_requests"),
        )
    }

    async fn handle(&self, event: &Event, host: &Host) -> Result<Outcome, PluginError> {
        if let Err(reason) = self.ours(event) {
            return Ok(Outcome::Skipped(reason));
        }
        if event.action.as_deref() == Some("requested_action") {
            return self.requested_action(event, host).await;
        }
        let (target, only) = match &event.command {
            Some(command) => match self.command(event, command, host).await? {
                Ok(target) => (target, commands::only(command)),
                Err(outcome) => return Ok(outcome),
            },
            None => match Target::from_event(event)? {
                Ok(target) => (target, self.rerun_of(event)),
                Err(reason) => return Ok(Outcome::Skipped(reason)),
            },
        };
        if let Some(waits) = self.fork_gate(event, &target, host).await? {
            return Ok(waits);
        }
        // GitHub asks for a check suite on every push; the pull request's own event builds it.
        if event.name == "check_suite" && event.action.as_deref() == Some("requested") {
            if target.pull_request.is_none() {
                return Ok(Outcome::Skipped(
                    "the check suite names no pull request: the CI runner builds pull requests"
                        .to_owned(),
                ));
            }
            let latest = self.latest().get(&target.line().key()).cloned();
            if latest.as_deref() == Some(target.sha.as_str()) {
                return Ok(Outcome::Skipped(format!(
                    "{} is already being built for this pull request",
                    short_sha(&target.sha)
                )));
            }
        }
        let report = self.reporter(event, &target, host);
        // The latest build of the line; an older one still running is cancelled, on
        // whichever host runs it, with `CancelReason::Superseded`.
        if let Superseding::Stale { newer_sha } =
            host.supersede(&target.line().key(), &target.sha).await?
        {
            // A newer job of the same sha (a `/test` after this push, a `/cancel`) owns its
            // status: saying "superseded" on it would overwrite that job's.
            if newer_sha == target.sha {
                return Ok(Outcome::Skipped(format!(
                    "a newer job of {} took over its build",
                    short_sha(&target.sha)
                )));
            }
            return superseded(&report, &newer_sha, Verdict::Skipped).await;
        }
        self.latest()
            .insert(target.line().key(), target.sha.clone());
        let reports = Reports::default();
        tokio::select! {
            ended = self.build(event, &target, host, &reports, &only) => ended,
            // Dropping the build's future kills its command (the host kills the process group).
            reason = host.cancelled() => {
                let mut open = reports.open();
                if reports.is_empty() {
                    open.push(std::sync::Arc::new(report));
                }
                let mut outcome = None;
                for report in &open {
                    let ended = cancelled(report, &reason).await;
                    outcome.get_or_insert(ended);
                }
                outcome.unwrap_or_else(|| Err(PluginError::fatal(reason.to_string())))
            }
        }
    }
}

impl Ci {
    /// Whether `event` is this entry's: events about check runs and suites only when they are
    /// this App's (and, for a run, this entry's name).
    fn ours(&self, event: &Event) -> Result<(), String> {
        let payload = event.payload();
        let app = match event.name.as_str() {
            "check_suite" => &payload["check_suite"]["app"],
            "check_run" => {
                // A check run of this App made by a build: its external id is the build's job
                // (the entry's context, or a check of the repository's file).
                let run = &payload["check_run"];
                let name = run["name"].as_str();
                let built = run["external_id"]
                    .as_str()
                    .is_some_and(|id| id.parse::<i64>().is_ok());
                if name != Some(self.settings.context.as_str()) && !built {
                    return Err(format!(
                        "the check run {name:?} is not this entry's ({:?})",
                        self.settings.context
                    ));
                }
                &run["app"]
            }
            _ => return Ok(()),
        };
        match &self.app {
            Some(ours) if ours.is(app) => Ok(()),
            _ => Err(format!(
                "the {} is another App's ({}), not this one's",
                event.name,
                app["slug"].as_str().unwrap_or("?")
            )),
        }
    }

    /// Which checks a Re-run builds: the check run's own, unless it is the entry's context or
    /// the refused file's (which build all).
    fn rerun_of(&self, event: &Event) -> Only {
        let name = event.payload()["check_run"]["name"].as_str();
        match name {
            Some(name)
                if event.name == "check_run"
                    && name != self.settings.context
                    && name != checks::FILE =>
            {
                Only::Named(name.to_owned())
            }
            _ => Only::All,
        }
    }

    /// A button of one of this entry's check runs was pressed: Cancel stops its build.
    async fn requested_action(&self, event: &Event, host: &Host) -> Result<Outcome, PluginError> {
        let payload = event.payload();
        let identifier = payload["requested_action"]["identifier"].as_str();
        if identifier != Some(report::CANCEL) {
            return Ok(Outcome::Skipped(format!("no action {identifier:?}")));
        }
        let by = event.sender.clone().unwrap_or_else(|| "someone".to_owned());
        // The run's external id is its build's job id; the host cancels that job wherever it
        // runs, and refuses a job that is not this plugin's.
        let run = &payload["check_run"];
        let Some(build) = run["external_id"].as_str().and_then(|id| id.parse().ok()) else {
            return Ok(Outcome::Skipped(
                "the check run names no build (no external id)".to_owned(),
            ));
        };
        match host.cancel_job(build, &by).await? {
            CancelAnswer::Cancelling => {
                host.log(format!(
                    "switchyard: {by} cancelled build #{build} (check run {})",
                    run["id"]
                ))
                .await;
                Ok(Outcome::Done)
            }
            _ => Ok(Outcome::Skipped(format!(
                "build #{build} had already ended"
            ))),
        }
    }

    /// A comment command: the build it asks for, or the outcome of one that builds nothing.
    async fn command(
        &self,
        event: &Event,
        command: &Command,
        host: &Host,
    ) -> Result<Result<Target, Outcome>, PluginError> {
        let Some(facts) = &command.pull_request else {
            return Ok(Err(Outcome::Skipped(
                "CI commands are for pull requests".to_owned(),
            )));
        };
        let target = commands::target(event, facts, command.number)?;
        if command.name == forks::OK_TO_TEST {
            if target.fork.is_none() {
                return Ok(Err(Outcome::Skipped(
                    "not from a fork: nothing to approve".to_owned(),
                )));
            }
            return forks::ok_to_test(event, command, target, host).await;
        }
        if commands::lists(command) {
            return Ok(Err(self.list(host, &target).await?));
        }
        let line = target.line();
        let latest = host.latest_of_line(&line.key()).await?;
        match commands::decide(command, target, latest) {
            Asked::Build(target) => {
                host.log(format!(
                    "switchyard: /{} by {}: building {}",
                    command.name,
                    command.author.login,
                    short_sha(&target.sha)
                ))
                .await;
                Ok(Ok(target))
            }
            Asked::Cancel { job, sha, by } => {
                Ok(Err(commands::cancel(host, &line, job, &sha, &by).await?))
            }
            Asked::Nothing(reason) => {
                host.log(format!("switchyard: /{}: {reason}", command.name))
                    .await;
                Ok(Err(Outcome::Skipped(reason)))
            }
        }
    }

    /// The fork gate, on every path that builds: `None` lets the build go on; otherwise it
    /// waits, said on the pull request (pending, or a queued check run) and, the first time
    /// the pull request is seen, in one comment. Builds of a check suite or run that names no
    /// pull request are refused: GitHub names none for a fork's.
    async fn fork_gate(
        &self,
        event: &Event,
        target: &Target,
        host: &Host,
    ) -> Result<Option<Outcome>, PluginError> {
        // With forks allowed, a fork's pull request that changes the checks file still waits:
        // it could rename a required check or filter it away, and turn it green unrun.
        let mut approves = self.settings.ok_to_test;
        let mut changes_the_file = false;
        if self.settings.allow_forks {
            if target.fork.is_none() || !self.changes_the_file(host, target).await {
                return Ok(None);
            }
            // Each head that may change the file needs its own approval.
            approves = Approves::Head;
            changes_the_file = true;
        }
        let rerequested = matches!(event.name.as_str(), "check_suite" | "check_run");
        let Some(fork) = &target.fork else {
            if rerequested && target.pull_request.is_none() {
                return Ok(Some(Outcome::Skipped(format!(
                    "the {} names no pull request (GitHub names none for a fork's): not \
                     built; comment /test on the pull request",
                    event.name
                ))));
            }
            return Ok(None);
        };
        let Some(number) = target.pull_request else {
            return Ok(Some(Outcome::Skipped(format!(
                "a commit of fork {fork} with no pull request is not built"
            ))));
        };
        let repo = &target.repository.full_name;
        let mut first = false;
        if event.name == "pull_request" {
            let author = event.payload()["pull_request"]["user"]["login"].as_str();
            let author = author.unwrap_or_default();
            // An author who may push to the base repository is trusted: their head is
            // approved as it arrives, so every other path builds it too.
            let trusted = !author.is_empty() && forks::author_may_write(host, target, author).await;
            let by = trusted.then(|| format!("{author} (the author, with write)"));
            first = host
                .record_head(repo, number, &target.sha, by.as_deref())
                .await?;
            if trusted {
                return Ok(None);
            }
        }
        let heads = host.heads(repo, number).await?;
        if forks::approved(&heads, &target.sha, approves) {
            return Ok(None);
        }
        let changes = if changes_the_file {
            format!(" and changes {}", checks::FILE)
        } else {
            String::new()
        };
        let reason = format!(
            "pull request #{number} comes from fork {fork}{changes}: {} waits for a \
             maintainer's /ok-to-test",
            short_sha(&target.sha)
        );
        host.log(format!("switchyard: {reason}")).await;
        let report = self.reporter(event, target, host);
        report.waiting().await?;
        if first {
            forks::tell_the_thread(host, target).await;
        }
        Ok(Some(Outcome::Skipped(reason)))
    }

    /// Whether `target`'s pull request adds, removes or edits the checks file; when GitHub
    /// cannot say, it is taken to.
    async fn changes_the_file(&self, host: &Host, target: &Target) -> bool {
        changes::changed_files(host, target)
            .await
            .is_none_or(|files| files.iter().any(|file| file == checks::FILE))
    }

    fn reporter<'a>(
        &'a self,
        event: &'a Event,
        target: &'a Target,
        host: &'a Host,
    ) -> Reporter<'a> {
        Reporter {
            host,
            target,
            kind: self.kind,
            name: self.settings.context.clone(),
            command: self.settings.command.clone(),
            log_url: &event.job.log_url,
            build: event.job.id,
            run: Default::default(),
            ended: Default::default(),
        }
    }

    fn latest(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A build of a sha that a newer push replaced: `Skipped` when it never started, `Cancelled`
/// when the newer push stopped it running.
async fn superseded(
    report: &Reporter<'_>,
    newer_sha: &str,
    verdict: Verdict,
) -> Result<Outcome, PluginError> {
    let summary = format!("superseded by {}", short_sha(newer_sha));
    report
        .finished(Ending::Superseded { newer_sha }, Printed::default())
        .await?;
    Ok(match verdict {
        Verdict::Skipped => Outcome::Skipped(summary),
        verdict => Outcome::Finished { verdict, summary },
    })
}

/// The build was cancelled (its job's timeout, a shutdown, a person, a newer push): say so on
/// the pull request within the cancel grace. A shutdown's build runs again after the restart.
async fn cancelled(report: &Reporter<'_>, reason: &CancelReason) -> Result<Outcome, PluginError> {
    if let CancelReason::Superseded { sha } = reason {
        if *sha == report.target.sha && report.kind == Kind::Statuses {
            // A newer build of the same sha (`/test`, `/retest`) reports on the same status:
            // a "superseded" here would overwrite it.
            return Ok(Outcome::Finished {
                verdict: Verdict::Cancelled,
                summary: format!("superseded by a newer build of {}", short_sha(sha)),
            });
        }
        return superseded(report, sha, Verdict::Cancelled).await;
    }
    report
        .finished(Ending::Cancelled(reason), Printed::default())
        .await?;
    Err(PluginError::fatal(reason.to_string()))
}

declare_plugin!(Ci, Ci::new);
