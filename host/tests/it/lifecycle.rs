//! A job's life from commit to recorded end: services closed when it ends, a delivery whose
//! client went still runs, shutdown within its grace, retries after their backoff, an end the
//! journal refused recorded once it can, panics and blocked threads in plugins contained.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use switchyard::{
    ingress::WebhookSecret,
    journal::{JobState, SqliteJournal, prelude::*},
};
use tokio::io::AsyncWriteExt as _;

use crate::support::{
    HostSpec, SECRET, TestHost, behaviours, eventually, example, expand,
    net::{free_port, wait_until_listening},
    send_signed,
    server::{Server, ended_jobs},
};

fn pull_request() -> serde_json::Value {
    example("pull_request", Some("opened"))
}

#[tokio::test]
async fn services_a_task_keeps_past_its_job_are_refused_and_leave_nothing_behind() {
    let scratch = tempfile::tempdir().unwrap();
    let settings = format!(
        "behaviour = \"late_services\"\ndir = \"{}\"\nmillis = 300",
        scratch.path().display()
    );
    let host = TestHost::start(HostSpec {
        plugins: behaviours("late", "", &settings),
        ..Default::default()
    })
    .await;
    assert_eq!(
        host.send("pull_request", "late-1", &pull_request()).await.0,
        202
    );
    let job = host.ended_jobs("late-1", 1).await[0].clone();
    assert_eq!(job.state, JobState::Succeeded);
    let answers = scratch.path().join("late.txt");
    eventually("the late task's answers", || answers.exists()).await;
    let answers = std::fs::read_to_string(&answers).unwrap();
    assert_eq!(
        answers, "lock: Err(JobEnded)\nrun: Err(JobEnded)\n",
        "late calls must be refused"
    );
    assert!(!scratch.path().join("ran").exists(), "a late command ran");
    let (_, log) = host.get(&host.log_path(job.id).await).await;
    assert!(!log.contains("a late line"), "{log}");
    // The lock is free for anyone.
    let journal = &host.host_state.journal;
    assert!(journal.try_lock("late-lock", job.id, 99).await.unwrap());
    host.stop().await;
}

#[tokio::test]
async fn a_delivery_whose_client_left_during_the_commit_still_runs() {
    let host = TestHost::start(HostSpec {
        plugins: crate::support::EVENT_LOG.to_owned(),
        ..Default::default()
    })
    .await;
    let body = serde_json::to_vec(&pull_request()).unwrap();
    let signature = WebhookSecret::new(SECRET).sign_sha256(&body);
    let port = host.base.rsplit(':').next().unwrap().to_owned();
    // Each client sends a whole signed delivery and hangs up at once, before the journal's
    // commit (an fsync) can answer: the server drops its request mid-commit.
    let deliveries: Vec<String> = (0..20).map(|n| format!("left-{n}")).collect();
    for delivery in &deliveries {
        let mut stream = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        let head = format!(
            "POST /event_handler HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             X-GitHub-Event: pull_request\r\nX-GitHub-Delivery: {delivery}\r\n\
             X-Hub-Signature-256: {signature}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body).await.unwrap();
        drop(stream);
    }
    // Every delivery the journal took runs, with no restart, and long before the periodic
    // sweep (30 s) would find one left behind.
    let journal = &host.host_state.journal;
    let deadline = Instant::now() + Duration::from_secs(10);
    for delivery in &deliveries {
        loop {
            let jobs = journal.jobs_of(delivery).await.unwrap();
            let stored = journal.delivery(delivery).await.unwrap().is_some();
            if !stored || jobs.iter().all(|j| j.state == JobState::Succeeded) {
                break;
            }
            assert!(Instant::now() < deadline, "{delivery} stayed {jobs:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    host.stop().await;
}

#[tokio::test]
async fn a_retry_never_starts_before_its_backoff_even_with_read_backs_all_the_time() {
    let host = TestHost::start(HostSpec {
        plugins: behaviours(
            "flaky",
            "max_attempts = 2",
            "behaviour = \"succeed_on_attempt\"\nattempt = 2",
        ),
        // No memory window: every job is read back from the journal, all the time.
        workers: "memory_queue_mib = 0".into(),
        ..Default::default()
    })
    .await;
    // A backoff far longer than a read-back takes (the default here is 10 ms).
    let host = {
        let file = host.dir.path().join("config.toml");
        let text = std::fs::read_to_string(&file)
            .unwrap()
            .replace("retry_backoff_ms = 10", "retry_backoff_ms = 1500");
        std::fs::write(&file, text).unwrap();
        host.restart().await
    };
    for n in 0..5 {
        let id = format!("retry-{n}");
        assert_eq!(host.send("pull_request", &id, &pull_request()).await.0, 202);
    }
    for n in 0..5 {
        let job = host.ended_jobs(&format!("retry-{n}"), 1).await[0].clone();
        assert_eq!((job.state, job.attempts), (JobState::Succeeded, 2));
        let (_, log) = host.get(&host.log_path(job.id).await).await;
        let at = |attempt: u32| -> u128 {
            let prefix = format!("attempt {attempt} at ");
            let line = log.lines().find(|l| l.starts_with(&prefix)).unwrap();
            line[prefix.len()..].parse().unwrap()
        };
        let waited = at(2) - at(1);
        assert!(
            waited >= 1500,
            "attempt 2 started {waited} ms after attempt 1"
        );
    }
    host.stop().await;
}

#[tokio::test]
async fn one_blocked_thread_does_not_keep_the_same_plugins_next_job_from_running() {
    let host = TestHost::start(HostSpec {
        plugins: behaviours(
            "blocky",
            "threads = 1\ntimeout_secs = 2",
            "behaviour = \"block_thread_for\"\nprefix = \"block\"\nmillis = 8000",
        ),
        ..Default::default()
    })
    .await;
    assert_eq!(
        host.send("pull_request", "block-1", &pull_request())
            .await
            .0,
        202
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        host.send("pull_request", "free-1", &pull_request()).await.0,
        202
    );
    let free = host.ended_jobs("free-1", 1).await;
    assert_eq!(free[0].state, JobState::Succeeded, "{free:?}");
    let blocked = host.ended_jobs("block-1", 1).await;
    assert_eq!(blocked[0].state, JobState::Failed);
    assert!(
        blocked[0]
            .error
            .as_deref()
            .unwrap()
            .starts_with("timed out after 2 s"),
        "{blocked:?}"
    );
    host.stop().await;
}

#[tokio::test]
async fn a_cancelled_job_is_told_why_and_given_its_grace() {
    let host = TestHost::start(HostSpec {
        plugins: behaviours(
            "patient",
            "timeout_secs = 1",
            "behaviour = \"await_cancel\"",
        ),
        workers: "cancel_grace_secs = 5".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        host.send("pull_request", "cancel-1", &pull_request())
            .await
            .0,
        202
    );
    let job = host.ended_jobs("cancel-1", 1).await[0].clone();
    assert_eq!(job.state, JobState::Failed);
    // It answered within its grace, and its own words name the reason: they are recorded.
    assert_eq!(
        job.error.as_deref(),
        Some("stopped: timed out after 1 s (the job's timeout)")
    );
    let (_, log) = host.get(&host.log_path(job.id).await).await;
    assert!(log.contains("cancelled: timed out after 1 s"), "{log}");
    host.stop().await;
}

/// A config for a server process with these plugin entries and keys.
fn server_config(
    dir: &std::path::Path,
    port: u16,
    server: &str,
    workers: &str,
    plugins: &str,
) -> PathBuf {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
         secret_env = \"LIFECYCLE_TEST_SECRET\"\n{server}\n\
         [store]\npath = \"{{dir}}/switchyard.db\"\n[workers]\n{workers}\n{plugins}"
    );
    let config = dir.join("config.toml");
    std::fs::write(&config, expand(&text, dir)).unwrap();
    config
}

fn switchyard(config: &std::path::Path, args: &[&str]) -> Command {
    crate::support::server::command(config, args, "LIFECYCLE_TEST_SECRET")
}

#[tokio::test]
async fn sigterm_with_a_log_viewer_attached_exits_within_the_grace_and_starts_no_queued_job() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let plugins = behaviours(
        "patient",
        "timeout_secs = 600",
        "behaviour = \"await_cancel\"",
    );
    let config = server_config(
        dir.path(),
        port,
        "shutdown_grace_secs = 1",
        "concurrency = 1\ncancel_grace_secs = 5",
        &plugins,
    );
    let log = dir.path().join("host.log");
    let mut server = Server(
        switchyard(&config, &["serve"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_until_listening(port).await;
    let url = format!("http://127.0.0.1:{port}/event_handler");
    assert_eq!(
        send_signed(&url, "pull_request", "running", &pull_request()).await,
        202
    );
    assert_eq!(
        send_signed(&url, "pull_request", "waiting", &pull_request()).await,
        202
    );
    let store = dir.path().join("switchyard.db");
    let journal = SqliteJournal::open(&store).unwrap();
    let running = loop {
        let jobs = journal.jobs_of("running").await.unwrap();
        if jobs[0].state == JobState::Running {
            break (jobs[0].id, jobs[0].link_salt);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (running, running_salt) = running;
    // A viewer follows the running job's log, which would stream until the job ends.
    let links = switchyard::job_log::LogLinks::new(
        &format!("http://127.0.0.1:{port}"),
        &journal
            .host_key(switchyard::job_log::LINK_SECRET)
            .await
            .unwrap(),
    );
    let viewer = reqwest::get(links.url(running, running_salt))
        .await
        .unwrap();
    assert_eq!(viewer.status(), 200);

    let signalled = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
    let took = signalled.elapsed();
    // The viewer's stream ended with the host.
    drop(viewer.bytes().await);
    let waiting = journal.jobs_of("waiting").await.unwrap();
    assert_eq!(
        (waiting[0].state, waiting[0].attempts),
        (JobState::Queued, 0),
        "a queued job started during the shutdown ({took:?})"
    );
    // The running one was told, and handed back as interrupted, not ended: it runs after the
    // restart.
    let interrupted = journal.job(running).await.unwrap();
    assert_eq!(
        (interrupted.state, interrupted.attempts),
        (JobState::Queued, 1)
    );
    let host_log = std::fs::read_to_string(&log).unwrap();
    assert!(
        host_log.contains("interrupted by the shutdown"),
        "{host_log}"
    );
}

#[tokio::test]
async fn a_plugin_panicking_in_its_subscriptions_is_refused_by_check_and_by_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let good = crate::support::EVENT_LOG;
    let config = server_config(dir.path(), port, "", "", good);
    let mut server = Server(
        switchyard(&config, &["serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_listening(port).await;
    let panicky = behaviours("panicky", "", "behaviour = \"panic_in_subscriptions\"");
    let text = std::fs::read_to_string(&config).unwrap() + &expand(&panicky, dir.path());
    std::fs::write(&config, text).unwrap();
    let checked = switchyard(&config, &["check"]).output().unwrap();
    let printed = String::from_utf8_lossy(&checked.stderr);
    assert!(!checked.status.success());
    assert!(
        printed.contains("panicky") && printed.contains("panicked: no subscriptions today"),
        "{printed}"
    );
    // The running server refuses the reload and goes on serving.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(server.0.try_wait().unwrap().is_none(), "the server died");
    let url = format!("http://127.0.0.1:{port}/event_handler");
    assert_eq!(
        send_signed(&url, "pull_request", "after", &pull_request()).await,
        202
    );
    let store = dir.path().join("switchyard.db");
    assert_eq!(ended_jobs(&store, "after", 1).await[0].plugin, "event-log");
}

#[tokio::test]
async fn a_job_whose_end_the_journal_refused_ends_by_itself_once_it_takes_writes() {
    let host = TestHost::start(HostSpec {
        plugins: behaviours("slow", "", "behaviour = \"sleep\"\nmillis = 1000"),
        ..Default::default()
    })
    .await;
    assert_eq!(
        host.send("pull_request", "refused", &pull_request())
            .await
            .0,
        202
    );
    let journal = &host.host_state.journal;
    let job = loop {
        let jobs = journal.jobs_of("refused").await.unwrap();
        if jobs[0].state == JobState::Running {
            break jobs[0].id;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Another process holds the journal's write lock while the job ends (as a full disk or
    // a stuck backup would make every write fail): recording the end fails.
    let other = rusqlite::Connection::open(host.dir.path().join("switchyard.db")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(journal.job(job).await.unwrap().state, JobState::Running);
    other.execute_batch("ROLLBACK").unwrap();
    // Once writes go through again, the end is recorded with no restart.
    let ended = host.ended_jobs("refused", 1).await;
    assert_eq!(ended[0].state, JobState::Succeeded);
    host.stop().await;
}
