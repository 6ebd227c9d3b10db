//! The JSON messages that cross the boundary, shared by both sides so they cannot drift apart.
//! Plugin authors never see this module.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{Outcome, PluginError, Subscription};

/// What `create` answers, as JSON in `CreateResult::reply`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreateReply {
    Ready { subscriptions: Vec<Subscription> },
    Failed { error: String },
}

/// One job handed to a plugin, as the plugin reads it. The payload is the raw bytes GitHub sent.
#[derive(Debug, Deserialize)]
pub struct Call<'a> {
    pub job: crate::JobInfo,
    pub delivery: &'a str,
    pub event: &'a str,
    pub action: Option<&'a str>,
    pub repository: Option<&'a str>,
    pub received_at: &'a str,
    #[serde(borrow)]
    pub payload: &'a RawValue,
}

/// Everything of a [`Call`] but the payload, as the host writes it. Its own type rather than a
/// `#[serde(flatten)]` part of `Call`: flatten buffers fields, which a borrowed `RawValue`
/// cannot survive.
#[derive(Debug, Serialize)]
pub struct CallHead<'a> {
    pub job: crate::JobInfo,
    pub delivery: &'a str,
    pub event: &'a str,
    pub action: Option<&'a str>,
    pub repository: Option<&'a str>,
    pub received_at: &'a str,
}

/// Writes a [`Call`]: the head's fields plus the payload spliced in as it is, so a 25 MB
/// payload is copied once and never re-parsed. `payload` must be one JSON value (ingress
/// checked it); if not, the plugin's decoding fails and the job fails with that message.
pub fn encode_call(head: &CallHead<'_>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 512);
    serde_json::to_writer(&mut out, head).expect("the call head always serializes");
    out.pop(); // the head object's closing brace
    out.extend_from_slice(b",\"payload\":");
    out.extend_from_slice(payload);
    out.push(b'}');
    out
}

/// What a handler's future yields, as JSON.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallResult {
    Ok(Outcome),
    Err(PluginError),
}

/// A GitHub REST call a plugin asks the host to make with the host's credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GitHubCall {
    pub method: String,
    /// Path under the API base URL, starting with `/`.
    pub path: String,
    pub body: Option<serde_json::Value>,
}

/// A service request from a plugin to the host, tagged by `service`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "service", rename_all = "snake_case")]
pub enum ServiceRequest {
    Github(GitHubCall),
    Run(crate::RunRequest),
    Checkout(crate::CheckoutRequest),
    Lock(crate::LockRequest),
    HttpPost(crate::HttpPost),
}

/// The answer of a host service.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceResult<T> {
    Ok(T),
    Err(crate::HostError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_call_decodes_with_its_payload_intact() {
        let head = CallHead {
            job: crate::JobInfo {
                id: 4,
                attempt: 2,
                log_url: "http://h/jobs/4/log".into(),
            },
            delivery: "d-1",
            event: "pull_request",
            action: Some("opened"),
            repository: None,
            received_at: "2026-01-01T00:00:00Z",
        };
        let payload = br#"{"action":"opened","n":[1,2,{"x":"\u00e9"}]}"#;
        let bytes = encode_call(&head, payload);
        let call: Call<'_> = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(call.payload.get().as_bytes(), payload);
        assert_eq!(
            (call.job.id, call.job.attempt, call.delivery, call.action),
            (4, 2, "d-1", Some("opened"))
        );
        assert_eq!(call.repository, None);
    }
}
