//! The CI runner end to end: a real plugin library, local git repositories, and the fake GitHub
//! validating every commit status against GitHub's schema.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard::journal::JobState;

use crate::support::{FakeGitHub, HostSpec, Origin, TOKEN, TestHost, binds, eventually, example};

const REPO: &str = "Codertocat/Hello-World";

struct Ci {
    github: FakeGitHub,
    origin: Origin,
    host: TestHost,
}

impl Ci {
    /// A host running the CI plugin with `settings` added to a clone URL pointing at `origin`.
    async fn start(settings: &str) -> Self {
        Self::start_entry("", settings).await
    }

    /// Like `start`, with extra keys for the `[[plugins]]` entry itself.
    async fn start_entry(entry: &str, settings: &str) -> Self {
        Self::start_with("", entry, settings).await
    }

    /// Like `start_entry`, with extra `[server]` keys; `{scratch}` in `settings` becomes the
    /// origin's scratch folder.
    async fn start_with(server: &str, entry: &str, settings: &str) -> Self {
        let github = FakeGitHub::start().await;
        let origin = Origin::new(REPO);
        let settings = settings.replace("{scratch}", &origin.scratch().display().to_string());
        let plugins = format!(
            "[[plugins]]\nname = \"ci\"\nlibrary = \"{{lib:switchyard-ci}}\"\n{entry}\n{}\n\
             [plugins.settings]\nclone_url = \"{}\"\n{settings}\n",
            binds(&origin),
            origin.clone_url_template()
        );
        let host = TestHost::start(HostSpec {
            server: server.to_owned(),
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

    /// Sends a `pull_request` event for `sha` of pull request `number` from `head_repo`.
    async fn push(&self, delivery: &str, action: &str, number: u64, sha: &str, head_repo: &str) {
        let mut payload = example("pull_request", Some("opened"));
        payload["action"] = json!(action);
        payload["number"] = json!(number);
        payload["pull_request"]["number"] = json!(number);
        payload["pull_request"]["head"]["sha"] = json!(sha);
        payload["pull_request"]["head"]["repo"]["full_name"] = json!(head_repo);
        let (status, body) = self.host.send("pull_request", delivery, &payload).await;
        assert_eq!(status, 202, "{body}");
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

    /// Waits until a status for `sha` has a description containing `needle`.
    async fn wait_for_status(&self, sha: &str, needle: &str) {
        let found = || self.statuses(sha).iter().any(|(_, d)| d.contains(needle));
        eventually(&format!("a status {needle:?} for {sha}"), found).await;
    }

    async fn stop(self) {
        assert!(
            self.github.violations().is_empty(),
            "{:?}",
            self.github.violations()
        );
        self.host.stop().await;
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn states(statuses: &[(String, String)]) -> Vec<&str> {
    statuses.iter().map(|(s, _)| s.as_str()).collect()
}

#[tokio::test]
async fn a_passing_build_is_pending_then_success_and_its_log_is_at_the_target_url() {
    let ci = Ci::start("command = \"sh test.sh\"").await;
    let script = "echo \"testing $SWITCHYARD_REPO@$SWITCHYARD_SHA on $SWITCHYARD_REF, \
                  PR $SWITCHYARD_PR, build $SWITCHYARD_BUILD_ID, CI=$CI\"";
    let sha = ci
        .origin
        .commit("refs/heads/changes", &[("test.sh", script)]);
    ci.push("ok-1", "opened", 2, &sha, REPO).await;
    let jobs = ci.host.ended_jobs("ok-1", 1).await;
    assert_eq!(jobs[0].state, JobState::Succeeded, "{jobs:?}");
    let build = jobs[0].id;

    let statuses = ci.statuses(&sha);
    assert_eq!(states(&statuses), ["pending", "success"], "{statuses:?}");
    assert_eq!(statuses[0].1, format!("Build #{build} running"));
    assert!(
        statuses[1]
            .1
            .starts_with(&format!("Build #{build} passed in "))
    );
    let log_url = ci.host.host_state.links.url(build, jobs[0].link_salt);
    for request in ci.github.requests() {
        assert_eq!(request.body["context"], "ci/switchyard");
        assert_eq!(request.body["target_url"], log_url.as_str());
    }

    let (status, log) = ci.host.get(&ci.host.log_path(build).await).await;
    assert_eq!(status, 200);
    let expected = format!("testing {REPO}@{sha} on changes, PR 2, build {build}, CI=true");
    assert!(log.contains(&expected), "{log}");
    assert!(
        log.contains("$ git fetch"),
        "git's steps are in the log: {log}"
    );
    let workspace = ci
        .host
        .dir
        .path()
        .join("workspaces")
        .join(build.to_string());
    assert!(
        !workspace.exists(),
        "the workspace is removed after the build"
    );
    ci.stop().await;
}

#[tokio::test]
async fn a_failing_command_sets_failure_with_its_exit_code() {
    let ci = Ci::start("command = \"echo broken >&2; exit 3\"").await;
    let sha = ci.origin.commit("refs/heads/changes", &[]);
    ci.push("fail-1", "synchronize", 2, &sha, REPO).await;
    let jobs = ci.host.ended_jobs("fail-1", 1).await;
    let statuses = ci.statuses(&sha);
    assert_eq!(states(&statuses), ["pending", "failure"], "{statuses:?}");
    assert!(
        statuses[1]
            .1
            .starts_with(&format!("Build #{} failed: exit 3 after ", jobs[0].id)),
        "{statuses:?}"
    );
    let (_, log) = ci.host.get(&ci.host.log_path(jobs[0].id).await).await;
    assert!(log.contains("broken\n"), "stderr is in the log: {log}");
    ci.stop().await;
}

#[tokio::test]
async fn a_build_past_its_timeout_is_killed_and_set_to_error() {
    let ci = Ci::start("command = \"sleep 30\"\ntimeout_secs = 1").await;
    let sha = ci.origin.commit("refs/heads/changes", &[]);
    let started = Instant::now();
    ci.push("slow-1", "opened", 2, &sha, REPO).await;
    let jobs = ci.host.ended_jobs("slow-1", 1).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the command was not killed"
    );
    // The build's own time limit: the plugin ran to its end, and says the build timed out.
    assert_eq!(
        (jobs[0].state, jobs[0].verdict),
        (
            JobState::Succeeded,
            Some(switchyard_plugin_api::Verdict::TimedOut)
        )
    );
    let statuses = ci.statuses(&sha);
    assert_eq!(states(&statuses), ["pending", "error"], "{statuses:?}");
    assert_eq!(
        statuses[1].1,
        format!("Build #{} timed out after 1 s", jobs[0].id)
    );
    ci.stop().await;
}

#[tokio::test]
async fn a_sha_that_cannot_be_checked_out_sets_error() {
    let ci = Ci::start("command = \"true\"").await;
    ci.origin.commit("refs/heads/main", &[]);
    let missing = "0123456789abcdef0123456789abcdef01234567";
    ci.push("gone-1", "opened", 2, missing, REPO).await;
    let jobs = ci.host.ended_jobs("gone-1", 1).await;
    assert_eq!(jobs[0].state, JobState::Failed);
    let statuses = ci.statuses(missing);
    // The checkout comes before the build says it runs: it reads which checks there are.
    assert_eq!(states(&statuses), ["error"], "{statuses:?}");
    assert!(
        statuses[0].1.contains("checkout failed"),
        "the reason is given: {statuses:?}"
    );
    ci.stop().await;
}

#[tokio::test]
async fn a_new_push_supersedes_the_running_build_of_the_older_sha() {
    let ci = Ci::start("command = \"sh test.sh\"").await;
    let old = ci
        .origin
        .commit("refs/heads/changes", &[("test.sh", "sleep 30")]);
    let new = ci
        .origin
        .commit("refs/heads/changes", &[("test.sh", "exit 0")]);
    ci.push("sup-1", "opened", 2, &old, REPO).await;
    ci.wait_for_status(&old, "running").await;
    let started = Instant::now();
    ci.push("sup-2", "synchronize", 2, &new, REPO).await;
    let old_jobs = ci.host.ended_jobs("sup-1", 1).await;
    ci.host.ended_jobs("sup-2", 1).await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the old build was not cancelled"
    );
    assert_eq!(
        old_jobs[0].verdict,
        Some(switchyard_plugin_api::Verdict::Cancelled),
        "a running build a newer push stopped is cancelled: {:?}",
        old_jobs[0].note
    );

    let old_statuses = ci.statuses(&old);
    assert_eq!(
        states(&old_statuses),
        ["pending", "error"],
        "{old_statuses:?}"
    );
    assert!(
        old_statuses[1]
            .1
            .ends_with(&format!("superseded by {}", &new[..7])),
        "{old_statuses:?}"
    );
    assert_eq!(states(&ci.statuses(&new)), ["pending", "success"]);
    ci.stop().await;
}

#[tokio::test]
async fn a_pull_request_from_a_fork_is_not_built_and_the_log_says_why() {
    let ci = Ci::start("command = \"true\"").await;
    let sha = ci.origin.commit("refs/heads/changes", &[]);
    ci.push("fork-1", "opened", 2, &sha, "mallory/Hello-World")
        .await;
    let jobs = ci.host.ended_jobs("fork-1", 1).await;
    assert_eq!(jobs[0].state, JobState::Succeeded);
    let note = jobs[0].note.as_deref().unwrap_or_default();
    assert!(note.contains("from fork mallory/Hello-World"), "{note}");
    // It waits for a maintainer's approval (see ci_commands.rs), and nothing runs meanwhile.
    let statuses = ci.statuses(&sha);
    assert_eq!(states(&statuses), ["pending"], "{statuses:?}");
    let (_, log) = ci.host.get(&ci.host.log_path(jobs[0].id).await).await;
    assert!(log.contains("/ok-to-test"), "{log}");
    assert!(
        !log.contains("$ git fetch"),
        "nothing was checked out: {log}"
    );
    ci.stop().await;
}

#[tokio::test]
async fn builds_past_max_builds_wait_with_a_queued_status() {
    let ci = Ci::start("command = \"sh test.sh\"\nmax_builds = 1").await;
    let slow = ci
        .origin
        .commit("refs/heads/one", &[("test.sh", "sleep 2")]);
    let quick = ci.origin.commit("refs/heads/two", &[("test.sh", "exit 0")]);
    ci.push("queue-1", "opened", 1, &slow, REPO).await;
    ci.wait_for_status(&slow, "running").await;
    ci.push("queue-2", "opened", 2, &quick, REPO).await;
    ci.host.ended_jobs("queue-2", 1).await;

    let statuses = ci.statuses(&quick);
    assert_eq!(
        states(&statuses),
        ["pending", "pending", "success"],
        "{statuses:?}"
    );
    assert!(statuses[0].1.ends_with("queued"), "{statuses:?}");
    assert!(statuses[1].1.ends_with("running"), "{statuses:?}");
    // The slow build had ended before the queued one started.
    assert_eq!(states(&ci.statuses(&slow)), ["pending", "success"]);
    ci.stop().await;
}

#[tokio::test]
async fn pushes_are_built_when_the_config_subscribes_to_them() {
    let command = "command = \"test \\\"$SWITCHYARD_REF\\\" = main\"";
    let ci = Ci::start_entry("events = [\"push\"]", command).await;
    let Ci {
        github,
        origin,
        host,
    } = &ci;
    let sha = origin.commit("refs/heads/main", &[]);
    let mut payload = example("push", None);
    payload["ref"] = json!("refs/heads/main");
    payload["after"] = json!(sha);
    payload["deleted"] = json!(false);
    payload["repository"]["full_name"] = json!(REPO);
    assert_eq!(host.send("push", "push-1", &payload).await.0, 202);
    host.ended_jobs("push-1", 1).await;
    let states: Vec<Value> = github
        .requests()
        .iter()
        .map(|r| r.body["state"].clone())
        .collect();
    assert_eq!(states, [json!("pending"), json!("success")]);
    ci.stop().await;
}

#[tokio::test]
async fn a_build_cut_off_by_its_jobs_timeout_says_so_on_the_pull_request() {
    // The entry's timeout (the host's cut-off), far shorter than the command's own.
    let ci = Ci::start_entry("timeout_secs = 2", "command = \"sleep 30\"").await;
    let sha = ci.origin.commit("refs/heads/slow", &[("README", "slow")]);
    ci.push("cut-1", "opened", 3, &sha, REPO).await;
    let jobs = ci.host.ended_jobs("cut-1", 1).await;
    assert_eq!(jobs[0].state, JobState::Failed);
    let build = jobs[0].id;
    let statuses = ci.statuses(&sha);
    assert_eq!(
        statuses.last().unwrap(),
        &(
            "error".to_owned(),
            format!("Build #{build} timed out after 2 s (the job's timeout)")
        ),
        "{statuses:?}"
    );
    ci.stop().await;
}

#[tokio::test]
async fn a_build_interrupted_by_a_shutdown_says_so_and_runs_again_after_the_restart() {
    // Hangs the first time, passes the second: a marker in a folder bound into the sandbox.
    let command = "command = \"if [ -f {scratch}/second-run ]; then exit 0; fi; \
                   touch {scratch}/second-run; sleep 60\"";
    let ci = Ci::start_with("shutdown_grace_secs = 1", "", command).await;
    let second = ci.origin.scratch().join("second-run");
    let sha = ci.origin.commit("refs/heads/long", &[("README", "long")]);
    ci.push("restart-1", "opened", 4, &sha, REPO).await;
    ci.wait_for_status(&sha, "running").await;
    eventually("the command to start", || second.exists()).await;
    let Ci {
        github,
        origin,
        host,
    } = ci;
    let host = host.restart().await;
    let ci = Ci {
        github,
        origin,
        host,
    };
    let jobs = ci.host.ended_jobs("restart-1", 1).await;
    assert_eq!((jobs[0].state, jobs[0].attempts), (JobState::Succeeded, 2));
    let build = jobs[0].id;
    let statuses = ci.statuses(&sha);
    let described: Vec<(&str, &str)> = statuses
        .iter()
        .map(|(state, description)| (state.as_str(), description.as_str()))
        .collect();
    let interrupted = format!("Build #{build} interrupted; runs again after the restart");
    let running = format!("Build #{build} running");
    assert_eq!(
        described,
        [
            ("pending", running.as_str()),
            ("pending", interrupted.as_str()),
            ("pending", running.as_str()),
            ("success", described[3].1),
        ],
        "{statuses:?}"
    );
    ci.stop().await;
}
