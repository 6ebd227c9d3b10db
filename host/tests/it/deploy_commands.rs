//! Deploys people drive, end to end: the real deployer, a real git repository, the fake GitHub
//! answering permissions and validating every call. `/deploy` checks each environment's own
//! permission and whether it takes pull requests; `/lock` holds an environment against others'
//! deploys (by command, on merge, or created elsewhere through GitHub's API, refused where the
//! deploy runs) until `/unlock`; a deployment whose required checks are not green is refused
//! unless forced.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use switchyard_testkit::NewComment;

use crate::support::{FakeGitHub, HostSpec, Origin, TOKEN, TestHost, binds, eventually, example};

const REPO: &str = "Codertocat/Hello-World";
const AUTHOR: (&str, u64) = ("Codertocat", 21031067);
const WRITER: (&str, u64) = ("writer", 501);
const OTHER_WRITER: (&str, u64) = ("hubot", 503);
const MAINTAINER: (&str, u64) = ("maintainer", 504);
const READER: (&str, u64) = ("reader", 502);
static NEXT_COMMENT: AtomicU64 = AtomicU64::new(9000);

/// Staging on every merge for writers, production by `/deploy production BRANCH` for
/// maintainers, preview whenever the default branch's head is green.
const ENVIRONMENTS: &str = "command = \"echo deployed $SWITCHYARD_ENVIRONMENT\"\n\
    [plugins.settings.environment_settings.staging]\n\
    required_contexts = [\"ci/switchyard\"]\n\
    [plugins.settings.environment_settings.production]\n\
    on = \"manual\"\ndeploy = \"maintain\"\nforce = \"admin\"\n\
    [plugins.settings.environment_settings.preview]\n\
    on = \"green\"\nrequired_contexts = [\"ci/switchyard\"]\n";

struct Deploys {
    github: FakeGitHub,
    origin: Origin,
    host: TestHost,
    /// As a GitHub App: comments carry installation 1.
    app: bool,
}

impl Deploys {
    /// With a token; GitHub's `deployment` webhooks reach the host.
    async fn start() -> Self {
        Self::start_as(false).await
    }

    /// As a GitHub App (installation 1, with what the deployer declares), or with a token.
    /// The fake's webhooks carry no installation, so as an App only commands are tried.
    async fn start_as(app: bool) -> Self {
        let github = if app {
            let github = FakeGitHub::start_app().await;
            github.install(
                1,
                "Codertocat",
                &[REPO],
                &[
                    ("contents", "read"),
                    ("deployments", "write"),
                    ("issues", "write"),
                    ("metadata", "read"),
                    ("pull_requests", "write"),
                ],
            );
            github
        } else {
            FakeGitHub::start().await
        };
        github.set_role(REPO, WRITER.0, WRITER.1, "write", "write");
        github.set_role(REPO, OTHER_WRITER.0, OTHER_WRITER.1, "write", "write");
        github.set_role(REPO, MAINTAINER.0, MAINTAINER.1, "maintain", "write");
        github.set_role(REPO, READER.0, READER.1, "read", "read");
        let origin = Origin::new(REPO);
        let plugins = format!(
            "[[plugins]]\nname = \"deployer\"\nlibrary = \"{{lib:switchyard-deployer}}\"\n{}\n\
             [plugins.settings]\nclone_url = \"{}\"\n{ENVIRONMENTS}",
            binds(&origin),
            origin.clone_url_template()
        );
        let host = TestHost::start(HostSpec {
            plugins,
            github_url: Some(github.url().to_owned()),
            github_token: (!app).then_some(TOKEN),
            app,
            ..Default::default()
        })
        .await;
        if !app {
            github.send_webhooks_to(&host.webhook_url(), crate::support::SECRET);
        }
        Self {
            github,
            origin,
            host,
            app,
        }
    }

    /// `by` comments `body` on pull request `number`; waits for its job to end.
    async fn comment(&self, delivery: &str, by: (&str, u64), number: u64, body: &str) {
        let id = NEXT_COMMENT.fetch_add(1, Ordering::Relaxed);
        let mut comment = NewComment::on_pull_request(REPO, number)
            .thread_by(AUTHOR.0, AUTHOR.1)
            .by(by.0, by.1)
            .id(id)
            .body(body);
        if self.app {
            comment = comment.installation(1);
        }
        let payload = comment.payload();
        let (status, answer) = self.host.send("issue_comment", delivery, &payload).await;
        assert_eq!(status, 202, "{answer}");
        self.host.ended_jobs(delivery, 1).await;
    }

    fn replies(&self) -> Vec<String> {
        let calls = self.github.calls("issues/create-comment");
        calls.iter().map(|c| text(&c.body["body"])).collect()
    }

    fn last_reply(&self) -> String {
        self.replies().pop().unwrap_or_default()
    }

    fn deployments_created(&self) -> Vec<Value> {
        let calls = self.github.calls("create_deployment");
        calls
            .into_iter()
            .filter(|c| c.status == 201)
            .map(|c| c.body)
            .collect()
    }

    fn states(&self, id: u64) -> Vec<(String, String)> {
        let statuses = self.github.deployment_statuses(REPO, id);
        statuses
            .iter()
            .map(|s| (text(&s["state"]), text(&s["description"])))
            .collect()
    }

    async fn wait_for_state(&self, id: u64, state: &str) -> Vec<(String, String)> {
        let found = || self.states(id).iter().any(|(s, _)| s == state);
        eventually(&format!("deployment {id} to be {state}"), found).await;
        self.states(id)
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

#[tokio::test]
async fn deploy_checks_each_environments_permission_and_whether_it_takes_pull_requests() {
    let deploys = Deploys::start().await;
    let sha = deploys
        .origin
        .commit("refs/heads/topic", &[("README", "topic")]);
    deploys.github.open_pull_request(REPO, 4, &sha, REPO);

    // A reader is refused by the host (the command needs write); nothing is created.
    deploys
        .comment("c-reader", READER, 4, "/deploy staging")
        .await;
    assert!(
        deploys
            .last_reply()
            .contains("needs the `write` permission"),
        "{:?}",
        deploys.replies()
    );
    // A writer may deploy staging, not production.
    deploys
        .comment("c-prod", WRITER, 4, "/deploy production")
        .await;
    let refusal = deploys.last_reply();
    assert!(
        refusal.contains("`production` needs `maintain`; you have `write`"),
        "{refusal}"
    );
    // Production takes branch heads only, even from a maintainer.
    deploys
        .comment("c-prod-pr", MAINTAINER, 4, "/deploy production")
        .await;
    assert!(
        deploys.last_reply().contains("branch heads only"),
        "{:?}",
        deploys.replies()
    );
    // An environment that is not configured, or has markup, is named as unknown.
    deploys
        .comment("c-unknown", WRITER, 4, "/deploy <b>qa</b>")
        .await;
    let unknown = deploys.last_reply();
    assert!(
        unknown.contains("that is not an environment here") && !unknown.contains("<b>"),
        "{unknown}"
    );
    assert!(deploys.deployments_created().is_empty());

    // The writer's /deploy staging: a deployment of the head, the person in its payload, run.
    deploys
        .comment("c-staging", WRITER, 4, "/deploy staging")
        .await;
    let created = deploys.deployments_created();
    assert_eq!(created.len(), 1, "{:?}", deploys.replies());
    assert_eq!(created[0]["ref"], json!(sha));
    assert_eq!(created[0]["environment"], json!("staging"));
    assert_eq!(created[0]["payload"]["requested_by"], json!("github:501"));
    assert_eq!(created[0]["payload"]["deploy_user"], json!("writer"));
    assert!(
        deploys.last_reply().contains("Deploying"),
        "{:?}",
        deploys.replies()
    );
    let states = deploys.wait_for_state(1, "success").await;
    assert!(states.iter().all(|(s, _)| s != "failure"), "{states:?}");

    // A maintainer deploys production from a branch.
    deploys
        .comment("c-prod-main", MAINTAINER, 4, "/deploy production main")
        .await;
    let created = deploys.deployments_created();
    assert_eq!(created.len(), 2, "{:?}", deploys.replies());
    assert_eq!(created[1]["ref"], json!("main"));
    assert_eq!(created[1]["environment"], json!("production"));
    deploys.stop().await;
}

#[tokio::test]
async fn a_sticky_lock_refuses_others_deploys_everywhere_until_unlocked() {
    let deploys = Deploys::start().await;
    let sha = deploys
        .origin
        .commit("refs/heads/topic", &[("README", "topic")]);
    deploys.github.open_pull_request(REPO, 4, &sha, REPO);

    deploys
        .comment("l-lock", WRITER, 4, "/lock staging testing the migration")
        .await;
    let locked = deploys.last_reply();
    assert!(
        locked.contains("`staging` is locked by @writer")
            && locked.contains("testing the migration"),
        "{locked}"
    );
    // Another writer's lock, deploy and unlock are refused, naming who holds it and why.
    deploys
        .comment("l-lock-2", OTHER_WRITER, 4, "/lock staging mine")
        .await;
    assert!(
        deploys.last_reply().contains("locked by @writer"),
        "{:?}",
        deploys.replies()
    );
    deploys
        .comment("l-deploy", OTHER_WRITER, 4, "/deploy staging")
        .await;
    assert!(
        deploys.last_reply().contains("locked by @writer since"),
        "{:?}",
        deploys.replies()
    );
    deploys
        .comment("l-unlock-2", OTHER_WRITER, 4, "/unlock staging")
        .await;
    assert!(
        deploys.last_reply().contains("needs `maintain`"),
        "{:?}",
        deploys.replies()
    );
    assert!(deploys.deployments_created().is_empty());

    // A merge's automatic deploy is dropped with a note.
    let mut merged = example("pull_request", Some("closed"));
    merged["pull_request"]["merged"] = json!(true);
    merged["pull_request"]["merge_commit_sha"] = json!(sha);
    merged["pull_request"]["base"]["ref"] = merged["repository"]["default_branch"].clone();
    let (status, _) = deploys.host.send("pull_request", "l-merge", &merged).await;
    assert_eq!(status, 202);
    let jobs = deploys.host.ended_jobs("l-merge", 1).await;
    assert!(deploys.deployments_created().is_empty(), "{jobs:?}");
    let note = jobs[0].note.clone().unwrap_or_default();
    assert!(
        note.contains("on merge was dropped: staging is locked by writer"),
        "{jobs:?}"
    );

    // A deployment someone else created through GitHub's API is refused where it runs.
    let mut event = example("deployment", None);
    event["deployment"]["id"] = json!(77);
    event["deployment"]["sha"] = json!(sha);
    event["deployment"]["environment"] = json!("staging");
    event["deployment"]["payload"] = json!({});
    event["deployment"]["creator"] = json!({"login": OTHER_WRITER.0, "id": OTHER_WRITER.1});
    event["repository"]["full_name"] = json!(REPO);
    let (status, _) = deploys.host.send("deployment", "l-elsewhere", &event).await;
    assert_eq!(status, 202);
    let states = deploys.wait_for_state(77, "failure").await;
    let refused = &states.last().unwrap().1;
    assert!(
        refused.contains("refused: staging is locked by writer"),
        "{states:?}"
    );
    assert!(
        !states.iter().any(|(s, _)| s == "in_progress"),
        "nothing ran: {states:?}"
    );

    // /where shows the lock; the owner unlocks; then the other writer deploys.
    deploys.comment("l-where", READER, 4, "/where").await;
    let table = deploys.last_reply();
    assert!(
        table.contains("| `staging` | – | on merge | 🔒 @writer"),
        "{table}"
    );
    assert!(
        table.contains("| `production` | – | by /deploy | –"),
        "{table}"
    );
    deploys
        .comment("l-unlock", WRITER, 4, "/unlock staging")
        .await;
    assert!(
        deploys.last_reply().contains("`staging` is unlocked"),
        "{:?}",
        deploys.replies()
    );
    deploys
        .comment("l-deploy-2", OTHER_WRITER, 4, "/deploy staging")
        .await;
    assert_eq!(
        deploys.deployments_created().len(),
        1,
        "{:?}",
        deploys.replies()
    );
    deploys.stop().await;
}

#[tokio::test]
async fn a_deployment_created_elsewhere_needs_its_creators_permission_where_it_runs() {
    let deploys = Deploys::start().await;
    let sha = deploys
        .origin
        .commit("refs/heads/main", &[("README", "main")]);
    for (id, creator, state) in [(90, WRITER, "failure"), (91, MAINTAINER, "success")] {
        let mut event = example("deployment", None);
        event["deployment"]["id"] = json!(id);
        event["deployment"]["sha"] = json!(sha);
        event["deployment"]["environment"] = json!("production");
        event["deployment"]["payload"] = json!({});
        event["deployment"]["creator"] = json!({"login": creator.0, "id": creator.1});
        event["repository"]["full_name"] = json!(REPO);
        let (status, _) = deploys
            .host
            .send("deployment", &format!("e-{id}"), &event)
            .await;
        assert_eq!(status, 202);
        let states = deploys.wait_for_state(id, state).await;
        if state == "failure" {
            let refused = &states.last().unwrap().1;
            assert!(
                refused.contains("writer has write") && refused.contains("needs maintain"),
                "{states:?}"
            );
        }
    }
    deploys.stop().await;
}

#[tokio::test]
async fn required_checks_not_green_refuse_a_deploy_unless_a_person_with_force_forces_it() {
    let deploys = Deploys::start().await;
    let sha = deploys
        .origin
        .commit("refs/heads/topic", &[("README", "topic")]);
    deploys.github.open_pull_request(REPO, 4, &sha, REPO);
    deploys
        .github
        .set_commit_state(REPO, &sha, "ci/switchyard", "pending");

    deploys
        .comment("g-deploy", WRITER, 4, "/deploy staging")
        .await;
    let refusal = deploys.last_reply();
    assert!(
        refusal.contains("its required checks are not green"),
        "{refusal}"
    );
    deploys
        .comment("g-force-writer", WRITER, 4, "/deploy staging --force")
        .await;
    assert!(
        deploys.last_reply().contains("needs `maintain`"),
        "{:?}",
        deploys.replies()
    );
    assert!(deploys.deployments_created().is_empty());

    deploys
        .comment("g-force", MAINTAINER, 4, "/deploy staging --force")
        .await;
    let created = deploys.deployments_created();
    assert_eq!(created.len(), 1, "{:?}", deploys.replies());
    assert_eq!(created[0]["required_contexts"], json!([]));
    assert_eq!(created[0]["payload"]["forced"], json!(true));
    deploys.wait_for_state(1, "success").await;

    // Green now: a writer's deploy goes through with the contexts required.
    deploys
        .github
        .set_commit_state(REPO, &sha, "ci/switchyard", "success");
    deploys
        .comment("g-green", WRITER, 4, "/deploy staging")
        .await;
    let created = deploys.deployments_created();
    assert_eq!(created.len(), 2, "{:?}", deploys.replies());
    assert_eq!(created[1]["required_contexts"], json!(["ci/switchyard"]));
    deploys.stop().await;
}

#[tokio::test]
async fn as_an_app_the_commands_work_under_the_deployers_narrowed_token() {
    let deploys = Deploys::start_as(true).await;
    let sha = deploys
        .origin
        .commit("refs/heads/topic", &[("README", "topic")]);
    deploys.github.open_pull_request(REPO, 4, &sha, REPO);

    deploys
        .comment("a-prod", WRITER, 4, "/deploy production main")
        .await;
    assert!(
        deploys.last_reply().contains("needs `maintain`"),
        "{:?}",
        deploys.replies()
    );
    deploys
        .comment("a-lock", MAINTAINER, 4, "/lock staging release")
        .await;
    deploys
        .comment("a-deploy", WRITER, 4, "/deploy staging")
        .await;
    assert!(
        deploys.last_reply().contains("locked by @maintainer"),
        "{:?}",
        deploys.replies()
    );
    deploys
        .comment("a-unlock", MAINTAINER, 4, "/unlock staging")
        .await;
    deploys
        .comment("a-deploy-2", WRITER, 4, "/deploy staging")
        .await;
    let created = deploys.deployments_created();
    assert_eq!(created.len(), 1, "{:?}", deploys.replies());
    assert_eq!(created[0]["ref"], json!(sha));
    // Every call went under an installation token (the fake refuses what a token may not do).
    let refused: Vec<_> = deploys
        .github
        .requests()
        .into_iter()
        .filter(|r| r.status == 403)
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    deploys.stop().await;
}

#[tokio::test]
async fn a_lock_taken_on_one_host_holds_on_another_and_across_a_restart_on_postgresql() {
    let Some(server) = switchyard_testkit::TestPostgres::get() else {
        return;
    };
    let url = server.database();
    let (_secrets, store) = crate::postgres::store_with_lease(&url, 3);
    let github = FakeGitHub::start().await;
    github.set_role(REPO, WRITER.0, WRITER.1, "write", "write");
    github.set_role(REPO, OTHER_WRITER.0, OTHER_WRITER.1, "write", "write");
    let origin = Origin::new(REPO);
    let plugins = format!(
        "[[plugins]]\nname = \"deployer\"\nlibrary = \"{{lib:switchyard-deployer}}\"\n{}\n\
         [plugins.settings]\nclone_url = \"{}\"\n{ENVIRONMENTS}",
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
    let a = TestHost::start(spec()).await;
    let b = TestHost::start(spec()).await;
    let sha = origin.commit("refs/heads/topic", &[("README", "topic")]);
    github.open_pull_request(REPO, 4, &sha, REPO);
    let observer = crate::postgres::journal(&url).await;
    let comment = |by: (&str, u64), body: &str| {
        NewComment::on_pull_request(REPO, 4)
            .thread_by(AUTHOR.0, AUTHOR.1)
            .by(by.0, by.1)
            .id(NEXT_COMMENT.fetch_add(1, Ordering::Relaxed))
            .body(body)
            .payload()
    };
    let last_reply = || {
        let calls = github.calls("issues/create-comment");
        calls
            .last()
            .map(|c| text(&c.body["body"]))
            .unwrap_or_default()
    };

    let lock = comment(WRITER, "/lock staging release 2.0");
    assert_eq!(a.send("issue_comment", "p-lock", &lock).await.0, 202);
    crate::support::ended_jobs(&observer, "p-lock", 1).await;
    assert!(
        last_reply().contains("is locked by @writer"),
        "{}",
        last_reply()
    );
    // Asked on the other host, and again after it restarts: refused, naming the owner.
    let b = b.restart().await;
    let deploy = comment(OTHER_WRITER, "/deploy staging");
    assert_eq!(b.send("issue_comment", "p-deploy", &deploy).await.0, 202);
    crate::support::ended_jobs(&observer, "p-deploy", 1).await;
    assert!(
        last_reply().contains("locked by @writer since"),
        "{}",
        last_reply()
    );
    let deploy = comment(OTHER_WRITER, "/lock staging mine");
    assert_eq!(b.send("issue_comment", "p-lock-2", &deploy).await.0, 202);
    crate::support::ended_jobs(&observer, "p-lock-2", 1).await;
    assert!(
        last_reply().contains("locked by @writer since"),
        "{}",
        last_reply()
    );
    assert!(github.calls("create_deployment").is_empty());
    a.stop().await;
    b.stop().await;
}

/// A `status` success for `sha` (of another context than the one required), or a check suite
/// completed with success on `main`.
fn green_event(kind: &str, sha: &str) -> Value {
    let mut event = if kind == "status" {
        let mut event = example("status", None);
        event["sha"] = json!(sha);
        event["state"] = json!("success");
        event["context"] = json!("lint");
        event
    } else {
        let mut event = example("check_suite", Some("completed"));
        event["check_suite"]["head_sha"] = json!(sha);
        event["check_suite"]["head_branch"] = json!("main");
        event["check_suite"]["conclusion"] = json!("success");
        event
    };
    event["repository"]["full_name"] = json!(REPO);
    event["repository"]["default_branch"] = json!("main");
    event
}

#[tokio::test]
async fn green_heads_of_the_default_branch_deploy_once_and_a_lock_holds_them_until_unlocked() {
    let deploys = Deploys::start().await;
    let first = deploys
        .origin
        .commit("refs/heads/main", &[("README", "one")]);
    deploys.github.set_branch(REPO, "main", &first);
    deploys.github.open_pull_request(REPO, 4, &first, REPO);
    deploys
        .github
        .set_commit_state(REPO, &first, "ci/switchyard", "pending");
    let send = async |delivery: &str, kind: &str, sha: &str| {
        let (status, _) = deploys
            .host
            .send(kind, delivery, &green_event(kind, sha))
            .await;
        assert_eq!(status, 202);
        let jobs = deploys.host.ended_jobs(delivery, 1).await;
        jobs[0].note.clone().unwrap_or_default()
    };

    // Another context's success while the required one is pending: GitHub refuses (409), the
    // claim is given back, nothing is deployed.
    let note = send("s-pending", "status", &first).await;
    assert!(note.contains("is not green for preview yet"), "{note}");
    assert!(deploys.deployments_created().is_empty());
    // Green now: one deployment, whichever events report it.
    deploys
        .github
        .set_commit_state(REPO, &first, "ci/switchyard", "success");
    let note = send("s-green", "status", &first).await;
    assert!(note.contains("created deployment 1 of"), "{note}");
    let note = send("s-suite", "check_suite", &first).await;
    assert!(note.contains("was already deployed to preview"), "{note}");
    let created = deploys.deployments_created();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["ref"], json!(first));
    assert_eq!(created[0]["environment"], json!("preview"));
    assert_eq!(created[0]["required_contexts"], json!(["ci/switchyard"]));
    deploys.wait_for_state(1, "success").await;

    // A sha that is no longer the head deploys nothing.
    let second = deploys
        .origin
        .commit("refs/heads/main", &[("README", "two")]);
    deploys.github.set_branch(REPO, "main", &second);
    let note = send("s-old", "check_suite", &first).await;
    assert!(note.contains("is no longer the head of main"), "{note}");

    // Locked: the green head's deploy is dropped with a note; the unlock deploys it once.
    deploys
        .comment("s-lock", WRITER, 4, "/lock preview demo at 3pm")
        .await;
    deploys
        .github
        .set_commit_state(REPO, &second, "ci/switchyard", "success");
    let note = send("s-locked", "check_suite", &second).await;
    assert!(
        note.contains("on green was dropped: preview is locked by writer"),
        "{note} {:?}",
        deploys.replies()
    );
    assert_eq!(deploys.deployments_created().len(), 1);
    deploys
        .comment("s-unlock", WRITER, 4, "/unlock preview")
        .await;
    let unlocked = deploys.last_reply();
    assert!(unlocked.contains("created deployment 2 of"), "{unlocked}");
    let created = deploys.deployments_created();
    assert_eq!(created.len(), 2);
    assert_eq!(created[1]["ref"], json!(second));
    let note = send("s-again", "status", &second).await;
    assert!(note.contains("was already deployed"), "{note}");
    deploys.wait_for_state(2, "success").await;
    deploys.stop().await;
}

#[tokio::test]
async fn rollback_deploys_the_success_before_the_current_one_and_locks_the_environment() {
    let deploys = Deploys::start().await;
    let one = deploys
        .origin
        .commit("refs/heads/topic", &[("README", "one")]);
    deploys.github.open_pull_request(REPO, 4, &one, REPO);
    // Nothing deployed yet: nothing to roll back to.
    deploys
        .comment("r-none", WRITER, 4, "/rollback staging")
        .await;
    assert!(
        deploys
            .last_reply()
            .contains("nothing was deployed to `staging` yet"),
        "{:?}",
        deploys.replies()
    );

    deploys.comment("r-1", WRITER, 4, "/deploy staging").await;
    deploys.wait_for_state(1, "success").await;
    // One success only: no earlier one.
    deploys
        .comment("r-one", WRITER, 4, "/rollback staging")
        .await;
    assert!(
        deploys
            .last_reply()
            .contains("has no successful deploy before"),
        "{:?}",
        deploys.replies()
    );
    let two = deploys
        .origin
        .commit("refs/heads/topic", &[("README", "two")]);
    deploys.github.open_pull_request(REPO, 4, &two, REPO);
    deploys.comment("r-2", WRITER, 4, "/deploy staging").await;
    deploys.wait_for_state(2, "success").await;

    // A reader may not; a writer rolls back to the first sha, and holds staging.
    deploys
        .comment("r-reader", READER, 4, "/rollback staging")
        .await;
    assert!(
        deploys
            .last_reply()
            .contains("needs the `write` permission"),
        "{:?}",
        deploys.replies()
    );
    deploys
        .comment("r-back", OTHER_WRITER, 4, "/rollback staging")
        .await;
    let answer = deploys.last_reply();
    assert!(answer.contains("Rolling back `staging`"), "{answer}");
    assert!(
        answer.contains("locked by @hubot: rolled back by hubot"),
        "{answer}"
    );
    let created = deploys.deployments_created();
    assert_eq!(created.len(), 3);
    assert_eq!(created[2]["ref"], json!(one));
    assert_eq!(created[2]["payload"]["rollback"], json!(true));
    assert_eq!(created[2]["payload"]["rolled_back_from"], json!(two));
    // The rollback's deploy runs (its person holds the lock); the next deploy by another is refused.
    deploys.wait_for_state(3, "success").await;
    deploys
        .comment("r-after", WRITER, 4, "/deploy staging")
        .await;
    assert!(
        deploys.last_reply().contains("locked by @hubot"),
        "{:?}",
        deploys.replies()
    );
    // /where says what is deployed where.
    deploys.comment("r-where", READER, 4, "/where").await;
    let table = deploys.last_reply();
    let short = &one[..7];
    assert!(
        table.contains(&format!("| `staging` | {short} (#4) for hubot at"))
            || table.contains(&format!("| `staging` | {short} for hubot at")),
        "{table}"
    );
    deploys.stop().await;
}

/// Replays delivery `id` through the signed admin call, as `switchyard replay` does.
async fn replay(host: &TestHost, id: &str) {
    use switchyard::{ingress::WebhookSecret, ops::signed_call::AdminSignature};
    let path = "/admin/replay";
    let body = serde_json::to_vec(&json!({"delivery": id})).unwrap();
    let signature = AdminSignature::sign(&WebhookSecret::new(crate::support::SECRET), path, &body);
    let mut request = reqwest::Client::new().post(format!("{}{path}", host.base));
    for (name, value) in signature.headers() {
        request = request.header(name, value);
    }
    let response = request.body(body).send().await.unwrap();
    assert_eq!(
        response.status().as_u16(),
        202,
        "{:?}",
        response.text().await
    );
}

#[tokio::test]
async fn a_replayed_deploy_is_judged_again_where_it_runs_by_the_lock_and_the_permission() {
    let deploys = Deploys::start().await;
    let sha = deploys
        .origin
        .commit("refs/heads/main", &[("README", "main")]);
    // Created elsewhere by a maintainer: it runs; by a writer, for production: refused.
    for (id, creator) in [(60, MAINTAINER), (61, WRITER)] {
        let mut event = example("deployment", None);
        event["deployment"]["id"] = json!(id);
        event["deployment"]["sha"] = json!(sha);
        event["deployment"]["environment"] = json!("production");
        event["deployment"]["payload"] = json!({});
        event["deployment"]["creator"] = json!({"login": creator.0, "id": creator.1});
        event["repository"]["full_name"] = json!(REPO);
        let (status, _) = deploys
            .host
            .send("deployment", &format!("d-{id}"), &event)
            .await;
        assert_eq!(status, 202);
        deploys.host.ended_jobs(&format!("d-{id}"), 1).await;
    }
    deploys.wait_for_state(60, "success").await;
    deploys.wait_for_state(61, "failure").await;

    // The writer's replayed: refused again, the replay is no way around the permission.
    replay(&deploys.host, "d-61").await;
    deploys.host.ended_jobs("d-61", 2).await;
    let failures = deploys.states(61);
    let refused: Vec<_> = failures.iter().filter(|(s, _)| s == "failure").collect();
    assert_eq!(refused.len(), 2, "{failures:?}");
    assert!(refused[1].1.contains("writer has write"), "{failures:?}");

    // The maintainer's replayed while someone holds production: refused with the lock's owner.
    deploys.github.open_pull_request(REPO, 4, &sha, REPO);
    deploys
        .comment(
            "d-lock",
            OTHER_WRITER,
            4,
            "/lock production hotfix in progress",
        )
        .await;
    assert!(
        deploys.last_reply().contains("needs `maintain`"),
        "{:?}",
        deploys.replies()
    );
    let journal = &deploys.host.host_state.journal;
    let lock = switchyard::journal::StickyLockRow {
        repository: REPO.to_owned(),
        environment: "production".to_owned(),
        owner: format!("github:{}", OTHER_WRITER.1),
        owner_login: OTHER_WRITER.0.to_owned(),
        reason: "hotfix in progress".to_owned(),
        at: "2026-01-01T00:00:00Z".to_owned(),
    };
    journal.take_sticky_lock(lock).await.unwrap();
    replay(&deploys.host, "d-60").await;
    deploys.host.ended_jobs("d-60", 2).await;
    let states = deploys.states(60);
    let last = states.last().unwrap();
    assert_eq!(last.0, "failure", "{states:?}");
    assert!(
        last.1.contains("production is locked by hubot"),
        "{states:?}"
    );
    deploys.stop().await;
}
