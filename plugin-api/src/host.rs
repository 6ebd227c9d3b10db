//! [`Host`]: what a plugin may ask of the host while it handles an event. Each call crosses the
//! boundary as JSON and runs on the host's runtime, so it works from any plugin thread.

use std::{collections::BTreeMap, path::PathBuf};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{
    abi::{self, HostServices},
    github::{CommitStatus, GitHubResponse, NewDeployment, NewDeploymentStatus, repo_path},
    wire::{GitHubCall, ServiceResult},
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
    /// The host failed internally (details are in the host's log).
    #[error("host error: {0}")]
    Internal(String),
}

impl From<HostError> for crate::PluginError {
    fn from(error: HostError) -> Self {
        match error {
            HostError::GitHubUnavailable(_) | HostError::Internal(_) => {
                crate::PluginError::retryable(error.to_string())
            }
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
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOutput {
    /// The exit code, or `None` when a signal ended it.
    pub exit_code: Option<i32>,
    /// True when the host killed it at its timeout.
    pub timed_out: bool,
    pub duration_ms: u64,
}

impl RunOutput {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
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
        self.service(HostServices::github, &call).await
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

    /// Runs a command with a timeout, its stdout and stderr going to the job's log.
    pub async fn run(&self, request: &RunRequest) -> Result<RunOutput, HostError> {
        self.service(HostServices::run, request).await
    }

    async fn service<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        call: fn(&HostServices, &[u8]) -> async_ffi::FfiFuture<abi::FfiBytes>,
        request: &Req,
    ) -> Result<Resp, HostError> {
        let answer = call(&self.services, &abi::to_json(request)).await;
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
