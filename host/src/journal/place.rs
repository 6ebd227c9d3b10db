//! Where a delivery points in its repository: the pull request, the commit and the branch (or
//! tag) it is about, read once from the payload as it is stored, so the dashboard finds a
//! repository's, a pull request's or a commit's deliveries by index rather than by reading
//! payloads back. Only what GitHub's payloads say plainly; nothing here routes a delivery.

use serde::Deserialize;

/// The pull request, commit and ref a delivery is about, when its payload says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    pub pull_request: Option<i64>,
    /// The full commit sha (lowercase hex).
    pub head_sha: Option<String>,
    /// A branch by its name (`main`), a tag as `refs/tags/v1`.
    pub git_ref: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Fields {
    number: Option<i64>,
    after: Option<String>,
    sha: Option<String>,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    /// A `create` or `delete` event's: `branch` or `tag`, its `ref` a bare name.
    ref_type: Option<String>,
    pull_request: Option<PullRequest>,
    issue: Option<Issue>,
    deployment: Option<Commit>,
    check_suite: Option<Suite>,
    check_run: Option<Suite>,
    workflow_run: Option<Suite>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PullRequest {
    number: Option<i64>,
    head: Option<Commit>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Issue {
    number: Option<i64>,
    /// Present on an issue that is a pull request.
    pull_request: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Commit {
    sha: Option<String>,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Suite {
    head_sha: Option<String>,
    head_branch: Option<String>,
}

/// A sha as stored: 40 (or 64) hex digits, lowercased; anything else is not one. A push that
/// deletes a branch has `after` all zeros: no commit.
fn sha(text: Option<String>) -> Option<String> {
    let text = text?.to_ascii_lowercase();
    let hex = matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit());
    (hex && text.bytes().any(|b| b != b'0')).then_some(text)
}

/// A branch by its name, other refs whole.
fn branch(text: Option<String>) -> Option<String> {
    let text = text.filter(|t| !t.is_empty() && t.len() <= 255)?;
    Some(match text.strip_prefix("refs/heads/") {
        Some(name) => name.to_owned(),
        None => text,
    })
}

impl Place {
    /// Reads the place from a payload; a payload that says none (or is not what GitHub sends)
    /// has none.
    pub fn of(payload: &[u8]) -> Self {
        let Ok(fields) = serde_json::from_slice::<Fields>(payload) else {
            return Self::default();
        };
        if let Some(pr) = fields.pull_request {
            let head = pr.head.unwrap_or_default();
            return Self {
                pull_request: pr.number.or(fields.number),
                head_sha: sha(head.sha),
                git_ref: branch(head.git_ref),
            };
        }
        if let Some(issue) = fields.issue {
            return Self {
                pull_request: issue.pull_request.and(issue.number),
                ..Self::default()
            };
        }
        if let Some(deployment) = fields.deployment {
            return Self {
                pull_request: None,
                head_sha: sha(deployment.sha),
                git_ref: branch(deployment.git_ref),
            };
        }
        if let Some(suite) = fields
            .check_run
            .or(fields.check_suite)
            .or(fields.workflow_run)
        {
            return Self {
                pull_request: None,
                head_sha: sha(suite.head_sha),
                git_ref: branch(suite.head_branch),
            };
        }
        let git_ref = match fields.ref_type.as_deref() {
            Some("tag") => fields.git_ref.map(|name| format!("refs/tags/{name}")),
            _ => fields.git_ref,
        };
        Self {
            pull_request: None,
            // A push says `after`, a commit status `sha`.
            head_sha: sha(fields.after.or(fields.sha)),
            git_ref: branch(git_ref),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn places_of_payloads() {
        let cases: [(String, Place); 9] = [
            (
                format!(
                    r#"{{"action":"opened","number":7,"pull_request":{{"number":7,"head":{{"sha":"{}","ref":"feature"}}}}}}"#,
                    SHA.to_uppercase()
                ),
                Place {
                    pull_request: Some(7),
                    head_sha: Some(SHA.into()),
                    git_ref: Some("feature".into()),
                },
            ),
            (
                format!(r#"{{"ref":"refs/heads/main","after":"{SHA}","commits":[]}}"#),
                Place {
                    pull_request: None,
                    head_sha: Some(SHA.into()),
                    git_ref: Some("main".into()),
                },
            ),
            (
                r#"{"ref":"refs/heads/gone","after":"0000000000000000000000000000000000000000"}"#
                    .into(),
                Place {
                    pull_request: None,
                    head_sha: None,
                    git_ref: Some("gone".into()),
                },
            ),
            (
                format!(
                    r#"{{"deployment":{{"sha":"{SHA}","ref":"refs/tags/v1","environment":"production"}}}}"#
                ),
                Place {
                    pull_request: None,
                    head_sha: Some(SHA.into()),
                    git_ref: Some("refs/tags/v1".into()),
                },
            ),
            (
                r#"{"issue":{"number":9,"pull_request":{"url":"x"}},"comment":{"body":"/retest"}}"#
                    .into(),
                Place {
                    pull_request: Some(9),
                    ..Place::default()
                },
            ),
            (
                r#"{"issue":{"number":9},"comment":{"body":"hi"}}"#.into(),
                Place::default(),
            ),
            (r#"{"after":"not a sha","ref":7}"#.into(), Place::default()),
            (
                r#"{"ref":"v1.2","ref_type":"tag"}"#.into(),
                Place {
                    git_ref: Some("refs/tags/v1.2".into()),
                    ..Place::default()
                },
            ),
            (
                r#"{"ref":"feature","ref_type":"branch"}"#.into(),
                Place {
                    git_ref: Some("feature".into()),
                    ..Place::default()
                },
            ),
        ];
        for (payload, expected) in cases {
            assert_eq!(Place::of(payload.as_bytes()), expected, "{payload}");
        }
    }
}
