//! Typed bodies for the GitHub REST calls Switchyard makes, exactly as GitHub's schema names
//! them (`POST /repos/{owner}/{repo}/statuses/{sha}`, `.../deployments`,
//! `.../deployments/{id}/statuses`). Optional fields are left out of the JSON when unset.

use serde::{Deserialize, Serialize};

/// GitHub's limit on status and deployment descriptions.
pub const MAX_DESCRIPTION_CHARS: usize = 140;

/// Shortens a description to GitHub's limit, ending in `…` when cut.
pub fn fit_description(text: &str) -> String {
    fit_chars(text, MAX_DESCRIPTION_CHARS)
}

/// Shortens `text` to at most `max` characters, ending in `…` when cut: for any service's
/// length limit (PagerDuty summaries, chat messages).
pub fn fit_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// State of a commit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusState {
    Pending,
    Success,
    Failure,
    Error,
}

/// Body of "create a commit status".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitStatus {
    pub state: StatusState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

impl CommitStatus {
    /// A status in `context` with a description cut to GitHub's limit.
    pub fn new(state: StatusState, context: &str, description: &str) -> Self {
        Self {
            state,
            target_url: None,
            description: Some(fit_description(description)),
            context: Some(context.to_owned()),
        }
    }

    pub fn with_target_url(mut self, url: impl Into<String>) -> Self {
        self.target_url = Some(url.into());
        self
    }
}

/// Body of "create a deployment".
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NewDeployment {
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_merge: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required_contexts: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transient_environment: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub production_environment: Option<bool>,
}

/// State of a deployment status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    Error,
    Failure,
    Inactive,
    InProgress,
    Queued,
    Pending,
    Success,
}

/// Body of "create a deployment status".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewDeploymentStatus {
    pub state: DeploymentState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_inactive: Option<bool>,
}

impl NewDeploymentStatus {
    /// A status with a description cut to GitHub's limit.
    pub fn new(state: DeploymentState, description: &str) -> Self {
        Self {
            state,
            log_url: None,
            description: Some(fit_description(description)),
            environment: None,
            environment_url: None,
            auto_inactive: None,
        }
    }
}

/// A successful GitHub answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GitHubResponse {
    pub status: u16,
    pub body: serde_json::Value,
}

/// Splits `owner/repo`, refusing anything that would change the request path.
pub(crate) fn repo_path(full_name: &str) -> Result<&str, crate::HostError> {
    let valid = full_name.split('/').count() == 2
        && full_name.split('/').all(|part| {
            !part.is_empty()
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
    if valid {
        Ok(full_name)
    } else {
        Err(crate::HostError::InvalidRequest(format!(
            "not a repository full name: {full_name:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_cut_to_githubs_limit() {
        let long = "x".repeat(500);
        let fitted = fit_description(&long);
        assert_eq!(fitted.chars().count(), MAX_DESCRIPTION_CHARS);
        assert!(fitted.ends_with('…'));
        assert_eq!(fit_description("Build #3 running"), "Build #3 running");
    }

    #[test]
    fn unset_fields_are_left_out() {
        let status = CommitStatus::new(StatusState::Pending, "ci/switchyard", "queued");
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"state": "pending", "description": "queued", "context": "ci/switchyard"})
        );
        let deployment = NewDeployment {
            git_ref: "abc".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&deployment).unwrap(),
            serde_json::json!({"ref": "abc"})
        );
    }

    #[test]
    fn repository_names_cannot_escape_the_path() {
        assert!(repo_path("octo-org/octo.repo_1").is_ok());
        for bad in ["octo", "a/b/c", "../x", "a/..", "a/b?x=1", "a /b", "/b"] {
            assert!(repo_path(bad).is_err(), "{bad}");
        }
    }
}
