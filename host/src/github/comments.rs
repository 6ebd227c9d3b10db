//! The calls the comment commands service makes as the host itself, not as a plugin: a
//! commenter's permission, a pull request's facts, a reaction and a reply in the thread. As a
//! GitHub App they go under an installation token narrowed to the event's repository and to
//! [`host_permissions`]; with a personal token, under that token.

use bytes::Bytes;
use serde_json::{Value, json};
use switchyard_plugin_api::{HostError, Permissions, wire::GitHubCall};

use super::{Caller, GitHub};

/// The name the host's own calls go by in token caches and errors.
pub(crate) const HOST_CALLER: &str = "switchyard (commands)";

/// What the host's own calls need, and no more: reading a collaborator's permission is
/// `metadata: read`, which every token has; reading a pull request is `pull_requests: read`;
/// reacting to a comment and replying are `issues: write` (a pull request's thread is an
/// issue's, and GitHub takes `issues` for it).
pub(crate) fn host_permissions() -> Permissions {
    Permissions::none().write("issues").read("pull_requests")
}

/// The host, calling about the event whose `repository` and `payload` (its installation) these
/// are.
pub(crate) fn host_caller(repository: &str, payload: Bytes) -> Caller {
    Caller::new(
        HOST_CALLER.to_owned(),
        Some(host_permissions()),
        Some(repository.to_owned()),
        payload,
    )
}

/// GitHub's answer about `login`'s permission on `repository`, `None` when GitHub knows no such
/// collaborator (404: no permission). Server errors were retried like every GitHub call.
pub(crate) async fn collaborator_permission(
    github: &dyn GitHub,
    caller: &Caller,
    repository: &str,
    login: &str,
) -> Result<Option<Value>, HostError> {
    let path = format!(
        "/repos/{repository}/collaborators/{}/permission",
        segment(login)?
    );
    match github.send(get(path), caller).await {
        Ok(answer) => Ok(Some(answer.body)),
        Err(HostError::GitHub { status: 404, .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// `GET /repos/{repository}/pulls/{number}`.
pub(crate) async fn pull_request(
    github: &dyn GitHub,
    caller: &Caller,
    repository: &str,
    number: u64,
) -> Result<Value, HostError> {
    let path = format!("/repos/{repository}/pulls/{number}");
    Ok(github.send(get(path), caller).await?.body)
}

/// Reacts to comment `comment` with `content` (`eyes`, `confused`...). GitHub answers a
/// reaction given twice with the first, so a retried job reacts once.
pub(crate) async fn react(
    github: &dyn GitHub,
    caller: &Caller,
    repository: &str,
    comment: u64,
    content: &str,
) -> Result<(), HostError> {
    let call = react_call(repository, comment, content);
    github.send(call, caller).await.map(|_| ())
}

/// Comments `body` in the thread of issue or pull request `number`.
pub(crate) async fn reply(
    github: &dyn GitHub,
    caller: &Caller,
    repository: &str,
    number: u64,
    body: &str,
) -> Result<(), HostError> {
    let call = reply_call(repository, number, body);
    github.send(call, caller).await.map(|_| ())
}

/// `POST /repos/{repository}/issues/comments/{comment}/reactions`.
pub(crate) fn react_call(repository: &str, comment: u64, content: &str) -> GitHubCall {
    let path = format!("/repos/{repository}/issues/comments/{comment}/reactions");
    post(path, json!({ "content": content }))
}

/// `POST /repos/{repository}/issues/{number}/comments`.
pub(crate) fn reply_call(repository: &str, number: u64, body: &str) -> GitHubCall {
    let path = format!("/repos/{repository}/issues/{number}/comments");
    post(path, json!({ "body": body }))
}

fn get(path: String) -> GitHubCall {
    GitHubCall {
        method: "GET".to_owned(),
        path,
        body: None,
    }
}

fn post(path: String, body: Value) -> GitHubCall {
    GitHubCall {
        method: "POST".to_owned(),
        path,
        body: Some(body),
    }
}

/// A login as a path segment: GitHub's logins are letters, digits and `-` (bots add `[bot]`).
pub(crate) fn segment(login: &str) -> Result<&str, HostError> {
    let fine = !login.is_empty()
        && login
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'[' | b']'));
    fine.then_some(login)
        .ok_or_else(|| HostError::InvalidRequest(format!("not a GitHub login: {login:?}")))
}
