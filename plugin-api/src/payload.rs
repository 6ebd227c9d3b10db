//! Typed views of the webhook payloads Switchyard's own plugins read, for [`crate::Event::parse`].
//! Only the fields those plugins use; anything GitHub may leave out is an `Option`.

use serde::Deserialize;
use serde_json::Value;

/// A repository as webhook payloads describe it.
#[derive(Debug, Clone, Deserialize)]
pub struct Repository {
    /// `owner/name`.
    pub full_name: String,
    #[serde(default)]
    pub clone_url: Option<String>,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
}

/// A user or bot, by login and GitHub's numeric id.
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub login: String,
    /// Absent from some older or hand-made payloads.
    #[serde(default)]
    pub id: Option<u64>,
}

/// `pull_request` events.
#[derive(Debug, Clone, Deserialize)]
pub struct PullRequestEvent {
    pub action: String,
    pub number: u64,
    pub pull_request: PullRequest,
    /// The base repository: where statuses and deployments go.
    pub repository: Repository,
    #[serde(default)]
    pub sender: Option<User>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub html_url: Option<String>,
    #[serde(default)]
    pub merged: Option<bool>,
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
    pub user: User,
    pub head: Branch,
    pub base: Branch,
}

/// One side of a pull request.
#[derive(Debug, Clone, Deserialize)]
pub struct Branch {
    /// The branch name.
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub sha: String,
    /// `None` when the head repository (a fork) was deleted.
    #[serde(default)]
    pub repo: Option<Repository>,
}

impl PullRequestEvent {
    /// True when the head branch lives in another repository than the base: a fork, whose
    /// code is untrusted. A deleted head repository counts as a fork.
    pub fn from_fork(&self) -> bool {
        let base = self.pull_request.base.repo.as_ref().map(|r| &r.full_name);
        let head = self.pull_request.head.repo.as_ref().map(|r| &r.full_name);
        head.is_none() || head != base
    }
}

/// `push` events.
#[derive(Debug, Clone, Deserialize)]
pub struct PushEvent {
    /// `refs/heads/main`, `refs/tags/v1`.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The commit the ref points at after the push (all zeros when deleted).
    pub after: String,
    #[serde(default)]
    pub deleted: bool,
    pub repository: Repository,
    #[serde(default)]
    pub sender: Option<User>,
}

/// `deployment` events.
#[derive(Debug, Clone, Deserialize)]
pub struct DeploymentEvent {
    pub deployment: Deployment,
    pub repository: Repository,
    #[serde(default)]
    pub sender: Option<User>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Deployment {
    pub id: u64,
    pub sha: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    #[serde(default)]
    pub task: Option<String>,
    pub environment: String,
    /// Whatever the deployment's creator put there: an object, or a string GitHub kept as is.
    #[serde(default)]
    pub payload: Value,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub creator: Option<User>,
}

impl Deployment {
    /// The payload as a JSON object when it is one, or a string holding one (GitHub keeps the
    /// payload in whichever form the creator sent). Anything else gives `Value::Null`.
    pub fn payload_object(&self) -> Value {
        match &self.payload {
            Value::Object(_) => self.payload.clone(),
            Value::String(text) => match serde_json::from_str::<Value>(text) {
                Ok(value @ Value::Object(_)) => value,
                _ => Value::Null,
            },
            _ => Value::Null,
        }
    }
}

/// `deployment_status` events.
#[derive(Debug, Clone, Deserialize)]
pub struct DeploymentStatusEvent {
    pub deployment_status: DeploymentStatus,
    pub deployment: Deployment,
    pub repository: Repository,
    #[serde(default)]
    pub sender: Option<User>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeploymentStatus {
    pub state: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub target_url: Option<String>,
    #[serde(default)]
    pub log_url: Option<String>,
    #[serde(default)]
    pub creator: Option<User>,
}

/// `status` events: a commit status changed.
#[derive(Debug, Clone, Deserialize)]
pub struct StatusEvent {
    pub sha: String,
    pub state: String,
    pub context: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub target_url: Option<String>,
    /// Branches whose head is this commit.
    #[serde(default)]
    pub branches: Vec<NamedBranch>,
    #[serde(default)]
    pub commit: Option<StatusCommit>,
    pub repository: Repository,
    #[serde(default)]
    pub sender: Option<User>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NamedBranch {
    pub name: String,
}

/// The commit a status is about; `author` is the GitHub user, when GitHub knows one.
#[derive(Debug, Clone, Deserialize)]
pub struct StatusCommit {
    #[serde(default)]
    pub author: Option<User>,
}

impl StatusEvent {
    /// Whether the commit is the head of the repository's default branch.
    pub fn on_default_branch(&self) -> bool {
        let default = self.repository.default_branch.as_deref();
        self.branches
            .iter()
            .any(|b| Some(b.name.as_str()) == default)
    }

    /// Who the status concerns: the commit's author, else whoever set the status.
    pub fn who(&self) -> Option<&str> {
        let author = self.commit.as_ref().and_then(|c| c.author.as_ref());
        author.or(self.sender.as_ref()).map(|u| u.login.as_str())
    }
}

impl DeploymentStatusEvent {
    /// Who asked for the deployment: the payload's `deploy_user` (set by the deployer on
    /// merge), else the deployment's creator, else whoever set the status.
    pub fn who(&self) -> Option<String> {
        let payload = self.deployment.payload_object();
        payload["deploy_user"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| self.deployment.creator.as_ref().map(|c| c.login.clone()))
            .or_else(|| self.sender.as_ref().map(|s| s.login.clone()))
    }

    /// The status's environment, else the deployment's.
    pub fn environment(&self) -> &str {
        self.deployment_status
            .environment
            .as_deref()
            .unwrap_or(&self.deployment.environment)
    }

    /// The status's log link, else its target URL.
    pub fn log_url(&self) -> Option<&str> {
        let status = &self.deployment_status;
        status
            .log_url
            .as_deref()
            .or(status.target_url.as_deref())
            .filter(|u| !u.is_empty())
    }
}

/// The first 7 characters of a sha, as GitHub shows it.
pub fn short_sha(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment(payload: Value) -> Deployment {
        serde_json::from_value(json!({
            "id": 1, "sha": "abc", "ref": "main", "environment": "production", "payload": payload
        }))
        .unwrap()
    }

    #[test]
    fn a_deployment_payload_reads_as_an_object_in_either_form() {
        let object = json!({"deploy_user": "octocat"});
        for payload in [object.clone(), Value::String(object.to_string())] {
            assert_eq!(deployment(payload).payload_object(), object);
        }
        for not_an_object in [json!("plain text"), json!([1]), json!(""), Value::Null] {
            assert_eq!(deployment(not_an_object).payload_object(), Value::Null);
        }
    }

    #[test]
    fn a_fork_is_a_head_repository_other_than_the_base() {
        let event = |head: Value| -> PullRequestEvent {
            serde_json::from_value(json!({
                "action": "opened", "number": 1, "repository": {"full_name": "o/r"},
                "pull_request": {
                    "number": 1, "user": {"login": "u"},
                    "base": {"ref": "main", "sha": "a", "repo": {"full_name": "o/r"}},
                    "head": {"ref": "f", "sha": "b", "repo": head}
                }
            }))
            .unwrap()
        };
        assert!(!event(json!({"full_name": "o/r"})).from_fork());
        assert!(event(json!({"full_name": "someone/r"})).from_fork());
        assert!(
            event(Value::Null).from_fork(),
            "a deleted fork is still a fork"
        );
    }

    /// GitHub's own example payloads (the host's test fixtures) all read as these types.
    #[test]
    fn githubs_examples_parse() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../host/tests/fixtures/webhook-examples.json"
        );
        let hooks: Vec<Value> = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let mut parsed = 0;
        for hook in &hooks {
            for example in hook["examples"].as_array().into_iter().flatten() {
                let example = example.clone();
                let result = match hook["name"].as_str().unwrap() {
                    "pull_request" => serde_json::from_value::<PullRequestEvent>(example).map(drop),
                    "push" => serde_json::from_value::<PushEvent>(example).map(drop),
                    "deployment" => serde_json::from_value::<DeploymentEvent>(example).map(drop),
                    "deployment_status" => {
                        serde_json::from_value::<DeploymentStatusEvent>(example).map(drop)
                    }
                    "status" => serde_json::from_value::<StatusEvent>(example).map(drop),
                    _ => continue,
                };
                result.unwrap_or_else(|e| panic!("{}: {e}", hook["name"]));
                parsed += 1;
            }
        }
        assert!(parsed >= 5, "the fixtures hold examples of every type");
    }

    #[test]
    fn short_shas_are_seven_characters_or_the_whole_sha() {
        assert_eq!(short_sha("0123456789abcdef"), "0123456");
        assert_eq!(short_sha("abc"), "abc");
    }
}
