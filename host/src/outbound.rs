//! Outbound HTTP with bounded retries, shared by the GitHub client and the `http_post` service
//! notifiers use: 5xx, 429 and rate-limit 403s are retried with backoff, honouring
//! `Retry-After` and `x-ratelimit-reset`; other error answers fail at once with the answer's
//! message. Calls are named by a caller-given description that holds no secret: URLs of chat
//! and pager endpoints carry secrets, so they never reach a log or an error.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use reqwest::{StatusCode, header::HeaderMap};
use switchyard_plugin_api::{HostError, HttpAnswer, HttpPost};

use crate::{config::GitHubConfig, metrics::Metrics};

/// Where a call's answers and retries are counted.
#[derive(Clone)]
pub struct Counted {
    pub metrics: std::sync::Arc<Metrics>,
    /// `github` or `http_post`.
    pub target: &'static str,
}

impl Counted {
    fn answer(&self, status: &str) {
        let labels = [self.target, status];
        self.metrics.outbound_calls.with_label_values(&labels).inc();
    }

    fn retry(&self) {
        let labels = [self.target];
        self.metrics
            .outbound_retries
            .with_label_values(&labels)
            .inc();
    }
}

/// The host's HTTP client: a user agent and timeouts, so no call hangs a job.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()
}

/// How often and how long to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: u32,
    /// First delay when the server gives none; doubles.
    pub backoff: Duration,
    /// A longer wait than this asked for by the server is not waited out.
    pub max_wait: Duration,
}

impl RetryPolicy {
    pub fn from_config(config: &GitHubConfig) -> Self {
        Self {
            max_retries: config.max_retries,
            backoff: Duration::from_millis(config.backoff_ms),
            max_wait: Duration::from_secs(config.max_wait_secs),
        }
    }
}

/// A success answer.
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
    /// GitHub's `Link` says where the next page of a list is.
    pub headers: HeaderMap,
}

/// Why a call failed.
#[derive(Debug)]
pub enum Failure {
    /// An error answer retrying will not fix, with its headers (GitHub's `Date`, its
    /// `X-Accepted-GitHub-Permissions`).
    Refused {
        status: u16,
        message: String,
        headers: HeaderMap,
    },
    /// Kept failing or unreachable, after the retries allowed.
    Unavailable(String),
}

/// Sends `request()` until it succeeds, fails for good, or the retries run out. `what` names
/// the call in logs and errors (`POST /repos/o/r/statuses/abc`, `POST to hooks.slack.com`).
pub async fn send_with_retries(
    policy: &RetryPolicy,
    counted: &Counted,
    what: &str,
    request: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Answer, Failure> {
    let mut attempt = 0;
    loop {
        let (reason, delay) = match request().send().await {
            Ok(response) => {
                let status = response.status();
                counted.answer(status.as_str());
                let headers = response.headers().clone();
                let body = response.bytes().await.unwrap_or_default();
                if status.is_success() {
                    return Ok(Answer {
                        status: status.as_u16(),
                        body,
                        headers,
                    });
                }
                let message = error_message(&body);
                match retry_delay(status, &headers, &message, SystemTime::now()) {
                    Some(delay) => (format!("{what} answered {status}: {message}"), delay),
                    None => {
                        return Err(Failure::Refused {
                            status: status.as_u16(),
                            message,
                            headers,
                        });
                    }
                }
            }
            // Without the URL: it may carry a secret.
            Err(error) => {
                counted.answer("error");
                (format!("{what} failed: {}", error.without_url()), None)
            }
        };
        let delay = delay.unwrap_or(policy.backoff * 2u32.saturating_pow(attempt));
        if attempt >= policy.max_retries || delay > policy.max_wait {
            return Err(Failure::Unavailable(format!(
                "{reason} (gave up after {} attempts)",
                attempt + 1
            )));
        }
        counted.retry();
        tracing::warn!(call = %what, attempt = attempt + 1, delay_ms = delay.as_millis() as u64, %reason, "retrying");
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

/// The `message` of a JSON error (GitHub, PagerDuty), else the start of the body as text.
fn error_message(body: &[u8]) -> String {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    match json["message"].as_str() {
        Some(message) => {
            let errors = json["errors"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .filter_map(|e| e.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .filter(|e| !e.is_empty());
            match errors {
                Some(errors) => format!("{message} ({errors})"),
                None => message.to_owned(),
            }
        }
        None => String::from_utf8_lossy(body).chars().take(200).collect(),
    }
}

/// POSTs JSON to a URL a plugin gives (a chat or pager endpoint), for the `http_post` service.
pub struct WebhookClient {
    http: reqwest::Client,
    policy: RetryPolicy,
    counted: Counted,
}

impl WebhookClient {
    pub fn new(
        policy: RetryPolicy,
        metrics: std::sync::Arc<Metrics>,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: client()?,
            policy,
            counted: Counted {
                metrics,
                target: "http_post",
            },
        })
    }

    pub async fn post(&self, post: HttpPost) -> Result<HttpAnswer, HostError> {
        let url = reqwest::Url::parse(&post.url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.host_str().is_some())
            // Not the URL itself: it is probably a secret.
            .ok_or_else(|| HostError::InvalidRequest("http_post needs an http(s) URL".into()))?;
        let what = format!("POST to {}", url.host_str().unwrap_or_default());
        let answer = send_with_retries(&self.policy, &self.counted, &what, || {
            let mut request = self.http.post(url.clone()).json(&post.body);
            for (name, value) in &post.headers {
                request = request.header(name, value);
            }
            request
        })
        .await;
        match answer {
            Ok(answer) => Ok(HttpAnswer {
                status: answer.status,
                body: String::from_utf8_lossy(&answer.body).into_owned(),
            }),
            Err(Failure::Refused {
                status, message, ..
            }) => Err(HostError::Http {
                status,
                message: format!("{what} answered {status}: {message}"),
            }),
            Err(Failure::Unavailable(reason)) => Err(HostError::HttpUnavailable(reason)),
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

    #[test]
    fn error_messages_come_from_json_or_text() {
        let pagerduty = br#"{"status":"invalid event","message":"Event object is invalid","errors":["'routing_key' is missing"]}"#;
        assert_eq!(
            error_message(pagerduty),
            "Event object is invalid ('routing_key' is missing)"
        );
        assert_eq!(error_message(br#"{"message":"Not Found"}"#), "Not Found");
        assert_eq!(error_message(b"invalid_payload"), "invalid_payload");
    }

    #[tokio::test]
    async fn a_bad_url_is_refused_without_being_echoed() {
        let policy = RetryPolicy {
            max_retries: 0,
            backoff: Duration::ZERO,
            max_wait: Duration::ZERO,
        };
        let client = WebhookClient::new(policy, Default::default()).unwrap();
        for url in ["ftp://secret-token@example.com/x", "not a url with s3cr3t"] {
            let post = HttpPost {
                url: url.into(),
                body: serde_json::json!({}),
                headers: Vec::new(),
            };
            let error = client.post(post).await.unwrap_err().to_string();
            assert!(
                !error.contains("secret") && !error.contains("s3cr3t"),
                "{error}"
            );
        }
    }
}
