//! The fake's check runs: created (`POST /repos/{o}/{r}/check-runs`), then updated
//! (`PATCH .../check-runs/{id}`), each body validated against GitHub's schema before it gets
//! here. Like GitHub, an update's annotations are appended to the run's, and its other fields
//! replace what was there.

use axum::{http::StatusCode, response::Response};
use serde_json::{Value, json};

use super::{State, example, github_error, json_answer};

/// A check run as the fake holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckRun {
    pub id: u64,
    /// `owner/repo`.
    pub repository: String,
    /// The App that created it: [`crate::app::TEST_APP_ID`] as a GitHub App.
    pub app_id: u64,
    /// Its fields as the requests left them (`name`, `head_sha`, `status`, `conclusion`,
    /// `started_at`, `details_url`, `external_id`, `output.summary`, `actions`, ...), without
    /// the annotations.
    pub fields: Value,
    /// Every annotation sent, in order.
    pub annotations: Vec<Value>,
    /// The body of each request that changed it, creation first.
    pub requests: Vec<Value>,
}

impl CheckRun {
    /// `status`, e.g. `completed`.
    pub fn status(&self) -> &str {
        self.fields["status"].as_str().unwrap_or_default()
    }

    /// `conclusion`, once completed.
    pub fn conclusion(&self) -> Option<&str> {
        self.fields["conclusion"].as_str()
    }

    fn answer(&self) -> Value {
        let (_, mut answer) = example("checks/create");
        for (key, value) in self.fields.as_object().into_iter().flatten() {
            if key != "output" && key != "actions" {
                answer[key] = value.clone();
            }
        }
        answer["id"] = json!(self.id);
        answer["app"]["id"] = json!(self.app_id);
        answer["output"]["title"] = self.fields["output"]["title"].clone();
        answer["output"]["summary"] = self.fields["output"]["summary"].clone();
        answer["output"]["text"] = self.fields["output"]["text"].clone();
        answer["output"]["annotations_count"] = json!(self.annotations.len());
        answer
    }

    /// Applies a request's fields.
    fn apply(&mut self, body: &Value) {
        let mut body = body.clone();
        if let Some(annotations) = body["output"]
            .as_object_mut()
            .and_then(|o| o.remove("annotations"))
            .and_then(|a| a.as_array().cloned())
        {
            self.annotations.extend(annotations);
        }
        for (key, value) in body.as_object().into_iter().flatten() {
            self.fields[key] = value.clone();
        }
        // GitHub: a conclusion completes the run.
        if body.get("conclusion").is_some() {
            self.fields["status"] = json!("completed");
        }
    }
}

/// `POST /repos/{owner}/{repo}/check-runs`, its body already valid.
pub(super) fn create(state: &mut State, repository: String, body: &Value) -> Response {
    let id = state.check_runs.len() as u64 + 1;
    let mut run = CheckRun {
        id,
        repository,
        app_id: crate::app::TEST_APP_ID,
        fields: json!({"status": "queued"}),
        annotations: Vec::new(),
        requests: vec![body.clone()],
    };
    run.apply(body);
    let answer = run.answer();
    state.check_runs.push(run);
    json_answer(StatusCode::CREATED, answer)
}

/// `PATCH /repos/{owner}/{repo}/check-runs/{id}`, its body already valid.
pub(super) fn update(state: &mut State, repository: &str, id: &str, body: &Value) -> Response {
    let found = id.parse::<u64>().ok().and_then(|id| {
        state
            .check_runs
            .iter_mut()
            .find(|run| run.id == id && run.repository.eq_ignore_ascii_case(repository))
    });
    let Some(run) = found else {
        return github_error(StatusCode::NOT_FOUND, "Not Found");
    };
    run.requests.push(body.clone());
    run.apply(body);
    json_answer(StatusCode::OK, run.answer())
}

/// GitHub's `checks/list-for-ref` answer: the check runs of `sha`, newest first; with
/// `filter=latest` (GitHub's default) only the newest of each name.
pub(super) fn list_for_ref(state: &State, repo: &str, sha: &str, query: &str) -> Response {
    let all = query.split('&').any(|pair| pair == "filter=all");
    let mut seen = std::collections::HashSet::new();
    let runs: Vec<Value> = state
        .check_runs
        .iter()
        .rev()
        .filter(|run| run.repository.eq_ignore_ascii_case(repo) && run.fields["head_sha"] == sha)
        .filter(|run| all || seen.insert(run.fields["name"].to_string()))
        .map(|run| {
            let mut fields = run.fields.clone();
            fields["id"] = json!(run.id);
            fields["app"] = json!({"id": run.app_id});
            fields
        })
        .collect();
    json_answer(
        StatusCode::OK,
        json!({"total_count": runs.len(), "check_runs": runs}),
    )
}
