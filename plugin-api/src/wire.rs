//! The JSON messages that cross the boundary, shared by both sides so they cannot drift apart.
//! Plugin authors never see this module.

use serde::{Deserialize, Serialize};

use crate::{Command, CommandSpec, Outcome, Permissions, PluginError, Subscription};

/// What `create` answers, as JSON in `CreateResult::reply`.
///
/// `permissions` came after ABI v3 was set, as an optional field of the same handshake: a plugin
/// built before it sends none (read as "not declared"), and a host built before it ignores it.
/// The layout is unchanged, so the ABI version is too.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreateReply {
    Ready {
        subscriptions: Vec<Subscription>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        permissions: Option<Permissions>,
        /// The comment commands it takes; absent from plugins built before commands existed.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        commands: Vec<CommandSpec>,
    },
    Failed {
        error: String,
    },
}

/// Everything about a call but the payload: the job and the facts the host read off the
/// delivery. It travels as JSON, and the payload beside it as the raw bytes GitHub sent: the
/// payload is never spliced into a message, and a plugin that never reads it never scans it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallHead {
    pub job: crate::JobInfo,
    pub delivery: String,
    pub event: String,
    pub action: Option<String>,
    pub repository: Option<String>,
    pub sender: Option<String>,
    pub received_at: String,
    /// The accepted comment command this job runs, when it runs one. A plugin built before
    /// commands existed ignores the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Command>,
}

/// What a handler's future yields, as JSON.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallResult {
    Ok(Outcome),
    Err(PluginError),
}

/// A GitHub REST call a plugin asks the host to make with the host's credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GitHubCall {
    pub method: String,
    /// Path under the API base URL, starting with `/`.
    pub path: String,
    pub body: Option<serde_json::Value>,
}

/// A service request from a plugin to the host, tagged by `service`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "service", rename_all = "snake_case")]
pub enum ServiceRequest {
    Github(GitHubCall),
    Run(crate::RunRequest),
    Checkout(crate::CheckoutRequest),
    Lock(crate::LockRequest),
    HttpPost(crate::HttpPost),
    /// Answers with a [`crate::CancelReason`] once the host cancels the job; until then, not at all.
    Cancelled,
    /// Answers with a [`crate::Superseding`].
    Supersede(crate::SupersedeRequest),
    /// Answers with a [`crate::CancelAnswer`].
    CancelJob(crate::CancelJobRequest),
    /// Answers with a [`crate::GitHubResponse`].
    Reply(crate::ThreadReply),
    /// Answers with a [`crate::GitHubResponse`].
    React(crate::CommentReaction),
    /// Answers with an `Option` of [`crate::LineLatest`].
    LatestOfLine(crate::LineRequest),
    /// Answers with a `bool`: whether it is the pull request's first record.
    RecordHead(crate::HeadNote),
    /// Answers with a `Vec` of [`crate::RecordedHead`].
    Heads(crate::HeadsRequest),
    /// The deployer's sticky locks and records: answers per [`crate::DeployRequest`].
    Deploys(crate::DeployRequest),
}

/// The answer of a host service.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceResult<T> {
    Ok(T),
    Err(crate::HostError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Verdict;

    #[test]
    fn outcomes_read_as_plugins_of_every_api_version_send_them() {
        // (JSON a plugin sends, outcome, verdict): the first two are what plugins built before
        // verdicts existed send, and must keep meaning what they meant.
        let cases = [
            (r#"{"ok":"done"}"#, Outcome::Done, Verdict::Passed),
            (
                r#"{"ok":{"skipped":"draft"}}"#,
                Outcome::Skipped("draft".into()),
                Verdict::Skipped,
            ),
            (
                r#"{"ok":{"finished":{"verdict":"timed_out","summary":"build ran 10 min"}}}"#,
                Outcome::Finished {
                    verdict: Verdict::TimedOut,
                    summary: "build ran 10 min".into(),
                },
                Verdict::TimedOut,
            ),
        ];
        for (json, outcome, verdict) in cases {
            let read: CallResult = serde_json::from_str(json).unwrap();
            let CallResult::Ok(read) = read else {
                panic!("{json} did not read as an outcome")
            };
            assert_eq!((&read, read.verdict()), (&outcome, verdict), "{json}");
            assert_eq!(
                serde_json::to_string(&CallResult::Ok(outcome)).unwrap(),
                json
            );
        }
    }

    #[test]
    fn verdicts_have_one_name_for_machines_and_plain_words_for_people() {
        // (verdict, stored name, words)
        let cases = [
            (Verdict::Passed, "passed", "passed"),
            (Verdict::Failed, "failed", "failed"),
            (Verdict::Errored, "errored", "errored"),
            (Verdict::TimedOut, "timed_out", "timed out"),
            (Verdict::Cancelled, "cancelled", "cancelled"),
            (Verdict::Skipped, "skipped", "skipped"),
        ];
        for (verdict, name, words) in cases {
            assert_eq!(verdict.as_str(), name);
            assert_eq!(verdict.to_string(), words);
            assert_eq!(Verdict::parse(name), Some(verdict));
            assert_eq!(
                serde_json::to_string(&verdict).unwrap(),
                format!("\"{name}\"")
            );
        }
        assert_eq!(Verdict::parse("timed out"), None);
    }

    #[test]
    fn what_plugins_and_hosts_built_before_commands_send_is_still_read() {
        // A plugin built before commands existed declares none.
        let old_reply = br#"{"ready":{"subscriptions":["pull_request"]}}"#;
        match serde_json::from_slice::<CreateReply>(old_reply).unwrap() {
            CreateReply::Ready { commands, .. } => assert!(commands.is_empty()),
            other => panic!("{other:?}"),
        }
        // A host built before commands existed sends no command.
        let old_head = br#"{"job":{"id":1,"attempt":1,"log_url":"u"},"delivery":"d","event":"issue_comment","action":"created","repository":null,"sender":null,"received_at":"t"}"#;
        let head: CallHead = serde_json::from_slice(old_head).unwrap();
        assert!(head.command.is_none());
        // And a head without a command is sent as before, without the field.
        let sent = serde_json::to_string(&head).unwrap();
        assert!(!sent.contains("command"), "{sent}");
    }

    #[test]
    fn a_call_head_round_trips_with_escapes_and_nulls() {
        let head = CallHead {
            job: crate::JobInfo {
                id: 4,
                attempt: 2,
                log_url: "http://h/jobs/4/log".into(),
            },
            delivery: "d-1".into(),
            event: "pull_request".into(),
            action: Some("opened".into()),
            repository: None,
            sender: Some("m\u{e9}na \"bot\"".into()),
            received_at: "2026-01-01T00:00:00Z".into(),
            command: None,
        };
        let bytes = serde_json::to_vec(&head).unwrap();
        let read: CallHead = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            (
                read.job,
                read.delivery,
                read.action,
                read.repository,
                read.sender
            ),
            (
                head.job,
                head.delivery,
                head.action,
                head.repository,
                head.sender
            )
        );
    }
}
