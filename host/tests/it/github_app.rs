//! Switchyard as a GitHub App against the fake GitHub's App: the JWT, installation tokens
//! minted once and cached, refreshed near expiry, evicted on uninstall; clock skew; each
//! plugin's token narrowed to its permissions and repository; checkouts with the token;
//! `switchyard check` and `switchyard app`.

use base64::Engine as _;
use serde_json::{Value, json};
use switchyard::journal::JobState;
use switchyard_testkit::app::{OTHER_APP_KEY, TEST_APP_ID, TEST_APP_KEY};

use crate::support::{
    FakeGitHub, HostSpec, TestHost, behaviours, example, expand, library, send_signed,
};

const REPO: &str = "Codertocat/Hello-World";

/// The fake App, installed (id 1) on the example payloads' repository with what the shipped
/// plugins need.
async fn fake_app() -> FakeGitHub {
    let github = FakeGitHub::start_app().await;
    github.install(
        1,
        "Codertocat",
        &[REPO],
        &[
            ("checks", "write"),
            ("contents", "read"),
            ("deployments", "write"),
            ("issues", "write"),
            ("metadata", "read"),
            ("pull_requests", "read"),
            ("statuses", "write"),
        ],
    );
    github
}

/// A host acting as the fake's App, with these `[[plugins]]`.
async fn app_host(github: &FakeGitHub, plugins: String) -> TestHost {
    TestHost::start(HostSpec {
        plugins,
        github_url: Some(github.url().to_owned()),
        app: true,
        ..Default::default()
    })
    .await
}

/// A pull request opened on [`REPO`], with `installation` when given.
fn pull_request(installation: Option<u64>) -> Value {
    let mut payload = example("pull_request", Some("opened"));
    if let Some(id) = installation {
        payload["installation"] = json!({"id": id});
    }
    payload
}

/// A behaviours entry that creates a commit status, declaring `permissions` (TOML).
fn status_plugin(name: &str, permissions: &str) -> String {
    behaviours(
        name,
        "",
        &format!("behaviour = \"commit_status\"\npermissions = {permissions}"),
    )
}

async fn run_one(
    host: &TestHost,
    delivery: &str,
    payload: &Value,
) -> switchyard::journal::JobRecord {
    assert_eq!(host.send("pull_request", delivery, payload).await.0, 202);
    host.ended_jobs(delivery, 1).await.remove(0)
}

fn calls(github: &FakeGitHub, operation: &str) -> Vec<switchyard_testkit::Recorded> {
    github.calls(operation)
}

#[tokio::test]
async fn one_token_is_minted_for_many_concurrent_jobs_narrowed_to_the_plugin_and_repository() {
    let github = fake_app().await;
    let host = app_host(&github, status_plugin("status", "{ statuses = \"write\" }")).await;
    let payload = pull_request(None);
    let sends: Vec<_> = (0..12)
        .map(|i| {
            let (url, payload) = (host.webhook_url(), payload.clone());
            tokio::spawn(async move {
                send_signed(&url, "pull_request", &format!("many-{i}"), &payload).await
            })
        })
        .collect();
    for send in sends {
        assert_eq!(send.await.unwrap(), 202);
    }
    for i in 0..12 {
        let jobs = host.ended_jobs(&format!("many-{i}"), 1).await;
        assert_eq!(jobs[0].state, JobState::Succeeded, "{jobs:?}");
    }
    let minted = github.minted_tokens();
    assert_eq!(minted.len(), 1, "{minted:?}");
    let token = &minted[0];
    assert_eq!(token.repositories, [REPO]);
    assert!(token.narrowed);
    assert_eq!(
        token.permissions,
        [("statuses".to_owned(), "write".to_owned())].into()
    );
    // The installation came from GitHub, the repository's, since the payload names none.
    assert!(!calls(&github, "apps/get-repo-installation").is_empty());
    let statuses = calls(&github, "create_status");
    assert_eq!(statuses.len(), 12);
    for status in &statuses {
        assert_eq!(status.status, 201);
        assert_eq!(
            status.headers["authorization"],
            format!("Bearer {}", token.token)
        );
    }
    // Every App call carried a JWT the fake accepted.
    let minting = calls(&github, "apps/create-installation-access-token");
    assert_eq!(minting.len(), 1);
    assert_eq!(minting[0].status, 201);
    assert_eq!(
        minting[0].body,
        json!({"repositories": ["Hello-World"], "permissions": {"statuses": "write"}})
    );
    assert!(github.violations().is_empty(), "{:?}", github.violations());
    host.stop().await;
}

#[tokio::test]
async fn a_token_near_its_expiry_is_refreshed_and_one_github_expired_is_replaced() {
    let github = fake_app().await;
    let host = app_host(&github, status_plugin("status", "{ statuses = \"write\" }")).await;
    let payload = pull_request(Some(1));
    // Four minutes: within the five before expiry in which the host fetches anew.
    github.set_token_lifetime(240);
    for delivery in ["near-1", "near-2"] {
        assert_eq!(
            run_one(&host, delivery, &payload).await.state,
            JobState::Succeeded
        );
    }
    assert_eq!(
        github.minted_tokens().len(),
        2,
        "each job had a fresh token"
    );
    github.set_token_lifetime(3600);
    for delivery in ["hour-1", "hour-2"] {
        assert_eq!(
            run_one(&host, delivery, &payload).await.state,
            JobState::Succeeded
        );
    }
    assert_eq!(github.minted_tokens().len(), 3, "an hour's token is reused");
    // The installation came from the payload: GitHub was not asked for it.
    assert!(calls(&github, "apps/get-repo-installation").is_empty());

    // GitHub says it expired (revoked, or its clock ran ahead): a new token, and the job goes on.
    github.expire_tokens();
    assert_eq!(
        run_one(&host, "expired", &payload).await.state,
        JobState::Succeeded
    );
    assert_eq!(github.minted_tokens().len(), 4);
    let answered: Vec<u16> = calls(&github, "create_status")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(answered, [201, 201, 201, 201, 401, 201]);
    host.stop().await;
}

#[tokio::test]
async fn an_uninstall_or_a_removed_repository_evicts_the_cached_tokens() {
    let github = fake_app().await;
    let host = app_host(&github, status_plugin("status", "{ statuses = \"write\" }")).await;
    let payload = pull_request(None);
    assert_eq!(
        run_one(&host, "before", &payload).await.state,
        JobState::Succeeded
    );
    assert_eq!(
        run_one(&host, "cached", &payload).await.state,
        JobState::Succeeded
    );
    assert_eq!(github.minted_tokens().len(), 1);

    // Uninstalled, then installed again: a new installation.
    github.uninstall(1);
    github.install(2, "Codertocat", &[REPO], &[("statuses", "write")]);
    let mut deleted = example("installation", Some("deleted"));
    deleted["installation"]["id"] = json!(1);
    assert_eq!(
        host.send("installation", "uninstalled", &deleted).await.0,
        202
    );
    assert_eq!(
        run_one(&host, "after", &payload).await.state,
        JobState::Succeeded
    );
    let minted = github.minted_tokens();
    assert_eq!(minted.len(), 2, "{minted:?}");
    assert_eq!(minted[1].installation, 2);

    // The repository removed from the installation: its tokens go too.
    let mut removed = example("installation_repositories", Some("removed"));
    removed["installation"]["id"] = json!(2);
    removed["repositories_removed"] = json!([{"id": 1, "name": "Hello-World", "full_name": REPO}]);
    assert_eq!(
        host.send("installation_repositories", "removed", &removed)
            .await
            .0,
        202
    );
    assert_eq!(
        run_one(&host, "re-added", &payload).await.state,
        JobState::Succeeded
    );
    assert_eq!(github.minted_tokens().len(), 3);
    host.stop().await;
}

#[tokio::test]
async fn a_jwt_refused_for_the_clocks_skew_is_corrected_from_githubs_date() {
    // GitHub an hour behind (the JWT's iat is in its future), then an hour ahead (its exp is
    // in GitHub's past).
    for offset in [-3600, 3600] {
        let github = fake_app().await;
        github.set_clock_offset(offset);
        let host = app_host(&github, status_plugin("status", "{ statuses = \"write\" }")).await;
        let job = run_one(&host, "skewed", &pull_request(Some(1))).await;
        assert_eq!(job.state, JobState::Succeeded, "{offset}: {job:?}");
        let minting: Vec<u16> = calls(&github, "apps/create-installation-access-token")
            .iter()
            .map(|r| r.status)
            .collect();
        assert_eq!(
            minting,
            [401, 201],
            "{offset}: refused once, then corrected"
        );
        // The token's expiry is on GitHub's clock too: it is reused, not refetched.
        assert_eq!(
            run_one(&host, "again", &pull_request(Some(1))).await.state,
            JobState::Succeeded
        );
        assert_eq!(github.minted_tokens().len(), 1);
        host.stop().await;
    }
}

#[tokio::test]
async fn a_notifiers_token_cannot_create_a_status_and_the_job_says_which_permission() {
    let github = fake_app().await;
    // Declares none, as the chat and pager notifiers do.
    let host = app_host(&github, status_plugin("notifier", "{}")).await;
    let job = run_one(&host, "notify", &pull_request(Some(1))).await;
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.unwrap();
    assert!(
        error.starts_with("GitHub answered 403: Resource not accessible by integration: the plugin \"notifier\" lacks the permission statuses: write (its token has: none)"),
        "{error}"
    );
    let minted = github.minted_tokens();
    assert_eq!(
        minted[0].permissions,
        [("metadata".to_owned(), "read".to_owned())].into(),
        "only what every token has"
    );
    let refused = calls(&github, "create_status");
    assert_eq!(refused[0].status, 403);
    assert!(github.commit_statuses(REPO, "").is_empty());
    host.stop().await;
}

#[tokio::test]
async fn the_deployers_token_cannot_create_a_check_run() {
    // The shipped deployer declares deployments and contents, nothing about checks.
    let dir = tempfile::tempdir().unwrap();
    let text = expand(
        "[server]\n[[plugins]]\nname = \"deployer\"\nlibrary = \"{lib:switchyard-deployer}\"\n\
         [plugins.settings]\ncommand = \"true\"\n",
        dir.path(),
    );
    let config = switchyard::Config::parse(&text, &dir.path().join("config.toml")).unwrap();
    let set = switchyard::plugins::PluginSet::load(&config).unwrap();
    let deployer = set.get("deployer").unwrap().permissions.clone().unwrap();
    assert_eq!(
        deployer.to_string(),
        "contents: read, deployments: write, issues: write, pull_requests: read"
    );

    // A job with exactly those permissions asks for a check run.
    let github = fake_app().await;
    let plugins = behaviours(
        "deployer",
        "",
        "behaviour = \"github_call\"\nmethod = \"POST\"\npath = \"/repos/{repo}/check-runs\"\n\
         body = { name = \"deploy\", head_sha = \"ec26c3e57ca3a959ca5aad62de7213c562f8c821\" }\n\
         permissions = { deployments = \"write\", contents = \"read\" }",
    );
    let host = app_host(&github, plugins).await;
    let job = run_one(&host, "check-run", &pull_request(Some(1))).await;
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.unwrap();
    assert!(
        error.contains("the plugin \"deployer\" lacks the permission checks: write (its token has: contents: read, deployments: write)"),
        "{error}"
    );
    let refused = calls(&github, "checks/create");
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].status, 403);
    assert!(github.violations().is_empty(), "{:?}", github.violations());
    host.stop().await;
}

#[tokio::test]
async fn a_plugin_declaring_no_permissions_gets_the_installations_narrowed_to_the_repository() {
    let github = fake_app().await;
    // `commit_status` without `permissions`: a plugin written before they existed.
    let host = app_host(
        &github,
        behaviours("old", "", "behaviour = \"commit_status\""),
    )
    .await;
    assert_eq!(
        run_one(&host, "old", &pull_request(Some(1))).await.state,
        JobState::Succeeded
    );
    let minted = github.minted_tokens();
    assert_eq!(minted[0].repositories, [REPO]);
    assert!(minted[0].narrowed);
    assert_eq!(
        minted[0].permissions.len(),
        7,
        "the installation's: {minted:?}"
    );
    let asked = &calls(&github, "apps/create-installation-access-token")[0].body;
    assert_eq!(asked, &json!({"repositories": ["Hello-World"]}));
    host.stop().await;
}

#[tokio::test]
async fn a_checkout_uses_the_jobs_installation_token_in_gits_header() {
    let github = fake_app().await;
    let plugins = format!(
        "[[plugins]]\nname = \"ci\"\nlibrary = \"{{lib:switchyard-ci}}\"\n\
         [plugins.settings]\nclone_url = \"{}/{{full_name}}.git\"\ncommand = \"true\"\n",
        github.url()
    );
    // The fake GitHub listens on this host's loopback, which a build's network never reaches
    // (docs/security.md): this test is about the credentials git is handed, so it opens it.
    let host = app_host(
        &github,
        format!("{plugins}[sandbox]\nnetwork_isolation = \"off\"\n"),
    )
    .await;
    let job = run_one(&host, "ci", &pull_request(Some(1))).await;
    // The fake checks git's credentials but serves no repository: the checkout fails after.
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    let minted = github.minted_tokens();
    assert_eq!(minted.len(), 1, "{minted:?}");
    let token = &minted[0];
    assert_eq!(
        token.permissions,
        [
            ("checks".to_owned(), "write".to_owned()),
            ("contents".to_owned(), "read".to_owned()),
            ("issues".to_owned(), "write".to_owned()),
            ("pull_requests".to_owned(), "read".to_owned()),
            ("statuses".to_owned(), "write".to_owned()),
        ]
        .into()
    );
    let fetches = calls(&github, "git");
    assert!(!fetches.is_empty());
    for fetch in &fetches {
        assert!(
            fetch.path.starts_with(&format!("/{REPO}.git/")),
            "{}",
            fetch.path
        );
        let header = &fetch.headers["authorization"];
        let encoded = header.strip_prefix("basic ").unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            format!("x-access-token:{}", token.token)
        );
        assert_eq!(
            fetch.status, 404,
            "the credentials passed; there is no repository"
        );
    }
    // Never shown: not in the job's log, the URL or the error.
    let log = std::fs::read_to_string(host.host_state.logs.path(job.id)).unwrap();
    assert!(
        log.contains(&format!(
            "$ git fetch --depth=1 --no-tags {}/{REPO}.git",
            github.url()
        )),
        "{log}"
    );
    assert!(!log.contains(&token.token), "{log}");
    assert!(!job.error.unwrap_or_default().contains(&token.token));
    host.stop().await;
}

/// Runs the `switchyard` binary with `args` and the config `text` (in a fresh folder holding
/// the test key as `app.pem`); its success and output.
fn switchyard(args: &[&str], text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.pem"), TEST_APP_KEY).unwrap();
    std::fs::write(dir.path().join("other.pem"), OTHER_APP_KEY).unwrap();
    std::fs::write(dir.path().join("not-a-key.pem"), "hunter2\n").unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, expand(text, dir.path())).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .arg("--config")
        .arg(&config)
        .env("APP_TEST_SECRET", "s3cret-value-long-enough")
        .env_remove("GITHUB_APP_PRIVATE_KEY")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn app_config(api_url: &str, key: &str, plugins: &str) -> String {
    format!(
        "[server]\nsecret_env = \"APP_TEST_SECRET\"\n[github]\napi_url = \"{api_url}\"\nauth = \"app\"\n\
         app_id = {TEST_APP_ID}\n{key}\n[sandbox]\nmode = \"none\"\n{plugins}"
    )
}

#[test]
fn switchyard_check_prints_permissions_warns_about_undeclared_ones_and_checks_the_key() {
    let _ = library("switchyard-ci");
    let plugins = "[[plugins]]\nname = \"ci\"\nlibrary = \"{lib:switchyard-ci}\"\n\
                   [plugins.settings]\ncommand = \"true\"\n\
                   [[plugins]]\nname = \"narrow-ci\"\nlibrary = \"{lib:switchyard-ci}\"\n\
                   permissions = { statuses = \"write\" }\n[plugins.settings]\ncommand = \"true\"\n\
                   [[plugins]]\nname = \"old\"\nlibrary = \"{lib:switchyard-test-behaviours}\"\n\
                   [plugins.settings]\nbehaviour = \"sleep\"\nmillis = 1\n";
    let file = "private_key_file = \"app.pem\"";
    let (ok, out) = switchyard(&["check"], &app_config("http://127.0.0.1:9", file, plugins));
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "github: GitHub App, app_id {TEST_APP_ID}, private key from"
        )),
        "{out}"
    );
    assert!(out.contains("app.pem (RSA, 2048 bits)"), "{out}");
    assert!(
        out.contains("  catch-up: off ([catch_up] enabled = false"),
        "{out}"
    );
    assert!(
        out.contains(
            "    permissions: checks: write, contents: read, issues: write, pull_requests: read, statuses: write\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("    permissions: statuses: write (narrowed from checks: write, contents: read, issues: write, pull_requests: read, statuses: write)"),
        "{out}"
    );
    assert!(
        out.contains("    permissions: not declared (the App installation's)"),
        "{out}"
    );
    assert!(
        out.contains("warning: old declares no GitHub permissions: its jobs' App tokens get all of the installation's permissions"),
        "{out}"
    );
    assert!(!out.contains("MII"), "no key material: {out}");

    // An entry cannot widen what the plugin declares.
    let wider = "[[plugins]]\nname = \"ci\"\nlibrary = \"{lib:switchyard-ci}\"\n\
                 permissions = { statuses = \"write\", pull_requests = \"write\" }\n\
                 [plugins.settings]\ncommand = \"true\"\n";
    let (ok, out) = switchyard(&["check"], &app_config("http://127.0.0.1:9", file, wider));
    assert!(
        !ok && out.contains(
            "plugins[0] (\"ci\").permissions: pull_requests: write beyond what the plugin declares"
        ),
        "{out}"
    );

    // Keys that will not do: named by their file or variable, never shown.
    let cases = [
        (
            "private_key_file = \"not-a-key.pem\"",
            "not-a-key.pem: not a PEM private key",
        ),
        (
            "private_key_file = \"missing.pem\"",
            "[github] private_key_file: cannot read the secret file",
        ),
        (
            "private_key_env = \"APP_TEST_UNSET_KEY\"",
            "export APP_TEST_UNSET_KEY",
        ),
    ];
    for (key, problem) in cases {
        let (ok, out) = switchyard(&["check"], &app_config("http://127.0.0.1:9", key, ""));
        assert!(!ok && out.contains(problem), "{key}: {out}");
        assert!(!out.contains("hunter2"), "{out}");
    }
}

#[tokio::test]
async fn switchyard_app_says_who_the_app_is_and_lists_its_installations() {
    let github = fake_app().await;
    github.install(7, "octo-org", &["octo-org/api"], &[("contents", "read")]);
    let url = github.url().to_owned();
    let (ok, out) = tokio::task::spawn_blocking(move || {
        switchyard(
            &["app"],
            &app_config(&url, "private_key_file = \"app.pem\"", ""),
        )
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "App Switchyard test App (switchyard-test), id {TEST_APP_ID}"
        )),
        "{out}"
    );
    assert!(out.contains("installations: 2"), "{out}");
    assert!(
        out.contains("  1 on Codertocat (Organization), repositories: selected"),
        "{out}"
    );
    assert!(out.contains("  7 on octo-org (Organization), repositories: selected\n    permissions: contents: read"), "{out}");

    // The wrong key: GitHub refuses the JWT, and the message says what to check.
    let url = github.url().to_owned();
    let (ok, out) = tokio::task::spawn_blocking(move || {
        switchyard(
            &["app"],
            &app_config(&url, "private_key_file = \"other.pem\"", ""),
        )
    })
    .await
    .unwrap();
    assert!(
        !ok && out.contains("GitHub refused the App's credentials (A JSON web token could not be decoded): check [github] app_id"),
        "{out}"
    );
    // In token mode there is no App to ask about.
    let (ok, out) = switchyard(&["app"], "[server]\n");
    assert!(!ok && out.contains("auth is \"token\""), "{out}");
}
