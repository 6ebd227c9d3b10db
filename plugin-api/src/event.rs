//! The event a plugin handles: what the host read off the delivery, plus GitHub's payload, parsed lazily.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::{Command, PluginError};

/// Facts about the job this call belongs to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JobInfo {
    /// The job's id in the host's journal.
    pub id: i64,
    /// 1 for the first try, 2 for the first retry, and so on.
    pub attempt: u32,
    /// Public URL of this job's log; link it from commit and deployment statuses.
    pub log_url: String,
}

/// One GitHub webhook delivery, as handed to [`crate::Plugin::handle`].
#[derive(Debug)]
pub struct Event {
    /// `X-GitHub-Delivery`: unique per delivery (a redelivery keeps the id).
    pub delivery: String,
    /// `X-GitHub-Event`, e.g. `pull_request`.
    pub name: String,
    /// The payload's `action`, e.g. `opened`, when it has one.
    pub action: Option<String>,
    /// The payload's `repository.full_name`, e.g. `octo-org/octo-repo`, when it has one.
    pub repository: Option<String>,
    /// The payload's `sender.login`: who triggered the event, when it says.
    pub sender: Option<String>,
    /// When the host received the delivery (RFC 3339, UTC).
    pub received_at: String,
    /// The job this call runs for.
    pub job: JobInfo,
    /// The comment command this job runs (an `issue_comment` the host parsed and whose author
    /// it found allowed to give it), `None` for every other job.
    pub command: Option<Command>,
    /// Valid JSON: the host checked it at ingress.
    raw_payload: String,
    payload: OnceLock<Value>,
}

impl Event {
    /// GitHub's payload as a JSON value, parsed on first use.
    pub fn payload(&self) -> &Value {
        self.payload
            .get_or_init(|| serde_json::from_str(&self.raw_payload).unwrap_or(Value::Null))
    }

    /// GitHub's payload exactly as received.
    pub fn raw_payload(&self) -> &str {
        &self.raw_payload
    }

    /// Parses the payload into your own type, naming the event in the error.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        serde_json::from_str(&self.raw_payload)
            .map_err(|e| PluginError::fatal(format!("unexpected `{}` payload: {e}", self.name)))
    }

    /// Builds an event in a plugin's own unit tests, without a host.
    pub fn for_test(name: &str, payload: Value) -> Self {
        let action = payload["action"].as_str().map(str::to_owned);
        let repository = payload["repository"]["full_name"]
            .as_str()
            .map(str::to_owned);
        let sender = payload["sender"]["login"].as_str().map(str::to_owned);
        Self {
            delivery: "00000000-0000-0000-0000-000000000000".to_owned(),
            name: name.to_owned(),
            action,
            repository,
            sender,
            received_at: "2026-01-01T00:00:00Z".to_owned(),
            job: JobInfo {
                id: 1,
                attempt: 1,
                log_url: "http://127.0.0.1:9393/jobs/1/log".to_owned(),
            },
            command: None,
            raw_payload: payload.to_string(),
            payload: OnceLock::new(),
        }
    }

    /// Builds an event carrying `command`, in a plugin's own unit tests.
    pub fn for_test_command(payload: Value, command: Command) -> Self {
        Self {
            command: Some(command),
            ..Self::for_test("issue_comment", payload)
        }
    }

    pub(crate) fn from_call(head: &[u8], payload: Vec<u8>) -> Result<Self, PluginError> {
        let head: crate::wire::CallHead = serde_json::from_slice(head)
            .map_err(|e| PluginError::fatal(format!("host sent an unreadable call: {e}")))?;
        let raw_payload = String::from_utf8(payload).map_err(|e| {
            PluginError::fatal(format!("host sent a payload that is not UTF-8: {e}"))
        })?;
        Ok(Self {
            delivery: head.delivery,
            name: head.event,
            action: head.action,
            repository: head.repository,
            sender: head.sender,
            received_at: head.received_at,
            job: head.job,
            command: head.command,
            raw_payload,
            payload: OnceLock::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::CallHead;

    fn head() -> Vec<u8> {
        serde_json::to_vec(&CallHead {
            job: JobInfo {
                id: 7,
                attempt: 1,
                log_url: "http://h/jobs/7/log".into(),
            },
            delivery: "d-7".into(),
            event: "pull_request".into(),
            action: Some("opened".into()),
            repository: Some("octo/repo".into()),
            sender: Some("mona".into()),
            received_at: "2026-01-01T00:00:00Z".into(),
            command: None,
        })
        .unwrap()
    }

    #[test]
    fn a_call_becomes_an_event_with_its_payload_untouched() {
        let payload = br#"{ "action" : "opened", "n": [1, {"x": "\u00e9"}] }"#;
        let event = Event::from_call(&head(), payload.to_vec()).unwrap();
        assert_eq!(event.raw_payload().as_bytes(), payload);
        assert_eq!(event.payload()["n"][1]["x"], "é");
        assert_eq!(
            (event.delivery.as_str(), event.name.as_str(), event.job.id),
            ("d-7", "pull_request", 7)
        );
        assert_eq!(
            (event.action, event.repository, event.sender),
            (
                Some("opened".into()),
                Some("octo/repo".into()),
                Some("mona".into())
            )
        );
    }

    #[test]
    fn a_broken_call_fails_the_job_saying_what_was_wrong() {
        let unreadable = Event::from_call(b"{\"job\":", b"{}".to_vec()).unwrap_err();
        assert!(
            unreadable
                .message
                .starts_with("host sent an unreadable call"),
            "{unreadable:?}"
        );
        let not_utf8 = Event::from_call(&head(), vec![b'"', 0xff, b'"']).unwrap_err();
        assert!(
            not_utf8
                .message
                .starts_with("host sent a payload that is not UTF-8"),
            "{not_utf8:?}"
        );
        assert!(!unreadable.retryable && !not_utf8.retryable);
    }
}
