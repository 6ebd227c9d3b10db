//! The CI runner as a GitHub App, reporting check runs to the fake GitHub (every request
//! validated against GitHub's schema): queued, in progress, completed with the log's end within
//! GitHub's limits and annotations in batches of 50; Re-run from `check_run.rerequested` and
//! `check_suite.rerequested`; Cancel through `check_run.requested_action`; other Apps' events
//! ignored.

use serde_json::json;
use switchyard::journal::JobState;
use switchyard_testkit::{CheckRun, app::TEST_APP_ID};

use crate::support::{FakeGitHub, HostSpec, Origin, TestHost, binds, eventually, example};

const REPO: &str = "Codertocat/Hello-World";
const NAME: &str = "ci/switchyard";

struct Checks {
    github: FakeGitHub,
    origin: Origin,
    host: TestHost,
}

impl Checks {
    async fn start(command: &str) -> Self {
        Self::start_with(command, "").await
    }

    /// Like `start`, with more settings.
    async fn start_with(command: &str, settings: &str) -> Self {
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
             [plugins.settings]\nclone_url = \"{}\"\ncommand = \"{command}\"\n{settings}\n",
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
        Self {
            github,
            origin,
            host,
        }
    }

    /// A pull request opened with `sha` as its head.
    async fn open(&self, delivery: &str, sha: &str) {
        let mut payload = example("pull_request", Some("opened"));
        payload["pull_request"]["head"]["sha"] = json!(sha);
        payload["installation"] = json!({"id": 1});
        assert_eq!(
            self.host.send("pull_request", delivery, &payload).await.0,
            202
        );
    }

    /// A `check_run` event of `action` about `run`, as App `app` made it.
    async fn check_run_event(&self, delivery: &str, action: &str, run: &CheckRun, app: u64) {
        let mut payload = example("check_run", Some(action));
        payload["check_run"]["id"] = json!(run.id);
        payload["check_run"]["name"] = run.fields["name"].clone();
        // GitHub sends the run as created: with the external id the CI runner gave it.
        payload["check_run"]["external_id"] = run.fields["external_id"].clone();
        payload["check_run"]["head_sha"] = run.fields["head_sha"].clone();
        payload["check_run"]["app"]["id"] = json!(app);
        payload["check_run"]["pull_requests"] =
            json!([{"number": 2, "head": {"sha": run.fields["head_sha"]}}]);
        payload["repository"] = example("pull_request", Some("opened"))["repository"].clone();
        payload["installation"] = json!({"id": 1});
        payload["sender"]["login"] = json!("mona");
        if action == "requested_action" {
            payload["requested_action"] = json!({"identifier": "cancel"});
        }
        assert_eq!(self.host.send("check_run", delivery, &payload).await.0, 202);
    }

    fn runs(&self) -> Vec<CheckRun> {
        self.github.check_runs(REPO)
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

#[tokio::test]
async fn a_failing_build_goes_queued_in_progress_completed_with_its_logs_end_and_annotations_in_batches()
 {
    let checks = Checks::start("sh test.sh").await;
    // 120 errors and a warning on a file of the checkout, one outside it, and more output
    // than a check run's text holds.
    let script = "i=1; while [ $i -le 120 ]; do echo \"src/lib.c:$i:3: error: broken $i\"; i=$((i+1)); done\n\
                  echo 'src/lib.c:200: warning: unused'\n\
                  echo '/etc/passwd:1:1: error: not in the checkout'\n\
                  i=0; while [ $i -lt 9000 ]; do echo \"filler line $i of the build's output\"; i=$((i+1)); done\n\
                  echo 'the last line'\nexit 1\n";
    let sha = checks.origin.commit(
        "refs/heads/changes",
        &[("test.sh", script), ("src/lib.c", "int main;\n")],
    );
    checks.open("fail", &sha).await;
    let jobs = checks.host.ended_jobs("fail", 1).await;
    assert_eq!(
        jobs[0].state,
        JobState::Succeeded,
        "a failed build is a job done: {jobs:?}"
    );
    let build = jobs[0].id;

    let runs = checks.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert_eq!(run.app_id, TEST_APP_ID);
    assert_eq!(
        (run.status(), run.conclusion()),
        ("completed", Some("failure"))
    );
    assert_eq!(run.fields["name"], NAME);
    assert_eq!(run.fields["head_sha"], json!(sha));
    assert_eq!(run.fields["external_id"], json!(build.to_string()));
    let log_url = format!("{}{}", checks.host.base, checks.host.log_path(build).await);
    assert_eq!(run.fields["details_url"], json!(log_url));
    assert!(run.fields["started_at"].is_string() && run.fields["completed_at"].is_string());

    // Created queued, then in progress with Cancel, then annotations 50 at a time, the last
    // batch with the conclusion, the button gone.
    let requests = &run.requests;
    assert_eq!(requests[0]["status"], "queued");
    assert_eq!(requests[1]["status"], "in_progress");
    assert_eq!(requests[1]["actions"][0]["identifier"], "cancel");
    let batches: Vec<usize> = requests
        .iter()
        .map(|r| r["output"]["annotations"].as_array().map_or(0, Vec::len))
        .collect();
    assert_eq!(batches, [0, 0, 50, 50, 21]);
    let last = requests.last().unwrap();
    assert_eq!(last["conclusion"], "failure");
    assert_eq!(last["actions"], json!([]));

    assert_eq!(run.annotations.len(), 121);
    assert_eq!(
        run.annotations[0],
        json!({"path": "src/lib.c", "start_line": 1, "end_line": 1, "start_column": 3,
               "end_column": 3, "annotation_level": "failure", "message": "broken 1"})
    );
    assert_eq!(run.annotations[120]["annotation_level"], "warning");
    assert_eq!(run.annotations[120]["start_line"], 200);
    assert!(run.annotations.iter().all(|a| a["path"] == "src/lib.c"));

    let output = &run.fields["output"];
    let text = output["text"].as_str().unwrap();
    assert!(text.chars().count() <= 65_535, "{}", text.len());
    assert!(
        text.len() > 60_000,
        "as much of the end as fits: {}",
        text.len()
    );
    assert!(
        text.trim_end().ends_with("the last line\n```"),
        "{}",
        &text[text.len() - 80..]
    );
    let summary = output["summary"].as_str().unwrap();
    assert!(
        summary.contains("ran `sh test.sh`: failed: exit 1 after"),
        "{summary}"
    );
    let title = output["title"].as_str().unwrap();
    assert!(
        title.starts_with(&format!("Build #{build} failed: exit 1 after ")),
        "{title}"
    );
    assert!(
        checks.github.commit_statuses(REPO, &sha).is_empty(),
        "checks, not statuses"
    );
    checks.stop().await;
}

#[tokio::test]
async fn re_run_buttons_build_the_sha_again_and_another_apps_check_runs_are_ignored() {
    let checks = Checks::start("true").await;
    let sha = checks
        .origin
        .commit("refs/heads/changes", &[("README", "hi")]);
    checks.open("first", &sha).await;
    checks.host.ended_jobs("first", 1).await;
    let first = checks.runs().remove(0);
    assert_eq!(first.conclusion(), Some("success"));

    // "Re-run" on the check run.
    checks
        .check_run_event("rerun", "rerequested", &first, TEST_APP_ID)
        .await;
    let jobs = checks.host.ended_jobs("rerun", 1).await;
    // Built, not skipped.
    assert_eq!(
        jobs[0].verdict,
        Some(switchyard_plugin_api::Verdict::Passed),
        "{jobs:?}"
    );
    let runs = checks.runs();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1].fields["head_sha"], json!(sha));
    assert_eq!(runs[1].conclusion(), Some("success"));
    assert_eq!(runs[1].fields["external_id"], json!(jobs[0].id.to_string()));

    // "Re-run all checks": the suite.
    let mut suite = example("check_suite", Some("rerequested"));
    suite["check_suite"]["head_sha"] = json!(sha);
    suite["check_suite"]["app"]["id"] = json!(TEST_APP_ID);
    suite["repository"] = example("pull_request", Some("opened"))["repository"].clone();
    suite["installation"] = json!({"id": 1});
    assert_eq!(
        checks.host.send("check_suite", "suite", &suite).await.0,
        202
    );
    checks.host.ended_jobs("suite", 1).await;
    assert_eq!(checks.runs().len(), 3);
    assert_eq!(checks.runs()[2].conclusion(), Some("success"));

    // GitHub's suite for a push: the pull request's event built that sha already; a suite
    // naming no pull request is not built either (pull requests are).
    let mut requested = example("check_suite", Some("requested"));
    requested["check_suite"]["head_sha"] = json!(sha);
    requested["check_suite"]["app"]["id"] = json!(TEST_APP_ID);
    requested["check_suite"]["pull_requests"] = json!([{"number": 2}]);
    requested["repository"] = suite["repository"].clone();
    requested["installation"] = json!({"id": 1});
    assert_eq!(
        checks
            .host
            .send("check_suite", "pushed", &requested)
            .await
            .0,
        202
    );
    requested["check_suite"]["pull_requests"] = json!([]);
    assert_eq!(
        checks
            .host
            .send("check_suite", "branch", &requested)
            .await
            .0,
        202
    );
    for (delivery, why) in [
        ("pushed", "is already being built for this pull request"),
        ("branch", "names no pull request"),
    ] {
        let jobs = checks.host.ended_jobs(delivery, 1).await;
        let note = jobs[0].note.clone().unwrap_or_default();
        assert!(note.contains(why), "{delivery}: {jobs:?}");
    }
    assert_eq!(checks.runs().len(), 3);

    // Another App's check run and suite: not this host's to act on.
    checks
        .check_run_event("other-run", "rerequested", &first, 999)
        .await;
    suite["check_suite"]["app"]["id"] = json!(999);
    assert_eq!(
        checks
            .host
            .send("check_suite", "other-suite", &suite)
            .await
            .0,
        202
    );
    for delivery in ["other-run", "other-suite"] {
        let jobs = checks.host.ended_jobs(delivery, 1).await;
        let note = jobs[0].note.clone().unwrap_or_default();
        assert!(note.contains("another App's"), "{delivery}: {jobs:?}");
    }
    // A check run of this App under another name (another entry's).
    let mut renamed = first.clone();
    renamed.fields["name"] = json!("lint");
    checks
        .check_run_event("other-name", "rerequested", &renamed, TEST_APP_ID)
        .await;
    let jobs = checks.host.ended_jobs("other-name", 1).await;
    assert!(
        jobs[0]
            .note
            .clone()
            .unwrap_or_default()
            .contains("not this entry's")
    );
    assert_eq!(checks.runs().len(), 3, "nothing built for them");
    checks.stop().await;
}

#[tokio::test]
async fn cancel_stops_the_running_build_and_completes_its_run_cancelled() {
    let checks = Checks::start("echo started; sleep 300").await;
    let sha = checks
        .origin
        .commit("refs/heads/changes", &[("README", "hi")]);
    checks.open("long", &sha).await;
    eventually("the build running", || {
        checks
            .runs()
            .first()
            .is_some_and(|run| run.status() == "in_progress")
    })
    .await;
    let run = checks.runs().remove(0);

    // Another App's Cancel does nothing.
    checks
        .check_run_event("other-cancel", "requested_action", &run, 999)
        .await;
    checks.host.ended_jobs("other-cancel", 1).await;
    assert_eq!(checks.runs()[0].status(), "in_progress");

    checks
        .check_run_event("cancel", "requested_action", &run, TEST_APP_ID)
        .await;
    let cancel = checks.host.ended_jobs("cancel", 1).await;
    assert_eq!(
        (cancel[0].state, cancel[0].note.clone()),
        (JobState::Succeeded, None)
    );
    let build = checks.host.ended_jobs("long", 1).await;
    assert_eq!(build[0].state, JobState::Failed);
    assert_eq!(build[0].error.as_deref(), Some("cancelled by mona"));
    let run = checks.runs().remove(0);
    assert_eq!(
        (run.status(), run.conclusion()),
        ("completed", Some("cancelled"))
    );
    assert_eq!(
        run.fields["output"]["title"],
        json!(format!("Build #{} cancelled by mona", build[0].id))
    );
    assert_eq!(run.fields["actions"], json!([]));
    checks.stop().await;
}

#[tokio::test]
async fn a_superseded_build_is_cancelled_and_one_past_its_timeout_timed_out() {
    let checks = Checks::start("sh test.sh").await;
    let old = checks
        .origin
        .commit("refs/heads/changes", &[("test.sh", "sleep 300")]);
    checks.open("old", &old).await;
    eventually("the old build running", || {
        checks
            .runs()
            .first()
            .is_some_and(|run| run.status() == "in_progress")
    })
    .await;
    let new = checks
        .origin
        .commit("refs/heads/changes", &[("test.sh", "true")]);
    checks.open("new", &new).await;
    let old_job = checks.host.ended_jobs("old", 1).await;
    checks.host.ended_jobs("new", 1).await;
    let runs = checks.runs();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].fields["head_sha"], json!(old));
    assert_eq!(runs[0].conclusion(), Some("cancelled"));
    assert_eq!(
        runs[0].fields["output"]["title"],
        json!(format!(
            "Build #{} superseded by {}",
            old_job[0].id,
            &new[..7]
        ))
    );
    assert_eq!(
        (runs[1].fields["head_sha"].clone(), runs[1].conclusion()),
        (json!(new), Some("success"))
    );
    checks.stop().await;

    let checks = Checks::start_with("sleep 300", "timeout_secs = 1").await;
    let sha = checks
        .origin
        .commit("refs/heads/changes", &[("README", "hi")]);
    checks.open("slow", &sha).await;
    let job = checks.host.ended_jobs("slow", 1).await;
    // The build's own time limit: the runner ran to its end and says the build timed out.
    assert_eq!(
        (job[0].state, job[0].verdict),
        (
            JobState::Succeeded,
            Some(switchyard_plugin_api::Verdict::TimedOut)
        )
    );
    let run = checks.runs().remove(0);
    assert_eq!(run.conclusion(), Some("timed_out"));
    checks.stop().await;
}

#[tokio::test]
async fn links_the_build_planted_are_not_annotated_so_no_host_file_is_looked_at() {
    let checks = Checks::start("sh test.sh").await;
    // Links to a root-only host file, to a host folder and to nothing: annotated or not, each
    // would say whether the host has the file. Only the checkout's own file is annotated.
    let script = "ln -s /etc/shadow shadow.rs\n\
                  ln -s /etc etc\n\
                  ln -s /nonexistent/gone.rs gone.rs\n\
                  ln -s src/lib.c lib-link.c\n\
                  echo 'shadow.rs:1:1: error: through a link to a host file'\n\
                  echo 'etc/shadow:1:1: error: through a linked folder'\n\
                  echo 'gone.rs:1:1: error: through a link to nothing'\n\
                  echo 'lib-link.c:1:1: error: through a link inside the checkout'\n\
                  echo 'src/lib.c:1:1: error: the real file'\n\
                  exit 1\n";
    let sha = checks.origin.commit(
        "refs/heads/links",
        &[("test.sh", script), ("src/lib.c", "int main;\n")],
    );
    checks.open("links", &sha).await;
    let jobs = checks.host.ended_jobs("links", 1).await;
    assert_eq!(jobs[0].state, JobState::Succeeded, "{jobs:?}");
    let runs = checks.runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let annotated: Vec<(&str, &str)> = runs[0]
        .annotations
        .iter()
        .map(|a| (a["path"].as_str().unwrap(), a["message"].as_str().unwrap()))
        .collect();
    assert_eq!(annotated, [("src/lib.c", "the real file")]);
    checks.stop().await;
}
