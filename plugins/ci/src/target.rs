//! What to build, read from the event: the commit, where it lives and whom it concerns.

use switchyard_plugin_api::{
    Event, PluginError,
    payload::{PullRequestEvent, PushEvent, Repository},
};

/// One commit to build and report on.
#[derive(Debug, Clone)]
pub struct Target {
    /// Where statuses go: the base repository of a pull request.
    pub repository: Repository,
    pub sha: String,
    /// The branch name.
    pub branch: String,
    pub pull_request: Option<u64>,
    /// Set when the commit comes from a fork: `head_repo`'s full name.
    pub fork: Option<String>,
}

/// Builds of the same line of work: a newer one supersedes an older one still running.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Line {
    PullRequest { repo: String, number: u64 },
    Branch { repo: String, branch: String },
}

impl Line {
    /// The line's name in the host's record of the latest build of each line.
    pub fn key(&self) -> String {
        match self {
            Self::PullRequest { repo, number } => format!("{repo}#{number}"),
            Self::Branch { repo, branch } => format!("{repo}@{branch}"),
        }
    }
}

impl Target {
    /// The commit `event` asks to build, or why it asks for none.
    pub fn from_event(event: &Event) -> Result<Result<Self, String>, PluginError> {
        match event.name.as_str() {
            "pull_request" => {
                let pr: PullRequestEvent = event.parse()?;
                if !matches!(pr.action.as_str(), "opened" | "reopened" | "synchronize") {
                    return Ok(Err(format!("pull_request.{} builds nothing", pr.action)));
                }
                let fork = pr.from_fork().then(|| {
                    pr.pull_request.head.repo.as_ref().map_or_else(
                        || "(a deleted repository)".to_owned(),
                        |r| r.full_name.clone(),
                    )
                });
                Ok(Ok(Self {
                    repository: pr.repository,
                    sha: pr.pull_request.head.sha,
                    branch: pr.pull_request.head.git_ref,
                    pull_request: Some(pr.number),
                    fork,
                }))
            }
            "push" => {
                let push: PushEvent = event.parse()?;
                if push.deleted || push.after.bytes().all(|b| b == b'0') {
                    return Ok(Err(format!("{} was deleted", push.git_ref)));
                }
                let branch = push.git_ref.strip_prefix("refs/heads/");
                Ok(Ok(Self {
                    repository: push.repository,
                    sha: push.after,
                    branch: branch.unwrap_or(&push.git_ref).to_owned(),
                    pull_request: None,
                    fork: None,
                }))
            }
            // A check suite or run of this App: its sha again (Re-run), on the line of the
            // pull request GitHub names, if any.
            "check_suite" | "check_run" => {
                let payload = event.payload();
                let (sha, branch, pull_requests) = match event.name.as_str() {
                    "check_suite" => {
                        let suite = &payload["check_suite"];
                        (
                            &suite["head_sha"],
                            &suite["head_branch"],
                            &suite["pull_requests"],
                        )
                    }
                    _ => {
                        let run = &payload["check_run"];
                        let branch = &run["check_suite"]["head_branch"];
                        (&run["head_sha"], branch, &run["pull_requests"])
                    }
                };
                let Some(sha) = sha.as_str().filter(|sha| !sha.is_empty()) else {
                    return Ok(Err(format!("the {} event names no commit", event.name)));
                };
                let repository: Repository = serde_json::from_value(payload["repository"].clone())
                    .map_err(|e| {
                        PluginError::fatal(format!("the {} event's repository: {e}", event.name))
                    })?;
                // GitHub names the pull request's head and base repositories by id; a fork's
                // head is in another. (It names no pull request at all for a fork's suite.)
                let named = &pull_requests[0];
                let (head, base) = (&named["head"]["repo"]["id"], &named["base"]["repo"]["id"]);
                let fork = (head.is_u64() && base.is_u64() && head != base).then(|| {
                    named["head"]["repo"]["name"]
                        .as_str()
                        .unwrap_or("a fork")
                        .to_owned()
                });
                Ok(Ok(Self {
                    repository,
                    sha: sha.to_owned(),
                    branch: branch.as_str().unwrap_or_default().to_owned(),
                    pull_request: named["number"].as_u64(),
                    fork,
                }))
            }
            other => Ok(Err(format!("{other} events build nothing"))),
        }
    }

    pub fn line(&self) -> Line {
        let repo = self.repository.full_name.clone();
        match self.pull_request {
            Some(number) => Line::PullRequest { repo, number },
            None => Line::Branch {
                repo,
                branch: self.branch.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pull_request(action: &str, head_repo: &str) -> Event {
        Event::for_test(
            "pull_request",
            json!({
                "action": action, "number": 7,
                "repository": {"full_name": "octo/app", "clone_url": "https://github.com/octo/app.git"},
                "pull_request": {
                    "number": 7, "user": {"login": "mona"},
                    "base": {"ref": "main", "sha": "b1", "repo": {"full_name": "octo/app"}},
                    "head": {"ref": "feature", "sha": "abc123", "repo": {"full_name": head_repo}}
                }
            }),
        )
    }

    #[test]
    fn pull_requests_build_their_head_in_the_base_repository() {
        let target = Target::from_event(&pull_request("synchronize", "octo/app"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                target.sha.as_str(),
                target.branch.as_str(),
                target.pull_request
            ),
            ("abc123", "feature", Some(7))
        );
        assert_eq!(target.repository.full_name, "octo/app");
        assert_eq!(target.fork, None);
        assert_eq!(
            target.line(),
            Line::PullRequest {
                repo: "octo/app".into(),
                number: 7
            }
        );
    }

    #[test]
    fn forks_are_named() {
        let target = Target::from_event(&pull_request("opened", "mallory/app"))
            .unwrap()
            .unwrap();
        assert_eq!(target.fork.as_deref(), Some("mallory/app"));
    }

    #[test]
    fn other_actions_and_events_build_nothing() {
        let closed = Target::from_event(&pull_request("closed", "octo/app")).unwrap();
        assert_eq!(closed.unwrap_err(), "pull_request.closed builds nothing");
        let issue = Event::for_test("issues", json!({"action": "opened"}));
        assert_eq!(
            Target::from_event(&issue).unwrap().unwrap_err(),
            "issues events build nothing"
        );
    }

    #[test]
    fn pushes_build_the_new_head_of_their_branch_unless_deleted() {
        let push = |after: &str, deleted: bool| {
            Event::for_test(
                "push",
                json!({"ref": "refs/heads/main", "after": after, "deleted": deleted,
                       "repository": {"full_name": "octo/app"}}),
            )
        };
        let target = Target::from_event(&push("def456", false)).unwrap().unwrap();
        assert_eq!(
            (target.sha.as_str(), target.branch.as_str()),
            ("def456", "main")
        );
        assert_eq!(target.pull_request, None);
        let deleted = Target::from_event(&push(&"0".repeat(40), true)).unwrap();
        assert_eq!(deleted.unwrap_err(), "refs/heads/main was deleted");
    }

    #[test]
    fn a_malformed_payload_is_an_error_not_a_skip() {
        let broken = Event::for_test("pull_request", json!({"action": "opened"}));
        assert!(Target::from_event(&broken).is_err());
    }
}
