use serde_json::json;
use switchyard::journal::JobState;

use crate::support::{FakeGitHub, HostSpec, TOKEN, TestHost, behaviours, example};

async fn host(
    github: &FakeGitHub,
    token: Option<&'static str>,
    github_extra: &str,
    entry: &str,
) -> TestHost {
    TestHost::start(HostSpec {
        plugins: behaviours("status", entry, "behaviour = \"commit_status\""),
        github_url: Some(github.url().to_owned()),
        github_token: token,
        github: github_extra.to_owned(),
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn a_5xx_is_retried_and_the_request_is_what_github_expects() {
    let github = FakeGitHub::start().await;
    github.answer_next(500, &[], json!({"message": "Server Error"}));
    let host = host(&github, Some(TOKEN), "", "").await;
    let payload = example("pull_request", Some("opened"));
    assert_eq!(host.send("pull_request", "gh-1", &payload).await.0, 202);
    let jobs = host.ended_jobs("gh-1", 1).await;
    assert_eq!(jobs[0].state, JobState::Succeeded, "{jobs:?}");

    let requests = github.requests();
    assert_eq!(requests.len(), 2, "one 500, one retry");
    let repo = payload["repository"]["full_name"].as_str().unwrap();
    let sha = payload["pull_request"]["head"]["sha"].as_str().unwrap();
    for request in &requests {
        assert_eq!(
            (request.method.as_str(), request.operation),
            ("POST", Some("create_status"))
        );
        assert_eq!(request.path, format!("/repos/{repo}/statuses/{sha}"));
        assert_eq!(request.headers["authorization"], format!("Bearer {TOKEN}"));
        assert_eq!(request.headers["accept"], "application/vnd.github+json");
        assert_eq!(request.headers["x-github-api-version"], "2022-11-28");
        assert!(request.headers["user-agent"].starts_with("switchyard/"));
        assert_eq!(request.body["state"], "success");
        assert_eq!(
            request.body["target_url"],
            host.host_state.links.url(jobs[0].id, jobs[0].link_salt)
        );
    }
    assert!(github.violations().is_empty(), "{:?}", github.violations());
    host.stop().await;
}

#[tokio::test]
async fn a_422_fails_the_job_with_githubs_message_and_is_not_retried() {
    let github = FakeGitHub::start().await;
    github.answer_next(422, &[], json!({"message": "No commit found for SHA: abc"}));
    let host = host(&github, Some(TOKEN), "", "").await;
    assert_eq!(
        host.send(
            "pull_request",
            "gh-422",
            &example("pull_request", Some("opened"))
        )
        .await
        .0,
        202
    );
    let jobs = host.ended_jobs("gh-422", 1).await;
    assert_eq!(jobs[0].state, JobState::Failed);
    assert_eq!(
        jobs[0].error.as_deref(),
        Some("GitHub answered 422: No commit found for SHA: abc")
    );
    assert_eq!((jobs[0].attempts, github.requests().len()), (1, 1));
    host.stop().await;
}

#[tokio::test]
async fn rate_limits_are_waited_out() {
    let github = FakeGitHub::start().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    github.answer_next(
        429,
        &[("retry-after", "0")],
        json!({"message": "Too Many Requests"}),
    );
    github.answer_next(
        403,
        &[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", &now.to_string()),
        ],
        json!({"message": "API rate limit exceeded"}),
    );
    github.answer_next(
        403,
        &[],
        json!({"message": "You have exceeded a secondary rate limit."}),
    );
    let host = host(&github, Some(TOKEN), "", "").await;
    assert_eq!(
        host.send(
            "pull_request",
            "gh-rl",
            &example("pull_request", Some("opened"))
        )
        .await
        .0,
        202
    );
    let jobs = host.ended_jobs("gh-rl", 1).await;
    assert_eq!(jobs[0].state, JobState::Succeeded, "{jobs:?}");
    assert_eq!(github.requests().len(), 4);
    host.stop().await;
}

#[tokio::test]
async fn a_github_that_stays_down_fails_the_job_after_bounded_retries() {
    let github = FakeGitHub::start().await;
    for _ in 0..10 {
        github.answer_next(503, &[], json!({"message": "Service Unavailable"}));
    }
    let host = host(&github, Some(TOKEN), "max_retries = 2", "max_attempts = 2").await;
    assert_eq!(
        host.send(
            "pull_request",
            "gh-down",
            &example("pull_request", Some("opened"))
        )
        .await
        .0,
        202
    );
    let jobs = host.ended_jobs("gh-down", 1).await;
    assert_eq!((jobs[0].state, jobs[0].attempts), (JobState::Failed, 2));
    let error = jobs[0].error.as_deref().unwrap();
    assert!(
        error.starts_with("GitHub is unavailable:") && error.contains("gave up after 3 attempts"),
        "{error}"
    );
    assert!(!error.contains(TOKEN));
    assert_eq!(
        github.requests().len(),
        6,
        "3 tries in each of 2 job attempts"
    );
    host.stop().await;
}

#[tokio::test]
async fn without_a_token_jobs_fail_naming_the_variable() {
    let github = FakeGitHub::start().await;
    let host = host(&github, None, "", "").await;
    assert_eq!(
        host.send(
            "pull_request",
            "gh-notoken",
            &example("pull_request", Some("opened"))
        )
        .await
        .0,
        202
    );
    let jobs = host.ended_jobs("gh-notoken", 1).await;
    assert_eq!(jobs[0].state, JobState::Failed);
    assert_eq!(
        jobs[0].error.as_deref(),
        Some("no GitHub token: set the environment variable GITHUB_TOKEN")
    );
    assert!(github.requests().is_empty());
    host.stop().await;
}
