//! Hosts sharing PostgreSQL through restarts and lost connections: a job survives three
//! rolling restarts with `max_attempts = 1`; a host whose database connection is cut stops its
//! job and kills its command before another host runs it (the deploy lock never held twice);
//! a SIGHUP while the host starts does not kill it. Without PostgreSQL installed they say so
//! and pass, except under `CI=true`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use switchyard::journal::{JobId, JobState, PostgresJournal, prelude::*};
use switchyard_testkit::TestPostgres;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::postgres::{journal, store_with_lease};
use crate::support::{
    HostSpec, SECRET, TestHost, behaviours, example, expand,
    net::{free_port, wait_until_listening},
    server::spawn_server,
};

/// A TCP proxy on loopback to `127.0.0.1:target`: connections wait until it is released, and
/// cutting it closes every connection and refuses new ones (a database out of reach).
struct Proxy {
    port: u16,
    released: tokio::sync::watch::Sender<bool>,
    cut: CancellationToken,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl Proxy {
    async fn start(target: u16, released: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (release, watch) = tokio::sync::watch::channel(released);
        let cut = CancellationToken::new();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (stop, counter) = (cut.clone(), Arc::clone(&accepted));
        tokio::spawn(async move {
            loop {
                let (mut client, _) = tokio::select! {
                    accepted = listener.accept() => accepted.unwrap(),
                    () = stop.cancelled() => return,
                };
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (mut watch, stop) = (watch.clone(), stop.clone());
                tokio::spawn(async move {
                    let forwarding = async {
                        let _ = watch.wait_for(|released| *released).await;
                        let mut server = TcpStream::connect(("127.0.0.1", target)).await?;
                        tokio::io::copy_bidirectional(&mut client, &mut server).await
                    };
                    tokio::select! {
                        _ = forwarding => {}
                        () = stop.cancelled() => {}
                    }
                });
            }
        });
        Self {
            port,
            released: release,
            cut,
            accepted,
        }
    }

    fn url(&self, database_url: &str, target: u16) -> String {
        database_url.replace(&format!(":{target}/"), &format!(":{}/", self.port))
    }

    fn release(&self) {
        self.released.send_replace(true);
    }

    fn cut(&self) {
        self.cut.cancel();
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn until_running_as(observer: &PostgresJournal, job: JobId, attempt: u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let record = observer.job(job).await.unwrap();
        if (record.state, record.attempts) == (JobState::Running, attempt) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not running as attempt {attempt}: {record:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_job_survives_three_rolling_restarts_with_max_attempts_1() {
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    // A lease far longer than the test: only hand-backs move the job between hosts.
    let (_secrets, keys) = store_with_lease(&url, 600);
    let scratch = tempfile::tempdir().unwrap();
    let plugins = behaviours(
        "deployer",
        "timeout_secs = 600\nmax_attempts = 1",
        &format!(
            "behaviour = \"interruptible\"\ndir = \"{}\"\ninterrupted = 3",
            scratch.path().display()
        ),
    );
    let spec = || HostSpec {
        store: keys.clone(),
        plugins: plugins.clone(),
        server: "shutdown_grace_secs = 5".to_owned(),
        workers: "cancel_grace_secs = 1".to_owned(),
        ..HostSpec::default()
    };
    let observer = journal(&url).await;
    let mut running = TestHost::start(spec()).await;
    let (status, answer) = running
        .send(
            "pull_request",
            "rolling-1",
            &example("pull_request", Some("opened")),
        )
        .await;
    assert_eq!(status, 202);
    let job = JobId(answer["jobs"][0]["job"].as_i64().unwrap());
    for attempt in 1..=3 {
        until_running_as(&observer, job, attempt).await;
        // The next host is up before this one stops, as in a rolling restart.
        let next = TestHost::start(spec()).await;
        running.stop().await;
        running = next;
    }
    let ended = crate::support::ended_jobs(&observer, "rolling-1", 1).await;
    assert_eq!(
        (ended[0].state, ended[0].attempts, ended[0].error.as_deref()),
        (JobState::Succeeded, 4, None)
    );
    let reasons = std::fs::read_to_string(scratch.path().join("reasons")).unwrap();
    assert_eq!(
        reasons.lines().collect::<Vec<_>>(),
        ["interrupted by a host shutdown; runs again after the restart"; 3]
    );
    running.stop().await;
}

#[tokio::test]
async fn a_host_that_lost_its_database_stops_its_deploy_before_another_host_runs_it() {
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    let proxy = Proxy::start(server.port(), true).await;
    let lease_secs = 4;
    let (_secrets_a, keys_a) = store_with_lease(&proxy.url(&url, server.port()), lease_secs);
    let (_secrets_b, keys_b) = store_with_lease(&url, lease_secs);
    let scratch = tempfile::tempdir().unwrap();
    // Commands run as another user (`run_as`): the folder is theirs to write to.
    std::fs::set_permissions(
        scratch.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let beats = scratch.path().join("beats");
    // Each run names itself and beats every 50 ms, holding the deploy lock.
    let script = format!(
        "id=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \\n'); \
         while :; do echo \"$id $(date +%s%N)\" >> {}; sleep 0.05; done",
        beats.display()
    );
    let plugins = behaviours(
        "deployer",
        &format!(
            "timeout_secs = 600\nmax_attempts = 2\nbinds = [\"{}:rw\"]",
            scratch.path().display()
        ),
        &format!(
            "behaviour = \"run\"\nlock = \"deploy:o/r:production\"\nscript = {:?}",
            script
        ),
    );
    let spec = |keys: &str| HostSpec {
        store: keys.to_owned(),
        plugins: plugins.clone(),
        workers: "cancel_grace_secs = 10".to_owned(),
        ..HostSpec::default()
    };
    let observer = journal(&url).await;
    let a = TestHost::start(spec(&keys_a)).await;
    let (status, answer) = a
        .send(
            "pull_request",
            "cut-1",
            &example("pull_request", Some("opened")),
        )
        .await;
    assert_eq!(status, 202);
    let job = JobId(answer["jobs"][0]["job"].as_i64().unwrap());
    until_running_as(&observer, job, 1).await;
    let b = TestHost::start(spec(&keys_b)).await;
    let read = || std::fs::read_to_string(&beats).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while read().is_empty() {
        assert!(Instant::now() < deadline, "the deploy never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.cut();
    // B runs it again once the lease expires.
    until_running_as(&observer, job, 2).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let runs = loop {
        let mut runs: Vec<(String, Vec<u128>)> = Vec::new();
        for line in read().lines() {
            let Some((id, at)) = line.split_once(' ') else {
                continue;
            };
            let Ok(at) = at.parse::<u128>() else { continue };
            match runs.iter_mut().find(|(run, _)| run == id) {
                Some((_, times)) => times.push(at),
                None => runs.push((id.to_owned(), vec![at])),
            }
        }
        if runs.len() == 2 && runs[1].1.len() > 5 {
            break runs;
        }
        assert!(
            Instant::now() < deadline,
            "the second run never beat: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let first_last = runs[0].1.iter().max().unwrap();
    let second_first = runs[1].1.iter().min().unwrap();
    assert!(
        first_last < second_first,
        "the first deploy beat {} ms into the second",
        (first_last - second_first) / 1_000_000
    );
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn sighup_while_the_host_starts_does_not_kill_it() {
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    // The database answers only once released: the host waits in its start-up meanwhile.
    let proxy = Proxy::start(server.port(), false).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nsecret_env = \"LEASES_TEST_SECRET\"\n\
         [store]\npath = \"{{dir}}/local.db\"\nbackend = \"postgres\"\nurl_env = \"LEASES_TEST_URL\"\n{}",
        crate::support::EVENT_LOG
    );
    let config = dir.path().join("config.toml");
    std::fs::write(&config, expand(&text, dir.path())).unwrap();
    let proxied = proxy.url(&url, server.port());
    let env = [
        ("LEASES_TEST_SECRET", SECRET),
        ("LEASES_TEST_URL", proxied.as_str()),
    ];
    let mut host = spawn_server(&config, &env, Some(&dir.path().join("host.log")));
    let deadline = Instant::now() + Duration::from_secs(30);
    while proxy.accepted() == 0 {
        assert!(
            Instant::now() < deadline,
            "the host never reached its database"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = nix::unistd::Pid::from_raw(host.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        host.0.try_wait().unwrap().is_none(),
        "SIGHUP during the start killed the host"
    );
    proxy.release();
    wait_until_listening(port).await;
    assert!(host.0.try_wait().unwrap().is_none());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    assert!(host.0.wait().unwrap().success());
}
