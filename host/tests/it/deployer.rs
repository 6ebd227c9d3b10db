//! The deployer end to end: a merged pull request becomes a deployment at the fake GitHub,
//! which, like GitHub, answers with a signed `deployment` webhook; the deploy runs against a
//! local git repository and reports deployment statuses validated against GitHub's schema.

use serde_json::{Value, json};
use switchyard::journal::JobState;

use crate::support::{
    FakeGitHub, HostSpec, Origin, SECRET, TOKEN, TestHost, binds, eventually, example,
};

const REPO: &str = "Codertocat/Hello-World";

struct Deploys {
    github: FakeGitHub,
    origin: Origin,
    host: TestHost,
}

impl Deploys {
    async fn start(library: &str, settings: &str) -> Self {
        let github = FakeGitHub::start().await;
        let origin = Origin::new(REPO);
        let plugins = format!(
            "[[plugins]]\nname = \"deployer\"\nlibrary = \"{{lib:{library}}}\"\n{}\n\
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
        github.send_webhooks_to(&host.webhook_url(), SECRET);
        Self {
            github,
            origin,
            host,
        }
    }

    /// Sends a `deployment` webhook as if someone else (chat, the API) created deployment `id`.
    async fn deployment(&self, delivery: &str, id: u64, sha: &str, payload: Value) {
        let mut event = example("deployment", None);
        event["deployment"]["id"] = json!(id);
        event["deployment"]["sha"] = json!(sha);
        event["deployment"]["environment"] = json!("production");
        event["deployment"]["payload"] = payload;
        event["repository"]["full_name"] = json!(REPO);
        let (status, body) = self.host.send("deployment", delivery, &event).await;
        assert_eq!(status, 202, "{body}");
    }

    /// `(state, description, log_url)` of deployment `id`'s statuses, in order.
    fn statuses(&self, id: u64) -> Vec<(String, String, String)> {
        let path = format!("/repos/{REPO}/deployments/{id}/statuses");
        self.github
            .requests()
            .into_iter()
            .filter(|r| r.path == path)
            .map(|r| {
                let text = |key: &str| r.body[key].as_str().unwrap_or_default().to_owned();
                (text("state"), text("description"), text("log_url"))
            })
            .collect()
    }

    async fn wait_for_state(&self, id: u64, state: &str) {
        let found = || self.statuses(id).iter().any(|(s, _, _)| s == state);
        eventually(&format!("deployment {id} to be {state}"), found).await;
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

fn states(statuses: &[(String, String, String)]) -> Vec<&str> {
    statuses.iter().map(|(s, _, _)| s.as_str()).collect()
}

fn merged_pull_request(merge_commit_sha: &str, merged: bool) -> Value {
    let mut payload = example("pull_request", Some("closed"));
    payload["pull_request"]["merged"] = json!(merged);
    payload["pull_request"]["merge_commit_sha"] = json!(merge_commit_sha);
    payload["pull_request"]["base"]["ref"] = payload["repository"]["default_branch"].clone();
    payload
}

#[tokio::test]
async fn a_merged_pull_request_is_deployed_with_statuses_in_order_and_a_live_log() {
    let script = "echo \"deploying $SWITCHYARD_REPO@$SWITCHYARD_SHA ($SWITCHYARD_REF) to \
                  $SWITCHYARD_ENVIRONMENT as deployment $SWITCHYARD_DEPLOYMENT_ID, task \
                  $SWITCHYARD_TASK, for $SWITCHYARD_DEPLOY_USER: $SWITCHYARD_PAYLOAD\"";
    let deploys = Deploys::start(
        "switchyard-deployer",
        &format!(
            "command = '{script}'\nenvironment_url = \"https://app.example.com\"\n\
             required_contexts = [\"ci/switchyard\"]"
        ),
    )
    .await;
    let sha = deploys.origin.commit("refs/heads/main", &[]);
    let payload = merged_pull_request(&sha, true);
    assert_eq!(
        deploys
            .host
            .send("pull_request", "merge-1", &payload)
            .await
            .0,
        202
    );

    // The deployment GitHub was asked for.
    let jobs = deploys.host.ended_jobs("merge-1", 1).await;
    assert_eq!(jobs[0].state, JobState::Succeeded, "{jobs:?}");
    let created: Vec<_> = deploys
        .github
        .requests()
        .into_iter()
        .filter(|r| r.operation == Some("create_deployment"))
        .collect();
    assert_eq!(created.len(), 1);
    let login = payload["pull_request"]["user"]["login"].as_str().unwrap();
    let number = payload["number"].as_u64().unwrap();
    assert_eq!(created[0].path, format!("/repos/{REPO}/deployments"));
    assert_eq!(
        created[0].body,
        json!({
            "ref": sha, "task": "deploy", "auto_merge": false,
            "required_contexts": ["ci/switchyard"], "environment": "production",
            "description": format!("Deploying #{number} '{}' by {login}", payload["pull_request"]["title"].as_str().unwrap()),
            "payload": {"environment": "production", "deploy_user": login, "pull_request": number}
        })
    );

    // The deployment webhook the fake sent back ran the deploy.
    deploys.wait_for_state(1, "success").await;
    let statuses = deploys.statuses(1);
    assert_eq!(
        states(&statuses),
        ["in_progress", "success"],
        "{statuses:?}"
    );
    let log_url = &statuses[0].2;
    assert!(log_url.starts_with(&format!("{}/jobs/", deploys.host.base)));
    assert_eq!(&statuses[1].2, log_url);
    let success = deploys
        .github
        .requests()
        .into_iter()
        .rfind(|r| r.operation == Some("create_deployment_status"))
        .unwrap();
    assert_eq!(success.body["environment_url"], "https://app.example.com");

    let (status, log) = deploys
        .host
        .get(log_url.strip_prefix(&deploys.host.base).unwrap())
        .await;
    assert_eq!(status, 200);
    let expected = format!(
        "deploying {REPO}@{sha} ({sha}) to production as deployment 1, task deploy, for {login}: \
         {{\"deploy_user\":\"{login}\",\"environment\":\"production\",\"pull_request\":{number}}}"
    );
    assert!(log.contains(&expected), "{log}");
    deploys.stop().await;
}

#[tokio::test]
async fn a_closed_unmerged_pull_request_deploys_nothing() {
    let deploys = Deploys::start("switchyard-deployer", "command = \"true\"").await;
    let payload = merged_pull_request("0123456789abcdef0123456789abcdef01234567", false);
    assert_eq!(
        deploys
            .host
            .send("pull_request", "closed-1", &payload)
            .await
            .0,
        202
    );
    let jobs = deploys.host.ended_jobs("closed-1", 1).await;
    assert!(
        jobs[0]
            .note
            .as_deref()
            .unwrap_or_default()
            .contains("closed without merging"),
        "{jobs:?}"
    );
    assert!(deploys.github.requests().is_empty());
    deploys.stop().await;
}

#[tokio::test]
async fn failing_and_timed_out_deploys_report_failure_and_error() {
    let deploys = Deploys::start(
        "switchyard-deployer",
        "command = 'if [ \"$SWITCHYARD_DEPLOYMENT_ID\" = 1 ]; then exit 4; else sleep 30; fi'\n\
         timeout_secs = 1",
    )
    .await;
    let sha = deploys.origin.commit("refs/heads/main", &[]);
    deploys.deployment("fails", 1, &sha, json!({})).await;
    deploys.deployment("hangs", 2, &sha, json!({})).await;
    deploys.host.ended_jobs("fails", 1).await;
    let jobs = deploys.host.ended_jobs("hangs", 1).await;
    // The deploy's own time limit: the plugin ran to its end, and says the deploy timed out.
    assert_eq!(
        (jobs[0].state, jobs[0].verdict),
        (
            JobState::Succeeded,
            Some(switchyard_plugin_api::Verdict::TimedOut)
        )
    );

    let failed = deploys.statuses(1);
    assert_eq!(states(&failed).last(), Some(&"failure"), "{failed:?}");
    assert!(
        failed.last().unwrap().1.contains("failed: exit 4 after"),
        "{failed:?}"
    );
    let timed_out = deploys.statuses(2);
    assert_eq!(states(&timed_out).last(), Some(&"error"), "{timed_out:?}");
    assert!(
        timed_out.last().unwrap().1.ends_with("timed out after 1 s"),
        "{timed_out:?}"
    );
    deploys.stop().await;
}

#[tokio::test]
async fn two_deployments_to_one_environment_run_one_after_the_other() {
    let deploys = Deploys::start(
        "switchyard-deployer",
        "command = 'if [ \"$SWITCHYARD_DEPLOYMENT_ID\" = 1 ]; then sleep 2; fi'",
    )
    .await;
    let sha = deploys.origin.commit("refs/heads/main", &[]);
    deploys.deployment("first", 1, &sha, json!({})).await;
    deploys.wait_for_state(1, "in_progress").await;
    deploys.deployment("second", 2, &sha, json!({})).await;
    deploys.host.ended_jobs("first", 1).await;
    deploys.host.ended_jobs("second", 1).await;

    assert_eq!(states(&deploys.statuses(1)), ["in_progress", "success"]);
    assert_eq!(
        states(&deploys.statuses(2)),
        ["queued", "in_progress", "success"]
    );
    // The second started only after the first reported success.
    let order: Vec<(String, String)> = deploys
        .github
        .requests()
        .into_iter()
        .filter(|r| r.operation == Some("create_deployment_status"))
        .map(|r| (r.path, r.body["state"].as_str().unwrap().to_owned()))
        .collect();
    let position = |id: u64, state: &str| {
        let path = format!("/repos/{REPO}/deployments/{id}/statuses");
        order
            .iter()
            .position(|(p, s)| *p == path && s == state)
            .unwrap()
    };
    assert!(
        position(1, "success") < position(2, "in_progress"),
        "{order:?}"
    );
    deploys.stop().await;
}

#[tokio::test]
async fn a_deployment_payload_given_as_a_string_or_an_object_reaches_the_command() {
    let deploys = Deploys::start(
        "switchyard-deployer",
        "command = 'echo \"user=$SWITCHYARD_DEPLOY_USER payload=$SWITCHYARD_PAYLOAD\"'",
    )
    .await;
    let sha = deploys.origin.commit("refs/heads/main", &[]);
    let object = json!({"deploy_user": "hubot", "notify": true});
    deploys
        .deployment("as-object", 1, &sha, object.clone())
        .await;
    deploys
        .deployment("as-string", 2, &sha, json!(object.to_string()))
        .await;
    for delivery in ["as-object", "as-string"] {
        let jobs = deploys.host.ended_jobs(delivery, 1).await;
        let (_, log) = deploys
            .host
            .get(&deploys.host.log_path(jobs[0].id).await)
            .await;
        assert!(
            log.contains(r#"user=hubot payload={"deploy_user":"hubot","notify":true}"#),
            "{delivery}: {log}"
        );
    }
    deploys.stop().await;
}

#[tokio::test]
async fn deployment_statuses_are_recorded_and_other_environments_skipped() {
    let deploys = Deploys::start("switchyard-deployer", "command = \"true\"").await;
    let sha = deploys.origin.commit("refs/heads/main", &[]);
    let mut staging = example("deployment", None);
    staging["deployment"]["environment"] = json!("staging");
    staging["deployment"]["sha"] = json!(sha);
    assert_eq!(
        deploys
            .host
            .send("deployment", "staging-1", &staging)
            .await
            .0,
        202
    );
    let jobs = deploys.host.ended_jobs("staging-1", 1).await;
    assert!(
        jobs[0]
            .note
            .as_deref()
            .unwrap_or_default()
            .contains("staging is not in"),
        "{jobs:?}"
    );

    let mut status = example("deployment_status", None);
    status["deployment_status"]["state"] = json!("success");
    assert_eq!(
        deploys
            .host
            .send("deployment_status", "status-1", &status)
            .await
            .0,
        202
    );
    let jobs = deploys.host.ended_jobs("status-1", 1).await;
    assert_eq!(jobs[0].state, JobState::Succeeded);
    let (_, log) = deploys
        .host
        .get(&deploys.host.log_path(jobs[0].id).await)
        .await;
    assert!(log.contains("is success"), "{log}");
    assert!(
        deploys.github.requests().is_empty(),
        "recording calls nothing"
    );
    deploys.stop().await;
}

#[tokio::test]
async fn the_deploy_template_deploys_as_documented() {
    let deploys = Deploys::start(
        "switchyard-deploy-template",
        "command = 'echo \"deploying $SWITCHYARD_SHA to $SWITCHYARD_ENVIRONMENT\"'",
    )
    .await;
    let sha = deploys.origin.commit("refs/heads/main", &[]);
    deploys.deployment("template-1", 1, &sha, json!({})).await;
    let jobs = deploys.host.ended_jobs("template-1", 1).await;
    assert_eq!(jobs[0].state, JobState::Succeeded, "{jobs:?}");
    assert_eq!(states(&deploys.statuses(1)), ["in_progress", "success"]);
    let (_, log) = deploys
        .host
        .get(&deploys.host.log_path(jobs[0].id).await)
        .await;
    assert!(
        log.contains(&format!("deploying {sha} to production")),
        "{log}"
    );
    // A commit that cannot be checked out, after `in_progress` was posted: it ends in
    // `error` with the reason, never stuck in progress.
    let missing = "0123456789abcdef0123456789abcdef01234567";
    deploys
        .deployment("template-2", 2, missing, json!({}))
        .await;
    let jobs = deploys.host.ended_jobs("template-2", 1).await;
    assert_eq!(jobs[0].state, JobState::Failed, "{jobs:?}");
    let statuses = deploys.statuses(2);
    assert_eq!(states(&statuses), ["in_progress", "error"], "{statuses:?}");
    assert!(
        statuses[1].1.starts_with("Deploy errored: checkout failed"),
        "{statuses:?}"
    );
    deploys.stop().await;
}
