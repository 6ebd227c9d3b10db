//! The outbound GitHub REST client plugins call through the host: base URL from config (GitHub
//! Enterprise works the same), the token from the environment, and bounded retries of 5xx, 429
//! and rate-limit 403s that honour `Retry-After` and `x-ratelimit-reset`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode, header::HeaderMap};
use switchyard_plugin_api::{GitHubResponse, HostError, wire::GitHubCall};

use crate::config::GitHubConfig;

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
    max_retries: u32,
    backoff: Duration,
    max_wait: Duration,
}

impl GitHubClient {
    pub fn new(config: &GitHubConfig, token: Option<String>) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self {
            http,
            api_url: config.api_url.trim_end_matches('/').to_owned(),
            token,
            token_env: config.token_env.clone(),
            max_retries: config.max_retries,
            backoff: Duration::from_millis(config.backoff_ms),
            max_wait: Duration::from_secs(config.max_wait_secs),
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

        let mut attempt = 0;
        loop {
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(token)
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28");
            if let Some(body) = &call.body {
                request = request.json(body);
            }
            let (reason, delay) = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    let body = response.bytes().await.unwrap_or_default();
                    let json: serde_json::Value =
                        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    if status.is_success() {
                        return Ok(GitHubResponse {
                            status: status.as_u16(),
                            body: json,
                        });
                    }
                    let message =
                        json["message"]
                            .as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| {
                                String::from_utf8_lossy(&body).chars().take(200).collect()
                            });
                    match retry_delay(status, &headers, &message, SystemTime::now()) {
                        Some(delay) => (
                            format!("{method} {} answered {status}: {message}", call.path),
                            delay,
                        ),
                        None => {
                            return Err(HostError::GitHub {
                                status: status.as_u16(),
                                message,
                            });
                        }
                    }
                }
                // reqwest's message holds the URL, which holds no secret.
                Err(error) => (format!("{method} {} failed: {error}", call.path), None),
            };
            let delay = delay.unwrap_or(self.backoff * 2u32.saturating_pow(attempt));
            if attempt >= self.max_retries || delay > self.max_wait {
                return Err(HostError::GitHubUnavailable(format!(
                    "{reason} (gave up after {} attempts)",
                    attempt + 1
                )));
            }
            tracing::warn!(path = %call.path, attempt = attempt + 1, delay_ms = delay.as_millis() as u64, %reason, "retrying GitHub call");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

/// Whether an error answer is worth retrying, and after how long if GitHub said.
/// `None` means "do not retry"; `Some(None)` "retry with our own backoff".
fn retry_delay(
    status: StatusCode,
    headers: &HeaderMap,
    message: &str,
    now: SystemTime,
) -> Option<Option<Duration>> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let rate_limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN
            && (header("x-ratelimit-remaining") == Some("0")
                || header("retry-after").is_some()
                || message.to_ascii_lowercase().contains("rate limit")));
    if !rate_limited && !status.is_server_error() {
        return None;
    }
    if let Some(secs) = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Some(Duration::from_secs(secs)));
    }
    if header("x-ratelimit-remaining") == Some("0")
        && let Some(reset) = header("x-ratelimit-reset").and_then(|v| v.trim().parse::<u64>().ok())
    {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        return Some(Some(Duration::from_secs(reset.saturating_sub(now))));
    }
    Some(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, v.parse().unwrap());
        }
        map
    }

    #[test]
    fn which_answers_are_retried_and_when() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let secs = |s| Some(Some(Duration::from_secs(s)));
        // (status, headers, message, expected)
        let cases = [
            (500, headers(&[]), "boom", Some(None)),
            (502, headers(&[]), "", Some(None)),
            (503, headers(&[("retry-after", "7")]), "", secs(7)),
            (429, headers(&[("retry-after", "2")]), "", secs(2)),
            (429, headers(&[]), "", Some(None)),
            (
                403,
                headers(&[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1030"),
                ]),
                "API rate limit exceeded",
                secs(30),
            ),
            (
                403,
                headers(&[]),
                "You have exceeded a secondary rate limit",
                Some(None),
            ),
            (
                403,
                headers(&[]),
                "Resource not accessible by integration",
                None,
            ),
            (404, headers(&[]), "Not Found", None),
            (422, headers(&[]), "Validation Failed", None),
        ];
        for (status, headers, message, expected) in cases {
            let status = StatusCode::from_u16(status).unwrap();
            assert_eq!(
                retry_delay(status, &headers, message, now),
                expected,
                "{status} {message}"
            );
        }
    }

    #[tokio::test]
    async fn without_a_token_calls_fail_naming_the_variable() {
        let client = GitHubClient::new(&GitHubConfig::default(), None).unwrap();
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
        let client = GitHubClient::new(&GitHubConfig::default(), Some("t0ken".into())).unwrap();
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
