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

/// One job handed to a plugin. The payload travels as the raw bytes GitHub sent.
#[derive(Debug, Serialize, Deserialize)]
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

/// The answer of a host service.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceResult<T> {
    Ok(T),
    Err(crate::HostError),
}
