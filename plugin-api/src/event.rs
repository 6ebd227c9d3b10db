//! The event a plugin handles: the delivery's routing facts plus GitHub's payload, parsed lazily.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, value::RawValue};

use crate::PluginError;

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
    /// When the host received the delivery (RFC 3339, UTC).
    pub received_at: String,
    /// The job this call runs for.
    pub job: JobInfo,
    raw_payload: Box<RawValue>,
    payload: OnceLock<Value>,
}

impl Event {
    /// GitHub's payload as a JSON value, parsed on first use.
    pub fn payload(&self) -> &Value {
        self.payload.get_or_init(|| {
            // The host checked at ingress that the payload is valid JSON.
            serde_json::from_str(self.raw_payload.get()).unwrap_or(Value::Null)
        })
    }

    /// GitHub's payload exactly as received.
    pub fn raw_payload(&self) -> &str {
        self.raw_payload.get()
    }

    /// Parses the payload into your own type, naming the event in the error.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        serde_json::from_str(self.raw_payload.get())
            .map_err(|e| PluginError::fatal(format!("unexpected `{}` payload: {e}", self.name)))
    }

    /// Builds an event in a plugin's own unit tests, without a host.
    pub fn for_test(name: &str, payload: Value) -> Self {
        let action = payload["action"].as_str().map(str::to_owned);
        let repository = payload["repository"]["full_name"]
            .as_str()
            .map(str::to_owned);
        Self {
            delivery: "00000000-0000-0000-0000-000000000000".to_owned(),
            name: name.to_owned(),
            action,
            repository,
            received_at: "2026-01-01T00:00:00Z".to_owned(),
            job: JobInfo {
                id: 1,
                attempt: 1,
                log_url: "http://127.0.0.1:9393/jobs/1/log".to_owned(),
            },
            raw_payload: RawValue::from_string(payload.to_string())
                .expect("a Value always serializes to valid JSON"),
            payload: OnceLock::new(),
        }
    }

    pub(crate) fn from_call(bytes: &[u8]) -> Result<Self, PluginError> {
        let call: crate::wire::Call<'_> = serde_json::from_slice(bytes)
            .map_err(|e| PluginError::fatal(format!("host sent an unreadable call: {e}")))?;
        Ok(Self {
            delivery: call.delivery.to_owned(),
            name: call.event.to_owned(),
            action: call.action.map(str::to_owned),
            repository: call.repository.map(str::to_owned),
            received_at: call.received_at.to_owned(),
            job: call.job,
            raw_payload: call.payload.to_owned(),
            payload: OnceLock::new(),
        })
    }
}
