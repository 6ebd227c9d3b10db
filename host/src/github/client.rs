//! Sending one REST call to the configured API with a bearer credential (a personal token, an
//! installation token or the App's JWT), with the retries and answer bounds of `outbound`
//! (`[github] max_answer_mib`, `timeout_secs`). The credential only ever goes to
//! `[github] api_url`: callers give a path, never a URL.

use reqwest::{Method, header::HeaderMap};
use switchyard_plugin_api::{GitHubResponse, HostError, wire::GitHubCall};

use crate::{
    config::GitHubConfig,
    ops::metrics::Metrics,
    services::outbound::{self, Counted, Failure, RetryPolicy, send_with_retries},
};

/// The REST API at `[github] api_url`.
pub struct Api {
    http: reqwest::Client,
    url: String,
    policy: RetryPolicy,
    counted: Counted,
}

/// An answer GitHub refused, with what the callers read off it.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
    pub headers: HeaderMap,
}

/// Why a call failed.
#[derive(Debug)]
pub enum CallError {
    /// GitHub answered with an error retrying will not fix.
    Refused(Refusal),
    /// GitHub could not be reached or kept failing.
    Unavailable(String),
}

impl From<CallError> for HostError {
    fn from(error: CallError) -> Self {
        match error {
            CallError::Refused(Refusal {
                status, message, ..
            }) => HostError::GitHub { status, message },
            CallError::Unavailable(reason) => HostError::GitHubUnavailable(reason),
        }
    }
}

impl Api {
    pub fn new(
        config: &GitHubConfig,
        metrics: std::sync::Arc<Metrics>,
    ) -> Result<Self, reqwest::Error> {
        let policy = RetryPolicy::from_config(config);
        Ok(Self {
            http: outbound::client(policy.timeout)?,
            url: config.api_url.trim_end_matches('/').to_owned(),
            policy,
            counted: Counted {
                metrics,
                target: "github",
            },
        })
    }

    /// Sends `call` with `bearer` as its credential.
    pub async fn send(&self, call: &GitHubCall, bearer: &str) -> Result<GitHubResponse, CallError> {
        self.send_paged(call, bearer)
            .await
            .map(|(answer, _)| answer)
    }

    /// Sends `call`, a list, and reads the cursor of its next page off GitHub's `Link` header
    /// (`None` on the last page). Only the cursor is taken from the link, never its URL: the
    /// next call goes to the API like any other.
    pub async fn send_paged(
        &self,
        call: &GitHubCall,
        bearer: &str,
    ) -> Result<(GitHubResponse, Option<String>), CallError> {
        // Plugins give a path, never a URL, so the credential only ever goes to the API.
        check_path(&call.path).map_err(|e| CallError::Refused(invalid(e)))?;
        let method = Method::from_bytes(call.method.as_bytes()).map_err(|_| {
            CallError::Refused(invalid(format!("bad HTTP method {:?}", call.method)))
        })?;
        let url = format!("{}{}", self.url, call.path);
        let what = format!("{method} {}", call.path);
        let answer = send_with_retries(&self.policy, &self.counted, &what, || {
            let request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(bearer)
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28");
            match &call.body {
                Some(body) => request.json(body),
                None => request,
            }
        })
        .await;
        match answer {
            Ok(answer) => {
                let link = answer.headers.get("link").and_then(|v| v.to_str().ok());
                let next = link.and_then(next_cursor);
                let answer = GitHubResponse {
                    status: answer.status,
                    body: serde_json::from_slice(&answer.body).unwrap_or(serde_json::Value::Null),
                };
                Ok((answer, next))
            }
            Err(Failure::Refused {
                status,
                message,
                headers,
            }) => Err(CallError::Refused(Refusal {
                status,
                message,
                headers,
            })),
            Err(Failure::Unavailable(reason)) => Err(CallError::Unavailable(reason)),
            // Never sent (a credential with a line break, say): an invalid request, not retried.
            Err(Failure::Unsendable(reason)) => Err(CallError::Refused(invalid(reason))),
        }
    }
}

/// The `cursor` parameter of the `rel="next"` link in a `Link` header, as GitHub pages its
/// cursor-based lists (`<https://api.github.com/app/hook/deliveries?per_page=100&cursor=v1_9>;
/// rel="next"`).
pub fn next_cursor(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let next = params
            .split(';')
            .any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next"));
        if !next {
            return None;
        }
        let target = target.trim().trim_start_matches('<').trim_end_matches('>');
        let (_, query) = target.split_once('?')?;
        query.split('&').find_map(|pair| {
            let value = pair.strip_prefix("cursor=")?;
            let decoded = percent_decode(value);
            (!decoded.is_empty()).then_some(decoded)
        })
    })
}

/// `%XX` escapes decoded; anything else kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Marks a request the host refuses before sending it; turned into `InvalidRequest`.
const INVALID: u16 = 0;

fn invalid(message: String) -> Refusal {
    Refusal {
        status: INVALID,
        message,
        headers: HeaderMap::new(),
    }
}

/// The host error for a failed call: `InvalidRequest` for what was never sent.
pub fn host_error(error: CallError) -> HostError {
    match error {
        CallError::Refused(Refusal {
            status: INVALID,
            message,
            ..
        }) => HostError::InvalidRequest(message),
        other => other.into(),
    }
}

/// A path under the API: starts with one `/`, names no other host.
pub fn check_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') || path.starts_with("//") || path.contains("://") {
        return Err(format!("GitHub path must start with `/`: {path:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_pages_cursor_is_read_off_the_link_header() {
        let cases = [
            (
                r#"<https://api.github.com/app/hook/deliveries?per_page=2&cursor=v1_1002>; rel="next""#,
                Some("v1_1002"),
            ),
            (
                r#"<https://x/app/hook/deliveries?per_page=2>; rel="first", <https://x/app/hook/deliveries?cursor=a%2Bb&per_page=2>; rel="next""#,
                Some("a+b"),
            ),
            (
                r#"<https://x/app/hook/deliveries?cursor=v1_1>; rel="prev""#,
                None,
            ),
            ("", None),
            ("garbage", None),
        ];
        for (link, expected) in cases {
            assert_eq!(next_cursor(link).as_deref(), expected, "{link}");
        }
    }
}
