//! What the fake answers for comment commands: a collaborator's permission (from the roles a
//! test gave, GitHub's answer for each built-in role), a pull request (from those a test
//! opened), and comments and reactions posted (validated, recorded, answered with GitHub's
//! example).

use axum::{http::StatusCode, response::Response};
use serde_json::{Value, json};

use super::{State, github_error, json_answer};

/// A collaborator's role on a repository, as a test gives it.
#[derive(Debug, Clone)]
pub(super) struct Collaborator {
    pub repository: String,
    pub login: String,
    pub id: u64,
    /// `read`, `triage`, `write`, `maintain`, `admin`, `none`, or a custom role's name built on
    /// `base`.
    pub role: String,
    pub base: String,
}

/// GitHub's answer to `repos/get-collaborator-permission-level`: `permission` holds only
/// admin, write, read or none; `role_name` the role; `user.permissions` a flag per base level.
pub(super) fn permission(state: &State, repository: &str, login: &str) -> Response {
    let Some(person) = state.collaborators.iter().find(|c| {
        c.repository.eq_ignore_ascii_case(repository) && c.login.eq_ignore_ascii_case(login)
    }) else {
        return github_error(StatusCode::NOT_FOUND, "Not Found");
    };
    let base = person.base.as_str();
    let permission = match base {
        "admin" => "admin",
        "maintain" | "write" => "write",
        "triage" | "read" => "read",
        _ => "none",
    };
    let rank = ["read", "triage", "write", "maintain", "admin"]
        .iter()
        .position(|r| *r == base)
        .map_or(0, |at| at + 1);
    let flag = |at: usize| rank >= at;
    let answer = json!({
        "permission": permission,
        "role_name": person.role,
        "user": {
            "login": person.login, "id": person.id, "type": "User", "site_admin": false,
            "permissions": {
                "pull": flag(1), "triage": flag(2), "push": flag(3), "maintain": flag(4),
                "admin": flag(5)
            },
            "role_name": person.role,
        }
    });
    json_answer(StatusCode::OK, answer)
}

/// GitHub's `pulls/get` answer for a pull request a test opened, else 404.
pub(super) fn pull_request(state: &State, repository: &str, number: &str) -> Response {
    let found = state.pulls.iter().find(|p| {
        p["base"]["repo"]["full_name"]
            .as_str()
            .is_some_and(|r| r.eq_ignore_ascii_case(repository))
            && number.parse::<u64>().ok() == p["number"].as_u64()
    });
    match found {
        Some(pull) => json_answer(StatusCode::OK, pull.clone()),
        None => github_error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

/// GitHub's `pulls/list-files` answer: one page (`per_page`, at most 100, default 30; `page`
/// from 1) of the files a test set for the pull request, as diff entries.
pub(super) fn pull_files(state: &State, repository: &str, number: &str, query: &str) -> Response {
    let asked = |key: &str, default: usize| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(default)
    };
    let per_page = asked("per_page", 30).clamp(1, 100);
    let page = asked("page", 1).max(1);
    let number = number.parse::<u64>().ok();
    let files = state
        .pull_files
        .iter()
        .find(|(repo, n, _)| repo.eq_ignore_ascii_case(repository) && Some(*n) == number)
        .map(|(_, _, files)| files.as_slice())
        .unwrap_or_default();
    let entries: Vec<Value> = files
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|name| {
            let blob = format!("https://github.com/{repository}/blob/0000000/{name}");
            json!({
                "sha": "bbcd538c8e72b8c175046e27cc8f907076331401",
                "filename": name,
                "status": "modified",
                "additions": 1,
                "deletions": 1,
                "changes": 2,
                "blob_url": blob,
                "raw_url": blob.replace("/blob/", "/raw/"),
                "contents_url": format!("https://api.github.com/repos/{repository}/contents/{name}"),
            })
        })
        .collect();
    json_answer(StatusCode::OK, Value::Array(entries))
}

/// A pull request as `pulls/get` answers it: the fields the host reads, and enough of the rest.
pub(super) fn pull(repository: &str, number: u64, head_sha: &str, head_repository: &str) -> Value {
    let repo =
        |full_name: &str| json!({"full_name": full_name, "name": full_name.split('/').nth(1)});
    json!({
        "number": number,
        "state": "open",
        "locked": false,
        "title": format!("pull request {number}"),
        "head": {"sha": head_sha, "ref": "topic", "repo": repo(head_repository)},
        "base": {"sha": "0000000000000000000000000000000000000000", "ref": "main", "repo": repo(repository)},
    })
}
