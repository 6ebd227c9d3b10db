//! The template end to end, as a copy of it can be tested anywhere: the real `switchyard` host
//! loads this package's library, gets GitHub's example `deployment` delivery pointed at a local
//! repository, runs the deploy command in a checkout, and posts deployment statuses to a fake
//! GitHub that refuses what GitHub would refuse. Needs git, and bubblewrap for the sandbox.
//!
//! The host binary: the kit builds it, inside Switchyard's workspace (`cargo build -p
//! switchyard`) and in a copy elsewhere alike (from the Switchyard checkout the kit comes from,
//! into this copy's target folder); `SWITCHYARD_BIN` overrides it (see
//! `switchyard_testkit::switchyard_bin`).

use serde_json::{Value, json};
use switchyard_testkit::{FakeGitHub, Job, JobState, Origin, TestHost, cdylib_path};

const REPO: &str = "Codertocat/Hello-World";

/// A deploy script in the repository: proves the command runs in a checkout of the commit.
const DEPLOY_SH: &str = "echo \"deploying $SWITCHYARD_SHA to $SWITCHYARD_ENVIRONMENT\"\n\
                         echo \"version $(cat VERSION)\"\n";

struct Deploys {
    github: FakeGitHub,
    origin: Origin,
    host: TestHost,
}

impl Deploys {
    /// The host with this package's plugin, `command` run for each deployment.
    async fn start(command: &str) -> Self {
        Self::start_with(FakeGitHub::start().await, command).await
    }

    /// Like `start`, against `github` (e.g. the fake as a GitHub App).
    async fn start_with(github: FakeGitHub, command: &str) -> Self {
        let origin = Origin::new(REPO);
        // Built from this package (its name is read, so a renamed copy still finds itself).
        let host = TestHost::builder(cdylib_path(env!("CARGO_PKG_NAME")))
            .name("deploy")
            .settings(&format!("command = '{command}'"))
            // The checkout's git runs in the sandbox: it must see the local repository.
            .binds(origin.binds())
            .github(&github)
            .start()
            .await;
        Self {
            github,
            origin,
            host,
        }
    }

    /// Sends GitHub's example `deployment` webhook for deployment `id` of `sha` to
    /// `environment`, cloned from the local repository, and waits for its job.
    async fn deploy(&self, id: u64, sha: &str, environment: &str) -> Job {
        let mut payload: Value =
            serde_json::from_str(include_str!("fixtures/deployment.json")).unwrap();
        payload["deployment"]["id"] = json!(id);
        payload["deployment"]["sha"] = json!(sha);
        payload["deployment"]["environment"] = json!(environment);
        payload["repository"]["clone_url"] = json!(self.origin.clone_url());
        let delivery = self.host.send("deployment", &payload).await;
        assert_eq!(delivery.jobs, 1, "the plugin subscribes to deployment");
        let mut jobs = self.host.wait(&delivery).await;
        jobs.pop().unwrap()
    }

    /// `(state, description)` of each status posted for deployment `id`, in order.
    fn statuses(&self, id: u64, log_url: &str) -> Vec<(String, String)> {
        let statuses = self.github.deployment_statuses(REPO, id);
        for status in &statuses {
            assert_eq!(
                status["log_url"], log_url,
                "every status links the job's log"
            );
        }
        let text = |status: &Value, key: &str| status[key].as_str().unwrap_or_default().to_owned();
        statuses
            .iter()
            .map(|s| (text(s, "state"), text(s, "description")))
            .collect()
    }

    async fn stop(self) {
        assert_eq!(self.github.violations(), Vec::<String>::new());
        let status = self.host.stop().await;
        assert!(status.success(), "the host exits cleanly: {status}");
    }
}

#[tokio::test]
async fn a_deployment_runs_the_command_in_a_checkout_and_reports_success() {
    let deploys = Deploys::start("sh deploy.sh").await;
    let sha = deploys.origin.commit(
        "refs/heads/main",
        &[("deploy.sh", DEPLOY_SH), ("VERSION", "1.4.2")],
    );
    let job = deploys.deploy(7, &sha, "production").await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert_eq!(
        deploys.statuses(7, &job.log_url),
        [
            ("in_progress".to_owned(), "Deploying".to_owned()),
            ("success".to_owned(), "Deployed".to_owned())
        ]
    );
    assert!(
        job.log.contains(&format!("deploying {sha} to production")),
        "{}",
        job.log
    );
    assert!(job.log.contains("version 1.4.2"), "{}", job.log);
    deploys.stop().await;
}

#[tokio::test]
async fn a_failing_command_reports_failure_with_its_exit() {
    let deploys = Deploys::start("echo \"migrations failed\" >&2; exit 3").await;
    let sha = deploys.origin.commit("refs/heads/main", &[]);
    let job = deploys.deploy(8, &sha, "production").await;
    let statuses = deploys.statuses(8, &job.log_url);
    let states: Vec<&str> = statuses.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(states, ["in_progress", "failure"], "{statuses:?}");
    assert!(
        statuses[1].1.starts_with("Deploy failed: exit 3"),
        "{statuses:?}"
    );
    assert!(job.log.contains("migrations failed"), "{}", job.log);
    // The plugin did its work, reporting the failure on GitHub: the job itself succeeded.
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    deploys.stop().await;
}

#[tokio::test]
async fn a_commit_that_cannot_be_checked_out_ends_in_error() {
    let deploys = Deploys::start("true").await;
    deploys.origin.commit("refs/heads/main", &[]);
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let job = deploys.deploy(9, missing, "production").await;
    let statuses = deploys.statuses(9, &job.log_url);
    let states: Vec<&str> = statuses.iter().map(|(s, _)| s.as_str()).collect();
    // Never left "in progress" on GitHub.
    assert_eq!(states, ["in_progress", "error"], "{statuses:?}");
    assert!(
        statuses[1].1.starts_with("Deploy errored: checkout failed"),
        "{statuses:?}"
    );
    assert_eq!(job.state, JobState::Failed, "{job:?}");
    deploys.stop().await;
}

#[tokio::test]
async fn another_environment_is_skipped_without_a_status() {
    let deploys = Deploys::start("true").await;
    let sha = deploys.origin.commit("refs/heads/main", &[]);
    let job = deploys.deploy(10, &sha, "staging").await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert!(
        job.detail
            .as_deref()
            .is_some_and(|d| d.contains("another environment")),
        "{job:?}"
    );
    assert!(deploys.github.requests().is_empty());
    deploys.stop().await;
}

#[tokio::test]
async fn as_a_github_app_the_deploy_gets_a_token_with_what_the_plugin_declares_only() {
    let github = FakeGitHub::start_app().await;
    // The installation may do more than the template needs.
    github.install(
        1,
        "Codertocat",
        &[REPO],
        &[
            ("checks", "write"),
            ("contents", "write"),
            ("deployments", "write"),
            ("statuses", "write"),
        ],
    );
    let deploys = Deploys::start_with(github, "sh deploy.sh").await;
    let sha = deploys.origin.commit(
        "refs/heads/main",
        &[("deploy.sh", DEPLOY_SH), ("VERSION", "2.0.0")],
    );
    let job = deploys.deploy(9, &sha, "production").await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    let states: Vec<String> = deploys
        .statuses(9, &job.log_url)
        .into_iter()
        .map(|(state, _)| state)
        .collect();
    assert_eq!(states, ["in_progress", "success"]);
    let minted = deploys.github.minted_tokens();
    assert_eq!(minted.len(), 1, "{minted:?}");
    assert_eq!(minted[0].repositories, [REPO]);
    let granted: Vec<(&str, &str)> = minted[0]
        .permissions
        .iter()
        .map(|(name, access)| (name.as_str(), access.as_str()))
        .collect();
    assert_eq!(granted, [("contents", "read"), ("deployments", "write")]);
    deploys.stop().await;
}
