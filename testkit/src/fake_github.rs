//! A recording fake GitHub on 127.0.0.1. It validates request bodies against GitHub's own
//! OpenAPI schemas (`fixtures/github-rest-subset.json`, built into the crate), answering 422 as
//! GitHub would for a body GitHub would reject, and can be told to answer the next calls with
//! errors.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex, OnceLock},
};

use axum::{
    Router,
    body::Bytes,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// GitHub's request schemas and example answers for the calls the fake knows, embedded so the
/// kit reads no file at run time.
const SCHEMAS: &str = include_str!("../fixtures/github-rest-subset.json");

/// The calls the fake validates and answers, by operation name and path pattern.
const OPERATIONS: [(&str, &[&str]); 3] = [
    ("create_status", &["repos", "*", "*", "statuses", "*"]),
    ("create_deployment", &["repos", "*", "*", "deployments"]),
    (
        "create_deployment_status",
        &["repos", "*", "*", "deployments", "*", "statuses"],
    ),
];

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The URL path, e.g. `/repos/octo/app/deployments/1/statuses`.
    pub path: String,
    /// Header names in lower case; a repeated header's values joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The JSON body, or `null` when there was none or it was not JSON.
    pub body: Value,
    /// The GitHub operation the path matched (`create_status`, `create_deployment`,
    /// `create_deployment_status`), if any.
    pub operation: Option<&'static str>,
    /// The status the fake answered: 201 for a call GitHub accepts, 422 for a body it would
    /// refuse, 404 for an endpoint the fake does not know, or a status from
    /// [`FakeGitHub::answer_next`].
    pub status: u16,
}

/// An answer to give instead of the default success.
struct Scripted {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    script: VecDeque<Scripted>,
    violations: Vec<String>,
    /// Where to send webhooks, and the secret to sign them with.
    webhooks: Option<(String, String)>,
    /// Deployments created, in order: deployment `n` is at `n - 1`.
    deployments: Vec<Value>,
    sent: u64,
}

/// A fake GitHub REST API on a free loopback port, for `[github] api_url`.
///
/// Every request is recorded ([`FakeGitHub::requests`]). `POST`s to the commit status,
/// deployment and deployment status endpoints are checked against GitHub's schema: a body
/// GitHub would refuse is answered 422 and listed in [`FakeGitHub::violations`], which a test
/// should assert is empty. Accepted calls get GitHub's example answer (201). Any other path
/// gets 404. The server stops when the value is dropped.
pub struct FakeGitHub {
    url: String,
    state: Arc<Mutex<State>>,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for FakeGitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGitHub")
            .field("url", &self.url)
            .finish()
    }
}

impl FakeGitHub {
    /// Starts the fake on 127.0.0.1, on the current tokio runtime.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = Arc::clone(&shared);
                async move { answer(&state, method, uri, headers, body) }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the fake GitHub binds a loopback port");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("the fake GitHub serves");
        });
        Self { url, state, server }
    }

    /// The API's base URL, e.g. `http://127.0.0.1:40123`: the host's `[github] api_url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The next call to a known operation gets this answer instead of success, after its body
    /// passed the schema; calls queue up, one answer each.
    pub fn answer_next(&self, status: u16, headers: &[(&str, &str)], body: Value) {
        self.state().script.push_back(Scripted {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body,
        });
    }

    /// From now on, like GitHub with a webhook configured, answer a created deployment (or
    /// deployment status) by POSTing a `deployment` (or `deployment_status`) webhook to `url`,
    /// signed with `secret`. A webhook the receiver does not accept is a violation.
    pub fn send_webhooks_to(&self, url: &str, secret: &str) {
        self.state().webhooks = Some((url.to_owned(), secret.to_owned()));
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    /// The requests to one operation (`create_status`, `create_deployment`,
    /// `create_deployment_status`), in order.
    pub fn calls(&self, operation: &str) -> Vec<Recorded> {
        let requests = &self.state().requests;
        let calls = requests.iter().filter(|r| r.operation == Some(operation));
        calls.cloned().collect()
    }

    /// The bodies of the deployment statuses created for deployment `id` of `repo`
    /// (`owner/name`), in order: `state`, `description`, `log_url`, ... as sent. Only calls
    /// that succeeded count, as on GitHub; [`FakeGitHub::requests`] has them all.
    pub fn deployment_statuses(&self, repo: &str, id: u64) -> Vec<Value> {
        let path = format!("/repos/{repo}/deployments/{id}/statuses");
        self.bodies_posted_to(&path)
    }

    /// The bodies of the commit statuses created for `sha` of `repo` (`owner/name`), in order;
    /// only calls that succeeded count.
    pub fn commit_statuses(&self, repo: &str, sha: &str) -> Vec<Value> {
        self.bodies_posted_to(&format!("/repos/{repo}/statuses/{sha}"))
    }

    fn bodies_posted_to(&self, path: &str) -> Vec<Value> {
        let requests = &self.state().requests;
        let posted = requests
            .iter()
            .filter(|r| r.method == "POST" && r.path == path && (200..300).contains(&r.status));
        posted.map(|r| r.body.clone()).collect()
    }

    /// What GitHub would have refused: bodies that fail its schema, and webhooks the
    /// receiver did not accept. Assert this stays empty.
    pub fn violations(&self) -> Vec<String> {
        self.state().violations.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide its own failure.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn operation(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    OPERATIONS.iter().find_map(|(name, pattern)| {
        let matches = pattern.len() == segments.len()
            && pattern
                .iter()
                .zip(&segments)
                .all(|(p, s)| *p == "*" || p == s);
        matches.then_some(*name)
    })
}

fn schemas() -> &'static Value {
    static SCHEMAS_PARSED: OnceLock<Value> = OnceLock::new();
    SCHEMAS_PARSED
        .get_or_init(|| serde_json::from_str(SCHEMAS).expect("the embedded schemas are JSON"))
}

/// Why GitHub would refuse `body` as a request to `operation` (`create_status`,
/// `create_deployment`, `create_deployment_status`): empty when it would accept it.
///
/// # Panics
/// For an operation the fake does not know.
pub fn schema_errors(operation: &str, body: &Value) -> Vec<String> {
    static VALIDATORS: OnceLock<BTreeMap<&'static str, jsonschema::Validator>> = OnceLock::new();
    let validators = VALIDATORS.get_or_init(|| {
        OPERATIONS
            .iter()
            .map(|(name, _)| {
                let schema = &schemas()[name]["schema"];
                let validator =
                    jsonschema::validator_for(schema).expect("the embedded schemas compile");
                (*name, validator)
            })
            .collect()
    });
    let validator = validators
        .get(operation)
        .unwrap_or_else(|| panic!("the fake GitHub has no schema for {operation:?}"));
    validator.iter_errors(body).map(|e| e.to_string()).collect()
}

fn json_answer(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn answer(
    shared: &Arc<Mutex<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let operation = operation(&path);
    let mut recorded_headers = BTreeMap::<String, String>::new();
    for (name, value) in &headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        recorded_headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| *v = format!("{v}, {value}"))
            .or_insert(value);
    }
    let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
    let response = respond(shared, &mut state, &method, &path, &body, operation);
    state.requests.push(Recorded {
        method: method.to_string(),
        path,
        headers: recorded_headers,
        body,
        operation,
        status: response.status().as_u16(),
    });
    response
}

/// The answer GitHub would give; for a created deployment (status), the webhook it would send.
fn respond(
    shared: &Arc<Mutex<State>>,
    state: &mut State,
    method: &Method,
    path: &str,
    body: &Value,
    operation: Option<&'static str>,
) -> Response {
    let Some(name) = operation.filter(|_| *method == Method::POST) else {
        return json_answer(StatusCode::NOT_FOUND, json!({"message": "Not Found"}));
    };
    let errors = schema_errors(name, body);
    if !errors.is_empty() {
        state
            .violations
            .push(format!("{name}: {errors:?} in {body}"));
        let message = format!("Invalid request.\n\n{}", errors.join("\n"));
        return json_answer(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": message}),
        );
    }
    if let Some(scripted) = state.script.pop_front() {
        let status = StatusCode::from_u16(scripted.status).expect("a valid scripted status");
        let mut response = json_answer(status, scripted.body);
        for (name, value) in scripted.headers {
            let name = axum::http::HeaderName::from_bytes(name.as_bytes())
                .expect("a valid scripted header name");
            let value = value.parse().expect("a valid scripted header value");
            response.headers_mut().insert(name, value);
        }
        return response;
    }
    let mut answer = schemas()[name]["example_response"].clone();
    let repo = path
        .split('/')
        .skip(2)
        .take(2)
        .collect::<Vec<_>>()
        .join("/");
    let repository = json!({"full_name": repo, "name": repo.split('/').nth(1)});
    let hook = match name {
        "create_deployment" => {
            let id = state.deployments.len() as u64 + 1;
            for (key, value) in [
                ("id", json!(id)),
                ("sha", body["ref"].clone()),
                ("ref", body["ref"].clone()),
                ("task", body.get("task").cloned().unwrap_or(json!("deploy"))),
                ("payload", body.get("payload").cloned().unwrap_or(json!({}))),
                (
                    "environment",
                    body.get("environment")
                        .cloned()
                        .unwrap_or(json!("production")),
                ),
                (
                    "description",
                    body.get("description").cloned().unwrap_or(Value::Null),
                ),
                ("creator", json!({"login": "switchyard[bot]"})),
            ] {
                answer[key] = value;
            }
            state.deployments.push(answer.clone());
            Some((
                "deployment",
                json!({"action": "created", "deployment": answer, "repository": repository}),
            ))
        }
        "create_deployment_status" => {
            let id: usize = path
                .split('/')
                .nth(5)
                .and_then(|id| id.parse().ok())
                .unwrap_or(0);
            let deployment = state.deployments.get(id.wrapping_sub(1)).cloned().unwrap_or_else(|| {
                json!({"id": id, "sha": "0000000000000000000000000000000000000000", "ref": "main", "environment": "production"})
            });
            for key in ["state", "description", "log_url", "environment"] {
                answer[key] = body.get(key).cloned().unwrap_or(Value::Null);
            }
            Some((
                "deployment_status",
                json!({
                    "action": "created", "deployment_status": answer, "deployment": deployment,
                    "repository": repository
                }),
            ))
        }
        _ => None,
    };
    if let (Some((event, payload)), Some((url, secret))) = (hook, state.webhooks.clone()) {
        state.sent += 1;
        let delivery = format!("fake-github-{}-{}", std::process::id(), state.sent);
        let state = Arc::clone(shared);
        tokio::spawn(async move {
            let status = crate::host::post_signed(&url, &secret, event, &delivery, &payload).await;
            if status != Ok(202) {
                let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                state
                    .violations
                    .push(format!("the {event} webhook {delivery} got {status:?}"));
            }
        });
    }
    json_answer(StatusCode::CREATED, answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fake_refuses_what_github_would() {
        assert!(
            schema_errors(
                "create_status",
                &json!({"state": "success", "context": "ci"})
            )
            .is_empty()
        );
        assert!(!schema_errors("create_status", &json!({"state": "bogus"})).is_empty());
        assert!(!schema_errors("create_status", &json!({"context": "no state"})).is_empty());
        assert!(
            !schema_errors("create_deployment", &json!({"environment": "production"})).is_empty()
        );
        assert!(!schema_errors("create_deployment_status", &json!({"state": "done"})).is_empty());
        assert_eq!(operation("/repos/o/r/statuses/abc"), Some("create_status"));
        assert_eq!(
            operation("/repos/o/r/deployments/5/statuses"),
            Some("create_deployment_status")
        );
        assert_eq!(operation("/repos/o/r/pulls"), None);
    }

    #[tokio::test]
    async fn calls_are_recorded_with_their_answers_and_only_accepted_statuses_count() {
        let github = FakeGitHub::start().await;
        let http = reqwest::Client::new();
        let post = |path: &str, body: Value| {
            let request = http.post(format!("{}{path}", github.url())).json(&body);
            async move { request.send().await.unwrap().status().as_u16() }
        };
        let statuses = "/repos/o/r/deployments/3/statuses";
        assert_eq!(post(statuses, json!({"state": "in_progress"})).await, 201);
        assert_eq!(post(statuses, json!({"state": "done"})).await, 422);
        github.answer_next(
            502,
            &[("retry-after", "1")],
            json!({"message": "Bad Gateway"}),
        );
        assert_eq!(post(statuses, json!({"state": "success"})).await, 502);
        assert_eq!(post(statuses, json!({"state": "success"})).await, 201);
        assert_eq!(post("/repos/o/r/pulls", json!({})).await, 404);

        let answered: Vec<u16> = github.requests().iter().map(|r| r.status).collect();
        assert_eq!(answered, [201, 422, 502, 201, 404]);
        let created: Vec<Value> = github
            .deployment_statuses("o/r", 3)
            .into_iter()
            .map(|s| s["state"].clone())
            .collect();
        assert_eq!(created, ["in_progress", "success"]);
        assert_eq!(github.calls("create_deployment_status").len(), 4);
        let violations = github.violations();
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].starts_with("create_deployment_status"));
    }

    #[tokio::test]
    async fn a_webhook_the_receiver_refuses_is_a_violation() {
        let github = FakeGitHub::start().await;
        // Port 9 (discard) has no listener on loopback: the delivery fails.
        github.send_webhooks_to(
            "http://127.0.0.1:9/event_handler",
            "a-secret-of-some-length",
        );
        let answer = reqwest::Client::new()
            .post(format!("{}/repos/o/r/deployments", github.url()))
            .json(&json!({"ref": "main", "environment": "staging"}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), 201);
        let deployment: Value = answer.json().await.unwrap();
        assert_eq!(
            (deployment["id"].clone(), deployment["environment"].clone()),
            (json!(1), json!("staging"))
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while github.violations().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "no violation recorded"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(
            github.violations()[0].starts_with("the deployment webhook"),
            "{:?}",
            github.violations()
        );
    }
}
