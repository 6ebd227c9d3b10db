//! Outbound HTTP with bounded retries, shared by the GitHub client and the `http_post` service
//! notifiers use: 5xx, 429 and rate-limit 403s are retried with backoff, honouring
//! `Retry-After` and `x-ratelimit-reset`; other error answers fail at once with the answer's
//! message. Calls are named by a caller-given description that holds no secret: URLs of chat
//! and pager endpoints carry secrets, so they never reach a log or an error.
//!
//! Answers are read within bounds: no larger than `[github] max_answer_mib` (refused on its
//! `Content-Length`, or as soon as a chunked answer passes it), and whole within
//! `[github] timeout_secs`. An answer that timed out or was cut off is a transport failure,
//! retried like an unreachable server, never an empty success; a request that cannot be built
//! (a header value with a line break) fails at once.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use reqwest::{StatusCode, header::HeaderMap};
use switchyard_plugin_api::{HostError, HttpAnswer, HttpPost};

use crate::{config::GitHubConfig, ops::metrics::Metrics};

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

/// The host's HTTP client: a user agent and timeouts, so no call hangs a job. `timeout`
/// bounds a whole call, its answer's body included.
pub fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10).min(timeout))
        .timeout(timeout)
        .build()
}

/// How often and how long to retry, and the bounds of each try.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: u32,
    /// First delay when the server gives none; doubles.
    pub backoff: Duration,
    /// A longer wait than this asked for by the server is not waited out.
    pub max_wait: Duration,
    /// Bytes an answer may have (`[github] max_answer_mib`).
    pub max_answer: u64,
    /// How long one try may take, its answer read whole (`[github] timeout_secs`).
    pub timeout: Duration,
}

impl RetryPolicy {
    pub fn from_config(config: &GitHubConfig) -> Self {
        Self {
            max_retries: config.max_retries,
            backoff: Duration::from_millis(config.backoff_ms),
            max_wait: Duration::from_secs(config.max_wait_secs),
            max_answer: config.max_answer_mib.saturating_mul(1 << 20),
            timeout: Duration::from_secs(config.timeout_secs),
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
    /// `X-Accepted-GitHub-Permissions`); or an answer larger than `[github] max_answer_mib`.
    Refused {
        status: u16,
        message: String,
        headers: HeaderMap,
    },
    /// Kept failing or unreachable, after the retries allowed.
    Unavailable(String),
    /// The request could not be built (a header value with a line break, say): nothing was
    /// sent, and sending again would not help.
    Unsendable(String),
}

/// Why an answer's body could not be had.
enum Unread {
    /// Larger than allowed: announced so, or read up to the limit.
    TooLarge,
    /// Timed out or cut off: a transport failure, worth retrying.
    Broken(String),
}

/// How one try went, when it did not succeed.
enum Missed {
    /// Worth another try: why, and after how long if the server said.
    Retry(String, Option<Duration>),
    /// Not worth another.
    Fail(Failure),
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
        let (reason, delay) = match try_once(policy, counted, what, request()).await {
            Ok(answer) => return Ok(answer),
            Err(Missed::Fail(failure)) => return Err(failure),
            Err(Missed::Retry(reason, delay)) => (reason, delay),
        };
        let delay = delay.unwrap_or(policy.backoff * 2u32.saturating_pow(attempt));
        if attempt >= policy.max_retries || delay > policy.max_wait {
            return Err(Failure::Unavailable(format!(
                "{reason} (gave up after {} attempts)",
                attempt + 1
            )));
        }
        counted.retry();
        tracing::warn!(call = %what, attempt = attempt + 1, delay_ms = delay.as_millis() as u64, reason = reason.to_string(), "retrying");
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

/// One try: sent, and its answer read within the policy's bounds.
async fn try_once(
    policy: &RetryPolicy,
    counted: &Counted,
    what: &str,
    request: reqwest::RequestBuilder,
) -> Result<Answer, Missed> {
    let response = match request.send().await {
        Ok(response) => response,
        // Nothing was sent: the same request would fail the same way.
        Err(error) if error.is_builder() => {
            return Err(Missed::Fail(Failure::Unsendable(format!(
                "{what} cannot be sent: {}",
                error_chain(&error.without_url())
            ))));
        }
        // Without the URL: it may carry a secret.
        Err(error) => {
            counted.answer("error");
            let failed = match error.is_timeout() {
                true => format!("timed out after {} s", policy.timeout.as_secs()),
                false => error_chain(&error.without_url()),
            };
            return Err(Missed::Retry(format!("{what} failed: {failed}"), None));
        }
    };
    let status = response.status();
    counted.answer(status.as_str());
    let headers = response.headers().clone();
    let body = match read_body(response, policy.max_answer).await {
        Ok(body) => body,
        Err(Unread::TooLarge) => {
            return Err(Missed::Fail(Failure::Refused {
                status: status.as_u16(),
                message: format!(
                    "{what}: the answer is larger than [github] max_answer_mib ({} MiB)",
                    policy.max_answer >> 20
                ),
                headers,
            }));
        }
        // An error answer cut off is as unknown as a success cut off.
        Err(Unread::Broken(problem)) => {
            return Err(Missed::Retry(
                format!("{what} answered {status}, but {problem}"),
                None,
            ));
        }
    };
    if status.is_success() {
        if let Some(problem) = cut_json(&headers, &body) {
            return Err(Missed::Retry(
                format!("{what} answered {status}, but {problem}"),
                None,
            ));
        }
        return Ok(Answer {
            status: status.as_u16(),
            body,
            headers,
        });
    }
    let message = error_message(&body);
    match retry_delay(status, &headers, &message, SystemTime::now()) {
        Some(delay) => Err(Missed::Retry(
            format!("{what} answered {status}: {message}"),
            delay,
        )),
        None => Err(Missed::Fail(Failure::Refused {
            status: status.as_u16(),
            message,
            headers,
        })),
    }
}

/// The answer's body, read chunk by chunk: refused on its `Content-Length`, or as soon as it
/// passes `limit`, so a huge or endless answer costs no more than `limit` of memory.
async fn read_body(mut response: reqwest::Response, limit: u64) -> Result<Bytes, Unread> {
    let announced = response.content_length();
    if announced.is_some_and(|length| length > limit) {
        return Err(Unread::TooLarge);
    }
    let mut body = BytesMut::with_capacity(announced.unwrap_or(0) as usize);
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() as u64 + chunk.len() as u64 > limit {
                    return Err(Unread::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.freeze()),
            Err(error) if error.is_timeout() => {
                return Err(Unread::Broken(format!(
                    "reading its answer timed out after {} bytes",
                    body.len()
                )));
            }
            Err(error) => {
                return Err(Unread::Broken(format!(
                    "its answer was cut off after {} bytes ({})",
                    body.len(),
                    error_chain(&error.without_url())
                )));
            }
        }
    }
}

/// Why a JSON answer that ended early is not whole: an answer closed by the connection, not by
/// its length or its last chunk, may have been cut anywhere.
fn cut_json(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if !json || body.is_empty() {
        return None;
    }
    match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
        Err(error) if error.is_eof() => Some(format!(
            "its answer was cut off: its JSON ends early, after {} bytes",
            body.len()
        )),
        _ => None,
    }
}

/// An error and its sources, `: `-separated: reqwest's own message is only "error sending
/// request" or "builder error".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
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
            http: client(policy.timeout)?,
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
            Err(Failure::Unsendable(reason)) => Err(HostError::InvalidRequest(reason)),
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
            max_answer: 1 << 20,
            timeout: Duration::from_secs(5),
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

    #[tokio::test]
    async fn a_request_that_cannot_be_built_fails_at_once() {
        // A retry would wait an hour: the test would hang rather than pass.
        let policy = RetryPolicy {
            max_retries: 4,
            backoff: Duration::from_secs(3600),
            max_wait: Duration::from_secs(7200),
            max_answer: 1 << 20,
            timeout: Duration::from_secs(5),
        };
        let client = WebhookClient::new(policy, Default::default()).unwrap();
        let post = HttpPost {
            // Nothing listens there: a request sent would fail and be retried.
            url: "http://127.0.0.1:9/hook".into(),
            body: serde_json::json!({}),
            headers: vec![("x-token".into(), "s3cr3t\r\nx-injected: 1".into())],
        };
        let answer = tokio::time::timeout(Duration::from_secs(30), client.post(post)).await;
        match answer.expect("not retried") {
            Err(HostError::InvalidRequest(message)) => {
                assert!(
                    message.starts_with("POST to 127.0.0.1 cannot be sent: builder error"),
                    "{message}"
                );
                assert!(!message.contains("s3cr3t"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_json_answer_that_ends_early_is_cut() {
        let json = headers(&[("content-type", "application/json; charset=utf-8")]);
        let text = headers(&[("content-type", "text/plain")]);
        // (headers, body, cut)
        let cases = [
            (&json, &b"[{\"id\": 1}, {\"id\""[..], true),
            (&json, b"{\"token\": \"ghs_", true),
            (&json, b"[{\"id\": 1}]", false),
            (&json, b"", false),
            (&json, b"not json at all", false),
            (&text, b"[{\"id\"", false),
        ];
        for (headers, body, cut) in cases {
            let found = cut_json(headers, body);
            assert_eq!(
                found.is_some(),
                cut,
                "{:?}: {found:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
