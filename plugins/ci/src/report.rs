//! How a build's progress reaches GitHub: commit statuses (any token), or a check run (GitHub
//! Apps only): created `queued`, then `in_progress` with a Cancel button, then `completed` with
//! a conclusion, the log's last lines and annotations on the diff.

use std::{
    fmt,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::SystemTime,
};

use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_plugin_api::prelude::*;

use switchyard_check_output::{
    annotations::{Annotation, PER_REQUEST},
    text::{MAX_TEXT, cut, log_end, rfc3339},
};

use crate::target::Target;

/// How builds are reported (`report` in the settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Statuses,
    Checks,
}

/// The Cancel button's identifier, as `check_run.requested_action` names it.
pub const CANCEL: &str = "cancel";

/// Annotations sent per build at most: [`PER_REQUEST`] a request.
pub const MAX_ANNOTATIONS: usize = 500;

/// How a build ended.
pub enum Ending<'a> {
    Passed {
        secs: u64,
    },
    Failed {
        ending: String,
        secs: u64,
    },
    TimedOut {
        secs: u64,
    },
    /// It could not run (the checkout failed, say).
    Errored(String),
    /// The repository's checks file was refused: why, with its line and column.
    Refused(String),
    /// Not run: a check it needs did not pass.
    NotRun(String),
    /// Not run: its `paths` match no file the pull request changes.
    PathsSkipped,
    Superseded {
        newer_sha: &'a str,
    },
    Cancelled(&'a CancelReason),
}

/// The ending in words, as the status, the check run and the job's record say it.
impl fmt::Display for Ending<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::Passed { secs } => write!(f, "passed in {secs} s"),
            Ending::Failed { ending, secs } => write!(f, "failed: {ending} after {secs} s"),
            Ending::TimedOut { secs } => write!(f, "timed out after {secs} s"),
            Ending::Errored(error) => write!(f, "errored: {error}"),
            Ending::Refused(error) => write!(f, "refused: {error}"),
            Ending::NotRun(why) => write!(f, "not run: {why}"),
            Ending::PathsSkipped => {
                f.write_str("skipped: the pull request changes no file its paths match")
            }
            Ending::Superseded { newer_sha } => {
                write!(f, "superseded by {}", short_sha(newer_sha))
            }
            Ending::Cancelled(CancelReason::Shutdown) => {
                f.write_str("interrupted; runs again after the restart")
            }
            Ending::Cancelled(reason) => reason.fmt(f),
        }
    }
}

/// What the build printed, for a check run.
#[derive(Default)]
pub struct Printed {
    /// The log's last lines.
    pub tail: String,
    pub annotations: Vec<Annotation>,
}

/// Reports one build.
pub struct Reporter<'a> {
    pub host: &'a Host,
    pub target: &'a Target,
    pub kind: Kind,
    /// The status context, or the check run's name.
    pub name: String,
    pub command: String,
    pub log_url: &'a str,
    pub build: i64,
    /// The check run, once created.
    pub run: Mutex<Option<u64>>,
    /// Set once its end is reported: a cancel reports only the checks not yet ended.
    pub ended: AtomicBool,
}

impl Reporter<'_> {
    /// Waiting for a build slot (for a check run: always, as it starts `queued`).
    pub async fn queued(&self) -> Result<(), PluginError> {
        match self.kind {
            Kind::Statuses => self.status(StatusState::Pending, "queued").await,
            Kind::Checks => self.check_run().await.map(drop),
        }
    }

    /// A fork's build waiting for a maintainer's `/ok-to-test`: `pending`, or a `queued` check
    /// run saying so.
    pub async fn waiting(&self) -> Result<(), PluginError> {
        const WAITS: &str = "waits for a maintainer's /ok-to-test";
        match self.kind {
            Kind::Statuses => self.status(StatusState::Pending, WAITS).await,
            Kind::Checks => {
                let id = self.check_run().await?;
                let title = format!("Build #{} {WAITS}", self.build);
                let output = json!({"title": title, "summary": self.summary(WAITS)});
                self.update(id, json!({ "output": output })).await
            }
        }
    }

    pub async fn running(&self) -> Result<(), PluginError> {
        if self.kind == Kind::Statuses {
            return self.status(StatusState::Pending, "running").await;
        }
        let title = format!("Build #{} running", self.build);
        self.host.log(format!("switchyard: {title}")).await;
        let id = self.check_run().await?;
        let cancel = json!([{
            "label": "Cancel",
            "description": "Stop this build",
            "identifier": CANCEL,
        }]);
        let body = json!({
            "status": "in_progress",
            "started_at": rfc3339(SystemTime::now()),
            "output": {"title": title, "summary": self.summary("is running")},
            "actions": cancel,
        });
        self.update(id, body).await
    }

    /// Reports the end; a check run gets `printed` as its text and annotations.
    pub async fn finished(&self, ending: Ending<'_>, printed: Printed) -> Result<(), PluginError> {
        self.ended.store(true, Ordering::Relaxed);
        let description = ending.to_string();
        if self.kind == Kind::Statuses {
            let state = match &ending {
                // A skipped check must not block a merge that requires it.
                Ending::Passed { .. } | Ending::PathsSkipped => StatusState::Success,
                Ending::Failed { .. } | Ending::Refused(_) => StatusState::Failure,
                Ending::Cancelled(reason) if reason.runs_again() => StatusState::Pending,
                _ => StatusState::Error,
            };
            return self.status(state, &description).await;
        }
        let conclusion = match &ending {
            Ending::Passed { .. } => "success",
            Ending::Failed { .. } | Ending::Errored(_) | Ending::Refused(_) => "failure",
            Ending::NotRun(_) => "cancelled",
            Ending::PathsSkipped => "skipped",
            Ending::TimedOut { .. } => "timed_out",
            Ending::Cancelled(CancelReason::Timeout { .. }) => "timed_out",
            Ending::Superseded { .. } | Ending::Cancelled(_) => "cancelled",
        };
        let title = format!("Build #{} {description}", self.build);
        self.host.log(format!("switchyard: {title}")).await;
        let id = self.check_run().await?;
        let summary = self.summary(&description);
        let mut batches = printed
            .annotations
            .chunks(PER_REQUEST)
            .take(MAX_ANNOTATIONS / PER_REQUEST)
            .collect::<Vec<_>>();
        let last = batches.pop().unwrap_or_default();
        // All but the last batch while the run is open; the last with its conclusion.
        for batch in batches {
            let output = json!({"title": title, "summary": summary, "annotations": batch});
            self.update(id, json!({ "output": output })).await?;
        }
        let mut output = json!({"title": title, "summary": summary});
        if !printed.tail.trim().is_empty() {
            output["text"] = json!(log_end(&printed.tail));
        }
        if !last.is_empty() {
            output["annotations"] = json!(last);
        }
        let body = json!({
            "status": "completed",
            "conclusion": conclusion,
            "completed_at": rfc3339(SystemTime::now()),
            "output": output,
            "actions": [],
        });
        self.update(id, body).await
    }

    async fn status(&self, state: StatusState, description: &str) -> Result<(), PluginError> {
        let description = format!("Build #{} {description}", self.build);
        self.host.log(format!("switchyard: {description}")).await;
        let status =
            CommitStatus::new(state, &self.name, &description).with_target_url(self.log_url);
        let repo = &self.target.repository.full_name;
        self.host
            .create_status(repo, &self.target.sha, &status)
            .await?;
        Ok(())
    }

    pub fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Relaxed)
    }

    fn summary(&self, how: &str) -> String {
        if self.command.is_empty() {
            let summary = format!(
                "Build #{} of `{}`: {how}. [The build's log]({})",
                self.build,
                short_sha(&self.target.sha),
                self.log_url
            );
            return cut(summary, MAX_TEXT);
        }
        let summary = format!(
            "Build #{} of `{}` ran `{}`: {how}. [The build's log]({})",
            self.build,
            short_sha(&self.target.sha),
            self.command,
            self.log_url
        );
        cut(summary, MAX_TEXT)
    }

    /// The build's check run, created `queued` the first time.
    async fn check_run(&self) -> Result<u64, PluginError> {
        if let Some(id) = *self.run.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok(id);
        }
        let title = format!("Build #{} queued", self.build);
        let body = json!({
            "name": self.name,
            "head_sha": self.target.sha,
            "status": "queued",
            "details_url": self.log_url,
            "external_id": self.build.to_string(),
            "output": {"title": title, "summary": self.summary("is queued")},
        });
        let repo = &self.target.repository.full_name;
        let created = self
            .host
            .github("POST", &format!("/repos/{repo}/check-runs"), Some(body))
            .await?;
        let id = created.body["id"]
            .as_u64()
            .ok_or_else(|| PluginError::fatal("GitHub's new check run has no id"))?;
        *self.run.lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
        Ok(id)
    }

    async fn update(&self, id: u64, body: Value) -> Result<(), PluginError> {
        let repo = &self.target.repository.full_name;
        let path = format!("/repos/{repo}/check-runs/{id}");
        self.host.github("PATCH", &path, Some(body)).await?;
        Ok(())
    }
}
