//! Checks defined in the repository: the CI runner reads `.switchyard.toml` from git's objects of
//! the commit it builds (real repositories, the real plugin, the fake GitHub validating every
//! status and check run), runs each check as its own status or check run, in order of `needs`,
//! with matrices; a refused file is one failing check named for it and nothing else runs.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use switchyard::journal::JobId;
use switchyard_plugin_api::Verdict;
use switchyard_testkit::NewComment;

use crate::support::{FakeGitHub, HostSpec, Origin, TOKEN, TestHost, binds, eventually, example};

const REPO: &str = "Codertocat/Hello-World";
const AUTHOR: (&str, u64) = ("Codertocat", 21031067);
static NEXT_COMMENT: AtomicU64 = AtomicU64::new(39_000);

struct Ci {
    github: FakeGitHub,
    origin: Origin,
    host: TestHost,
}

impl Ci {
    /// A host running the CI runner with `settings`, reporting statuses with a token.
    async fn start(settings: &str) -> Self {
        let github = FakeGitHub::start().await;
        github.set_role(REPO, "writer", 501, "write", "write");
        let origin = Origin::new(REPO);
        let settings = settings.replace("{scratch}", &origin.scratch().display().to_string());
        let plugins = format!(
            "[[plugins]]\nname = \"ci\"\nlibrary = \"{{lib:switchyard-ci}}\"\n{}\n\
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

    async fn push(&self, delivery: &str, number: u64, sha: &str) {
        self.push_from(delivery, number, sha, REPO).await;
    }

    /// A push to pull request `number` whose head lives in `head_repo`.
    async fn push_from(&self, delivery: &str, number: u64, sha: &str, head_repo: &str) {
        self.github.open_pull_request(REPO, number, sha, head_repo);
        let mut payload = example("pull_request", Some("opened"));
        payload["action"] = json!("synchronize");
        payload["number"] = json!(number);
        payload["pull_request"]["number"] = json!(number);
        payload["pull_request"]["head"]["sha"] = json!(sha);
        payload["pull_request"]["head"]["repo"]["full_name"] = json!(head_repo);
        let (status, body) = self.host.send("pull_request", delivery, &payload).await;
        assert_eq!(status, 202, "{body}");
    }

    async fn comment(&self, delivery: &str, number: u64, body: &str) {
        let id = NEXT_COMMENT.fetch_add(1, Ordering::Relaxed);
        let payload = NewComment::on_pull_request(REPO, number)
            .thread_by(AUTHOR.0, AUTHOR.1)
            .by("writer", 501)
            .id(id)
            .body(body)
            .payload();
        let (status, answer) = self.host.send("issue_comment", delivery, &payload).await;
        assert_eq!(status, 202, "{answer}");
    }

    /// `(context, state, description)` of every status posted for `sha`, in order.
    fn statuses(&self, sha: &str) -> Vec<(String, String, String)> {
        let path = format!("/repos/{REPO}/statuses/{sha}");
        self.github
            .requests()
            .into_iter()
            .filter(|r| r.path == path)
            .map(|r| {
                (
                    text(&r.body["context"]),
                    text(&r.body["state"]),
                    text(&r.body["description"]),
                )
            })
            .collect()
    }

    /// The states posted for `context` on `sha`, in order.
    fn states_of(&self, sha: &str, context: &str) -> Vec<String> {
        self.statuses(sha)
            .into_iter()
            .filter(|(c, _, _)| c == context)
            .map(|(_, state, _)| state)
            .collect()
    }

    /// The last description posted for `context` on `sha`.
    fn last_of(&self, sha: &str, context: &str) -> String {
        self.statuses(sha)
            .into_iter()
            .rev()
            .find(|(c, _, _)| c == context)
            .map(|(_, _, d)| d)
            .unwrap_or_default()
    }

    fn contexts(&self, sha: &str) -> Vec<String> {
        let mut contexts: Vec<String> = self.statuses(sha).into_iter().map(|(c, _, _)| c).collect();
        contexts.sort();
        contexts.dedup();
        contexts
    }

    fn replies(&self) -> Vec<String> {
        let calls = self.github.calls("issues/create-comment");
        calls.iter().map(|c| text(&c.body["body"])).collect()
    }

    async fn log(&self, job: JobId) -> String {
        self.host.get(&self.host.log_path(job).await).await.1
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

const SEVERAL: &str = r#"
[[check]]
name = "after"
run = "echo after ran"
needs = ["db"]

[[check]]
name = "lint"
run = "echo lint with $LEVEL"
env = { LEVEL = "strict" }

[[check]]
name = "db"
run = "echo db on $ENGINE; test $ENGINE != broken"
matrix = { engine = ["sqlite", "postgres"] }
"#;

#[tokio::test]
async fn each_check_and_matrix_cell_is_its_own_status_run_after_what_it_needs() {
    let ci = Ci::start("command = \"exit 9\"").await;
    let sha = ci
        .origin
        .commit("refs/heads/topic", &[(".switchyard.toml", SEVERAL)]);
    ci.push("several-1", 2, &sha).await;
    let jobs = ci.host.ended_jobs("several-1", 1).await;
    assert_eq!(jobs[0].verdict, Some(Verdict::Passed), "{jobs:?}");
    assert_eq!(
        ci.contexts(&sha),
        [
            "after",
            "db (engine=postgres)",
            "db (engine=sqlite)",
            "lint"
        ],
        "each check its own context, and not the entry's command"
    );
    for context in [
        "lint",
        "db (engine=sqlite)",
        "db (engine=postgres)",
        "after",
    ] {
        assert_eq!(
            ci.states_of(&sha, context),
            ["pending", "pending", "success"],
            "{context}: queued, running, passed"
        );
    }
    let log = ci.log(jobs[0].id).await;
    assert!(log.contains("lint with strict"), "{log}");
    assert!(
        log.contains("db on sqlite") && log.contains("db on postgres"),
        "{log}"
    );
    // `after` needs both cells of `db`: it runs after them.
    let after = log.find("after ran").expect("after ran");
    assert!(log.find("db on postgres").unwrap() < after, "{log}");
    ci.stop().await;
}

#[tokio::test]
async fn a_check_whose_need_failed_is_not_run_and_the_build_fails() {
    let ci = Ci::start("command = \"true\"").await;
    let file = SEVERAL.replace("\"postgres\"", "\"broken\"");
    let sha = ci
        .origin
        .commit("refs/heads/topic", &[(".switchyard.toml", &file)]);
    ci.push("needs-1", 2, &sha).await;
    let jobs = ci.host.ended_jobs("needs-1", 1).await;
    assert_eq!(jobs[0].verdict, Some(Verdict::Failed), "{jobs:?}");
    assert_eq!(
        ci.states_of(&sha, "db (engine=broken)").last().unwrap(),
        "failure"
    );
    assert_eq!(ci.states_of(&sha, "lint").last().unwrap(), "success");
    assert_eq!(ci.states_of(&sha, "after").last().unwrap(), "error");
    assert!(
        ci.last_of(&sha, "after")
            .contains("not run: it needs db (engine=broken), which did not pass"),
        "{:?}",
        ci.statuses(&sha)
    );
    let log = ci.log(jobs[0].id).await;
    assert!(!log.contains("after ran"), "{log}");
    ci.stop().await;
}

#[tokio::test]
async fn without_a_file_the_entrys_command_is_the_one_check_named_context() {
    let ci = Ci::start("command = \"echo plain build\"").await;
    let sha = ci
        .origin
        .commit("refs/heads/topic", &[("README", "no file")]);
    ci.push("plain-1", 2, &sha).await;
    let jobs = ci.host.ended_jobs("plain-1", 1).await;
    assert_eq!(jobs[0].verdict, Some(Verdict::Passed), "{jobs:?}");
    assert_eq!(ci.contexts(&sha), ["ci/switchyard"]);
    assert_eq!(ci.states_of(&sha, "ci/switchyard"), ["pending", "success"]);
    ci.stop().await;
}

/// Each refused file: one failing status named for the file, saying why with its place, and
/// no command of the file (nor the entry's) runs.
#[tokio::test]
async fn a_refused_file_is_one_failing_check_and_nothing_else_runs() {
    let ci = Ci::start("command = \"echo entry ran\"").await;
    let values: Vec<String> = (0..100).map(|i| format!("\"v{i}\"")).collect();
    let big_matrix = format!(
        "[[check]]\nname = \"m\"\nrun = \"echo ran\"\nmatrix = {{ a = [{0}], b = [{0}] }}\n",
        values.join(", ")
    );
    let cycle = "[[check]]\nname = \"a\"\nrun = \"echo ran\"\nneeds = [\"b\"]\n\
                 [[check]]\nname = \"b\"\nrun = \"echo ran\"\nneeds = [\"a\"]\n";
    let duplicate = "[[check]]\nname = \"db\"\nrun = \"echo ran\"\nmatrix = { e = [\"x\"] }\n\
                     [[check]]\nname = \"db (e=x)\"\nrun = \"echo ran\"\n";
    let typo = "[[check]]\nname = \"lint\"\nrun = \"echo ran\"\npaths = [\"srcc/**\"]\n";
    let markup = "[[check]]\nname = \"<img src=x>\"\nrun = \"echo ran\"\n";
    let cases: Vec<(String, &str)> = vec![
        (
            big_matrix,
            "line 4, column 10: the matrix has 10000 cells, more than this entry's max_matrix_cells = 32",
        ),
        (
            cycle.to_owned(),
            "line 4, column 9: needs go round in a cycle: a -> b -> a",
        ),
        (duplicate.to_owned(), "line 6, column 8"),
        (typo.to_owned(), "matches no file of the commit"),
        (markup.to_owned(), "U+003C"),
        (
            "[[check]]\nname = \"x\"\nrun = \"echo ran\"\ntimeout_secs = 90000\n".to_owned(),
            "max_timeout_secs = 21600",
        ),
        ("[[check\nname = 1\n".to_owned(), "line 1, column"),
        ("#".repeat(70_000), "max_file_bytes = 65536"),
    ];
    for (at, (file, words)) in cases.iter().enumerate() {
        let sha = ci
            .origin
            .commit("refs/heads/topic", &[(".switchyard.toml", file)]);
        let delivery = format!("bad-{at}");
        ci.push(&delivery, 2, &sha).await;
        let jobs = ci.host.ended_jobs(&delivery, 1).await;
        assert_eq!(jobs[0].verdict, Some(Verdict::Failed), "{words}: {jobs:?}");
        assert_eq!(ci.contexts(&sha), [".switchyard.toml"], "{words}");
        assert_eq!(
            ci.states_of(&sha, ".switchyard.toml"),
            ["failure"],
            "{words}"
        );
        let log = ci.log(jobs[0].id).await;
        assert!(log.contains(words), "{words}: {log}");
        assert!(!log.contains("ran\n"), "{words}: nothing runs: {log}");
    }
    ci.stop().await;
}

#[tokio::test]
async fn a_symlinked_or_non_utf8_file_is_refused_from_gits_objects() {
    let ci = Ci::start("command = \"echo entry ran\"").await;
    // A link to a file of the checkout that would parse: it is still refused, by its mode.
    ci.origin.symlink(".switchyard.toml", "real.toml");
    let sha = ci.origin.commit(
        "refs/heads/topic",
        &[("real.toml", "[[check]]\nname = \"a\"\nrun = \"echo ran\"\n")],
    );
    ci.push("link-1", 2, &sha).await;
    let jobs = ci.host.ended_jobs("link-1", 1).await;
    assert_eq!(jobs[0].verdict, Some(Verdict::Failed), "{jobs:?}");
    let log = ci.log(jobs[0].id).await;
    assert!(log.contains(".switchyard.toml is a symbolic link"), "{log}");
    assert!(!log.contains("ran\n"), "{log}");

    // Bytes that are not UTF-8, written in place of the link in the working copy.
    let file = ci.origin.root().join("work/.switchyard.toml");
    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, b"[[check]]\nname = \"\xff\"\n").unwrap();
    let sha_bad = ci.origin.commit("refs/heads/topic", &[]);
    assert_ne!(sha, sha_bad);
    ci.push("utf8-1", 2, &sha_bad).await;
    let jobs = ci.host.ended_jobs("utf8-1", 1).await;
    let log = ci.log(jobs[0].id).await;
    assert!(
        log.contains("line 2, column 9: the file is not UTF-8 text"),
        "{log}"
    );
    ci.stop().await;
}

#[tokio::test]
async fn test_name_builds_one_check_and_test_question_mark_lists_them() {
    let ci = Ci::start("command = \"true\"").await;
    let sha = ci
        .origin
        .commit("refs/heads/topic", &[(".switchyard.toml", SEVERAL)]);
    ci.push("one-1", 2, &sha).await;
    ci.host.ended_jobs("one-1", 1).await;
    let before = ci.statuses(&sha).len();

    ci.comment("one-2", 2, "/test db (engine=postgres)").await;
    let jobs = ci.host.ended_jobs("one-2", 1).await;
    assert_eq!(jobs[0].verdict, Some(Verdict::Passed), "{jobs:?}");
    let again: Vec<String> = ci.statuses(&sha)[before..]
        .iter()
        .map(|(c, _, _)| c.clone())
        .collect();
    assert!(!again.is_empty());
    assert!(
        again.iter().all(|c| c == "db (engine=postgres)"),
        "only the named cell is built again: {again:?}"
    );

    ci.comment("one-3", 2, "/test ?").await;
    ci.host.ended_jobs("one-3", 1).await;
    eventually("the list of checks", || {
        ci.replies()
            .iter()
            .any(|r| r.contains("- `db (engine=sqlite)`"))
    })
    .await;
    let list = ci
        .replies()
        .into_iter()
        .find(|r| r.contains("The checks of"))
        .unwrap();
    for name in [
        "`lint`",
        "`db (engine=postgres)`",
        "`after` (after db (engine=postgres), db (engine=sqlite))",
    ] {
        assert!(list.contains(name), "{name}: {list}");
    }

    let before = ci.statuses(&sha).len();
    ci.comment("one-4", 2, "/test nosuch").await;
    let jobs = ci.host.ended_jobs("one-4", 1).await;
    assert_eq!(jobs[0].verdict, Some(Verdict::Skipped), "{jobs:?}");
    assert_eq!(ci.statuses(&sha).len(), before, "nothing is built");
    ci.stop().await;
}

const BY_PATHS: &str = r#"
[[check]]
name = "code"
run = "echo code ran"
paths = ["src/**"]

[[check]]
name = "docs"
run = "echo docs ran"
paths = ["docs"]

[[check]]
name = "after docs"
run = "echo after docs ran"
needs = ["docs"]
"#;

#[tokio::test]
async fn paths_run_a_check_the_pull_request_touches_and_skip_one_it_does_not_as_success() {
    let ci = Ci::start("command = \"true\"").await;
    let sha = ci.origin.commit(
        "refs/heads/topic",
        &[
            (".switchyard.toml", BY_PATHS),
            ("src/main.rs", "fn main() {}"),
            ("docs/guide/a.md", "# a"),
        ],
    );
    // More files than one page of GitHub's list: the one that matters is on the second.
    let mut files: Vec<String> = (0..120).map(|i| format!("assets/{i}.png")).collect();
    files.push("src/main.rs".to_owned());
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    ci.github.set_pull_request_files(REPO, 2, &files);
    ci.push("paths-1", 2, &sha).await;
    let jobs = ci.host.ended_jobs("paths-1", 1).await;
    assert_eq!(jobs[0].verdict, Some(Verdict::Passed), "{jobs:?}");
    assert_eq!(ci.states_of(&sha, "code").last().unwrap(), "success");
    // Skipped, yet `success`: a required check must not block the merge.
    assert_eq!(ci.states_of(&sha, "docs"), ["pending", "success"]);
    assert!(
        ci.last_of(&sha, "docs")
            .contains("skipped: the pull request changes no file its paths match"),
        "{:?}",
        ci.statuses(&sha)
    );
    let log = ci.log(jobs[0].id).await;
    assert!(
        log.contains("code ran") && !log.contains("\ndocs ran\n"),
        "{log}"
    );
    assert!(
        log.contains("after docs ran"),
        "a skipped need does not hold back: {log}"
    );
    let pages: Vec<String> = ci
        .github
        .calls("pulls/list-files")
        .iter()
        .map(|c| c.query.clone())
        .collect();
    assert_eq!(pages, ["per_page=100&page=1", "per_page=100&page=2"]);

    // The other way: only the docs change.
    ci.github
        .set_pull_request_files(REPO, 2, &["docs/guide/a.md"]);
    let sha = ci
        .origin
        .commit("refs/heads/topic", &[("docs/guide/a.md", "# b")]);
    ci.push("paths-2", 2, &sha).await;
    let jobs = ci.host.ended_jobs("paths-2", 1).await;
    let log = ci.log(jobs[0].id).await;
    assert!(
        log.contains("docs ran") && !log.contains("code ran"),
        "{log}"
    );
    assert!(
        ci.last_of(&sha, "code").contains("skipped"),
        "{:?}",
        ci.statuses(&sha)
    );
    ci.stop().await;
}

#[tokio::test]
async fn a_forks_pull_request_that_changes_the_file_waits_for_ok_to_test_even_with_forks_allowed() {
    const FORK: &str = "mallory/Hello-World";
    let ci = Ci::start("command = \"true\"\nallow_forks = true").await;
    let file = "[[check]]\nname = \"only\"\nrun = \"echo only ran\"\n";
    let sha = ci
        .origin
        .commit("refs/heads/topic", &[(".switchyard.toml", file)]);

    // A fork's pull request that leaves the file alone builds at once.
    ci.github.set_pull_request_files(REPO, 3, &["README"]);
    ci.push_from("fork-1", 3, &sha, FORK).await;
    let jobs = ci.host.ended_jobs("fork-1", 1).await;
    assert_eq!(jobs[0].verdict, Some(Verdict::Passed), "{jobs:?}");

    // One that edits it waits, said on the pull request, and builds nothing.
    ci.github
        .set_pull_request_files(REPO, 4, &["README", ".switchyard.toml"]);
    ci.push_from("fork-2", 4, &sha, FORK).await;
    let jobs = ci.host.ended_jobs("fork-2", 1).await;
    assert_eq!(jobs[0].verdict, Some(Verdict::Skipped), "{jobs:?}");
    let note = jobs[0].note.clone().unwrap_or_default();
    assert!(note.contains("changes .switchyard.toml"), "{note}");
    assert!(
        ci.last_of(&sha, "ci/switchyard")
            .contains("waits for a maintainer's /ok-to-test"),
        "{:?}",
        ci.statuses(&sha)
    );
    let log = ci.log(jobs[0].id).await;
    assert!(!log.contains("only ran"), "{log}");

    // A writer's /ok-to-test builds that head.
    ci.comment("fork-3", 4, "/ok-to-test").await;
    let jobs = ci.host.ended_jobs("fork-3", 1).await;
    assert_eq!(jobs[0].verdict, Some(Verdict::Passed), "{jobs:?}");
    assert!(ci.log(jobs[0].id).await.contains("only ran"));
    // The waiting status is closed: the file's checks report under their own names.
    assert_eq!(
        ci.last_of(&sha, "ci/switchyard"),
        format!(
            "Build #{}: the checks of .switchyard.toml run instead",
            jobs[0].id
        )
    );
    assert_eq!(
        ci.states_of(&sha, "ci/switchyard").last().unwrap(),
        "success"
    );
    ci.stop().await;
}

#[tokio::test]
async fn retest_after_one_of_three_failed_builds_only_that_one() {
    let ci = Ci::start("command = \"true\"").await;
    let scratch = ci.origin.scratch().display().to_string();
    // `two` fails its first run and passes after, through a marker outside the workspace.
    let file = format!(
        "[[check]]\nname = \"one\"\nrun = \"echo one ran\"\n\
         [[check]]\nname = \"two\"\nrun = \"if [ -f {scratch}/ran ]; then echo two passed; exit 0; fi; touch {scratch}/ran; exit 1\"\n\
         [[check]]\nname = \"three\"\nrun = \"echo three ran\"\n"
    );
    let sha = ci
        .origin
        .commit("refs/heads/topic", &[(".switchyard.toml", &file)]);
    ci.push("retest-1", 2, &sha).await;
    let jobs = ci.host.ended_jobs("retest-1", 1).await;
    assert_eq!(jobs[0].verdict, Some(Verdict::Failed), "{jobs:?}");
    assert!(
        jobs[0]
            .note
            .clone()
            .unwrap_or_default()
            .contains("1 of 3 checks did not pass: two"),
        "{jobs:?}"
    );
    let before = ci.statuses(&sha).len();

    ci.comment("retest-2", 2, "/retest").await;
    let jobs = ci.host.ended_jobs("retest-2", 1).await;
    assert_eq!(jobs[0].verdict, Some(Verdict::Passed), "{jobs:?}");
    let again: Vec<(String, String, String)> = ci.statuses(&sha)[before..].to_vec();
    assert!(
        !again.is_empty() && again.iter().all(|(context, _, _)| context == "two"),
        "only the check that failed is built again: {again:?}"
    );
    assert_eq!(again.last().unwrap().1, "success");
    let log = ci.log(jobs[0].id).await;
    assert!(
        log.contains("two passed") && !log.contains("one ran"),
        "{log}"
    );
    // What the runner read back: the head's statuses.
    assert!(
        !ci.github
            .calls("repos/list-commit-statuses-for-ref")
            .is_empty()
    );
    ci.stop().await;
}

/// As a GitHub App: a check run per check, its own conclusion; a refused file's one check run
/// says why in its text; Re-run on one check run builds that check alone.
#[tokio::test]
async fn as_an_app_each_check_is_a_check_run_and_rerun_builds_that_one() {
    use switchyard_testkit::app::TEST_APP_ID;

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
         [plugins.settings]\nclone_url = \"{}\"\ncommand = \"exit 9\"\n",
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
    let file = SEVERAL.replace("\"postgres\"", "\"broken\"");
    let sha = origin.commit("refs/heads/changes", &[(".switchyard.toml", &file)]);
    let open = |delivery: &'static str, sha: String| {
        let host = &host;
        async move {
            let mut payload = example("pull_request", Some("opened"));
            payload["pull_request"]["head"]["sha"] = json!(sha);
            payload["installation"] = json!({"id": 1});
            assert_eq!(host.send("pull_request", delivery, &payload).await.0, 202);
        }
    };
    open("app-1", sha.clone()).await;
    let jobs = host.ended_jobs("app-1", 1).await;
    assert_eq!(jobs[0].verdict, Some(Verdict::Failed), "{jobs:?}");
    let conclusion = |name: &str| {
        github
            .check_runs(REPO)
            .into_iter()
            .rev()
            .find(|r| r.fields["name"] == name)
            .map(|r| text(&r.fields["conclusion"]))
            .unwrap_or_default()
    };
    assert_eq!(github.check_runs(REPO).len(), 4, "one run per check");
    assert_eq!(conclusion("lint"), "success");
    assert_eq!(conclusion("db (engine=sqlite)"), "success");
    assert_eq!(conclusion("db (engine=broken)"), "failure");
    assert_eq!(conclusion("after"), "cancelled");

    // Re-run on the sqlite cell's run: that check alone, as a new run.
    let run = github
        .check_runs(REPO)
        .into_iter()
        .find(|r| r.fields["name"] == "db (engine=sqlite)")
        .unwrap();
    let mut payload = example("check_run", Some("rerequested"));
    payload["check_run"]["id"] = json!(run.id);
    payload["check_run"]["name"] = run.fields["name"].clone();
    payload["check_run"]["external_id"] = run.fields["external_id"].clone();
    payload["check_run"]["head_sha"] = json!(sha);
    payload["check_run"]["app"]["id"] = json!(TEST_APP_ID);
    payload["check_run"]["pull_requests"] = json!([{"number": 2, "head": {"sha": sha}}]);
    payload["repository"] = example("pull_request", Some("opened"))["repository"].clone();
    payload["installation"] = json!({"id": 1});
    assert_eq!(host.send("check_run", "app-2", &payload).await.0, 202);
    let jobs = host.ended_jobs("app-2", 1).await;
    assert_eq!(jobs[0].verdict, Some(Verdict::Passed), "{jobs:?}");
    let runs = github.check_runs(REPO);
    assert_eq!(runs.len(), 5, "one new run");
    assert_eq!(runs[4].fields["name"], "db (engine=sqlite)");

    // A refused file: one failing run, its text saying where and why.
    let bad = origin.commit(
        "refs/heads/changes",
        &[(
            ".switchyard.toml",
            "[[check]]\nname = \"a\"\nrun = \"x\"\nneeds = [\"a\"]\n",
        )],
    );
    open("app-3", bad.clone()).await;
    host.ended_jobs("app-3", 1).await;
    let runs: Vec<_> = github
        .check_runs(REPO)
        .into_iter()
        .filter(|r| r.fields["head_sha"] == bad.as_str())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].fields["name"], ".switchyard.toml");
    assert_eq!(runs[0].fields["conclusion"], "failure");
    let said = text(&runs[0].fields["output"]["text"]);
    assert!(
        said.contains("line 4, column 9: needs go round in a cycle: a -> a"),
        "{said}"
    );
    let violations = github.violations();
    assert!(violations.is_empty(), "{violations:?}");
    host.stop().await;
}
