//! A recording fake GitHub on 127.0.0.1. It validates request bodies against GitHub's own
//! OpenAPI schemas (tests/fixtures/github-rest-subset.json), answering 422 as GitHub would for
//! a body GitHub would reject, and can be told to answer the next calls with errors.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::Bytes,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    /// Which schema the path matched, if any.
    pub operation: Option<&'static str>,
}

/// An answer to give instead of the default success.
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    script: VecDeque<Scripted>,
    violations: Vec<String>,
    /// Where to send webhooks (signed with the test secret).
    webhooks: Option<String>,
    /// Deployments created, by id.
    deployments: Vec<Value>,
    sent: u64,
}

pub struct FakeGitHub {
    pub url: String,
    state: Arc<Mutex<State>>,
}

const OPERATIONS: [(&str, &[&str]); 3] = [
    ("create_status", &["repos", "*", "*", "statuses", "*"]),
    ("create_deployment", &["repos", "*", "*", "deployments"]),
    (
        "create_deployment_status",
        &["repos", "*", "*", "deployments", "*", "statuses"],
    ),
];

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

fn fixtures() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/github-rest-subset.json"
    );
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Schema errors for `body` as the `name` operation, empty when GitHub would accept it.
pub fn schema_errors(name: &str, body: &Value) -> Vec<String> {
    let schema = fixtures()[name]["schema"].clone();
    let validator = jsonschema::validator_for(&schema).expect("the fixture schemas compile");
    validator.iter_errors(body).map(|e| e.to_string()).collect()
}

impl FakeGitHub {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = Arc::clone(&shared);
                async move { answer(&state, method, uri, headers, body) }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    /// The next call gets this answer instead of success.
    pub fn answer_next(&self, status: u16, headers: &[(&'static str, &str)], body: Value) {
        self.state.lock().unwrap().script.push_back(Scripted {
            status,
            headers: headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            body,
        });
    }

    /// From now on, like GitHub, answer a created deployment (or deployment status) with a
    /// signed `deployment` (or `deployment_status`) webhook to `url`.
    pub fn send_webhooks_to(&self, url: &str) {
        self.state.lock().unwrap().webhooks = Some(url.to_owned());
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Bodies that GitHub's schema refused; every test asserts this stays empty.
    pub fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }
}

fn answer(
    state: &Mutex<State>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let operation = operation(&path);
    let mut state = state.lock().unwrap();
    state.requests.push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        headers,
        body: body.clone(),
        operation,
    });
    let Some(name) = operation.filter(|_| method == Method::POST) else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "Not Found"})),
        )
            .into_response();
    };
    let errors = schema_errors(name, &body);
    if !errors.is_empty() {
        state
            .violations
            .push(format!("{name}: {errors:?} in {body}"));
        let message = format!("Invalid request.\n\n{}", errors.join("\n"));
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"message": message})),
        )
            .into_response();
    }
    if let Some(scripted) = state.script.pop_front() {
        let mut response = (
            StatusCode::from_u16(scripted.status).unwrap(),
            axum::Json(scripted.body),
        )
            .into_response();
        for (name, value) in scripted.headers {
            response.headers_mut().insert(name, value.parse().unwrap());
        }
        return response;
    }
    let mut answer = fixtures()[name]["example_response"].clone();
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
    if let (Some((event, payload)), Some(url)) = (hook, state.webhooks.clone()) {
        state.sent += 1;
        let delivery = format!("fake-github-{}-{}", std::process::id(), state.sent);
        tokio::spawn(send_webhook(url, event, delivery, payload));
    }
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

/// Posts a signed webhook, as GitHub does after an API call that creates something.
async fn send_webhook(url: String, event: &str, delivery: String, payload: Value) {
    let status = super::send_signed(&url, event, &delivery, &payload).await;
    assert_eq!(status, 202, "the host accepted the {event} webhook");
}

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
    assert!(!schema_errors("create_deployment", &json!({"environment": "production"})).is_empty());
    assert!(!schema_errors("create_deployment_status", &json!({"state": "done"})).is_empty());
    assert_eq!(operation("/repos/o/r/statuses/abc"), Some("create_status"));
    assert_eq!(
        operation("/repos/o/r/deployments/5/statuses"),
        Some("create_deployment_status")
    );
    assert_eq!(operation("/repos/o/r/pulls"), None);
}
