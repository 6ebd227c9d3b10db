//! The CI runner's comment commands: `/retest`, `/test` and `/cancel` on a pull request. The host
//! has already checked who may give them (see docs/commands.md); here they become a build of the
//! pull request's head, or the cancelling of its running build, through the journal's record of
//! each pull request's latest build, so they hold across hosts.

use switchyard_plugin_api::{LineLatest, PullRequestFacts, prelude::*};

use crate::{
    builds::Only,
    target::{Line, Target},
};

pub const RETEST: &str = "retest";
pub const TEST: &str = "test";
pub const CANCEL: &str = "cancel";

/// What the CI runner declares it takes.
pub fn specs() -> Vec<CommandSpec> {
    vec![
        CommandSpec::new(
            RETEST,
            "Builds the head again if its last build failed, errored, timed out or was cancelled",
        )
        .or_trusted_author(),
        CommandSpec::new(
            TEST,
            "Builds the head again, whatever its last build came to: all its checks, one by name, or `?` to list them",
        )
        .usage("/test [NAME | all | ?]")
        .or_trusted_author(),
        CommandSpec::new(
            CANCEL,
            "Cancels the pull request's running or queued build, naming you in its status",
        )
        .or_author(),
    ]
}

/// `/test ?`: list the head's checks rather than build them.
pub fn lists(command: &Command) -> bool {
    command.name == TEST && command.args.len() == 1 && command.args[0] == "?"
}

/// Which checks a command builds: `/test NAME` one (or one `[[check]]`'s cells), else all.
/// Words are joined, so `/test db (engine=postgres)` needs no quotes.
pub fn only(command: &Command) -> Only {
    if command.name == RETEST {
        return Only::WentWrong;
    }
    match command.args.join(" ").trim() {
        "" | "all" => Only::All,
        name if command.name == TEST => Only::Named(name.to_owned()),
        _ => Only::All,
    }
}

/// What a command asks of the runner.
#[derive(Debug)]
pub enum Asked {
    /// Build this head (`/test`, or `/retest` of a head whose last build went wrong).
    Build(Target),
    /// Cancel the line's latest build, job `job` on `sha`, for `by`.
    Cancel { job: i64, sha: String, by: String },
    /// Nothing to do, and why (the job's summary).
    Nothing(String),
}

/// The build a command is about: the pull request's head as the host fetched it.
pub fn target(event: &Event, facts: &PullRequestFacts, number: u64) -> Result<Target, PluginError> {
    let repository = serde_json::from_value(event.payload()["repository"].clone())
        .map_err(|e| PluginError::fatal(format!("the comment's repository: {e}")))?;
    Ok(Target {
        repository,
        sha: facts.head_sha.clone(),
        branch: facts.head_ref.clone(),
        pull_request: Some(number),
        fork: facts.fork.then(|| match facts.head_repository.as_str() {
            "" => "(a deleted repository)".to_owned(),
            name => name.to_owned(),
        }),
    })
}

/// What `command` asks, given the latest build the journal records for its pull request.
pub fn decide(command: &Command, target: Target, latest: Option<LineLatest>) -> Asked {
    let head = short_sha(&target.sha).to_owned();
    match command.name.as_str() {
        TEST => Asked::Build(target),
        RETEST => match latest {
            Some(latest) if latest.sha == target.sha && went_wrong(&latest) => Asked::Build(target),
            Some(latest) if latest.sha == target.sha && latest.running => Asked::Nothing(format!(
                "build #{} of {head} is still running: /retest builds a head whose last build \
                 failed, errored, timed out or was cancelled",
                latest.job
            )),
            Some(latest) if latest.sha == target.sha => Asked::Nothing(format!(
                "the last build of {head} (#{}) {}: /retest builds again only one that failed, \
                 errored, timed out or was cancelled; /test builds it whatever",
                latest.job,
                latest
                    .verdict
                    .map_or_else(|| "ended".to_owned(), |v| v.to_string())
            )),
            _ => Asked::Nothing(format!(
                "{head}, the head, has no build that failed: /test builds it"
            )),
        },
        CANCEL => match latest {
            Some(latest) if latest.running => Asked::Cancel {
                job: latest.job,
                sha: latest.sha,
                by: command.author.login.clone(),
            },
            _ => Asked::Nothing(format!(
                "no build of pull request #{} is running or queued",
                command.number
            )),
        },
        other => Asked::Nothing(format!("the CI runner takes no /{other}")),
    }
}

/// Whether a build's recorded verdict is one `/retest` builds again: failed, errored, timed out
/// or cancelled (a build superseded by a push is the push's to build).
fn went_wrong(latest: &LineLatest) -> bool {
    !latest.running
        && latest
            .verdict
            .is_some_and(|v| v.is_bad() || v == Verdict::Cancelled)
}

/// `/cancel`: cancels the line's latest build through the journal (on whichever host runs it),
/// then makes this job the line's latest, so a build of the pull request delivered before the
/// comment and not yet started is stale when it starts. The cancel is recorded first, so the
/// build is told who cancelled it, not that it was superseded.
pub async fn cancel(
    host: &Host,
    line: &Line,
    job: i64,
    sha: &str,
    by: &str,
) -> Result<Outcome, PluginError> {
    let answer = host.cancel_job(job, by).await?;
    host.supersede(&line.key(), sha).await?;
    match answer {
        CancelAnswer::Cancelling => {
            let summary = format!("cancelled build #{job} of {} for {by}", short_sha(sha));
            host.log(format!("switchyard: {summary}")).await;
            Ok(Outcome::Finished {
                verdict: Verdict::Cancelled,
                summary,
            })
        }
        CancelAnswer::Ended => Ok(Outcome::Skipped(format!("build #{job} had already ended"))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn test_names_one_check_all_of_them_or_asks_for_the_list() {
        let with = |args: &[&str]| Command {
            args: args.iter().map(|a| a.to_string()).collect(),
            ..command(TEST)
        };
        assert_eq!(only(&with(&[])), Only::All);
        assert_eq!(only(&with(&["all"])), Only::All);
        assert_eq!(only(&with(&["lint"])), Only::Named("lint".into()));
        assert_eq!(
            only(&with(&["db", "(engine=postgres)"])),
            Only::Named("db (engine=postgres)".into())
        );
        assert_eq!(
            only(&with(&["db (engine=postgres)"])),
            Only::Named("db (engine=postgres)".into())
        );
        assert!(lists(&with(&["?"])));
        assert!(!lists(&with(&["lint"])));
        // /retest takes no name: it builds what went wrong.
        let retest = Command {
            args: vec!["lint".into()],
            ..command(RETEST)
        };
        assert_eq!(only(&retest), Only::WentWrong);
    }

    use serde_json::json;
    use switchyard_plugin_api::Person;

    use super::*;

    const HEAD: &str = "abc1234567";

    fn command(name: &str) -> Command {
        Command {
            name: name.to_owned(),
            args: vec![],
            author: Person {
                id: 1,
                login: "mona".to_owned(),
                permission: Some(Role::Write),
            },
            number: 7,
            comment_id: 9,
            comment_url: String::new(),
            pull_request: None,
        }
    }

    fn head() -> Target {
        let event = Event::for_test(
            "issue_comment",
            json!({"repository": {"full_name": "octo/app"}}),
        );
        let facts = PullRequestFacts {
            head_sha: HEAD.to_owned(),
            head_repository: "mona/app".to_owned(),
            base_repository: "octo/app".to_owned(),
            fork: true,
            head_ref: "fix".to_owned(),
        };
        target(&event, &facts, 7).unwrap()
    }

    fn latest(sha: &str, running: bool, verdict: Option<Verdict>) -> Option<LineLatest> {
        Some(LineLatest {
            job: 3,
            sha: sha.to_owned(),
            running,
            verdict,
        })
    }

    #[test]
    fn a_command_targets_the_head_the_host_fetched() {
        let target = head();
        assert_eq!(
            (
                target.sha.as_str(),
                target.branch.as_str(),
                target.pull_request
            ),
            (HEAD, "fix", Some(7))
        );
        assert_eq!(target.fork.as_deref(), Some("mona/app"));
        assert_eq!(target.repository.full_name, "octo/app");
    }

    #[test]
    fn retest_builds_only_a_head_whose_recorded_verdict_went_wrong() {
        let builds = |latest| matches!(decide(&command(RETEST), head(), latest), Asked::Build(_));
        for verdict in Verdict::ALL {
            let again = matches!(
                verdict,
                Verdict::Failed | Verdict::Errored | Verdict::TimedOut | Verdict::Cancelled
            );
            assert_eq!(
                builds(latest(HEAD, false, Some(verdict))),
                again,
                "{verdict}"
            );
        }
        // Running, another sha's build, no build, no verdict recorded: nothing.
        assert!(!builds(latest(HEAD, true, None)));
        assert!(!builds(latest("0ther", false, Some(Verdict::Failed))));
        assert!(!builds(None));
        assert!(!builds(latest(HEAD, false, None)));
    }

    #[test]
    fn test_builds_whatever_and_cancel_needs_a_running_build() {
        let passed = latest(HEAD, false, Some(Verdict::Passed));
        assert!(matches!(
            decide(&command(TEST), head(), passed.clone()),
            Asked::Build(_)
        ));
        let cancel = decide(&command(CANCEL), head(), latest("0ther", true, None));
        assert!(
            matches!(&cancel, Asked::Cancel { job: 3, sha, by } if sha == "0ther" && by == "mona"),
            "{cancel:?}"
        );
        assert!(matches!(
            decide(&command(CANCEL), head(), passed),
            Asked::Nothing(_)
        ));
        assert!(matches!(
            decide(&command(CANCEL), head(), None),
            Asked::Nothing(_)
        ));
    }
}
