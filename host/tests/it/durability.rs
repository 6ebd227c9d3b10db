use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use switchyard::journal::{JobState, SqliteJournal, prelude::*};

use crate::support::{
    SECRET, behaviours, example, expand, library,
    net::{free_port, wait_until_listening},
    server::{self, Server},
};

fn spawn_server(config: &Path) -> Server {
    server::spawn_server(config, &[("DURABILITY_TEST_SECRET", SECRET)], None)
}

fn write_config(dir: &Path, port: u16, sleep_millis: u64) -> std::path::PathBuf {
    let _ = library("switchyard-event-log");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nsecret_env = \"DURABILITY_TEST_SECRET\"\nshutdown_grace_secs = 5\n\
         [store]\npath = \"{{dir}}/switchyard.db\"\n{}",
        behaviours(
            "slow",
            "timeout_secs = 120",
            &format!("behaviour = \"sleep\"\nmillis = {sleep_millis}")
        )
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, expand(&text, dir)).unwrap();
    path
}

#[tokio::test]
async fn accepted_deliveries_survive_kill_9_and_run_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // First life: every job sleeps far longer than the test, so none can end before the kill.
    let config = write_config(dir.path(), port, 600_000);
    let mut server = spawn_server(&config);
    wait_until_listening(port).await;

    let client = reqwest::Client::new();
    let body = serde_json::to_vec(&example("pull_request", Some("opened"))).unwrap();
    let signature = switchyard::ingress::WebhookSecret::new(SECRET).sign_sha256(&body);
    let mut accepted = Vec::new();
    for n in 0..20 {
        let delivery = format!("crash-{n}");
        let response = client
            .post(format!("http://127.0.0.1:{port}/event_handler"))
            .header("content-type", "application/json")
            .header("x-github-event", "pull_request")
            .header("x-github-delivery", &delivery)
            .header("x-hub-signature-256", &signature)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        accepted.push(delivery);
    }
    server.0.kill().unwrap(); // SIGKILL
    server.0.wait().unwrap();

    // Second life: the same jobs, now quick, must all run.
    let config = write_config(dir.path(), port, 1);
    let mut server = spawn_server(&config);
    wait_until_listening(port).await;
    let journal = SqliteJournal::open(&dir.path().join("switchyard.db")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    for delivery in &accepted {
        loop {
            let jobs = journal.jobs_of(delivery).await.unwrap();
            assert_eq!(jobs.len(), 1, "{delivery} lost its job");
            if jobs[0].state == JobState::Succeeded {
                assert!(jobs[0].attempts >= 1);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{delivery} did not run after restart: {jobs:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // SIGTERM: stop taking deliveries, finish, exit 0.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = server.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn serve_refuses_to_start_without_a_secret_and_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 9, 1);
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("DURABILITY_TEST_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the webhook secret is not set: export DURABILITY_TEST_SECRET"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_job_the_host_died_during_every_time_is_given_up() {
    use std::sync::Arc;
    use switchyard::{
        Config, Switchyard,
        event::{Delivery, DeliveryId, EventKind, PayloadFacts},
        ingress::WebhookSecret,
        journal::Appended,
        wiring::Secrets,
    };

    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("switchyard.db");
    // Two attempts started and never ended: what two crashes mid-job leave behind.
    let journal = SqliteJournal::open(&store).unwrap();
    let delivery = Arc::new(Delivery {
        id: DeliveryId::parse("poison-1").unwrap(),
        kind: EventKind::parse("pull_request").unwrap(),
        facts: PayloadFacts {
            action: Some("opened".into()),
            repository: None,
            sender: None,
            private: None,
        },
        payload: bytes::Bytes::from_static(b"{\"action\":\"opened\"}"),
        received_at: "2026-01-01T00:00:00Z".into(),
        headers: Vec::new(),
    });
    let Appended::New(jobs) = journal
        .append(delivery, vec!["slow".into()], false)
        .await
        .unwrap()
    else {
        panic!("new delivery")
    };
    for made in 0..2 {
        journal.start_attempt(jobs[0].id, made).await.unwrap();
        // What the next start does with a job a crash left running.
        journal.requeue_interrupted().await.unwrap();
    }
    drop(journal);

    let text = format!(
        "[server]\nlisten = \"127.0.0.1:9\"\n[store]\npath = \"{}\"\n{}",
        store.display(),
        behaviours(
            "slow",
            "max_attempts = 2",
            "behaviour = \"sleep\"\nmillis = 1"
        )
    );
    let config =
        Config::parse(&expand(&text, dir.path()), &dir.path().join("config.toml")).unwrap();
    let secrets = Secrets {
        webhook: WebhookSecret::new(SECRET),
        github_token: None,
        github_app_key: None,
    };
    let host = Switchyard::start(config, secrets).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let job = host.state.journal.job(jobs[0].id).await.unwrap();
        if job.state == JobState::Failed {
            assert_eq!(
                job.error.as_deref(),
                Some("gave up after 2 attempts: the host stopped during each")
            );
            assert_eq!(job.attempts, 2, "not run a third time");
            break;
        }
        assert!(Instant::now() < deadline, "{job:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
