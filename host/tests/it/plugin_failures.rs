use switchyard::journal::{JobId, JobState};

use crate::support::{EVENT_LOG, HostSpec, TestHost, behaviours, example};

fn host_with(plugins: String) -> HostSpec {
    HostSpec {
        plugins,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_panicking_plugin_fails_its_job_and_the_host_keeps_serving() {
    let plugins = format!(
        "{EVENT_LOG}{}",
        behaviours("panicky", "", "behaviour = \"panic\"")
    );
    let host = TestHost::start(host_with(plugins)).await;
    let payload = example("pull_request", Some("opened"));
    for delivery in ["panic-1", "panic-2"] {
        assert_eq!(host.send("pull_request", delivery, &payload).await.0, 202);
        let jobs = host.ended_jobs(delivery, 2).await;
        let panicky = jobs.iter().find(|j| j.plugin == "panicky").unwrap();
        assert_eq!(panicky.state, JobState::Failed);
        assert_eq!(
            panicky.error.as_deref(),
            Some(format!("plugin panicked: boom in delivery {delivery}").as_str())
        );
        let logged = jobs.iter().find(|j| j.plugin == "event-log").unwrap();
        assert_eq!(logged.state, JobState::Succeeded);
    }
    host.stop().await;
}

#[tokio::test]
async fn a_hanging_plugin_is_cut_off_by_its_timeout() {
    let plugins = behaviours(
        "hangs",
        "timeout_secs = 1",
        "behaviour = \"sleep\"\nmillis = 600000",
    );
    let host = TestHost::start(host_with(plugins)).await;
    assert_eq!(
        host.send(
            "pull_request",
            "hang-1",
            &example("pull_request", Some("opened"))
        )
        .await
        .0,
        202
    );
    let jobs = host.ended_jobs("hang-1", 1).await;
    assert_eq!(jobs[0].state, JobState::Failed);
    assert_eq!(
        jobs[0].error.as_deref(),
        Some(
            "timed out after 1 s (the job's timeout); it did not stop within the 1 s cancel grace"
        )
    );
    host.stop().await;
}

#[tokio::test]
async fn retryable_failures_are_retried_up_to_max_attempts() {
    let plugins = format!(
        "{}{}",
        behaviours(
            "third-time-lucky",
            "max_attempts = 3",
            "behaviour = \"succeed_on_attempt\"\nattempt = 3"
        ),
        behaviours(
            "never-lucky",
            "max_attempts = 2",
            "behaviour = \"succeed_on_attempt\"\nattempt = 5"
        ),
    );
    let host = TestHost::start(host_with(plugins)).await;
    assert_eq!(
        host.send(
            "pull_request",
            "retry-1",
            &example("pull_request", Some("opened"))
        )
        .await
        .0,
        202
    );
    let jobs = host.ended_jobs("retry-1", 2).await;
    let lucky = jobs
        .iter()
        .find(|j| j.plugin == "third-time-lucky")
        .unwrap();
    assert_eq!((lucky.state, lucky.attempts), (JobState::Succeeded, 3));
    let unlucky = jobs.iter().find(|j| j.plugin == "never-lucky").unwrap();
    assert_eq!((unlucky.state, unlucky.attempts), (JobState::Failed, 2));
    assert_eq!(unlucky.error.as_deref(), Some("attempt 2 is too early"));
    host.stop().await;
}

#[tokio::test]
async fn commands_run_through_the_host_land_in_the_served_job_log() {
    let plugins = format!(
        "{}{}",
        behaviours(
            "runs",
            "",
            "behaviour = \"run\"\nscript = \"echo built by $0; echo careful >&2\""
        ),
        behaviours(
            "times-out",
            "",
            "behaviour = \"run\"\nscript = \"echo start; sleep 30\"\ntimeout_secs = 1"
        ),
    );
    let host = TestHost::start(host_with(plugins)).await;
    assert_eq!(
        host.send(
            "pull_request",
            "run-1",
            &example("pull_request", Some("opened"))
        )
        .await
        .0,
        202
    );
    let jobs = host.ended_jobs("run-1", 2).await;
    let runs = jobs.iter().find(|j| j.plugin == "runs").unwrap();
    assert_eq!(runs.state, JobState::Succeeded, "{runs:?}");
    let (status, log) = host.get(&host.log_path(runs.id).await).await;
    assert_eq!(status, 200);
    assert!(
        log.contains("built by sh\n") && log.contains("careful\n"),
        "{log}"
    );

    let timed_out = jobs.iter().find(|j| j.plugin == "times-out").unwrap();
    assert_eq!(timed_out.state, JobState::Failed);
    assert!(
        timed_out
            .error
            .as_deref()
            .unwrap()
            .contains("timed_out: true"),
        "{timed_out:?}"
    );
    let (_, log) = host.get(&host.log_path(timed_out.id).await).await;
    assert!(
        log.contains("start\n") && log.contains("killed after 1 s"),
        "{log}"
    );

    // A well-signed link to a job that does not exist tells nothing more than a bad key.
    let (status, body) = host.get(&host.log_path(JobId(999_999)).await).await;
    assert_eq!((status, body.as_str()), (404, r#"{"error":"no such log"}"#));
    host.stop().await;
}

#[tokio::test]
async fn a_running_jobs_log_streams_until_the_job_ends() {
    let script = "echo first; sleep 2; echo second";
    let plugins = behaviours(
        "streams",
        "",
        &format!("behaviour = \"run\"\nscript = \"{script}\""),
    );
    let host = TestHost::start(host_with(plugins)).await;
    assert_eq!(
        host.send(
            "pull_request",
            "stream-1",
            &example("pull_request", Some("opened"))
        )
        .await
        .0,
        202
    );
    let job = host.host_state.journal.jobs_of("stream-1").await.unwrap()[0].id;

    let mut response = host.get_streaming(&host.log_path(job).await).await;
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().expect("a first chunk");
    assert_eq!(&first[..], b"first\n");
    // The first line arrived while the command was still sleeping.
    let state = host.host_state.journal.job(job).await.unwrap().state;
    assert!(matches!(state, JobState::Running), "{state:?}");

    let mut rest = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"second\n");
    // The response ended because the job did.
    assert_eq!(
        host.host_state.journal.job(job).await.unwrap().state,
        JobState::Succeeded
    );
    host.stop().await;
}
