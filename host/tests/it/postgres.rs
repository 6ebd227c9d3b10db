//! Several hosts sharing one PostgreSQL journal: deliveries sent to both run once each, a
//! delivery sent to both at once is stored once, a host killed with its jobs running leaves
//! them to the other after their leases, a log written on one host streams from the other,
//! and the database going away gets 503s (never a 202 for what was not stored) until it is
//! back; of two hosts catching up missed deliveries at once, one redelivers each; a cancel
//! asked for anywhere reaches the job on the host that runs it; a job a graceful shutdown
//! interrupted is run by the other host at once, not after its lease. Each test has a database of its own on the private server (`switchyard_testkit::TestPostgres`);
//! without PostgreSQL installed they say so and pass, except under `CI=true`.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::StreamExt as _;
use switchyard::journal::{JobState, PostgresJournal, PostgresSettings, prelude::*};
use switchyard_testkit::TestPostgres;

use crate::dashboard::Dash;
use crate::support::{
    EVENT_LOG, HostSpec, SECRET, TestHost, behaviours, example, expand, library,
    net::{free_port, wait_until_listening},
    send_signed,
    server::spawn_server,
};

/// `[store]` keys for a host on the database at `url`, its URL in a file (as `url_file`), with
/// leases of `lease_secs`.
pub(crate) fn store_with_lease(url: &str, lease_secs: u64) -> (tempfile::TempDir, String) {
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("database-url");
    std::fs::write(&file, format!("{url}\n")).unwrap();
    let keys = format!(
        "backend = \"postgres\"\nurl_file = \"{}\"\nlease_secs = {lease_secs}\npoll_secs = 1\n",
        file.display()
    );
    (secrets, keys)
}

/// [`store_with_lease`] with 3 s leases.
fn store(url: &str) -> (tempfile::TempDir, String) {
    store_with_lease(url, 3)
}

/// The test's own look at the database.
pub(crate) async fn journal(url: &str) -> PostgresJournal {
    PostgresJournal::open(PostgresSettings {
        url: url.to_owned(),
        origin: "the test".into(),
        pool_size: 4,
        tls: None,
        lease: Duration::from_secs(30),
        poll: Duration::from_secs(1),
    })
    .await
    .unwrap()
}

async fn two_hosts(url: &str, plugins: &str) -> (TestHost, TestHost, tempfile::TempDir) {
    let (secrets, keys) = store(url);
    let spec = || HostSpec {
        store: keys.clone(),
        plugins: plugins.to_owned(),
        ..HostSpec::default()
    };
    let a = TestHost::start(spec()).await;
    let b = TestHost::start(spec()).await;
    (a, b, secrets)
}

#[tokio::test]
async fn deliveries_sent_to_two_hosts_run_once_each_and_one_sent_to_both_is_stored_once() {
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    let (a, b, _secrets) = two_hosts(&url, EVENT_LOG).await;
    let payload = example("pull_request", Some("opened"));
    let mut sent = Vec::new();
    for n in 0..30 {
        let delivery = format!("shared-{n}");
        let host = if n % 2 == 0 { &a } else { &b };
        assert_eq!(host.send("pull_request", &delivery, &payload).await.0, 202);
        sent.push(delivery);
    }
    // The same delivery to both hosts at once: one stores it, the other finds it stored.
    let (first, second) = tokio::join!(
        a.send("pull_request", "both", &payload),
        b.send("pull_request", "both", &payload)
    );
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [200, 202], "one stored, one found stored");
    let duplicates = [&first.1, &second.1]
        .iter()
        .filter(|answer| answer["duplicate"] == true)
        .count();
    assert_eq!(duplicates, 1, "{first:?} {second:?}");
    sent.push("both".into());

    let observer = journal(&url).await;
    for delivery in &sent {
        let jobs = crate::support::ended_jobs(&observer, delivery, 1).await;
        assert_eq!(
            (jobs[0].state, jobs[0].attempts),
            (JobState::Succeeded, 1),
            "{delivery}"
        );
    }
    // Each ran on exactly one host: the event-log lines of both hosts, together, name every
    // delivery once.
    let mut logged: Vec<String> = a
        .events_logged()
        .into_iter()
        .chain(b.events_logged())
        .map(|event| event["delivery"].as_str().unwrap().to_owned())
        .collect();
    logged.sort();
    sent.sort();
    assert_eq!(logged, sent);
    a.stop().await;
    b.stop().await;
}

/// Under load (64 senders at once, split over two hosts, a tenth of the ids sent to both),
/// the group commit keeps every delivery, stores each id once, and runs every job once.
#[tokio::test]
async fn under_load_two_hosts_keep_every_delivery_and_run_every_job_once() {
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    let (a, b, _secrets) = two_hosts(&url, EVENT_LOG).await;
    let payload = example("pull_request", Some("opened"));
    let payload = &payload;
    let ids: Vec<String> = (0..320).map(|n| format!("load-{n}")).collect();
    // Each id to one host, and every tenth to both at once.
    let mut sends = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let to_both = n % 10 == 0;
        for (m, host) in [&a, &b].into_iter().enumerate() {
            if to_both || n % 2 == m {
                sends.push(async move { host.send("pull_request", id, payload).await });
            }
        }
    }
    let answers = futures_util::stream::iter(sends)
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let stored = answers.iter().filter(|(status, _)| *status == 202).count();
    let duplicates = answers
        .iter()
        .filter(|(status, answer)| *status == 200 && answer["duplicate"] == true)
        .count();
    assert_eq!(stored, ids.len(), "each id stored once: {answers:?}");
    assert_eq!(
        duplicates,
        ids.len() / 10,
        "each id sent twice found stored once"
    );

    let observer = journal(&url).await;
    for id in &ids {
        let jobs = crate::support::ended_jobs(&observer, id, 1).await;
        assert_eq!(
            (jobs[0].state, jobs[0].attempts),
            (JobState::Succeeded, 1),
            "{id}"
        );
    }
    let mut logged: Vec<String> = a
        .events_logged()
        .into_iter()
        .chain(b.events_logged())
        .map(|event| event["delivery"].as_str().unwrap().to_owned())
        .collect();
    logged.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(logged, expected, "every job ran once, on one host");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_log_written_on_one_host_streams_live_from_the_other() {
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    let script = "echo first-line; sleep 3; echo second-line";
    let plugin = behaviours(
        "runner",
        "",
        &format!("behaviour = \"run\"\nscript = {script:?}"),
    );
    let (a, b, _secrets) = two_hosts(&url, &plugin).await;
    let (status, answer) = a
        .send(
            "pull_request",
            "logged-1",
            &example("pull_request", Some("opened")),
        )
        .await;
    assert_eq!(status, 202);
    let job = switchyard::journal::JobId(answer["jobs"][0]["job"].as_i64().unwrap());
    let observer = journal(&url).await;
    // Whichever host runs it, the other reads it (the same link works on both).
    let deadline = Instant::now() + Duration::from_secs(30);
    while observer.log_len(job).await.unwrap() == 0 {
        assert!(Instant::now() < deadline, "no log line");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(observer.job(job).await.unwrap().state, JobState::Running);
    assert_eq!(a.log_path(job).await, b.log_path(job).await);
    let mut reading_a = a.get_streaming(&a.log_path(job).await).await;
    let mut reading_b = b.get_streaming(&b.log_path(job).await).await;
    assert_eq!(reading_b.status(), 200);
    // The first line arrives while the job still runs ...
    let first = reading_b.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("first-line"));
    assert_ne!(observer.job(job).await.unwrap().state, JobState::Succeeded);
    // ... and the stream ends with the job, the whole log sent, the same on both hosts.
    let mut rest_b = first.to_vec();
    while let Some(chunk) = reading_b.chunk().await.unwrap() {
        rest_b.extend_from_slice(&chunk);
    }
    let mut whole_a = Vec::new();
    while let Some(chunk) = reading_a.chunk().await.unwrap() {
        whole_a.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(rest_b).unwrap();
    assert!(text.contains("second-line"), "{text}");
    assert_eq!(String::from_utf8(whole_a).unwrap(), text);
    assert_eq!(observer.job(job).await.unwrap().state, JobState::Succeeded);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_log_written_on_one_host_is_followed_live_on_the_others_dashboard_with_times() {
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    let (_secrets, keys) = store(&url);
    let script = "echo first-line; sleep 3; echo second-line";
    let spec = || HostSpec {
        store: keys.clone(),
        plugins: behaviours(
            "runner",
            "",
            &format!("behaviour = \"run\"\nscript = {script:?}"),
        ),
        ..HostSpec::default()
    };
    // Host A alone takes the job; B starts once it runs, and shows its log.
    let a = Dash::start_with("", spec()).await;
    let payload = example("pull_request", Some("opened"));
    let (status, answer) = a.host.send("pull_request", "followed-1", &payload).await;
    assert_eq!(status, 202);
    let job = switchyard::journal::JobId(answer["jobs"][0]["job"].as_i64().unwrap());
    let observer = journal(&url).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while observer.log_len(job).await.unwrap() == 0 {
        assert!(Instant::now() < deadline, "no log line");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b = Dash::start_with("", spec()).await.signed_in().await;
    let mut following = b
        .get(&format!(
            "/dashboard/jobs/{job}/follow?offset=0&timestamps=1"
        ))
        .await;
    assert_eq!(following.status(), 200);
    // The first line arrives, with its time, while the job still runs on A ...
    let first = following.chunk().await.unwrap().unwrap();
    let first = String::from_utf8_lossy(&first).into_owned();
    assert!(first.contains("first-line"), "{first}");
    assert!(first.contains("<span class=\"ts\">"), "{first}");
    assert_eq!(observer.job(job).await.unwrap().state, JobState::Running);
    // ... the second later, then the end.
    let mut rest = String::new();
    while let Some(chunk) = following.chunk().await.unwrap() {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(rest.contains("second-line"), "{rest}");
    assert!(rest.contains("event: end"), "{rest}");
    assert_eq!(observer.job(job).await.unwrap().state, JobState::Succeeded);
    // B's page shows each line's time: the second written after the command's 3 s sleep.
    let page = b.ok(&format!("/dashboard/jobs/{job}?timestamps=1")).await;
    let stamp = |text: &str| -> f64 {
        let at = page.find(text).unwrap();
        let line = &page[page[..at].rfind("<span class=\"ts\">").unwrap()..];
        let stamp = &line["<span class=\"ts\">".len()..line.find("</span>").unwrap()];
        let parts: Vec<f64> = stamp.split(':').map(|p| p.parse().unwrap()).collect();
        parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
    };
    // Read as times of day: a run across midnight wraps.
    let apart = (stamp("second-line") - stamp("first-line")).rem_euclid(86_400.0);
    assert!((2.5..60.0).contains(&apart), "{apart} s apart: {page}");
    a.host.stop().await;
    b.host.stop().await;
}

#[tokio::test]
async fn a_cancel_asked_elsewhere_reaches_the_job_on_the_host_that_runs_it() {
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    let patient = behaviours(
        "patient",
        "timeout_secs = 600",
        "behaviour = \"await_cancel\"",
    );
    let (a, b, _secrets) = two_hosts(&url, &patient).await;
    let payload = example("pull_request", Some("opened"));
    let (status, answer) = a.send("pull_request", "far-1", &payload).await;
    assert_eq!(status, 202);
    let job = switchyard::journal::JobId(answer["jobs"][0]["job"].as_i64().unwrap());
    let observer = journal(&url).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while observer.job(job).await.unwrap().state != JobState::Running {
        assert!(Instant::now() < deadline, "the job never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Asked from a journal that runs nothing: only the database carries it to the host.
    let reason = switchyard_plugin_api::CancelReason::User { by: "mona".into() };
    let asked = observer.request_cancel(job, &reason).await.unwrap();
    assert_eq!(asked, Some(JobState::Running));
    let ended = crate::support::ended_jobs(&observer, "far-1", 1).await;
    assert_eq!(
        (ended[0].state, ended[0].attempts, ended[0].error.as_deref()),
        (JobState::Failed, 1, Some("stopped: cancelled by mona")),
        "the plugin was told who, and the job is not tried again"
    );
    let (_, log) = b.get(&b.log_path(job).await).await;
    assert!(log.contains("cancelled: cancelled by mona"), "{log}");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_job_interrupted_by_a_graceful_shutdown_is_run_by_the_other_host_without_waiting_for_its_lease()
 {
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    let (_secrets, keys) = store(&url);
    // A lease far longer than the test may wait: only the hand-back lets the other host run it.
    let keys = keys.replace("lease_secs = 3", "lease_secs = 600");
    let patient = behaviours(
        "patient",
        "timeout_secs = 600",
        "behaviour = \"await_cancel\"",
    );
    let spec = |server: &str| HostSpec {
        store: keys.clone(),
        plugins: patient.clone(),
        server: server.to_owned(),
        workers: "cancel_grace_secs = 1".to_owned(),
        ..HostSpec::default()
    };
    // The first host takes the job; the second starts once it runs.
    let first = TestHost::start(spec("shutdown_grace_secs = 2")).await;
    let payload = example("pull_request", Some("opened"));
    let (status, answer) = first.send("pull_request", "handed-1", &payload).await;
    assert_eq!(status, 202);
    let job = switchyard::journal::JobId(answer["jobs"][0]["job"].as_i64().unwrap());
    let observer = journal(&url).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while observer.job(job).await.unwrap().state != JobState::Running {
        assert!(Instant::now() < deadline, "the job never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = TestHost::start(spec("shutdown_grace_secs = 2")).await;
    first.stop().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let record = observer.job(job).await.unwrap();
        if (record.state, record.attempts) == (JobState::Running, 2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not run again within a minute of the shutdown: {record:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The first attempt said why it stopped (read from the journal: the live log would follow
    // the second attempt until it ends).
    let chunks = observer.read_log(job, 0, 1000).await.unwrap();
    let log = String::from_utf8_lossy(&chunks.concat()).into_owned();
    assert!(log.contains("interrupted by the shutdown"), "{log}");
    second.stop().await;
}

#[tokio::test]
async fn the_database_going_away_gets_503_never_a_202_and_the_host_recovers() {
    let Some(server) = TestPostgres::dedicated() else {
        return;
    };
    let url = server.database();
    let (_secrets, keys) = store(&url);
    let host = TestHost::start(HostSpec {
        store: keys,
        plugins: EVENT_LOG.into(),
        ..HostSpec::default()
    })
    .await;
    let payload = example("pull_request", Some("opened"));
    assert_eq!(host.send("pull_request", "before", &payload).await.0, 202);
    host.ended_jobs("before", 1).await;

    server.stop();
    for n in 0..5 {
        let (status, _) = host
            .send("pull_request", &format!("during-{n}"), &payload)
            .await;
        assert_eq!(
            status, 503,
            "delivery during-{n} while the database is down"
        );
    }
    assert_eq!(host.get("/readyz").await.0, 503);

    server.start();
    // Back by itself: the pool reconnects.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = host.send("pull_request", "after", &payload).await;
        if status == 202 {
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "the host did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(host.get("/readyz").await.0, 200);
    host.ended_jobs("after", 1).await;
    // Nothing answered 503 was stored.
    for n in 0..5 {
        let during = format!("during-{n}");
        assert!(
            host.host_state
                .journal
                .delivery(&during)
                .await
                .unwrap()
                .is_none()
        );
    }
    host.stop().await;
}

fn write_config(dir: &Path, port: u16, sleep_millis: u64) -> PathBuf {
    let _ = library("switchyard-test-behaviours");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nsecret_env = \"PG_TEST_SECRET\"\n\
         [store]\npath = \"{{dir}}/local.db\"\nbackend = \"postgres\"\nurl_env = \"PG_TEST_URL\"\n\
         lease_secs = 3\npoll_secs = 1\n{}",
        behaviours(
            "slow",
            "timeout_secs = 120\nmax_attempts = 3",
            &format!("behaviour = \"sleep\"\nmillis = {sleep_millis}")
        )
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, expand(&text, dir)).unwrap();
    path
}

#[tokio::test]
async fn a_host_killed_with_jobs_running_leaves_them_to_the_other_after_their_leases() {
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    let env = [("PG_TEST_SECRET", SECRET), ("PG_TEST_URL", url.as_str())];
    let observer = Arc::new(journal(&url).await);

    // Host A: its jobs sleep far longer than the test.
    let dir_a = tempfile::tempdir().unwrap();
    let port_a = free_port();
    let mut host_a = spawn_server(&write_config(dir_a.path(), port_a, 600_000), &env, None);
    wait_until_listening(port_a).await;
    let payload = example("pull_request", Some("opened"));
    let url_a = format!("http://127.0.0.1:{port_a}/event_handler");
    let sent: Vec<String> = (0..5).map(|n| format!("killed-{n}")).collect();
    for delivery in &sent {
        assert_eq!(
            send_signed(&url_a, "pull_request", delivery, &payload).await,
            202
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for delivery in &sent {
        while observer.jobs_of(delivery).await.unwrap()[0].state != JobState::Running {
            assert!(Instant::now() < deadline, "{delivery} did not start on A");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    host_a.0.kill().unwrap(); // SIGKILL: no end recorded, no lease given back.
    host_a.0.wait().unwrap();

    // Host B, quick jobs: it runs A's again once their leases expire, each once more.
    let dir_b = tempfile::tempdir().unwrap();
    let port_b = free_port();
    let _host_b = spawn_server(&write_config(dir_b.path(), port_b, 1), &env, None);
    wait_until_listening(port_b).await;
    for delivery in &sent {
        let jobs = crate::support::ended_jobs(&*observer, delivery, 1).await;
        assert_eq!(
            (jobs[0].state, jobs[0].attempts),
            (JobState::Succeeded, 2),
            "{delivery}: the killed attempt counted, the re-run succeeded"
        );
    }
}

#[tokio::test]
async fn of_two_hosts_catching_up_at_once_one_redelivers_each_missed_delivery() {
    use switchyard::{
        catch_up::{CatchUp, Hook, RoundOptions},
        config::CatchUpConfig,
    };
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    let github = switchyard_testkit::FakeGitHub::start().await;
    let (secrets, keys) = store(&url);
    let spec = || HostSpec {
        store: keys.clone(),
        plugins: EVENT_LOG.to_owned(),
        github_url: Some(github.url().to_owned()),
        github_token: Some(crate::support::TOKEN),
        ..HostSpec::default()
    };
    let (a, b) = (TestHost::start(spec()).await, TestHost::start(spec()).await);
    let _secrets = secrets;
    github.send_webhooks_to(&a.webhook_url(), SECRET);
    let hook = "repos/Codertocat/Hello-World/hooks/9";
    let payload = example("pull_request", Some("opened"));
    let missed: Vec<String> = (0..3)
        .map(|n| {
            let guid = format!("missed-{n}");
            github.record_delivery(hook, &guid, "pull_request", &payload, ("timed out", 0));
            guid
        })
        .collect();
    // Each host's round, as its catch-up task would run it, both at once.
    let catch_up = |host: &TestHost| CatchUp {
        github: Arc::clone(&host.host_state.github),
        journal: host.host_state.journal.clone(),
        metrics: Arc::clone(&host.host_state.metrics),
        settings: CatchUpConfig::default(),
        hooks: Vec::new(),
    };
    let (on_a, on_b) = (catch_up(&a), catch_up(&b));
    let hook = Hook {
        path: hook.to_owned(),
    };
    let (round_a, round_b) = tokio::join!(
        on_a.round(&hook, RoundOptions::default()),
        on_b.round(&hook, RoundOptions::default())
    );
    let (round_a, round_b) = (round_a.unwrap(), round_b.unwrap());
    // One round does the work. The other either found it taken (the rounds overlapped) or,
    // when it only began once the first had moved the mark (a loaded machine), listed nothing.
    let (worker, other) = if round_a.redelivered.is_empty() {
        (&round_b, &round_a)
    } else {
        (&round_a, &round_b)
    };
    assert!(
        !worker.taken && other.redelivered.is_empty() && (other.taken || other.listed == 0),
        "one round each: {round_a:?} {round_b:?}"
    );
    let mut redelivered = [round_a.redelivered, round_b.redelivered].concat();
    redelivered.sort();
    assert_eq!(redelivered, missed);
    for guid in &missed {
        crate::support::ended_jobs(&*a.host_state.journal, guid, 1).await;
    }
    let asked = github.calls("repos/redeliver-webhook-delivery");
    assert_eq!(asked.len(), 3, "none twice: {asked:?}");
    assert!(github.violations().is_empty(), "{:?}", github.violations());
    a.stop().await;
    b.stop().await;
}
