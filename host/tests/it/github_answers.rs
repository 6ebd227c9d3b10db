//! GitHub's answers read within bounds, whoever made the call (a catch-up round, a plugin, a
//! token being minted): over `[github] max_answer_mib` with and without `Content-Length`,
//! trickling past `[github] timeout_secs`, cut off; and a credential with a line break.

use std::sync::Arc;

use serde_json::json;
use switchyard::{
    catch_up::{CatchUp, CatchUpError, Hook, RoundOptions},
    config::CatchUpConfig,
    journal::JobState,
};
use switchyard_testkit::BadAnswer;

use crate::support::{FakeGitHub, HostSpec, TOKEN, TestHost, behaviours, example};

const REPO: &str = "Codertocat/Hello-World";
const HOOK: &str = "repos/Codertocat/Hello-World/hooks/9";
const LIST: &str = "/repos/Codertocat/Hello-World/hooks/9/deliveries";

/// A host in token mode with `[github]` set to `settings`, whose plugin makes `GET path`.
async fn host(github: &FakeGitHub, settings: &str, path: &str) -> TestHost {
    TestHost::start(HostSpec {
        plugins: behaviours(
            "caller",
            "",
            &format!("behaviour = \"github_call\"\nmethod = \"GET\"\npath = \"{path}\""),
        ),
        github_url: Some(github.url().to_owned()),
        github_token: Some(TOKEN),
        github: settings.to_owned(),
        ..Default::default()
    })
    .await
}

/// One catch-up round over the repository hook, as the host's own task runs it.
async fn round(host: &TestHost) -> Result<usize, CatchUpError> {
    let state = &host.host_state;
    let catch_up = CatchUp {
        github: Arc::clone(&state.github),
        journal: state.journal.clone(),
        metrics: Arc::clone(&state.metrics),
        settings: CatchUpConfig::default(),
        hooks: Vec::new(),
    };
    let hook = Hook {
        path: HOOK.to_owned(),
    };
    catch_up
        .round(&hook, RoundOptions::default())
        .await
        .map(|round| round.listed)
}

fn lists(github: &FakeGitHub) -> usize {
    let requests = github.requests();
    requests.iter().filter(|r| r.path == LIST).count()
}

#[tokio::test]
async fn an_answer_over_the_limit_is_refused_naming_the_call_and_the_limit_without_being_read() {
    let github = FakeGitHub::start().await;
    let host = host(&github, "max_answer_mib = 1", &format!("/repos/{REPO}/big")).await;
    // 4 GiB: read whole, the test would run out of memory long before it ended.
    let huge = 4 << 30;
    for content_length in [true, false] {
        github.answer_badly(
            LIST,
            BadAnswer::Huge {
                bytes: huge,
                content_length,
            },
        );
        let before = github.bytes_streamed();
        let error = round(&host).await.unwrap_err().to_string();
        assert_eq!(
            error,
            format!(
                "listing the deliveries of {HOOK}: GitHub answered 200: GET {LIST}?per_page=100: \
                 the answer is larger than [github] max_answer_mib (1 MiB)"
            ),
            "Content-Length: {content_length}"
        );
        let streamed = github.bytes_streamed() - before;
        // The limit, and what the sockets buffered meanwhile: nowhere near the answer.
        assert!(streamed < 64 << 20, "{streamed} bytes streamed");
    }
    assert_eq!(
        lists(&github),
        2,
        "an answer over the limit is not asked again"
    );

    // A plugin's call is bounded the same way, and fails its job for good.
    github.answer_badly(
        &format!("/repos/{REPO}/big"),
        BadAnswer::Huge {
            bytes: huge,
            content_length: false,
        },
    );
    let payload = example("pull_request", Some("opened"));
    assert_eq!(host.send("pull_request", "big", &payload).await.0, 202);
    let jobs = host.ended_jobs("big", 1).await;
    assert_eq!((jobs[0].state, jobs[0].attempts), (JobState::Failed, 1));
    assert_eq!(
        jobs[0].error.as_deref(),
        Some(&*format!(
            "GitHub answered 200: GET /repos/{REPO}/big: the answer is larger than [github] max_answer_mib (1 MiB)"
        ))
    );
    host.stop().await;
}

#[tokio::test]
async fn an_answer_that_times_out_or_is_cut_off_is_an_error_saying_so_and_is_retried() {
    let github = FakeGitHub::start().await;
    let host = host(&github, "timeout_secs = 1\nmax_retries = 1", "/unused").await;

    // Slow: the body still trickling when the call's time is up, at each try.
    let slow = BadAnswer::Slow {
        pause: std::time::Duration::from_millis(200),
    };
    github.answer_badly(LIST, slow.clone());
    github.answer_badly(LIST, slow);
    let error = round(&host).await.unwrap_err().to_string();
    assert!(
        error.starts_with(&format!(
            "listing the deliveries of {HOOK}: GitHub is unavailable: GET {LIST}?per_page=100 answered 200 OK, but reading its answer timed out after "
        )) && error.ends_with("(gave up after 2 attempts)"),
        "{error}"
    );
    assert_eq!(lists(&github), 2);

    for content_length in [true, false] {
        let cut = BadAnswer::Cut { content_length };
        // Cut at every try: the round fails saying so.
        github.answer_badly(LIST, cut.clone());
        github.answer_badly(LIST, cut.clone());
        let error = round(&host).await.unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "listing the deliveries of {HOOK}: GitHub is unavailable: GET {LIST}?per_page=100 answered 200 OK, but its answer was cut off after "
            )) && error.ends_with("(gave up after 2 attempts)"),
            "Content-Length: {content_length}: {error}"
        );
        // Cut once: the retry reads the whole list, and the round goes on.
        github.answer_badly(LIST, cut);
        let before = lists(&github);
        assert_eq!(round(&host).await.unwrap(), 0);
        assert_eq!(
            lists(&github) - before,
            2,
            "Content-Length: {content_length}"
        );
    }
    host.stop().await;
}

#[tokio::test]
async fn a_token_with_a_line_break_is_never_sent_nor_kept_and_each_attempt_asks_anew() {
    let github = FakeGitHub::start_app().await;
    github.install(1, "Codertocat", &[REPO], &[("metadata", "read")]);
    github.answer_badly(
        "/app/installations/1/access_tokens",
        BadAnswer::Json {
            status: 201,
            body: json!({"token": "ghs_injected\r\nX-Injected: 1", "expires_at": "2099-01-01T00:00:00Z"}),
        },
    );
    let path = format!("/repos/{REPO}/commits");
    let host = TestHost::start(HostSpec {
        plugins: behaviours(
            "caller",
            "max_attempts = 3",
            &format!("behaviour = \"github_call\"\nmethod = \"GET\"\npath = \"{path}\""),
        ),
        github_url: Some(github.url().to_owned()),
        app: true,
        ..Default::default()
    })
    .await;
    let mut payload = example("pull_request", Some("opened"));
    payload["installation"] = json!({"id": 1});
    assert_eq!(host.send("pull_request", "crlf", &payload).await.0, 202);
    let jobs = host.ended_jobs("crlf", 1).await;
    // Refused as it is minted, and retried: the next attempt is given a good token (GitHub
    // answered badly once), whose call the fake answers 404.
    assert_eq!((jobs[0].state, jobs[0].attempts), (JobState::Failed, 2));
    let error = jobs[0].error.as_deref().unwrap();
    assert!(!error.contains("ghs_injected"), "{error}");
    // The bad token was never sent, and never kept: the retry asked for a token of its own.
    let calls: Vec<String> = github.requests().into_iter().map(|r| r.path).collect();
    let mint = "/app/installations/1/access_tokens".to_owned();
    assert_eq!(calls, [mint.clone(), mint, path.clone()]);
    host.stop().await;
}
