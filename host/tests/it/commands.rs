//! Comment commands against the fake GitHub, in token and App mode: the host reads a command,
//! checks the commenter's permission (GitHub's answer for each role) before any plugin hears of
//! it, reacts to an accepted one and answers a refused one once; quotes, fences and bots run
//! nothing; a redelivered comment runs once; two entries taking one command each get a job.

use serde_json::{Value, json};

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
    let command = &handed(&host)[0]["command"];
    assert_eq!(
        command["author"],
        json!({"id": 501, "login": "writer", "permission": "write"})
    );
    assert_eq!(command["number"], 1);
    assert_eq!(command["comment_id"], 492700400);
    assert_eq!(
        command["pull_request"],
        json!({"head_sha": HEAD, "head_repository": REPO, "base_repository": REPO, "fork": false})
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
    // Each job asked at most once (two running together may both ask); a comment within the
    // next 60 s is checked from the cache.
    let asked = github
        .calls("repos/get-collaborator-permission-level")
        .len();
    assert!((1..=2).contains(&asked), "{asked}");
    assert_eq!(
        host.send("issue_comment", "c-2", &comment("writer", 501, "/retest"))
            .await
            .0,
        202
    );
    host.ended_jobs("c-2", 2).await;
    assert_eq!(handed(&host).len(), 5);
    assert_eq!(
        github
            .calls("repos/get-collaborator-permission-level")
            .len(),
        asked
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
            [("issues", "write"), ("pull_requests", "write")]
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
