//! The CI runner's comment commands end to end: the real plugin, real git repositories, the fake
//! GitHub answering permissions and `pulls/get` and validating every call. `/retest` builds a
//! head again only when the journal recorded its last build as gone wrong, `/test` whatever,
//! `/cancel` stops the running build naming the person; who may give each is the host's check
//! (a writer, or the author: for a build, only once the pull request is trusted).

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use switchyard_plugin_api::Verdict;
use switchyard_testkit::NewComment;

use crate::support::{FakeGitHub, HostSpec, Origin, TOKEN, TestHost, binds, eventually, example};

const REPO: &str = "Codertocat/Hello-World";
const FORK: &str = "mallory/Hello-World";
/// The pull requests' author unless a test says otherwise: no permission on [`REPO`].
const AUTHOR: (&str, u64) = ("Codertocat", 21031067);
/// Each comment's own id: a comment runs once, whatever is redelivered.
static NEXT_COMMENT: AtomicU64 = AtomicU64::new(7000);

struct Ci {
    github: FakeGitHub,
    origin: Origin,
    host: TestHost,
}

impl Ci {
    /// A host running the CI runner with `settings`, statuses reported with a token; a writer
    /// and a reader on [`REPO`].
    async fn start(settings: &str) -> Self {
        Self::start_entry("", settings).await
    }

    /// Like `start`, with extra keys for the `[[plugins]]` entry itself.
    async fn start_entry(entry: &str, settings: &str) -> Self {
        let github = FakeGitHub::start().await;
        github.set_role(REPO, "writer", 501, "write", "write");
        github.set_role(REPO, "reader", 502, "read", "read");
        let origin = Origin::new(REPO);
        let settings = settings.replace("{scratch}", &origin.scratch().display().to_string());
        let plugins = format!(
            "[[plugins]]\nname = \"ci\"\nlibrary = \"{{lib:switchyard-ci}}\"\n{entry}\n{}\n\
             [plugins.settings]\nclone_url = \"{}\"\n{settings}\n",
            binds(&origin),
            origin.clone_url_template()
        );
        let host = TestHost::start(HostSpec {
            plugins,
            github_url: Some(github.url().to_owned()),
            github_token: Some(TOKEN),
            ..Default::default()
        })
        .await;
        Self {
            github,
            origin,
            host,
        }
    }

    /// Pull request `number` now has head `sha` in `head_repo`: GitHub's answer, and the
    /// `pull_request` delivery `action`.
    async fn push(&self, delivery: &str, action: &str, number: u64, sha: &str, head_repo: &str) {
        self.github.open_pull_request(REPO, number, sha, head_repo);
        let mut payload = example("pull_request", Some("opened"));
        payload["action"] = json!(action);
        payload["number"] = json!(number);
        payload["pull_request"]["number"] = json!(number);
        payload["pull_request"]["head"]["sha"] = json!(sha);
        payload["pull_request"]["head"]["repo"]["full_name"] = json!(head_repo);
        let (status, body) = self.host.send("pull_request", delivery, &payload).await;
        assert_eq!(status, 202, "{body}");
    }

    /// `(login, id)` comments `body` on pull request `number`, written by [`AUTHOR`].
    async fn comment(&self, delivery: &str, by: (&str, u64), number: u64, body: &str) {
        let id = NEXT_COMMENT.fetch_add(1, Ordering::Relaxed);
        let payload = NewComment::on_pull_request(REPO, number)
            .thread_by(AUTHOR.0, AUTHOR.1)
            .by(by.0, by.1)
            .id(id)
            .body(body)
            .payload();
        let (status, answer) = self.host.send("issue_comment", delivery, &payload).await;
        assert_eq!(status, 202, "{answer}");
    }

    /// `(state, description)` of every status posted for `sha`, in order.
    fn statuses(&self, sha: &str) -> Vec<(String, String)> {
        let path = format!("/repos/{REPO}/statuses/{sha}");
        self.github
            .requests()
            .into_iter()
            .filter(|r| r.path == path)
            .map(|r| (text(&r.body["state"]), text(&r.body["description"])))
            .collect()
    }

    async fn wait_for_status(&self, sha: &str, needle: &str) {
        let found = || self.statuses(sha).iter().any(|(_, d)| d.contains(needle));
        eventually(&format!("a status {needle:?} for {sha}"), found).await;
    }

    /// The host's replies in threads.
    fn replies(&self) -> Vec<String> {
        let calls = self.github.calls("issues/create-comment");
        calls.iter().map(|c| text(&c.body["body"])).collect()
    }

    async fn stop(self) {
        let violations = self.github.violations();
        assert!(violations.is_empty(), "{violations:?}");
        self.host.stop().await;
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn states(statuses: &[(String, String)]) -> Vec<&str> {
    statuses.iter().map(|(s, _)| s.as_str()).collect()
}

/// A test script failing its first run and passing after, through a marker in the bound scratch
/// folder.
const FLAKY: &str =
    "command = \"if [ -f {scratch}/ran ]; then exit 0; fi; touch {scratch}/ran; exit 1\"";

#[tokio::test]
async fn retest_builds_a_failed_head_again_and_test_builds_a_passed_one() {
    let ci = Ci::start(FLAKY).await;
    let sha = ci.origin.commit("refs/heads/topic", &[("README", "flaky")]);
    ci.push("push-1", "opened", 2, &sha, REPO).await;
    let first = ci.host.ended_jobs("push-1", 1).await;
    assert_eq!(first[0].verdict, Some(Verdict::Failed), "{first:?}");

    ci.comment("retest-1", ("writer", 501), 2, "/retest").await;
    let retest = ci.host.ended_jobs("retest-1", 1).await;
    assert_eq!(retest[0].verdict, Some(Verdict::Passed), "{retest:?}");
    let statuses = ci.statuses(&sha);
    assert_eq!(
        states(&statuses),
        ["pending", "failure", "pending", "success"],
        "{statuses:?}"
    );
    assert_eq!(statuses[2].1, format!("Build #{} running", retest[0].id));

    // Its last build passed: `/retest` builds nothing and says why; `/test` builds it.
    ci.comment("retest-2", ("writer", 501), 2, "/retest").await;
    let again = ci.host.ended_jobs("retest-2", 1).await;
    assert_eq!(again[0].verdict, Some(Verdict::Skipped));
    let note = again[0].note.as_deref().unwrap_or_default();
    assert!(note.contains("passed") && note.contains("/test"), "{note}");
    assert_eq!(ci.statuses(&sha).len(), 4, "nothing was built");

    ci.comment("test-1", ("writer", 501), 2, "/test").await;
    let test = ci.host.ended_jobs("test-1", 1).await;
    assert_eq!(test[0].verdict, Some(Verdict::Passed), "{test:?}");
    assert_eq!(states(&ci.statuses(&sha))[4..], ["pending", "success"]);
    ci.stop().await;
}

#[tokio::test]
async fn a_reader_is_refused_and_the_author_may_retest_only_a_trusted_pull_request() {
    let ci = Ci::start("command = \"exit 1\"").await;
    let own = ci.origin.commit("refs/heads/topic", &[("README", "own")]);
    let forked = ci.origin.commit("refs/pull/3/head", &[("README", "fork")]);
    ci.push("own-1", "opened", 2, &own, REPO).await;
    ci.host.ended_jobs("own-1", 1).await;
    // The fork's pull request: allowed to be seen by GitHub, never built here.
    ci.push("fork-1", "opened", 3, &forked, FORK).await;
    ci.host.ended_jobs("fork-1", 1).await;

    ci.comment("reader-1", ("reader", 502), 2, "/retest").await;
    let refused = ci.host.ended_jobs("reader-1", 1).await;
    assert_eq!(refused[0].verdict, Some(Verdict::Skipped));
    // (The fork's pull request got its one comment; the reader's refusal is the other.)
    let replies: Vec<String> = ci
        .replies()
        .into_iter()
        .filter(|r| r.starts_with("@reader"))
        .collect();
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert!(
        replies[0].contains("`/retest` needs the `write` permission")
            && replies[0].contains("once the pull request is trusted")
            && replies[0].contains("you have `read`"),
        "{replies:?}"
    );

    // The author of a branch of the repository itself: trusted, so their /retest builds.
    ci.comment("author-1", AUTHOR, 2, "/retest").await;
    let built = ci.host.ended_jobs("author-1", 1).await;
    assert_eq!(built[0].verdict, Some(Verdict::Failed), "{built:?}");
    assert_eq!(
        states(&ci.statuses(&own)),
        ["pending", "failure", "pending", "failure"]
    );

    // The author of a fork's pull request whose head nobody approved: refused by the host.
    ci.comment("author-2", AUTHOR, 3, "/test").await;
    let fork = ci.host.ended_jobs("author-2", 1).await;
    assert_eq!(fork[0].verdict, Some(Verdict::Skipped));
    let statuses = ci.statuses(&forked);
    assert_eq!(states(&statuses), ["pending"], "only waiting: {statuses:?}");
    let replies = ci.replies();
    assert!(
        replies
            .last()
            .unwrap()
            .contains("`/test` needs the `write` permission"),
        "{replies:?}"
    );
    ci.stop().await;
}

#[tokio::test]
async fn cancel_by_the_author_stops_the_running_build_naming_them_and_retest_builds_it_again() {
    let ci = Ci::start("command = \"sleep 30\"\ntimeout_secs = 60").await;
    let sha = ci.origin.commit("refs/heads/topic", &[("README", "slow")]);
    ci.push("push-1", "opened", 2, &sha, REPO).await;
    ci.wait_for_status(&sha, "running").await;

    let started = Instant::now();
    ci.comment("cancel-1", AUTHOR, 2, "/cancel").await;
    let build = ci.host.ended_jobs("push-1", 1).await;
    let cancel = ci.host.ended_jobs("cancel-1", 1).await;
    assert!(started.elapsed() < Duration::from_secs(20), "not cancelled");
    assert_eq!(build[0].verdict, Some(Verdict::Cancelled), "{build:?}");
    assert_eq!(cancel[0].verdict, Some(Verdict::Cancelled), "{cancel:?}");
    let statuses = ci.statuses(&sha);
    assert_eq!(
        statuses.last().unwrap(),
        &(
            "error".to_owned(),
            format!("Build #{} cancelled by {}", build[0].id, AUTHOR.0)
        ),
        "{statuses:?}"
    );

    // Nothing runs now: a second /cancel cancels nothing.
    ci.comment("cancel-2", ("writer", 501), 2, "/cancel").await;
    let idle = ci.host.ended_jobs("cancel-2", 1).await;
    assert_eq!(idle[0].verdict, Some(Verdict::Skipped), "{idle:?}");

    // The last build of the head was cancelled: /retest builds it (and is cancelled in turn).
    ci.comment("retest-1", ("writer", 501), 2, "/retest").await;
    eventually("the retest to run", || {
        ci.statuses(&sha)
            .iter()
            .filter(|(_, d)| d.ends_with("running"))
            .count()
            == 2
    })
    .await;
    ci.comment("cancel-3", ("writer", 501), 2, "/cancel").await;
    let retest = ci.host.ended_jobs("retest-1", 1).await;
    assert_eq!(retest[0].verdict, Some(Verdict::Cancelled));
    assert!(
        ci.statuses(&sha)
            .last()
            .unwrap()
            .1
            .ends_with("cancelled by writer"),
        "{:?}",
        ci.statuses(&sha)
    );
    ci.stop().await;
}

#[tokio::test]
async fn a_flood_of_commands_builds_one_sha_at_a_time() {
    let ci = Ci::start("command = \"sleep 30\"\ntimeout_secs = 60\nmax_builds = 4").await;
    let sha = ci.origin.commit("refs/heads/topic", &[("README", "flood")]);
    ci.push("push-1", "opened", 2, &sha, REPO).await;
    ci.wait_for_status(&sha, "running").await;
    for n in 1..=3 {
        ci.comment(&format!("test-{n}"), ("writer", 501), 2, "/test")
            .await;
        // Each newer request stops the build before it.
        let before = match n {
            1 => "push-1".to_owned(),
            n => format!("test-{}", n - 1),
        };
        let stopped = ci.host.ended_jobs(&before, 1).await;
        assert_eq!(stopped[0].verdict, Some(Verdict::Cancelled), "{stopped:?}");
    }
    let running = ci
        .host
        .host_state
        .journal
        .job_counts("1970-01-01T00:00:00Z", Default::default());
    let counts = running.await.unwrap();
    assert_eq!(counts.running, 1, "one build of the sha runs: {counts:?}");
    // A superseded build of the same sha leaves the status to the newer one.
    let statuses = ci.statuses(&sha);
    assert!(
        statuses.iter().all(|(state, _)| state == "pending"),
        "{statuses:?}"
    );
    ci.comment("cancel-1", ("writer", 501), 2, "/cancel").await;
    let last = ci.host.ended_jobs("test-3", 1).await;
    assert_eq!(last[0].verdict, Some(Verdict::Cancelled));
    ci.stop().await;
}

/// What a fork's waiting build says on its commit.
const WAITS: &str = "waits for a maintainer's /ok-to-test";

#[tokio::test]
async fn a_fork_waits_until_a_writer_approves_its_head_and_each_push_needs_a_new_approval() {
    let ci = Ci::start("command = \"true\"").await;
    ci.github
        .set_role(REPO, "maintainer", 503, "maintain", "maintain");
    let first = ci.origin.commit("refs/pull/3/head", &[("README", "one")]);
    ci.push("fork-1", "opened", 3, &first, FORK).await;
    let waiting = ci.host.ended_jobs("fork-1", 1).await;
    assert_eq!(waiting[0].verdict, Some(Verdict::Skipped));
    let note = waiting[0].note.as_deref().unwrap_or_default();
    assert!(
        note.contains(FORK) && note.contains("/ok-to-test"),
        "{note}"
    );
    let statuses = ci.statuses(&first);
    assert_eq!(states(&statuses), ["pending"], "{statuses:?}");
    assert!(statuses[0].1.ends_with(WAITS), "{statuses:?}");
    let replies = ci.replies();
    assert_eq!(replies.len(), 1, "one comment: {replies:?}");
    assert!(replies[0].contains("`/ok-to-test`"), "{replies:?}");

    // A reader may not approve: the host refuses, nothing runs.
    ci.comment("ok-reader", ("reader", 502), 3, "/ok-to-test")
        .await;
    ci.host.ended_jobs("ok-reader", 1).await;
    assert_eq!(states(&ci.statuses(&first)), ["pending"]);

    // A maintainer approves the head they reviewed: it is built, and the audit trail says who.
    ci.comment("ok-1", ("maintainer", 503), 3, "/ok-to-test")
        .await;
    let approved = ci.host.ended_jobs("ok-1", 1).await;
    assert_eq!(approved[0].verdict, Some(Verdict::Passed), "{approved:?}");
    assert_eq!(
        states(&ci.statuses(&first)),
        ["pending", "pending", "success"]
    );
    let trail = ci
        .host
        .host_state
        .journal
        .actions(switchyard::journal::ActionFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        trail.iter().any(|a| a.actor == "github:503 (maintainer)"
            && a.action == format!("/ok-to-test {first} on {REPO}#3")
            && a.outcome == "approved"),
        "{trail:?}"
    );

    // A new push waits again, with no second comment.
    let second = ci.origin.commit("refs/pull/3/head", &[("README", "two")]);
    ci.push("fork-2", "synchronize", 3, &second, FORK).await;
    let again = ci.host.ended_jobs("fork-2", 1).await;
    assert_eq!(again[0].verdict, Some(Verdict::Skipped));
    assert_eq!(states(&ci.statuses(&second)), ["pending"]);
    let host_replies = |ci: &Ci| {
        ci.replies()
            .into_iter()
            .filter(|r| !r.contains("needs the"))
            .count()
    };
    assert_eq!(host_replies(&ci), 1, "{:?}", ci.replies());

    // The head moves after the maintainer read it (GitHub has a third push the journal has not
    // seen before the comment): a plain approval is refused in the thread.
    let third = ci.origin.commit("refs/pull/3/head", &[("README", "three")]);
    ci.github.open_pull_request(REPO, 3, &third, FORK);
    ci.comment("ok-2", ("maintainer", 503), 3, "/ok-to-test")
        .await;
    let refused = ci.host.ended_jobs("ok-2", 1).await;
    assert_eq!(refused[0].verdict, Some(Verdict::Skipped));
    assert!(
        ci.replies()
            .last()
            .unwrap()
            .contains("the head moved; review it and approve with `/ok-to-test SHA`"),
        "{:?}",
        ci.replies()
    );
    assert!(ci.statuses(&third).is_empty(), "nothing built");

    // Approved by sha: that head is built.
    ci.comment(
        "ok-3",
        ("maintainer", 503),
        3,
        &format!("/ok-to-test {}", &third[..10]),
    )
    .await;
    let built = ci.host.ended_jobs("ok-3", 1).await;
    assert_eq!(built[0].verdict, Some(Verdict::Passed), "{built:?}");
    assert_eq!(states(&ci.statuses(&third)), ["pending", "success"]);
    // The second head was never approved: it was never built.
    assert_eq!(states(&ci.statuses(&second)), ["pending"]);
    ci.stop().await;
}

#[tokio::test]
async fn every_path_that_builds_holds_an_unapproved_forks_head() {
    let ci = Ci::start("command = \"true\"").await;
    let head = ci.origin.commit("refs/pull/3/head", &[("README", "fork")]);
    ci.push("fork-1", "opened", 3, &head, FORK).await;
    ci.host.ended_jobs("fork-1", 1).await;

    // A writer's /test and /retest: the fork gate holds them too (approval is /ok-to-test).
    for (delivery, body) in [("test-1", "/test"), ("retest-1", "/retest")] {
        ci.comment(delivery, ("writer", 501), 3, body).await;
        let jobs = ci.host.ended_jobs(delivery, 1).await;
        assert_eq!(jobs[0].verdict, Some(Verdict::Skipped), "{body}: {jobs:?}");
    }

    // The dashboard's Replay and `switchyard replay`: new jobs on the stored delivery.
    let dispatcher = switchyard::ingress::Dispatcher {
        journal: ci.host.host_state.journal.clone(),
        workers: ci.host.host_state.workers.clone(),
    };
    let stored = ci
        .host
        .host_state
        .journal
        .delivery("fork-1")
        .await
        .unwrap()
        .unwrap();
    dispatcher
        .commit_and_dispatch(std::sync::Arc::new(stored), vec!["ci".to_owned()], true)
        .await
        .unwrap();
    let replayed = ci.host.ended_jobs("fork-1", 2).await;
    assert!(
        replayed.iter().all(|j| j.verdict == Some(Verdict::Skipped)),
        "{replayed:?}"
    );
    let statuses = ci.statuses(&head);
    assert!(
        statuses
            .iter()
            .all(|(state, d)| state == "pending" && d.ends_with(WAITS)),
        "nothing ran: {statuses:?}"
    );
    assert_eq!(ci.replies().len(), 1, "one comment, the first time");
    ci.stop().await;
}

/// What a build saw of the entry's `pass_env` and its writable bind, as its log says it.
const LOOKS: &str = "command = \"echo pkg=${CARGO_PKG_NAME:-unset}; \
    cat {scratch}/readable 2>/dev/null || echo unreadable; \
    if touch {scratch}/written-$SWITCHYARD_PR 2>/dev/null; then echo writable; else echo not-writable; fi\"\n\
    allow_forks = true";

/// Builds pull request 2 from the repository and 3 from a fork, and returns their logs.
async fn own_and_fork_logs(ci: &Ci) -> (String, String) {
    std::fs::write(ci.origin.scratch().join("readable"), "readable\n").unwrap();
    let own = ci.origin.commit("refs/heads/topic", &[("README", "own")]);
    let fork = ci.origin.commit("refs/pull/3/head", &[("README", "fork")]);
    ci.push("own-1", "opened", 2, &own, REPO).await;
    ci.push("fork-1", "opened", 3, &fork, FORK).await;
    let mut logs = Vec::new();
    for delivery in ["own-1", "fork-1"] {
        let jobs = ci.host.ended_jobs(delivery, 1).await;
        assert_eq!(jobs[0].verdict, Some(Verdict::Passed), "{jobs:?}");
        let (_, log) = ci.host.get(&ci.host.log_path(jobs[0].id).await).await;
        logs.push(log);
    }
    let fork = logs.pop().unwrap();
    (logs.pop().unwrap(), fork)
}

#[tokio::test]
async fn a_forks_build_gets_no_pass_env_values_and_its_writable_binds_read_only() {
    // `allow_forks = true`: built without approval, under the same rules.
    let ci = Ci::start_entry("pass_env = [\"CARGO_PKG_NAME\"]", LOOKS).await;
    let (own, fork) = own_and_fork_logs(&ci).await;
    // The repository's own build: the variable (masked in the log) and a writable bind.
    assert!(
        own.contains("pkg=********") && own.contains("\nwritable"),
        "{own}"
    );
    assert!(ci.origin.scratch().join("written-2").exists());
    // The fork's: neither; the bind is still there to read.
    assert!(fork.contains("pkg=unset"), "{fork}");
    assert!(
        fork.contains("readable") && fork.contains("not-writable"),
        "{fork}"
    );
    assert!(!ci.origin.scratch().join("written-3").exists());
    ci.stop().await;
}

#[tokio::test]
async fn fork_binds_none_leaves_writable_binds_out_and_trust_forks_gives_everything() {
    let entry = "pass_env = [\"CARGO_PKG_NAME\"]\nfork_binds = \"none\"";
    let ci = Ci::start_entry(entry, LOOKS).await;
    let (_, fork) = own_and_fork_logs(&ci).await;
    assert!(fork.contains("pkg=unset"), "{fork}");
    // (The scratch folder stays readable through the repository's read-only bind around it;
    // which binds are left out is `Allowance::for_fork`'s unit test.)
    assert!(fork.contains("not-writable"), "{fork}");
    ci.stop().await;

    let entry = "pass_env = [\"CARGO_PKG_NAME\"]\ntrust_forks = true";
    let ci = Ci::start_entry(entry, LOOKS).await;
    let (_, fork) = own_and_fork_logs(&ci).await;
    assert!(
        fork.contains("pkg=********") && fork.contains("\nwritable"),
        "{fork}"
    );
    assert!(ci.origin.scratch().join("written-3").exists());
    ci.stop().await;
}

#[tokio::test]
async fn re_runs_of_a_forks_check_wait_and_a_suite_naming_no_pull_request_is_not_built() {
    let github = FakeGitHub::start_app().await;
    github.install(
        1,
        "Codertocat",
        &[REPO],
        &[
            ("checks", "write"),
            ("contents", "read"),
            ("issues", "write"),
            ("metadata", "read"),
            ("pull_requests", "read"),
            ("statuses", "write"),
        ],
    );
    let origin = Origin::new(REPO);
    let plugins = format!(
        "[[plugins]]\nname = \"ci\"\nlibrary = \"{{lib:switchyard-ci}}\"\n{}\n\
         [plugins.settings]\nclone_url = \"{}\"\ncommand = \"true\"\n",
        binds(&origin),
        origin.clone_url_template()
    );
    let host = TestHost::start(HostSpec {
        plugins,
        github_url: Some(github.url().to_owned()),
        app: true,
        ..Default::default()
    })
    .await;
    let sha = origin.commit("refs/pull/3/head", &[("README", "fork")]);
    let app = switchyard_testkit::app::TEST_APP_ID;
    // GitHub's Re-run of the fork's check run names the pull request, its head in the fork
    // (another repository id) ...
    let mut run = example("check_run", Some("rerequested"));
    run["check_run"]["name"] = json!("ci/switchyard");
    run["check_run"]["head_sha"] = json!(sha);
    run["check_run"]["app"]["id"] = json!(app);
    run["check_run"]["pull_requests"] = json!([{
        "number": 3,
        "head": {"sha": sha, "repo": {"id": 999, "name": "Hello-World"}},
        "base": {"sha": sha, "repo": {"id": 186853002, "name": "Hello-World"}},
    }]);
    run["repository"] = example("pull_request", Some("opened"))["repository"].clone();
    run["installation"] = json!({"id": 1});
    assert_eq!(host.send("check_run", "rerun-1", &run).await.0, 202);
    let jobs = host.ended_jobs("rerun-1", 1).await;
    assert_eq!(jobs[0].verdict, Some(Verdict::Skipped), "{jobs:?}");
    let note = jobs[0].note.as_deref().unwrap_or_default();
    assert!(note.contains("/ok-to-test"), "{note}");
    // ... or, for its suite, none at all.
    let mut suite = example("check_suite", Some("rerequested"));
    suite["check_suite"]["head_sha"] = json!(sha);
    suite["check_suite"]["app"]["id"] = json!(app);
    suite["check_suite"]["pull_requests"] = json!([]);
    suite["repository"] = run["repository"].clone();
    suite["installation"] = json!({"id": 1});
    assert_eq!(host.send("check_suite", "rerun-2", &suite).await.0, 202);
    let jobs = host.ended_jobs("rerun-2", 1).await;
    assert_eq!(jobs[0].verdict, Some(Verdict::Skipped), "{jobs:?}");
    // Nothing ran: the only check run is the one saying it waits.
    let runs = github.check_runs(REPO);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].fields["status"], json!("queued"));
    assert!(github.violations().is_empty(), "{:?}", github.violations());
    host.stop().await;
}

#[tokio::test]
async fn cancel_given_to_another_host_on_postgresql_stops_the_build_naming_the_person() {
    let Some(server) = switchyard_testkit::TestPostgres::get() else {
        return;
    };
    let url = server.database();
    let (_secrets, store) = crate::postgres::store_with_lease(&url, 3);
    let github = FakeGitHub::start().await;
    let origin = Origin::new(REPO);
    let plugins = format!(
        "[[plugins]]\nname = \"ci\"\nlibrary = \"{{lib:switchyard-ci}}\"\n{}\n\
         [plugins.settings]\nclone_url = \"{}\"\ncommand = \"sleep 30\"\ntimeout_secs = 60\n",
        binds(&origin),
        origin.clone_url_template()
    );
    let spec = || HostSpec {
        store: store.clone(),
        plugins: plugins.clone(),
        github_url: Some(github.url().to_owned()),
        github_token: Some(TOKEN),
        ..Default::default()
    };
    // The build starts on the first host before the second exists, so it runs there ...
    let a = TestHost::start(spec()).await;
    let sha = origin.commit("refs/heads/topic", &[("README", "slow")]);
    github.open_pull_request(REPO, 2, &sha, REPO);
    let mut payload = example("pull_request", Some("opened"));
    payload["pull_request"]["head"]["sha"] = json!(sha);
    payload["pull_request"]["head"]["repo"]["full_name"] = json!(REPO);
    assert_eq!(a.send("pull_request", "push-1", &payload).await.0, 202);
    let running = || {
        let path = format!("/repos/{REPO}/statuses/{sha}");
        let requests = github.requests();
        requests
            .iter()
            .any(|r| r.path == path && text(&r.body["description"]).ends_with("running"))
    };
    eventually("the build to run", running).await;
    // ... and the author's /cancel reaches the second host, which stops it through the journal.
    let b = TestHost::start(spec()).await;
    let comment = NewComment::on_pull_request(REPO, 2)
        .thread_by(AUTHOR.0, AUTHOR.1)
        .by(AUTHOR.0, AUTHOR.1)
        .id(NEXT_COMMENT.fetch_add(1, Ordering::Relaxed))
        .body("/cancel")
        .payload();
    let started = Instant::now();
    assert_eq!(b.send("issue_comment", "cancel-1", &comment).await.0, 202);
    let observer = crate::postgres::journal(&url).await;
    let build = crate::support::ended_jobs(&observer, "push-1", 1).await;
    let cancel = crate::support::ended_jobs(&observer, "cancel-1", 1).await;
    assert!(started.elapsed() < Duration::from_secs(20), "not cancelled");
    assert_eq!(build[0].verdict, Some(Verdict::Cancelled), "{build:?}");
    assert_eq!(cancel[0].verdict, Some(Verdict::Cancelled), "{cancel:?}");
    let last = github
        .calls("create_status")
        .last()
        .map(|c| text(&c.body["description"]))
        .unwrap_or_default();
    assert_eq!(
        last,
        format!("Build #{} cancelled by {}", build[0].id, AUTHOR.0)
    );
    a.stop().await;
    b.stop().await;
}
