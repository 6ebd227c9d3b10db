//! Retention and backup while deliveries keep arriving: old jobs, logs and deliveries are
//! pruned, ids younger than 7 days stay for dedupe, and a backup holds every delivery
//! acknowledged before it began.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use switchyard::{
    journal::{JobId, JobState},
    ops::retention::{Pruned, Retention},
};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::support::{HostSpec, TestHost, behaviours, example};

/// A host whose one plugin writes a line to each job's log, keeping jobs `keep_days`.
async fn host(keep_days: u32) -> TestHost {
    TestHost::start(HostSpec {
        plugins: behaviours("echo", "", "behaviour = \"run\"\nscript = \"echo built\""),
        store: format!("keep_days = {keep_days}"),
        ..Default::default()
    })
    .await
}

/// Sends deliveries `{prefix}-0` .. until stopped, recording each one answered 202.
fn keep_sending(
    host: &TestHost,
    prefix: &'static str,
) -> (Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let (url, record) = (host.webhook_url(), Arc::clone(&acknowledged));
    let sending = tokio::spawn(async move {
        let payload = example("pull_request", Some("opened"));
        for n in 0.. {
            let id = format!("{prefix}-{n}");
            if crate::support::send_signed(&url, "pull_request", &id, &payload).await == 202 {
                record.lock().unwrap().push(id);
            }
        }
    });
    (acknowledged, sending)
}

/// Moves a delivery and its jobs `days` into the past, as if received and run then.
fn age(host: &TestHost, delivery: &str, days: i64) {
    let then = (OffsetDateTime::now_utc() - time::Duration::days(days))
        .format(&Rfc3339)
        .unwrap();
    let db = rusqlite::Connection::open(host.dir.path().join("switchyard.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute(
        "UPDATE deliveries SET received_at = ?1 WHERE id = ?2",
        (&then, delivery),
    )
    .unwrap();
    db.execute(
        "UPDATE jobs SET finished_at = ?1 WHERE delivery = (SELECT seq FROM deliveries WHERE id = ?2)",
        (&then, delivery),
    )
    .unwrap();
}

async fn sent_and_ended(host: &TestHost, id: &str) -> JobId {
    let payload = example("pull_request", Some("opened"));
    assert_eq!(host.send("pull_request", id, &payload).await.0, 202);
    let jobs = host.ended_jobs(id, 1).await;
    assert_eq!(jobs[0].state, JobState::Succeeded, "{jobs:?}");
    jobs[0].id
}

#[tokio::test]
async fn old_jobs_logs_and_deliveries_are_pruned_while_deliveries_arrive_and_recent_ids_stay() {
    let host = host(1).await;
    let mut old = Vec::new();
    let mut recent = Vec::new();
    for n in 0..12 {
        let (id, days) = if n % 2 == 0 {
            (format!("old-{n}"), 10)
        } else {
            (format!("recent-{n}"), 3)
        };
        let job = sent_and_ended(&host, &id).await;
        assert!(host.host_state.logs.path(job).exists());
        age(&host, &id, days);
        if days == 10 {
            old.push((id, job))
        } else {
            recent.push((id, job))
        }
    }
    let kept = sent_and_ended(&host, "today").await;

    let (arrived, sending) = keep_sending(&host, "during");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let retention = Retention {
        journal: host.host_state.journal.clone(),
        logs: host.host_state.logs.clone(),
        metrics: Arc::clone(&host.host_state.metrics),
        keep_days: 1,
    };
    let pruned = retention.pass(OffsetDateTime::now_utc()).await.unwrap();
    sending.abort();
    assert_eq!(
        pruned,
        Pruned {
            jobs: 12,
            logs: 12,
            deliveries: 6
        }
    );

    let journal = &host.host_state.journal;
    for (id, job) in &old {
        assert!(journal.delivery(id).await.unwrap().is_none(), "{id} kept");
        assert!(!host.host_state.logs.path(*job).exists(), "{id}'s log kept");
    }
    for (id, job) in &recent {
        // The delivery id stays for dedupe; its job and log are gone.
        assert!(journal.delivery(id).await.unwrap().is_some(), "{id} pruned");
        assert!(journal.jobs_of(id).await.unwrap().is_empty());
        assert!(!host.host_state.logs.path(*job).exists(), "{id}'s log kept");
    }
    assert!(host.host_state.logs.path(kept).exists());
    let arrived = arrived.lock().unwrap().clone();
    assert!(!arrived.is_empty(), "no delivery arrived during the pass");
    for id in &arrived {
        assert!(journal.delivery(id).await.unwrap().is_some(), "{id} lost");
    }

    // A redelivery of a recent id is still a duplicate; an old id is new again.
    let payload = example("pull_request", Some("opened"));
    let (status, answer) = host.send("pull_request", &recent[0].0, &payload).await;
    assert_eq!(
        (status, &answer["duplicate"]),
        (200, &serde_json::json!(true))
    );
    assert_eq!(host.send("pull_request", &old[0].0, &payload).await.0, 202);
    let scrape = host.get("/metrics").await.1;
    assert!(
        scrape.contains("switchyard_pruned_total{kind=\"deliveries\"} 6"),
        "{scrape}"
    );
    host.stop().await;
}

#[tokio::test]
async fn a_backup_under_load_holds_every_delivery_acknowledged_before_it_began() {
    let host = host(30).await;
    let (arrived, sending) = keep_sending(&host, "load");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before: BTreeSet<String> = arrived.lock().unwrap().iter().cloned().collect();
    let copy = host.dir.path().join("backup").join("journal-copy.db");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    // Awaited, so the deliveries go on while the backup runs.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["backup", "--config"])
        .arg(host.dir.path().join("config.toml"))
        .arg(&copy)
        .output()
        .await
        .unwrap();
    // Ingress kept answering across the backup: deliveries are acknowledged after it began
    // (however quickly the backup itself finished).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while arrived.lock().unwrap().len() <= before.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "no delivery was acknowledged after the backup began"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sending.abort();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("backed up to"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        before.len() >= 3,
        "the load was running when the backup began"
    );

    // The copy is a journal of its own: it opens, and holds all of them, jobs included.
    let restored = switchyard::journal::SqliteJournal::open(&copy).unwrap();
    use switchyard::journal::prelude::*;
    for id in &before {
        assert!(
            restored.delivery(id).await.unwrap().is_some(),
            "{id} missing"
        );
        assert_eq!(restored.jobs_of(id).await.unwrap().len(), 1, "{id}'s job");
    }
    let leftovers: Vec<_> = std::fs::read_dir(copy.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(
        leftovers.iter().any(|name| name == "journal-copy.db"),
        "{leftovers:?}"
    );
    assert!(
        !leftovers
            .iter()
            .any(|name| name.to_string_lossy().contains("partial"))
    );
    host.stop().await;
}
