//! The outbound GitHub REST client plugins call through the host: base URL from config (GitHub
//! Enterprise works the same), the token from the environment, and the retries of `outbound`.

pub mod stand_in;

use reqwest::Method;
use switchyard_plugin_api::{GitHubResponse, HostError, wire::GitHubCall};

use crate::{
    config::GitHubConfig,
    metrics::Metrics,
    outbound::{self, Counted, Failure, RetryPolicy, send_with_retries},
};

/// What the host needs from GitHub; a trait so tests and other backends can stand in.
#[async_trait::async_trait]
pub trait GitHub: Send + Sync {
    async fn send(&self, call: GitHubCall) -> Result<GitHubResponse, HostError>;
}

/// The real client.
pub struct GitHubClient {
    http: reqwest::Client,
    api_url: String,
    /// `None` when the token variable is unset: calls fail with a message naming it.
    token: Option<String>,
    token_env: String,
    policy: RetryPolicy,
    counted: Counted,
}

impl GitHubClient {
    pub fn new(
        config: &GitHubConfig,
        token: Option<String>,
        metrics: std::sync::Arc<Metrics>,
    ) -> Result<Self, reqwest::Error> {
        let http = outbound::client()?;
        Ok(Self {
            http,
            api_url: config.api_url.trim_end_matches('/').to_owned(),
            token,
            token_env: config.token_env.clone(),
            policy: RetryPolicy::from_config(config),
            counted: Counted {
                metrics,
                target: "github",
            },
        })
    }
}

#[async_trait::async_trait]
impl GitHub for GitHubClient {
    async fn send(&self, call: GitHubCall) -> Result<GitHubResponse, HostError> {
        let token = self.token.as_deref().ok_or_else(|| {
            HostError::NotConfigured(format!(
                "no GitHub token: set the environment variable {}",
                self.token_env
            ))
        })?;
        // Plugins give a path, never a URL, so the token only ever goes to the configured API.
        if !call.path.starts_with('/') || call.path.starts_with("//") || call.path.contains("://") {
            return Err(HostError::InvalidRequest(format!(
                "GitHub path must start with `/`: {:?}",
                call.path
            )));
        }
        let method = Method::from_bytes(call.method.as_bytes())
            .map_err(|_| HostError::InvalidRequest(format!("bad HTTP method {:?}", call.method)))?;
        let url = format!("{}{}", self.api_url, call.path);
        let what = format!("{method} {}", call.path);
        let answer = send_with_retries(&self.policy, &self.counted, &what, || {
            let request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(token)
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28");
            match &call.body {
                Some(body) => request.json(body),
                None => request,
            }
        })
        .await;
        match answer {
            Ok(answer) => Ok(GitHubResponse {
                status: answer.status,
                body: serde_json::from_slice(&answer.body).unwrap_or(serde_json::Value::Null),
            }),
            Err(Failure::Refused { status, message }) => Err(HostError::GitHub { status, message }),
            Err(Failure::Unavailable(reason)) => Err(HostError::GitHubUnavailable(reason)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_a_token_calls_fail_naming_the_variable() {
        let client = GitHubClient::new(&GitHubConfig::default(), None, Default::default()).unwrap();
        let call = GitHubCall {
            method: "GET".into(),
            path: "/rate_limit".into(),
            body: None,
        };
        let error = client.send(call).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "no GitHub token: set the environment variable GITHUB_TOKEN"
        );
    }

    #[tokio::test]
    async fn paths_cannot_send_the_token_elsewhere() {
        let client = GitHubClient::new(
            &GitHubConfig::default(),
            Some("t0ken".into()),
            Default::default(),
        )
        .unwrap();
        for path in ["https://evil.example/x", "//evil.example/x", "repos/x"] {
            let call = GitHubCall {
                method: "GET".into(),
                path: path.into(),
                body: None,
            };
            assert!(
                matches!(client.send(call).await, Err(HostError::InvalidRequest(_))),
                "{path}"
            );
        }
    }
}
