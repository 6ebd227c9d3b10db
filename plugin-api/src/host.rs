//! [`Host`]: what a plugin may ask of the host while it handles an event. Each call crosses the
//! boundary as JSON and runs on the host's runtime, so it works from any plugin thread.

use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{
    CancelReason,
    abi::{self, HostServices},
    github::{CommitStatus, GitHubResponse, NewDeployment, NewDeploymentStatus, repo_path},
    wire::{GitHubCall, ServiceRequest, ServiceResult},
};

/// Why a host service failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HostError {
    /// GitHub answered with an error status that retrying will not fix.
    #[error("GitHub answered {status}: {message}")]
    GitHub { status: u16, message: String },
    /// GitHub could not be reached or kept failing; worth retrying the job later.
    #[error("GitHub is unavailable: {0}")]
    GitHubUnavailable(String),
    /// The host has no credentials for GitHub.
    #[error("{0}")]
    NotConfigured(String),
    /// The request itself was unusable.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A command could not be started.
    #[error("{0}")]
    Run(String),
    /// The code could not be checked out.
    #[error("checkout failed: {0}")]
    Checkout(String),
    /// An endpoint given to [`Host::post_json`] answered with an error retrying will not fix.
    /// The message names the host, never the URL.
    #[error("{message}")]
    Http { status: u16, message: String },
    /// An endpoint given to [`Host::post_json`] kept failing or could not be reached.
    #[error("{0}")]
    HttpUnavailable(String),
    /// The host failed internally (details are in the host's log).
    #[error("host error: {0}")]
    Internal(String),
    /// The job's attempt has ended (it returned, timed out or was cancelled): its services are
    /// closed, so a task that outlived it cannot take locks, run commands or write its log.
    #[error("the job's attempt has ended; its host services are closed")]
    JobEnded,
}

impl From<HostError> for crate::PluginError {
    fn from(error: HostError) -> Self {
        match error {
            HostError::GitHubUnavailable(_)
            | HostError::HttpUnavailable(_)
            | HostError::Internal(_) => crate::PluginError::retryable(error.to_string()),
            _ => crate::PluginError::fatal(error.to_string()),
        }
    }
}

/// A command for the host to run, its output going to the job's log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    pub program: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Working directory; the host's current directory when unset.
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Kill the command's whole process group after this many seconds.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Hand back the last this many bytes of the output in [`RunOutput::output`] (as the log
    /// has them: stdout and stderr interleaved, secrets masked; 16 MiB at most); nothing when
    /// unset.
    #[serde(default)]
    pub keep_output: Option<usize>,
    /// Runs code from a fork's pull request: the host withholds the entry's `pass_env` values
    /// and writable binds unless the entry says `trust_forks = true`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub untrusted: bool,
}

impl RunRequest {
    /// `sh -c script`, the way CI commands are usually given.
    pub fn shell(script: impl Into<String>) -> Self {
        Self {
            program: "sh".to_owned(),
            args: vec!["-c".to_owned(), script.into()],
            ..Self::default()
        }
    }

    /// Marks the command as running a fork's code (see [`RunRequest::untrusted`]).
    pub fn untrusted(mut self) -> Self {
        self.untrusted = true;
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    pub fn timeout_secs(mut self, secs: u64) -> Self {
        self.timeout_secs = Some(secs);
        self
    }

    /// Keep the last `bytes` of the output for [`RunOutput::output`].
    pub fn keep_output(mut self, bytes: usize) -> Self {
        self.keep_output = Some(bytes);
        self
    }
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOutput {
    /// The exit code, or `None` when a signal ended it.
    pub exit_code: Option<i32>,
    /// True when the host killed it at its timeout.
    pub timed_out: bool,
    pub duration_ms: u64,
    /// The last [`RunRequest::keep_output`] bytes of the output, from the start of a line;
    /// empty unless asked for.
    #[serde(default)]
    pub output: String,
}

impl RunOutput {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }

    /// Whole seconds it ran, as statuses show it.
    pub fn seconds(&self) -> u64 {
        self.duration_ms / 1000
    }

    /// How it ended, for a status or a log line: `exit 3`, `killed by a signal`, `timed out`.
    pub fn ending(&self) -> String {
        match (self.timed_out, self.exit_code) {
            (true, _) => "timed out".to_owned(),
            (false, Some(code)) => format!("exit {code}"),
            (false, None) => "killed by a signal".to_owned(),
        }
    }
}

/// Check out one commit into the job's workspace: see [`Host::checkout`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckoutRequest {
    /// Where to fetch from: `https://`, `ssh://`, `git@host:path` or `file://`.
    pub clone_url: String,
    /// The full commit sha to check out.
    pub sha: String,
}

/// A checked-out workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    pub path: PathBuf,
}

/// Take a named lock for the rest of the job: see [`Host::lock`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRequest {
    pub name: String,
    /// Wait for the lock (true) or answer at once whether it was free (false).
    pub wait: bool,
}

/// Whether the job now holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockAnswer {
    pub acquired: bool,
}

/// A reply in the thread of the comment this job's command came in: see [`Host::reply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadReply {
    pub body: String,
}

/// A reaction to the comment this job's command came in: see [`Host::react`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentReaction {
    /// GitHub's reaction names: `+1`, `-1`, `laugh`, `confused`, `heart`, `hooray`, `rocket`,
    /// `eyes`.
    pub content: String,
}

/// Make this job the latest of a line: see [`Host::supersede`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupersedeRequest {
    pub line: String,
    pub sha: String,
}

/// Whether a job is the latest of its line: see [`Host::supersede`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Superseding {
    /// The latest: go on. An older job of the line, if one was running, is being cancelled.
    Latest,
    /// A newer job of the line already started, on `newer_sha`: this one should not run.
    Stale { newer_sha: String },
}

/// Ask for the latest job of a line: see [`Host::latest_of_line`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineRequest {
    pub line: String,
}

/// The latest job of a line, as the journal records it: see [`Host::latest_of_line`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineLatest {
    /// Its job id (a build's check run carries it as its external id).
    pub job: i64,
    /// The sha it works on, as it called [`Host::supersede`] with.
    pub sha: String,
    /// Whether it is still queued or running.
    pub running: bool,
    /// What its work came to, once it ended (`None` while it runs).
    #[serde(default)]
    pub verdict: Option<crate::Verdict>,
}

/// A head of a pull request to record: see [`Host::record_head`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadNote {
    /// `owner/repo`, the base repository.
    pub repository: String,
    pub number: u64,
    pub sha: String,
    /// `None`: seen arriving; `Some(person)`: approved by them.
    #[serde(default)]
    pub approved_by: Option<String>,
}

/// Ask for a pull request's recorded heads: see [`Host::heads`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadsRequest {
    pub repository: String,
    pub number: u64,
}

/// A head the journal recorded for a pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedHead {
    pub sha: String,
    /// The job that recorded it: job ids follow the order deliveries arrived in.
    pub job: i64,
    /// Who approved it (`github:12345 (mona)`); `None` for a head seen arriving.
    #[serde(default)]
    pub approved_by: Option<String>,
}

/// Cancel another job of the same plugin: see [`Host::cancel_job`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelJobRequest {
    pub job: i64,
    /// Who asked, as the cancelled job is told: "cancelled by {by}".
    pub by: String,
}

/// What cancelling a job found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelAnswer {
    /// It was queued or running, and is being cancelled (on whichever host runs it).
    Cancelling,
    /// It had already ended: nothing to do.
    Ended,
}

/// A JSON POST to an endpoint outside GitHub: see [`Host::post_json`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpPost {
    /// Often a secret (incoming-webhook URLs are): the host never logs it.
    pub url: String,
    pub body: serde_json::Value,
    /// Extra headers, e.g. an API key header.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

/// A success answer to an [`HttpPost`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: String,
}

/// The host's services for the job being handled.
pub struct Host {
    services: HostServices,
}

impl Host {
    #[doc(hidden)]
    pub fn new(services: HostServices) -> Self {
        Self { services }
    }

    /// Appends a line to the job's log (served at `event.job.log_url`).
    pub async fn log(&self, line: impl Into<String>) {
        let mut line = line.into();
        if !line.ends_with('\n') {
            line.push('\n');
        }
        self.services.log(line.as_bytes()).await;
    }

    /// Sends a GitHub REST call with the host's credentials, retries and rate-limit handling.
    pub async fn github(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<GitHubResponse, HostError> {
        let call = GitHubCall {
            method: method.to_owned(),
            path: path.to_owned(),
            body,
        };
        self.service(ServiceRequest::Github(call)).await
    }

    /// `POST /repos/{repo}/statuses/{sha}`.
    pub async fn create_status(
        &self,
        repo: &str,
        sha: &str,
        status: &CommitStatus,
    ) -> Result<GitHubResponse, HostError> {
        let path = format!(
            "/repos/{}/statuses/{}",
            repo_path(repo)?,
            path_segment(sha)?
        );
        self.github("POST", &path, Some(to_value(status))).await
    }

    /// `POST /repos/{repo}/deployments`.
    pub async fn create_deployment(
        &self,
        repo: &str,
        deployment: &NewDeployment,
    ) -> Result<GitHubResponse, HostError> {
        let path = format!("/repos/{}/deployments", repo_path(repo)?);
        self.github("POST", &path, Some(to_value(deployment))).await
    }

    /// `POST /repos/{repo}/deployments/{id}/statuses`.
    pub async fn create_deployment_status(
        &self,
        repo: &str,
        deployment_id: u64,
        status: &NewDeploymentStatus,
    ) -> Result<GitHubResponse, HostError> {
        let path = format!(
            "/repos/{}/deployments/{deployment_id}/statuses",
            repo_path(repo)?
        );
        self.github("POST", &path, Some(to_value(status))).await
    }

    /// Replies `body` (Markdown) in the thread of the comment whose command this job runs
    /// ([`Event::command`](crate::Event::command)): a refusal for some arguments, a result. It
    /// goes under the plugin's own token, so as a GitHub App the plugin declares
    /// `issues: write` (or `pull_requests: write` for pull requests). A job that runs no
    /// command gets [`HostError::InvalidRequest`].
    pub async fn reply(&self, body: &str) -> Result<GitHubResponse, HostError> {
        let reply = ThreadReply {
            body: body.to_owned(),
        };
        self.service(ServiceRequest::Reply(reply)).await
    }

    /// Reacts with `content` (`+1`, `-1`, `laugh`, `confused`, `heart`, `hooray`, `rocket`,
    /// `eyes`) to the comment whose command this job runs, under the plugin's own token (as
    /// [`Host::reply`]). The host already reacted 👀 when it accepted the command.
    pub async fn react(&self, content: &str) -> Result<GitHubResponse, HostError> {
        let reaction = CommentReaction {
            content: content.to_owned(),
        };
        self.service(ServiceRequest::React(reaction)).await
    }

    /// Runs a command with a timeout, its stdout and stderr going to the job's log.
    pub async fn run(&self, request: &RunRequest) -> Result<RunOutput, HostError> {
        self.service(ServiceRequest::Run(request.clone())).await
    }

    /// Checks out `sha` from `clone_url` into a fresh workspace that belongs to this job and
    /// returns its path. The host removes it when the job's attempt ends (the log stays).
    ///
    /// HTTPS clones from the configured GitHub host use the host's token, passed to git in its
    /// environment: it never appears in the URL, the workspace's `.git/config` or the log. Git's
    /// output goes to the job's log. Fetches the sha itself, falling back to all branches and
    /// pull request heads for servers that refuse fetching by sha.
    pub async fn checkout(&self, clone_url: &str, sha: &str) -> Result<PathBuf, HostError> {
        let request = CheckoutRequest {
            clone_url: clone_url.to_owned(),
            sha: sha.to_owned(),
        };
        let workspace: Workspace = self.service(ServiceRequest::Checkout(request)).await?;
        Ok(workspace.path)
    }

    /// POSTs `body` as JSON to `url` (a chat or pager endpoint) with the host's HTTP client:
    /// 5xx and 429 answers are retried with backoff (honouring `Retry-After`) a bounded number
    /// of times, then fail with [`HostError::HttpUnavailable`] (the job is retried later);
    /// other error answers fail with [`HostError::Http`] and the endpoint's message. Neither
    /// error, nor any log line, contains the URL: only its host name.
    pub async fn post_json(
        &self,
        url: &str,
        body: serde_json::Value,
    ) -> Result<HttpAnswer, HostError> {
        let post = HttpPost {
            url: url.to_owned(),
            body,
            headers: Vec::new(),
        };
        self.service(ServiceRequest::HttpPost(post)).await
    }

    /// Waits for the lock called `name` and holds it until this job's attempt ends (however it
    /// ends). Locks are kept in the journal, so they survive a host restart; a job that runs
    /// again after a restart gets back the lock it held.
    pub async fn lock(&self, name: &str) -> Result<(), HostError> {
        self.lock_request(name, true).await.map(|_| ())
    }

    /// Takes the lock called `name` if it is free, without waiting. Returns whether this job
    /// now holds it.
    pub async fn try_lock(&self, name: &str) -> Result<bool, HostError> {
        self.lock_request(name, false).await
    }

    async fn lock_request(&self, name: &str, wait: bool) -> Result<bool, HostError> {
        let request = LockRequest {
            name: name.to_owned(),
            wait,
        };
        let answer: LockAnswer = self.service(ServiceRequest::Lock(request)).await?;
        Ok(answer.acquired)
    }

    /// Makes this job the latest of `line` (any key the plugin picks, such as a pull request),
    /// working on `sha`. An older job of the same plugin and line still queued or running is
    /// cancelled with [`CancelReason::Superseded`], on whichever host runs it; when a newer job
    /// of the line already called this, the answer is [`Superseding::Stale`]. Jobs are ordered
    /// by id, which follows the order deliveries arrived in, and the record lives in the
    /// journal, so it holds across restarts and across hosts sharing one.
    pub async fn supersede(&self, line: &str, sha: &str) -> Result<Superseding, HostError> {
        let request = SupersedeRequest {
            line: line.to_owned(),
            sha: sha.to_owned(),
        };
        self.service(ServiceRequest::Supersede(request)).await
    }

    /// The latest job of this plugin's `line` (the one that last called [`Host::supersede`]
    /// for it and was not stale), with the verdict the journal recorded when it ended: what a
    /// `/retest` reads to know whether a pull request's last build failed. `None` when no job
    /// of the line is recorded. The record is the journal's, so it holds across hosts.
    pub async fn latest_of_line(&self, line: &str) -> Result<Option<LineLatest>, HostError> {
        let request = LineRequest {
            line: line.to_owned(),
        };
        self.service(ServiceRequest::LatestOfLine(request)).await
    }

    /// Records a head of pull request `number` of `repository` in the journal, by this job:
    /// seen arriving (`approved_by: None`), or approved by a person, which the audit trail
    /// records too. Answers whether it is the pull request's first record. The CI runner's
    /// fork gate keeps its heads here (see docs/security.md).
    pub async fn record_head(
        &self,
        repository: &str,
        number: u64,
        sha: &str,
        approved_by: Option<&str>,
    ) -> Result<bool, HostError> {
        let note = HeadNote {
            repository: repository.to_owned(),
            number,
            sha: sha.to_owned(),
            approved_by: approved_by.map(str::to_owned),
        };
        self.service(ServiceRequest::RecordHead(note)).await
    }

    /// The heads the journal recorded for pull request `number` of `repository`, oldest first
    /// (the newest 200).
    pub async fn heads(
        &self,
        repository: &str,
        number: u64,
    ) -> Result<Vec<RecordedHead>, HostError> {
        let request = HeadsRequest {
            repository: repository.to_owned(),
            number,
        };
        self.service(ServiceRequest::Heads(request)).await
    }

    /// Cancels job `job` of this same plugin (a "Cancel" button on something it posted), on
    /// whichever host runs it: the job sees [`CancelReason::User`] with `by`, and a queued job
    /// is cancelled as it starts. Another plugin's job is refused.
    pub async fn cancel_job(&self, job: i64, by: &str) -> Result<CancelAnswer, HostError> {
        let request = CancelJobRequest {
            job,
            by: by.to_owned(),
        };
        self.service(ServiceRequest::CancelJob(request)).await
    }

    /// Completes when the host cancels this job, with the reason: the job's timeout, the host
    /// shutting down (the job runs again after the restart) or a person. Race it against the
    /// work, then post a final status and return within `[workers] cancel_grace_secs`; after
    /// that the host kills the job's commands and drops its future.
    ///
    /// ```no_run
    /// # use switchyard_plugin_api::prelude::*;
    /// # async fn build(host: &Host) -> Result<Outcome, PluginError> { Ok(Outcome::Done) }
    /// # async fn example(host: &Host) -> Result<Outcome, PluginError> {
    /// tokio::select! {
    ///     done = build(host) => done,
    ///     reason = host.cancelled() => {
    ///         host.log(format!("stopped: {reason}")).await;
    ///         Err(PluginError::fatal(reason.to_string()))
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn cancelled(&self) -> CancelReason {
        match self
            .service::<CancelReason>(ServiceRequest::Cancelled)
            .await
        {
            Ok(reason) => reason,
            // Asked after the attempt ended: it is as good as cancelled, but no reason is known.
            Err(_) => std::future::pending().await,
        }
    }

    pub(crate) async fn service<Resp: DeserializeOwned>(
        &self,
        request: ServiceRequest,
    ) -> Result<Resp, HostError> {
        let answer = self.services.request(&abi::to_json(&request)).await;
        match serde_json::from_slice::<ServiceResult<Resp>>(answer.as_slice()) {
            Ok(ServiceResult::Ok(value)) => Ok(value),
            Ok(ServiceResult::Err(error)) => Err(error),
            Err(e) => Err(HostError::Internal(format!(
                "unreadable answer from host: {e}"
            ))),
        }
    }
}

fn to_value<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("GitHub body types always serialize")
}

fn path_segment(s: &str) -> Result<&str, HostError> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(s)
    } else {
        Err(HostError::InvalidRequest(format!(
            "not a commit sha: {s:?}"
        )))
    }
}

impl Clone for Host {
    fn clone(&self) -> Self {
        Self {
            services: self.services.retain(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_says_how_it_ended_and_for_how_long() {
        let output = |exit_code, timed_out| RunOutput {
            exit_code,
            timed_out,
            duration_ms: 12_900,
            output: String::new(),
        };
        assert_eq!(output(Some(3), false).ending(), "exit 3");
        assert_eq!(output(None, false).ending(), "killed by a signal");
        assert_eq!(output(None, true).ending(), "timed out");
        assert_eq!(output(Some(0), false).seconds(), 12);
        assert!(output(Some(0), false).success() && !output(Some(0), true).success());
    }
}
