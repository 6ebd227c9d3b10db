//! Comment commands against the fake GitHub, in token and App mode: the host reads a command,
//! checks the commenter's permission (GitHub's answer for each role) before any plugin hears of
//! it, reacts to an accepted one and answers a refused one once; quotes, fences and bots run
//! nothing; a redelivered comment runs once; two entries taking one command each get a job.

use serde_json::{Value, json};

use switchyard::journal::{ActionFilter, ActionRecord};
use switchyard_testkit::NewComment;

use crate::support::{FakeGitHub, HostSpec, TOKEN, TestHost, behaviours};

const REPO: &str = "Codertocat/Hello-World";
const HEAD: &str = "ec26c3e57ca3a959ca5aad62de7213c562f8c821";

/// A behaviours entry taking `commands` (TOML list), writing what it gets to
/// `{dir}/commands.jsonl` under `tag`.
fn taking(name: &str, commands: &str, extra: &str) -> String {
    behaviours(
        name,
        "",
        &format!(
            "behaviour = \"commands\"\ndir = \"{{dir}}\"\ncommands = {commands}\ntag = \"{name}\"\n{extra}"
        ),
    )
}

/// A new comment by `login` (`id`) saying `body` on pull request 1 of [`REPO`], whose author is
/// Codertocat.
fn comment(login: &str, id: u64, body: &str) -> Value {
    NewComment::on_pull_request(REPO, 1)
        .thread_by("Codertocat", 21031067)
        .by(login, id)
        .id(492700400)
        .body(body)
        .payload()
}

/// The commands the plugins were handed, in the order they wrote them.
fn handed(host: &TestHost) -> Vec<Value> {
    std::fs::read_to_string(host.dir.path().join("commands.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The bodies the host commented in threads.
fn replies(github: &FakeGitHub) -> Vec<String> {
    github
        .calls("issues/create-comment")
        .iter()
        .map(|call| call.body["body"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The audit trail's actions on `delivery`.
async fn audit(host: &TestHost, delivery: &str) -> Vec<ActionRecord> {
    let filter = ActionFilter {
        limit: 100,
        delivery: Some(delivery.to_owned()),
        ..ActionFilter::default()
    };
    host.host_state.journal.actions(filter).await.unwrap()
}

async fn token_host(github: &FakeGitHub, plugins: String) -> TestHost {
    TestHost::start(HostSpec {
        plugins,
        github_url: Some(github.url().to_owned()),
        github_token: Some(TOKEN),
        ..Default::default()
    })
    .await
}

/// A fake GitHub with pull request 1 open from a branch of [`REPO`], and a writer and a reader.
async fn fake(app: bool) -> FakeGitHub {
    let github = match app {
        true => FakeGitHub::start_app().await,
        false => FakeGitHub::start().await,
    };
    github.open_pull_request(REPO, 1, HEAD, REPO);
    github.set_role(REPO, "writer", 501, "write", "write");
    github.set_role(REPO, "reader", 502, "read", "read");
    github.set_role(REPO, "maintainer", 503, "maintain", "maintain");
    github
}

#[tokio::test]
async fn a_writers_command_reaches_every_entry_taking_it_typed_and_acknowledged() {
    let github = fake(false).await;
    let plugins =
        taking("ci-a", "[\"retest\", \"test\"]", "") + &taking("ci-b", "[\"retest\"]", "");
    let host = token_host(&github, plugins).await;

    let body = "Flaky again.\n/retest\n/test \"unit tests\" lint";
    let (status, answer) = host
        .send("issue_comment", "c-1", &comment("writer", 501, body))
        .await;
    assert_eq!(status, 202, "{answer}");
    let jobs = host.ended_jobs("c-1", 2).await;
    assert!(jobs.iter().all(|j| j.error.is_none()), "{jobs:?}");

    let mut got: Vec<(String, String, Value)> = handed(&host)
        .into_iter()
        .map(|line| {
            let command = &line["command"];
            (
                line["tag"].as_str().unwrap().to_owned(),
                command["name"].as_str().unwrap().to_owned(),
                command["args"].clone(),
            )
        })
        .collect();
    got.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(
        got,
        [
            ("ci-a".to_owned(), "retest".to_owned(), json!([])),
            (
                "ci-a".to_owned(),
                "test".to_owned(),
                json!(["unit tests", "lint"])
            ),
            ("ci-b".to_owned(), "retest".to_owned(), json!([])),
        ]
    );
    let trail = audit(&host, "c-1").await;
    let mut outcomes: Vec<(&str, &str)> = trail
        .iter()
        .map(|a| (a.action.as_str(), a.outcome.as_str()))
        .collect();
    outcomes.sort();
    let retest = format!("/retest on {REPO}#1");
    let test = format!("/test on {REPO}#1");
    assert_eq!(
        outcomes,
        [
            (retest.as_str(), "permitted (has write)"),
            (retest.as_str(), "permitted (has write)"),
            (test.as_str(), "permitted (has write)"),
        ]
    );
    let command = &handed(&host)[0]["command"];
    assert_eq!(
        command["author"],
        json!({"id": 501, "login": "writer", "permission": "write"})
    );
    assert_eq!(command["number"], 1);
    assert_eq!(command["comment_id"], 492700400);
    assert_eq!(
        command["pull_request"],
        json!({"head_sha": HEAD, "head_repository": REPO, "base_repository": REPO, "fork": false, "head_ref": "topic"})
    );
    // Acknowledged with 👀; no reply; the permission asked once for both jobs (the cache).
    let reactions = github.calls("reactions/create-for-issue-comment");
    assert!(!reactions.is_empty());
    assert!(
        reactions
            .iter()
            .all(|r| r.body == json!({"content": "eyes"})
                && r.path == format!("/repos/{REPO}/issues/comments/492700400/reactions"))
    );
    assert!(replies(&github).is_empty(), "{:?}", replies(&github));
    assert_eq!(github.calls("pulls/get").len(), 2, "once per job");
    // Asked once for both jobs; a comment within the next 60 s is checked from the cache.
    assert_eq!(
        github
            .calls("repos/get-collaborator-permission-level")
            .len(),
        1
    );
    let payload = comment("writer", 501, "/retest");
    assert_eq!(host.send("issue_comment", "c-2", &payload).await.0, 202);
    host.ended_jobs("c-2", 2).await;
    assert_eq!(handed(&host).len(), 5);
    assert_eq!(
        github
            .calls("repos/get-collaborator-permission-level")
            .len(),
        1
    );
    assert!(github.violations().is_empty(), "{:?}", github.violations());
    host.stop().await;
}

#[tokio::test]
async fn a_readers_command_is_refused_once_in_the_thread_and_no_plugin_hears_of_it() {
    let github = fake(false).await;
    let plugins = taking("ci-a", "[\"retest\"]", "") + &taking("ci-b", "[\"retest\"]", "");
    let host = token_host(&github, plugins).await;

    for delivery in ["r-1", "r-2"] {
        assert_eq!(
            host.send(
                "issue_comment",
                delivery,
                &comment("reader", 502, "/retest")
            )
            .await
            .0,
            202
        );
        let jobs = host.ended_jobs(delivery, 2).await;
        assert!(
            jobs.iter()
                .all(|j| j.note.as_deref().is_some_and(|n| n.contains("may give"))),
            "{jobs:?}"
        );
    }
    // Also someone GitHub knows nothing of (404: no permission).
    assert_eq!(
        host.send("issue_comment", "r-3", &comment("stranger", 504, "/retest"))
            .await
            .0,
        202
    );
    host.ended_jobs("r-3", 2).await;

    assert!(handed(&host).is_empty(), "{:?}", handed(&host));
    assert!(
        github
            .calls("reactions/create-for-issue-comment")
            .is_empty()
    );
    // Two entries, two comments: one reply for the reader, one for the stranger.
    let replies = replies(&github);
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert!(replies[0].contains("@reader `/retest` needs the `write` permission on Codertocat/Hello-World; you have `read`"), "{}", replies[0]);
    assert!(
        replies[1].contains("@stranger") && replies[1].contains("you have `none`"),
        "{}",
        replies[1]
    );
    // Every verdict is in the audit trail, shown on the delivery's and the job's pages: the
    // person by numeric id with their login.
    let trail = audit(&host, "r-1").await;
    assert_eq!(trail.len(), 2, "one per entry: {trail:?}");
    for action in &trail {
        assert_eq!(action.actor, "github:502 (reader)");
        assert_eq!(action.action, format!("/retest on {REPO}#1"));
        assert_eq!(action.outcome, "refused: needs write, has read");
        assert!(action.job.is_some());
    }
    assert_eq!(
        audit(&host, "r-3").await[0].outcome,
        "refused: needs write, has none"
    );
    assert!(github.violations().is_empty(), "{:?}", github.violations());
    host.stop().await;
}

#[tokio::test]
async fn quoted_fenced_and_bots_commands_and_edits_make_no_job() {
    let github = fake(false).await;
    let host = token_host(&github, taking("ci", "[\"retest\"]", "")).await;

    let cases = [
        ("q-1", comment("writer", 501, "> /retest\nas they said")),
        ("q-2", comment("writer", 501, "Run:\n```\n/retest\n```")),
        ("q-3", comment("writer", 501, "/frobnicate\nplease /retest")),
        ("q-4", {
            let mut bot = comment("switchyard[bot]", 900, "/retest");
            bot["comment"]["user"]["type"] = json!("Bot");
            bot
        }),
        ("q-5", {
            let mut edited = comment("writer", 501, "/retest");
            edited["action"] = json!("edited");
            edited
        }),
    ];
    for (delivery, payload) in cases {
        let (status, answer) = host.send("issue_comment", delivery, &payload).await;
        assert_eq!(
            (status, &answer["jobs"]),
            (202, &json!([])),
            "{delivery}: {answer}"
        );
    }
    assert!(github.requests().is_empty(), "{:?}", github.requests());
    host.stop().await;
}

#[tokio::test]
async fn a_redelivered_comment_runs_once() {
    let github = fake(false).await;
    let host = token_host(&github, taking("ci", "[\"retest\"]", "")).await;
    let payload = comment("writer", 501, "/retest");
    assert_eq!(host.send("issue_comment", "d-1", &payload).await.0, 202);
    host.ended_jobs("d-1", 1).await;
    let (status, answer) = host.send("issue_comment", "d-1", &payload).await;
    assert_eq!((status, &answer["duplicate"]), (200, &json!(true)));
    assert_eq!(handed(&host).len(), 1);
    host.stop().await;

    // Even where the operator has redeliveries run again, a comment's commands run once.
    let host = TestHost::start(HostSpec {
        plugins: taking("ci", "[\"retest\"]", ""),
        github_url: Some(github.url().to_owned()),
        github_token: Some(TOKEN),
        server: "redeliveries = \"rerun\"".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(host.send("issue_comment", "d-2", &payload).await.0, 202);
    host.ended_jobs("d-2", 1).await;
    let (status, answer) = host.send("issue_comment", "d-2", &payload).await;
    assert_eq!((status, &answer["duplicate"]), (200, &json!(true)));
    assert_eq!(handed(&host).len(), 1);
    host.stop().await;
}

#[tokio::test]
async fn as_an_app_a_maintainer_passes_maintain_a_writer_does_not_under_the_hosts_narrowed_token() {
    let github = fake(true).await;
    github.install(
        1,
        "Codertocat",
        &[REPO],
        &[
            ("issues", "write"),
            ("metadata", "read"),
            ("pull_requests", "write"),
            ("statuses", "write"),
        ],
    );
    let host = TestHost::start(HostSpec {
        plugins: taking("deploys", "[\"lock\"]", "permission = \"write\"").replace(
            "[plugins.settings]",
            "commands = { lock = \"maintain\" }\n[plugins.settings]",
        ),
        github_url: Some(github.url().to_owned()),
        app: true,
        ..Default::default()
    })
    .await;
    let with_installation = |login, id| {
        let mut payload = comment(login, id, "/lock staging \"testing the migration\"");
        payload["installation"] = json!({"id": 1});
        payload
    };
    assert_eq!(
        host.send(
            "issue_comment",
            "a-1",
            &with_installation("maintainer", 503)
        )
        .await
        .0,
        202
    );
    host.ended_jobs("a-1", 1).await;
    assert_eq!(
        host.send("issue_comment", "a-2", &with_installation("writer", 501))
            .await
            .0,
        202
    );
    host.ended_jobs("a-2", 1).await;

    let handed = handed(&host);
    assert_eq!(handed.len(), 1, "{handed:?}");
    assert_eq!(handed[0]["command"]["author"]["login"], "maintainer");
    assert_eq!(handed[0]["command"]["author"]["permission"], "maintain");
    assert_eq!(
        handed[0]["command"]["args"],
        json!(["staging", "testing the migration"])
    );
    let replies = replies(&github);
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert!(
        replies[0].contains("`/lock` needs the `maintain` permission")
            && replies[0].contains("you have `write`"),
        "{}",
        replies[0]
    );
    // The host's calls went under a token narrowed to the repository and to what it needs.
    let minted = github.minted_tokens();
    assert!(!minted.is_empty());
    for token in &minted {
        assert_eq!(token.repositories, [REPO]);
        let permissions: Vec<(&str, &str)> = token
            .permissions
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            permissions,
            [("issues", "write"), ("pull_requests", "read")]
        );
    }
    assert!(github.violations().is_empty(), "{:?}", github.violations());
    host.stop().await;
}

#[tokio::test]
async fn the_authors_command_is_let_through_and_the_plugin_replies_and_reacts_through_the_host() {
    let github = fake(false).await;
    let plugins = taking("ci", "[\"retest\"]", "or_author = true");
    let host = token_host(&github, plugins).await;
    // Codertocat wrote the pull request: no permission, but `or_author` lets them.
    let payload = comment("Codertocat", 21031067, "/retest --answer");
    assert_eq!(host.send("issue_comment", "p-1", &payload).await.0, 202);
    let jobs = host.ended_jobs("p-1", 1).await;
    assert!(jobs[0].error.is_none(), "{jobs:?}");
    assert_eq!(
        handed(&host)[0]["command"]["author"]["permission"],
        Value::Null
    );
    assert_eq!(replies(&github), ["`/retest` done"]);
    let reactions: Vec<Value> = github
        .calls("reactions/create-for-issue-comment")
        .iter()
        .map(|call| call.body["content"].clone())
        .collect();
    assert_eq!(reactions, [json!("eyes"), json!("rocket")]);
    assert!(github.violations().is_empty(), "{:?}", github.violations());
    host.stop().await;
}

#[tokio::test]
async fn help_is_answered_once_by_the_host_for_anyone_listing_what_the_entries_take() {
    let github = fake(false).await;
    let plugins = taking("ci-a", "[\"retest\", \"test\"]", "or_author = true")
        + &taking("ci-b", "[\"retest\"]", "or_author = true")
        + &taking("deploys", "[\"lock\"]", "permission = \"maintain\"").replace(
            "[plugins.settings]",
            "repositories = [\"octo/elsewhere\"]\n[plugins.settings]",
        );
    let host = token_host(&github, plugins).await;

    for delivery in ["h-1", "h-2"] {
        let payload = comment("stranger", 504, "/help");
        let (status, answer) = host.send("issue_comment", delivery, &payload).await;
        assert_eq!(status, 202, "{answer}");
        let jobs = host.ended_jobs(delivery, 2).await;
        assert!(
            jobs.iter()
                .all(|j| j.note.as_deref() == Some("skipped: answered /help")),
            "{jobs:?}"
        );
    }
    assert!(handed(&host).is_empty());
    // One answer between the two entries and the two comments (the reply budget); `/lock`
    // belongs to an entry this repository does not reach.
    assert_eq!(
        replies(&github),
        [
            "@stranger the commands taken here:\n\n| Command | Needs | What it does |\n| --- | --- | --- |\n\
          | `/retest [ARGS]` | `write` or the author | a test command |\n\
          | `/test [ARGS]` | `write` or the author | a test command |"
        ]
    );
    assert!(
        github
            .calls("repos/get-collaborator-permission-level")
            .is_empty()
    );
    host.stop().await;
}

#[tokio::test]
async fn a_replay_passes_the_gate_again_and_a_commenter_without_the_permission_is_refused() {
    let github = fake(false).await;
    let host = token_host(&github, taking("ci", "[\"retest\"]", "")).await;
    for (delivery, login, id) in [("w-1", "writer", 501), ("w-2", "reader", 502)] {
        let payload = comment(login, id, "/retest");
        assert_eq!(host.send("issue_comment", delivery, &payload).await.0, 202);
        host.ended_jobs(delivery, 1).await;
    }
    assert_eq!(handed(&host).len(), 1);

    // What the dashboard's Replay and `switchyard replay` do: new jobs on the stored delivery.
    let dispatcher = switchyard::ingress::Dispatcher {
        journal: host.host_state.journal.clone(),
        workers: host.host_state.workers.clone(),
    };
    for delivery in ["w-1", "w-2"] {
        let stored = host
            .host_state
            .journal
            .delivery(delivery)
            .await
            .unwrap()
            .unwrap();
        let appended = dispatcher
            .commit_and_dispatch(std::sync::Arc::new(stored), vec!["ci".to_owned()], true)
            .await
            .unwrap();
        assert!(matches!(appended, switchyard::journal::Appended::New(_)));
        host.ended_jobs(delivery, 2).await;
    }
    let handed = handed(&host);
    assert_eq!(
        handed.len(),
        2,
        "the writer's command ran again, the reader's did not"
    );
    assert!(
        handed
            .iter()
            .all(|line| line["command"]["author"]["login"] == "writer")
    );
    let outcomes: Vec<String> = audit(&host, "w-2")
        .await
        .into_iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(outcomes, ["refused: needs write, has read"; 2]);
    assert_eq!(replies(&github).len(), 1, "one refusal in 10 minutes");
    host.stop().await;
}

/// Loads `plugins` as the host does at start.
fn load(plugins: &str) -> Result<switchyard::plugins::PluginSet, String> {
    let dir = tempfile::tempdir().unwrap();
    let text = crate::support::expand(&format!("[server]\n{plugins}"), dir.path());
    let config = switchyard::Config::parse(&text, &dir.path().join("config.toml"))
        .map_err(|e| e.to_string())?;
    switchyard::plugins::PluginSet::load(&config).map_err(|e| e.to_string())
}

#[test]
fn an_entry_raises_a_commands_permission_and_is_refused_lowering_it() {
    let entry = |commands: &str| {
        taking("ci", "[\"retest\"]", "").replace(
            "[plugins.settings]",
            &format!("commands = {commands}\n[plugins.settings]"),
        )
    };
    let raised = load(&entry("{ retest = \"admin\" }")).unwrap();
    let plugin = raised.get("ci").unwrap();
    assert_eq!(
        plugin.commands[0].permission,
        switchyard_plugin_api::Role::Admin
    );

    let lowered = load(&entry("{ retest = \"read\" }")).err().unwrap();
    assert!(
        lowered.contains(
            "plugins[0] (\"ci\").commands: retest = \"read\": below the plugin's own write"
        ),
        "{lowered}"
    );
    let unknown = load(&entry("{ deploy = \"admin\" }")).err().unwrap();
    assert!(
        unknown.contains("the plugin takes no such command (it takes: /retest)"),
        "{unknown}"
    );
    let bad = load(&entry("{ retest = \"owner\" }")).err().unwrap();
    assert!(
        bad.contains("unknown variant `owner`, expected one of `read`, `triage`, `write`, `maintain`, `admin`"),
        "{bad}"
    );
}

#[tokio::test]
async fn a_failing_permission_lookup_is_retried_and_a_closed_thread_runs_nothing() {
    let github = fake(false).await;
    let host = token_host(&github, taking("ci", "[\"retest\"]", "")).await;
    // GitHub fails the permission call once: retried, as every GitHub call, then let through.
    github.answer_next(502, &[], json!({"message": "Server Error"}));
    assert_eq!(
        host.send("issue_comment", "f-1", &comment("writer", 501, "/retest"))
            .await
            .0,
        202
    );
    let jobs = host.ended_jobs("f-1", 1).await;
    assert!(jobs[0].error.is_none(), "{jobs:?}");
    let asked: Vec<u16> = github
        .calls("repos/get-collaborator-permission-level")
        .iter()
        .map(|call| call.status)
        .collect();
    assert_eq!(asked, [502, 200]);
    assert_eq!(handed(&host).len(), 1);

    // On a closed pull request nothing runs, and the job says why.
    let closed = NewComment::on_pull_request(REPO, 1)
        .by("writer", 501)
        .body("/retest")
        .closed()
        .payload();
    assert_eq!(host.send("issue_comment", "f-2", &closed).await.0, 202);
    let jobs = host.ended_jobs("f-2", 1).await;
    assert_eq!(
        jobs[0].note.as_deref(),
        Some("skipped: Codertocat/Hello-World#1 is closed: its commands run nothing")
    );
    assert_eq!(handed(&host).len(), 1);
    host.stop().await;
}

/// A plugin's author, out of tree (a crate of its own depending on the API and the kit by path,
/// as docs/plugin-testkit.md sets it up), declares a command and, with the kit, sends a signed
/// comment and sees the command reach the plugin and its reply reach the fake GitHub.
#[test]
fn a_plugin_built_out_of_tree_declares_and_receives_a_command_with_the_testkit() {
    let workspace = crate::support::workspace();
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("hello-command");
    std::fs::create_dir_all(plugin.join("src")).unwrap();
    std::fs::create_dir_all(plugin.join("tests")).unwrap();
    let root = workspace.display();
    std::fs::write(
        plugin.join("Cargo.toml"),
        format!(
            "[package]\nname = \"hello-command\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\
             [lib]\ncrate-type = [\"cdylib\"]\n\
             [dependencies]\nswitchyard-plugin-api = {{ path = \"{root}/plugin-api\" }}\n\
             [dev-dependencies]\nswitchyard-testkit = {{ path = \"{root}/testkit\" }}\n\
             tokio = {{ version = \"1\", features = [\"full\"] }}\nserde_json = \"1\"\n"
        ),
    )
    .unwrap();
    std::fs::write(
        plugin.join("src/lib.rs"),
        r#"use switchyard_plugin_api::prelude::*;

struct Hello;

#[async_trait]
impl Plugin for Hello {
    fn subscriptions(&self) -> Vec<Subscription> {
        Vec::new()
    }

    fn commands(&self) -> Vec<CommandSpec> {
        vec![CommandSpec::new("hello", "Says hello").needs(Role::Read).on(Applies::Both)]
    }

    fn permissions(&self) -> Option<Permissions> {
        Some(Permissions::none().write("issues"))
    }

    async fn handle(&self, event: &Event, host: &Host) -> Result<Outcome, PluginError> {
        let Some(command) = &event.command else {
            return Ok(Outcome::Skipped("not a command".into()));
        };
        let to = command.args.first().unwrap_or(&command.author.login);
        host.reply(&format!("hello {to}")).await?;
        Ok(Outcome::Done)
    }
}

declare_plugin!(Hello, |_config: &PluginConfig| Ok(Hello));
"#,
    )
    .unwrap();
    std::fs::write(
        plugin.join("tests/command.rs"),
        r#"use serde_json::json;
use switchyard_testkit::{FakeGitHub, JobState, NewComment, TestHost, cdylib_path};

#[tokio::test]
async fn hello_answers_a_reader_in_the_thread() {
    let github = FakeGitHub::start().await;
    github.set_role("octo/app", "mona", 7, "read", "read");
    let host = TestHost::builder(cdylib_path("hello-command"))
        .github(&github)
        .start()
        .await;
    let payload = NewComment::on_issue("octo/app", 3)
        .by("mona", 7)
        .body("/hello \"the team\"")
        .payload();
    let delivery = host.send("issue_comment", &payload).await;
    let jobs = host.wait(&delivery).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].state, JobState::Succeeded, "{}", jobs[0].log);
    let said: Vec<_> = github
        .calls("issues/create-comment")
        .iter()
        .map(|call| call.body["body"].clone())
        .collect();
    assert_eq!(said, [json!("hello the team")]);
    assert!(github.violations().is_empty());
    println!("COMMAND ANSWERED");
}
"#,
    )
    .unwrap();
    std::fs::copy(workspace.join("Cargo.lock"), plugin.join("Cargo.lock")).unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let mut cargo = std::process::Command::new(env!("CARGO"));
    for (name, _) in std::env::vars() {
        let set_for_tests = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_NAME",
            "OUT_DIR",
        ];
        if set_for_tests.iter().any(|prefix| name.starts_with(prefix)) {
            cargo.env_remove(name);
        }
    }
    let out = cargo
        .args(["test", "--quiet", "--", "--nocapture"])
        .current_dir(&plugin)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("COMMAND ANSWERED"), "{said}");
}
