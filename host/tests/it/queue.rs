//! The job queue: memory holds a bounded window of the journal's queued jobs. With no memory
//! budget at all, every job but the one being handed over waits in the journal only, so these
//! tests drive the read-back path for every job.

use std::collections::HashSet;

use switchyard::journal::JobState;

use crate::support::{EVENT_LOG, HostSpec, TestHost, behaviours, example, send_signed};

const NO_MEMORY: &str = "concurrency = 2\nmemory_queue_mib = 0";

async fn send_many(host: &TestHost, prefix: &str, count: usize) -> Vec<String> {
    let payload = example("pull_request", Some("opened"));
    let url = host.webhook_url();
    let sends = (0..count).map(|n| {
        let (url, payload) = (url.clone(), payload.clone());
        let delivery = format!("{prefix}-{n}");
        tokio::spawn(async move {
            let status = send_signed(&url, "pull_request", &delivery, &payload).await;
            assert_eq!(status, 202, "{delivery}");
            delivery
        })
    });
    let mut sent = Vec::new();
    for send in sends.collect::<Vec<_>>() {
        sent.push(send.await.unwrap());
    }
    sent
}

#[tokio::test]
async fn jobs_past_the_memory_budget_wait_in_the_journal_and_each_runs_once() {
    let host = TestHost::start(HostSpec {
        workers: NO_MEMORY.into(),
        plugins: format!(
            "{EVENT_LOG}{}",
            behaviours("slow", "", "behaviour = \"sleep\"\nmillis = 5")
        ),
        ..HostSpec::default()
    })
    .await;
    let sent = send_many(&host, "spill", 60).await;

    for delivery in &sent {
        for job in host.ended_jobs(delivery, 2).await {
            assert_eq!(
                (job.state, job.attempts),
                (JobState::Succeeded, 1),
                "{delivery}: {job:?}"
            );
        }
    }
    let logged: Vec<String> = host
        .events_logged()
        .iter()
        .map(|line| line["delivery"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(logged.len(), sent.len(), "one line per delivery");
    let logged: HashSet<String> = logged.into_iter().collect();
    assert_eq!(logged, sent.into_iter().collect::<HashSet<_>>());
    host.stop().await;
}

#[tokio::test]
async fn retries_run_while_other_jobs_wait_in_the_journal() {
    let host = TestHost::start(HostSpec {
        workers: NO_MEMORY.into(),
        plugins: format!(
            "{EVENT_LOG}{}",
            behaviours(
                "flaky",
                "max_attempts = 3",
                "behaviour = \"succeed_on_attempt\"\nattempt = 3"
            )
        ),
        ..HostSpec::default()
    })
    .await;
    let sent = send_many(&host, "retry", 30).await;

    for delivery in &sent {
        let jobs = host.ended_jobs(delivery, 2).await;
        let flaky = jobs.iter().find(|job| job.plugin == "flaky").unwrap();
        // A retry goes back to memory past the budget; lost, the job would stay queued.
        assert_eq!(
            (flaky.state, flaky.attempts),
            (JobState::Succeeded, 3),
            "{delivery}: {flaky:?}"
        );
    }
    assert_eq!(host.events_logged().len(), sent.len());
    host.stop().await;
}
