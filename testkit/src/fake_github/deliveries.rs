//! The fake's webhook deliveries, as GitHub keeps them: every attempt to deliver an event to a
//! hook (the App's, a repository's or an organization's) is recorded with how it went, listed
//! newest first with cursor paging (`GET .../hook(s)/.../deliveries`), and can be delivered
//! again (`POST .../deliveries/{id}/attempts`), which POSTs the same payload under the same
//! GUID and records a new attempt.

use std::sync::{Arc, Mutex};

use axum::{
    http::{HeaderValue, StatusCode},
    response::Response,
};
use serde_json::{Value, json};

use super::{State, github_error, json_answer, unix_now};

/// One attempt to deliver an event to a hook, as GitHub lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    /// GitHub's id of this attempt (increasing).
    pub id: i64,
    /// The hook: `app/hook`, `repos/OWNER/REPO/hooks/ID` or `orgs/ORG/hooks/ID`.
    pub hook: String,
    /// The event's GUID (`X-GitHub-Delivery`), shared by every attempt to deliver it.
    pub guid: String,
    pub event: String,
    pub action: Option<String>,
    /// `OK`, `failed to connect`, `timed out`, `Invalid HTTP Response: 503`.
    pub status: String,
    /// 0 when no answer came.
    pub status_code: u16,
    pub redelivery: bool,
    /// Unix seconds.
    pub delivered_at: i64,
    pub payload: Value,
}

impl DeliveryAttempt {
    fn listed(&self) -> Value {
        json!({
            "id": self.id,
            "guid": self.guid,
            "delivered_at": rfc3339(self.delivered_at),
            "redelivery": self.redelivery,
            "duration": 0.05,
            "status": self.status,
            "status_code": self.status_code,
            "event": self.event,
            "action": self.action,
            "installation_id": self.payload["installation"]["id"].as_i64(),
            "repository_id": self.payload["repository"]["id"].as_i64(),
            "throttled_at": null,
        })
    }
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// How a POST of a delivery went, in GitHub's words.
pub(super) fn outcome(answer: Result<u16, String>) -> (String, u16) {
    match answer {
        Ok(code) if (200..300).contains(&code) => ("OK".to_owned(), code),
        Ok(code) => (format!("Invalid HTTP Response: {code}"), code),
        Err(_) => ("failed to connect".to_owned(), 0),
    }
}

/// Records an attempt and returns its id.
pub(super) fn record(state: &mut State, mut attempt: DeliveryAttempt) -> i64 {
    state.next_delivery_id += 1;
    attempt.id = 1000 + state.next_delivery_id;
    let id = attempt.id;
    state.hook_deliveries.push(attempt);
    id
}

/// POSTs `payload` as `event` under `guid` to the webhook target, and records the attempt.
pub(super) async fn deliver(
    shared: &Arc<Mutex<State>>,
    hook: &str,
    guid: &str,
    event: &str,
    payload: &Value,
    redelivery: bool,
) -> i64 {
    let target = shared
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .webhooks
        .clone();
    let answer = match &target {
        Some((url, secret)) => crate::host::post_signed(url, secret, event, guid, payload).await,
        None => Err("no webhook target (send_webhooks_to)".to_owned()),
    };
    let (status, status_code) = outcome(answer);
    let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
    record(
        &mut state,
        DeliveryAttempt {
            id: 0,
            hook: hook.to_owned(),
            guid: guid.to_owned(),
            event: event.to_owned(),
            action: payload["action"].as_str().map(str::to_owned),
            status,
            status_code,
            redelivery,
            delivered_at: unix_now(),
            payload: payload.clone(),
        },
    )
}

/// The hook a deliveries path names, and the rest: `(hook, ["deliveries", ...])`.
pub(super) fn split_hook<'a>(segments: &'a [&'a str]) -> Option<(String, &'a [&'a str])> {
    match segments {
        ["app", "hook", rest @ ..] => Some(("app/hook".to_owned(), rest)),
        ["repos", owner, repo, "hooks", id, rest @ ..] => {
            Some((format!("repos/{owner}/{repo}/hooks/{id}"), rest))
        }
        ["orgs", org, "hooks", id, rest @ ..] => Some((format!("orgs/{org}/hooks/{id}"), rest)),
        _ => None,
    }
}

/// The operationId of a deliveries call on `hook`.
pub(super) fn operation(hook: &str, rest: &[&str], post: bool) -> Option<&'static str> {
    let kind = match hook.split('/').next() {
        Some("app") => 0,
        Some("repos") => 1,
        _ => 2,
    };
    match (rest, post) {
        (["deliveries"], false) => Some(
            [
                "apps/list-webhook-deliveries",
                "repos/list-webhook-deliveries",
                "orgs/list-webhook-deliveries",
            ][kind],
        ),
        (["deliveries", _, "attempts"], true) => Some(
            [
                "apps/redeliver-webhook-delivery",
                "repos/redeliver-webhook-delivery",
                "orgs/redeliver-webhook-delivery",
            ][kind],
        ),
        _ => None,
    }
}

/// The query parameters GitHub's description allows for a list, checked as it would.
fn query_errors(operation: &str, query: &str) -> Vec<String> {
    let parameters = &super::app_operations()[operation]["parameters"];
    let mut errors = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let known = parameters
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["in"] == "query" && p["name"] == name);
        let Some(known) = known else {
            errors.push(format!("unknown query parameter {name:?}"));
            continue;
        };
        let schema = &known["schema"];
        let fits = match schema["type"].as_str() {
            Some("integer") => value.parse::<i64>().is_ok(),
            _ => true,
        } && schema["enum"]
            .as_array()
            .is_none_or(|allowed| allowed.iter().any(|a| a == value));
        if !fits {
            errors.push(format!("{name}={value:?} does not fit {schema}"));
        }
        // GitHub's lists give 100 at most a page.
        if name == "per_page" && value.parse::<i64>().is_ok_and(|n| !(1..=100).contains(&n)) {
            errors.push(format!("per_page={value} is not within 1..=100"));
        }
    }
    errors
}

/// `GET .../deliveries`: newest first, `per_page` at a time, `cursor` from the `Link` header.
pub(super) fn list(
    state: &mut State,
    operation: &'static str,
    hook: &str,
    query: &str,
) -> Response {
    let errors = query_errors(operation, query);
    if !errors.is_empty() {
        state
            .violations
            .push(format!("{operation}: {errors:?} in ?{query}"));
        return github_error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
    }
    let parameter = |name: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
    };
    let per_page: usize = parameter("per_page")
        .and_then(|n| n.parse().ok())
        .unwrap_or(30);
    // The fake's cursors are `v1_ID`: attempts older than ID.
    let before = match parameter("cursor") {
        Some(cursor) => match cursor
            .strip_prefix("v1_")
            .and_then(|n| n.parse::<i64>().ok())
        {
            Some(id) => id,
            None => return github_error(StatusCode::BAD_REQUEST, "Bad cursor"),
        },
        None => i64::MAX,
    };
    let mut attempts: Vec<&DeliveryAttempt> = state
        .hook_deliveries
        .iter()
        .filter(|a| a.hook == hook && a.id < before)
        .collect();
    attempts.sort_by_key(|a| std::cmp::Reverse(a.id));
    let more = attempts.len() > per_page;
    attempts.truncate(per_page);
    let body: Vec<Value> = attempts.iter().map(|a| a.listed()).collect();
    let next = attempts.last().filter(|_| more).map(|a| a.id);
    let mut response = json_answer(StatusCode::OK, Value::Array(body));
    if let Some(next) = next {
        let link = format!(
            "<{}/{hook}/deliveries?per_page={per_page}&cursor=v1_{next}>; rel=\"next\"",
            state.url
        );
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert("link", value);
        }
    }
    response
}

/// `POST .../deliveries/{id}/attempts`: 202, then the payload is delivered again.
pub(super) fn redeliver(
    shared: &Arc<Mutex<State>>,
    state: &mut State,
    hook: &str,
    id: &str,
) -> Response {
    let found = id.parse::<i64>().ok().and_then(|id| {
        state
            .hook_deliveries
            .iter()
            .find(|a| a.id == id && a.hook == hook)
            .cloned()
    });
    let Some(attempt) = found else {
        return github_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let shared = Arc::clone(shared);
    let hook = hook.to_owned();
    tokio::spawn(async move {
        deliver(
            &shared,
            &hook,
            &attempt.guid,
            &attempt.event,
            &attempt.payload,
            true,
        )
        .await;
    });
    json_answer(StatusCode::ACCEPTED, json!({}))
}
