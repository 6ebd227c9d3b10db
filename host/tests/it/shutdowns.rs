//! What a graceful shutdown does to a running job, with real host processes on SQLite: it is
//! handed back as interrupted and runs again after the restart (even with `max_attempts = 1`),
//! also when its plugin ignores the cancel and uses its whole grace; a job interrupted
//! `max_interruptions` times is told it is given up and failed.

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use switchyard::journal::{JobRecord, JobState, SqliteJournal, prelude::*};

use crate::support::{
    behaviours, example, expand,
    net::{free_port, wait_until_listening},
    send_signed,
    server::Server,
};

/// A host process on SQLite in `dir` with one `interruptible` plugin entry.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    port: u16,
}

impl Setup {
    fn new(server: &str, workers: &str, entry: &str, settings: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let settings = format!(
            "behaviour = \"interruptible\"\ndir = \"{}\"\n{settings}",
            dir.path().display()
        );
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
             secret_env = \"SHUTDOWNS_TEST_SECRET\"\n{server}\n\
             [store]\npath = \"{{dir}}/switchyard.db\"\n[workers]\n{workers}\n{}",
            behaviours(
                "patient",
                &format!("timeout_secs = 600\n{entry}"),
                &settings
            )
        );
        let config = dir.path().join("config.toml");
        std::fs::write(&config, expand(&text, dir.path())).unwrap();
        Self { dir, config, port }
    }

    async fn start(&self) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("host.log"))
            .unwrap();
        let server = Server(
            crate::support::server::command(&self.config, &["serve"], "SHUTDOWNS_TEST_SECRET")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
        wait_until_listening(self.port).await;
        server
    }

    async fn send(&self, delivery: &str) {
        let url = format!("http://127.0.0.1:{}/event_handler", self.port);
        let payload = example("pull_request", Some("opened"));
        assert_eq!(
            send_signed(&url, "pull_request", delivery, &payload).await,
            202
        );
    }

    fn journal(&self) -> SqliteJournal {
        SqliteJournal::open(&self.dir.path().join("switchyard.db")).unwrap()
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// Waits until the plugin has been called `runs` times in all.
    async fn wait_for_runs(&self, runs: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.file("runs").lines().count() < runs {
            assert!(Instant::now() < deadline, "run {runs} never began");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn host_log(&self) -> String {
        self.file("host.log")
    }
}

/// SIGTERM, and the exit; returns how long it took and whether it exited 0.
fn terminate(server: &mut Server) -> (Duration, bool) {
    let signalled = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = server.0.wait().unwrap();
    (signalled.elapsed(), status.success())
}

async fn only_job(journal: &SqliteJournal, delivery: &str) -> JobRecord {
    journal.jobs_of(delivery).await.unwrap().remove(0)
}

/// The handed-back job as the next start reads it: queued, with its interruption counted.
async fn queued_with(journal: &SqliteJournal, delivery: &str) -> (u32, u32) {
    let job = only_job(journal, delivery).await;
    assert_eq!(job.state, JobState::Queued, "{job:?}");
    let page = journal
        .queued(switchyard::journal::JobId(0), 10, usize::MAX)
        .await
        .unwrap();
    let pending = page.jobs.iter().find(|p| p.id == job.id).unwrap();
    (pending.attempts, pending.interruptions)
}

async fn ended(journal: &SqliteJournal, delivery: &str) -> JobRecord {
    crate::support::ended_jobs(journal, delivery, 1)
        .await
        .remove(0)
}

#[tokio::test]
async fn a_job_interrupted_by_sigterm_runs_again_after_the_restart_even_with_max_attempts_1() {
    let setup = Setup::new(
        "shutdown_grace_secs = 8",
        "cancel_grace_secs = 2",
        "max_attempts = 1",
        "interrupted = 1",
    );
    let mut server = setup.start().await;
    setup.send("deploy-1").await;
    setup.wait_for_runs(1).await;
    let (took, clean) = terminate(&mut server);
    assert!(clean, "exit after {took:?}");
    // Told the truth: it runs again.
    assert_eq!(
        setup.file("reasons"),
        "interrupted by a host shutdown; runs again after the restart\n"
    );
    let journal = setup.journal();
    assert_eq!(queued_with(&journal, "deploy-1").await, (1, 1));

    let _server = setup.start().await;
    let job = ended(&journal, "deploy-1").await;
    assert_eq!(
        (job.state, job.attempts, job.error.as_deref()),
        (JobState::Succeeded, 2, None),
        "{}",
        setup.host_log()
    );
}

#[tokio::test]
async fn a_plugin_that_ignores_its_cancel_is_still_handed_back_before_the_host_exits() {
    // The plugin's grace is as long as the whole shutdown's: the host shortens it, to keep
    // time for the hand-back.
    let setup = Setup::new(
        "shutdown_grace_secs = 4",
        "cancel_grace_secs = 4",
        "",
        "interrupted = 1\nignore_cancel = true",
    );
    let mut server = setup.start().await;
    setup.send("stubborn-1").await;
    setup.wait_for_runs(1).await;
    let (took, clean) = terminate(&mut server);
    assert!(clean, "exit after {took:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert_eq!(setup.file("reasons").lines().count(), 1);
    let journal = setup.journal();
    assert_eq!(
        queued_with(&journal, "stubborn-1").await,
        (1, 1),
        "{}",
        setup.host_log()
    );
    let job = only_job(&journal, "stubborn-1").await;
    let log = setup.file(&format!("logs/{}.log", job.id));
    assert!(log.contains("interrupted by the shutdown"), "{log}");
}

#[tokio::test]
async fn a_job_interrupted_max_interruptions_times_is_told_it_is_given_up_and_fails() {
    let setup = Setup::new(
        "shutdown_grace_secs = 6",
        "cancel_grace_secs = 1\nmax_interruptions = 2",
        "max_attempts = 1",
        "interrupted = 100",
    );
    let mut server = setup.start().await;
    setup.send("restless-1").await;
    setup.wait_for_runs(1).await;
    assert!(terminate(&mut server).1);
    let journal = setup.journal();
    assert_eq!(queued_with(&journal, "restless-1").await, (1, 1));

    let mut server = setup.start().await;
    setup.wait_for_runs(2).await;
    assert!(terminate(&mut server).1);
    let reasons = setup.file("reasons");
    assert_eq!(
        reasons.lines().collect::<Vec<_>>(),
        [
            "interrupted by a host shutdown; runs again after the restart",
            "interrupted by host shutdowns 2 times; given up, not run again",
        ]
    );
    let job = only_job(&journal, "restless-1").await;
    assert_eq!((job.state, job.attempts), (JobState::Failed, 2), "{job:?}");
    assert!(
        job.error.as_deref().unwrap().contains("given up"),
        "{job:?}"
    );
    // Not started again by the next start.
    let _server = setup.start().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(setup.file("runs").lines().count(), 2);
}
