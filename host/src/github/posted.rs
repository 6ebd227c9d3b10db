//! What a job posted to GitHub, read from a call that succeeded and its answer: a commit
//! status, a check run (created or updated), a deployment or a deployment status. Other calls
//! (comments, reads) are not recorded.

use switchyard_plugin_api::{GitHubResponse, wire::GitHubCall};

use crate::journal::{GitHubPost, JobId};

/// The post `call` made for `job`, if it is one the dashboard shows and GitHub took it.
pub fn posted(job: JobId, call: &GitHubCall, response: &GitHubResponse) -> Option<GitHubPost> {
    if !(200..300).contains(&response.status) {
        return None;
    }
    let path = call.path.split('?').next().unwrap_or_default();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ["repos", owner, name, rest @ ..] = parts.as_slice() else {
        return None;
    };
    let repository = format!("{owner}/{name}");
    let body = call.body.clone().unwrap_or_default();
    let answer = &response.body;
    let text = |value: &serde_json::Value| value.as_str().map(str::to_owned);
    let first = |values: &[&serde_json::Value]| values.iter().find_map(|v| text(v));
    let method = call.method.to_ascii_uppercase();
    let post = |kind: &str| GitHubPost {
        job,
        kind: kind.to_owned(),
        repository: repository.clone(),
        ..GitHubPost::default()
    };
    match (method.as_str(), rest) {
        ("POST", ["statuses", sha]) => Some(GitHubPost {
            sha: Some((*sha).to_owned()),
            state: text(&body["state"]),
            context: first(&[&body["context"], &answer["context"]]),
            url: text(&body["target_url"]),
            ..post("status")
        }),
        ("POST", ["check-runs"]) | ("PATCH", ["check-runs", _]) => Some(GitHubPost {
            sha: first(&[&answer["head_sha"], &body["head_sha"]]),
            state: first(&[
                &answer["conclusion"],
                &body["conclusion"],
                &answer["status"],
                &body["status"],
            ]),
            context: first(&[&answer["name"], &body["name"]]),
            url: first(&[&answer["html_url"], &body["details_url"]]),
            ..post("check_run")
        }),
        ("POST", ["deployments"]) => Some(GitHubPost {
            sha: first(&[&answer["sha"]]),
            environment: first(&[&answer["environment"], &body["environment"]]),
            deployment: answer["id"].as_i64(),
            state: Some("created".to_owned()),
            context: first(&[&answer["ref"], &body["ref"]]),
            ..post("deployment")
        }),
        ("POST", ["deployments", id, "statuses"]) => Some(GitHubPost {
            environment: first(&[&answer["environment"], &body["environment"]]),
            deployment: id.parse().ok(),
            state: text(&body["state"]),
            url: first(&[
                &body["log_url"],
                &body["target_url"],
                &body["environment_url"],
            ]),
            ..post("deployment_status")
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn call(method: &str, path: &str, body: serde_json::Value) -> GitHubCall {
        GitHubCall {
            method: method.into(),
            path: path.into(),
            body: Some(body),
        }
    }

    fn ok(body: serde_json::Value) -> GitHubResponse {
        GitHubResponse { status: 201, body }
    }

    #[test]
    fn statuses_check_runs_and_deployments_are_read_and_other_calls_are_not() {
        let job = JobId(7);
        let status = posted(
            job,
            &call(
                "POST",
                "/repos/o/r/statuses/abc",
                json!({"state": "pending", "context": "ci/switchyard", "target_url": "https://h/jobs/7/log/k"}),
            ),
            &ok(json!({})),
        )
        .unwrap();
        assert_eq!(
            (
                status.kind.as_str(),
                status.repository.as_str(),
                status.sha.as_deref(),
                status.state.as_deref()
            ),
            ("status", "o/r", Some("abc"), Some("pending"))
        );
        assert_eq!(status.url.as_deref(), Some("https://h/jobs/7/log/k"));

        let check = posted(
            job,
            &call("PATCH", "/repos/o/r/check-runs/5", json!({"conclusion": "failure"})),
            &ok(json!({"head_sha": "abc", "name": "build", "html_url": "https://github.com/o/r/runs/5", "status": "completed", "conclusion": "failure"})),
        )
        .unwrap();
        assert_eq!(
            (
                check.kind.as_str(),
                check.state.as_deref(),
                check.context.as_deref()
            ),
            ("check_run", Some("failure"), Some("build"))
        );
        assert_eq!(check.url.as_deref(), Some("https://github.com/o/r/runs/5"));

        let deployment = posted(
            job,
            &call(
                "POST",
                "/repos/o/r/deployments",
                json!({"ref": "main", "environment": "production"}),
            ),
            &ok(json!({"id": 42, "sha": "abc", "environment": "production"})),
        )
        .unwrap();
        assert_eq!(
            (
                deployment.deployment,
                deployment.sha.as_deref(),
                deployment.environment.as_deref()
            ),
            (Some(42), Some("abc"), Some("production"))
        );
        let success = posted(
            job,
            &call(
                "POST",
                "/repos/o/r/deployments/42/statuses",
                json!({"state": "success", "log_url": "https://h/log"}),
            ),
            &ok(json!({"environment": "production"})),
        )
        .unwrap();
        assert_eq!(
            (
                success.kind.as_str(),
                success.deployment,
                success.state.as_deref(),
                success.url.as_deref()
            ),
            (
                "deployment_status",
                Some(42),
                Some("success"),
                Some("https://h/log")
            )
        );

        let comment = call(
            "POST",
            "/repos/o/r/issues/1/comments",
            json!({"body": "hi"}),
        );
        assert!(posted(job, &comment, &ok(json!({}))).is_none());
        let read = call("GET", "/repos/o/r/statuses/abc", json!(null));
        assert!(posted(job, &read, &ok(json!({}))).is_none());
        let refused = GitHubResponse {
            status: 422,
            body: json!({}),
        };
        let status_call = call("POST", "/repos/o/r/statuses/abc", json!({"state": "x"}));
        assert!(posted(job, &status_call, &refused).is_none());
    }
}
