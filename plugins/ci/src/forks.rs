//! The fork gate: a pull request from a fork whose author lacks `write` is built only once a
//! maintainer approved its head with `/ok-to-test` (or, with `ok_to_test = "pull_request"`, any
//! of its heads). It sits in the runner's build decision, which every path that builds passes:
//! pull request events, check suites and runs, `/test` and `/retest`, the dashboard's Replay and
//! catch-up redeliveries. Heads seen arriving and approvals are the journal's
//! (`Host::record_head`), so they hold across hosts and restarts.

use serde::Deserialize;
use serde_json::json;
use switchyard_plugin_api::{RecordedHead, prelude::*};

use crate::target::Target;

pub const OK_TO_TEST: &str = "ok-to-test";

/// Which approvals let a fork's head be built (`ok_to_test` in the settings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approves {
    /// An approval is of one head: a later push waits for a new one.
    #[default]
    Head,
    /// An approval trusts the pull request for its life (Prow's way).
    PullRequest,
}

/// The `/ok-to-test` declaration: a writer approves a fork's head.
pub fn spec() -> CommandSpec {
    CommandSpec::new(
        OK_TO_TEST,
        "Approves the head of a pull request from a fork for building (or the head SHA given)",
    )
    .usage("/ok-to-test [SHA]")
}

/// The thread's answer to a plain `/ok-to-test` given after the head moved.
pub const HEAD_MOVED: &str = "the head moved; review it and approve with `/ok-to-test SHA`";

/// Whether `sha` is approved among `heads`.
pub fn approved(heads: &[RecordedHead], sha: &str, approves: Approves) -> bool {
    heads
        .iter()
        .filter(|head| head.approved_by.is_some())
        .any(|head| approves == Approves::PullRequest || head.sha == sha)
}

/// Whether a plain `/ok-to-test` (given by job `job`) may approve `now`, the head GitHub
/// reports: it must be the head of the last `opened`, `reopened` or `synchronize` the runner
/// saw before the comment arrived (job ids follow the order deliveries arrived in).
pub fn reviewable(heads: &[RecordedHead], job: i64, now: &str) -> bool {
    let last_seen = heads
        .iter()
        .filter(|head| head.job < job && head.approved_by.is_none())
        .max_by_key(|head| head.job);
    last_seen.is_some_and(|head| head.sha == now)
}

/// The sha `/ok-to-test SHA` names: the head itself when it abbreviates it (7 characters at
/// least), or a full sha. `None`: not a sha.
pub fn named_sha(arg: &str, head: &str) -> Option<String> {
    let hex = arg.bytes().all(|b| b.is_ascii_hexdigit());
    match arg.len() {
        7..=40 if hex && head.starts_with(&arg.to_ascii_lowercase()) => Some(head.to_owned()),
        40 if hex => Some(arg.to_ascii_lowercase()),
        _ => None,
    }
}

/// Whether the pull request's author holds `write` (or more) on the base repository, by
/// GitHub's collaborator permission answer; any failure counts as not.
pub async fn author_may_write(host: &Host, target: &Target, author: &str) -> bool {
    let path = format!(
        "/repos/{}/collaborators/{author}/permission",
        target.repository.full_name
    );
    let Ok(answer) = host.github("GET", &path, None).await else {
        return false;
    };
    let named = |field: &str| {
        matches!(
            answer.body[field].as_str(),
            Some("admin" | "maintain" | "write")
        )
    };
    answer.status == 200 && (named("permission") || named("role_name"))
}

/// The one comment a fork's pull request gets, the first time it waits.
pub async fn tell_the_thread(host: &Host, target: &Target) {
    let Some(number) = target.pull_request else {
        return;
    };
    let body = String::from(
        "This pull request comes from a fork, so it is not built until a maintainer with \
         `write` has reviewed it and comments `/ok-to-test` (or `/ok-to-test SHA` for one \
         commit). Until then its check waits.",
    );
    let path = format!(
        "/repos/{}/issues/{number}/comments",
        target.repository.full_name
    );
    // Best effort: an entry may have narrowed `issues: write` away; the status says it too.
    if let Err(error) = host
        .github("POST", &path, Some(json!({ "body": body })))
        .await
    {
        host.log(format!(
            "switchyard: cannot comment on the pull request: {error}"
        ))
        .await;
    }
}

/// `/ok-to-test [SHA]` by a writer on a fork's pull request: records the approval and
/// builds the head it approves, or refuses in the thread when the head moved.
pub async fn ok_to_test(
    event: &Event,
    command: &Command,
    target: Target,
    host: &Host,
) -> Result<Result<Target, Outcome>, PluginError> {
    let (repo, number) = (target.repository.full_name.clone(), command.number);
    let heads = host.heads(&repo, number).await?;
    let sha = match command.args.first() {
        Some(arg) => match named_sha(arg, &target.sha) {
            Some(sha) => sha,
            None => {
                let text = format!(
                    "@{} `{arg}` is not a commit sha: `/ok-to-test SHA`",
                    command.author.login
                );
                answer(host, &text).await;
                return Ok(Err(Outcome::Skipped(format!("{arg:?} is not a sha"))));
            }
        },
        None => match reviewable(&heads, event.job.id, &target.sha) {
            true => target.sha.clone(),
            false => {
                let text = format!("@{} {}", command.author.login, HEAD_MOVED);
                answer(host, &text).await;
                return Ok(Err(Outcome::Skipped(format!(
                    "not approved: {}",
                    HEAD_MOVED
                ))));
            }
        },
    };
    let by = format!("github:{} ({})", command.author.id, command.author.login);
    host.record_head(&repo, number, &sha, Some(&by)).await?;
    host.log(format!(
        "switchyard: {by} approved {sha} of {repo}#{number}"
    ))
    .await;
    if sha != target.sha {
        return Ok(Err(Outcome::Skipped(format!(
            "approved {}, which is not the head ({}): it builds when it is",
            short_sha(&sha),
            short_sha(&target.sha)
        ))));
    }
    Ok(Ok(target))
}

/// Answers in the command's thread; a failure (an entry that narrowed `issues: write` away)
/// is logged, and the job's note says the same.
async fn answer(host: &Host, text: &str) {
    if let Err(error) = host.reply(text).await {
        host.log(format!("switchyard: cannot answer in the thread: {error}"))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn head(sha: &str, job: i64, by: Option<&str>) -> RecordedHead {
        RecordedHead {
            sha: sha.to_owned(),
            job,
            approved_by: by.map(str::to_owned),
        }
    }

    #[test]
    fn an_approval_is_of_one_head_unless_the_pull_request_is_trusted_for_its_life() {
        let heads = [
            head(A, 1, None),
            head(A, 2, Some("github:1 (mona)")),
            head(B, 3, None),
        ];
        assert!(approved(&heads, A, Approves::Head));
        assert!(!approved(&heads, B, Approves::Head));
        assert!(approved(&heads, B, Approves::PullRequest));
        assert!(!approved(&heads[..1], A, Approves::PullRequest));
    }

    #[test]
    fn a_plain_approval_takes_the_head_last_seen_before_the_comment_if_still_the_head() {
        let heads = [head(A, 1, None), head(B, 5, None)];
        // The comment's job came after A's push and before B's: GitHub's head is B now.
        assert!(!reviewable(&heads, 3, B));
        assert!(reviewable(&heads, 3, A));
        assert!(reviewable(&heads, 6, B));
        // Nothing seen before the comment: nothing to approve.
        assert!(!reviewable(&heads, 1, A));
    }

    #[test]
    fn a_named_sha_is_the_head_abbreviated_or_a_full_sha() {
        assert_eq!(named_sha("aaaaaaa", A).as_deref(), Some(A));
        assert_eq!(named_sha(B, A).as_deref(), Some(B));
        assert_eq!(named_sha("bbbbbbb", A), None);
        assert_eq!(named_sha("aaaa", A), None);
        assert_eq!(named_sha("not-a-sha", A), None);
    }
}
