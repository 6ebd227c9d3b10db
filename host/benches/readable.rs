//! The dashboard's lists for a person signed in with GitHub: a journal of 100,000 deliveries
//! with a job each, spread over 2,000 private repositories, read for a person who can read
//! 1,000 of them (`Visibility::Readable`, the one visibility filter, as the dashboard's pages
//! ask it): the first page of deliveries (51 rows: a page and the one that says there is a
//! next), page 1,000 of them, the first page of jobs, and the header's counts. The GitHub calls
//! that make the set are not measured here: they are the person's call budget
//! (docs/dashboard.md).
//!
//! Run: `cargo bench -p switchyard --bench readable`
//! Env: `BENCH_DELIVERIES` (default 100000), `BENCH_REPOSITORIES` (default 2000),
//! `BENCH_READABLE` (default 1000), `BENCH_RUNS` (default 20).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rusqlite::params;
use switchyard::journal::{JobFilter, RecentFilter, SqliteJournal, Visibility, prelude::*};

fn env_or(name: &str, default: &str) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| default.parse().unwrap())
}

fn main() {
    let deliveries = env_or("BENCH_DELIVERIES", "100000");
    let repositories = env_or("BENCH_REPOSITORIES", "2000");
    let readable = env_or("BENCH_READABLE", "1000");
    let runs = env_or("BENCH_RUNS", "20");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run(deliveries, repositories, readable, runs));
}

async fn run(deliveries: usize, repositories: usize, readable: usize, runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("switchyard.db");
    drop(SqliteJournal::open(&store).unwrap());
    fill(&store, deliveries, repositories);
    let journal = SqliteJournal::open(&store).unwrap();
    // Every other repository: the person's reads are spread over the journal.
    let names: Vec<String> = (0..repositories)
        .filter(|n| n % 2 == 0)
        .take(readable)
        .map(|n| format!("octo/repo-{n}"))
        .collect();
    let visibility = Visibility::Readable(Arc::from(names));
    println!(
        "{deliveries} deliveries in {repositories} private repositories; the person reads {readable}; {runs} runs each"
    );
    println!("| Read | Median | Worst | Rows |");
    println!("| --- | --- | --- | --- |");
    let recent = |before: Option<i64>| RecentFilter {
        limit: 51,
        visibility: visibility.clone(),
        before,
        ..RecentFilter::default()
    };
    let middle = deliveries as i64 / 2;
    measure("deliveries, first page", runs, || async {
        journal.recent(recent(None)).await.unwrap().len()
    })
    .await;
    measure(
        "deliveries, page 1,000 (before the middle)",
        runs,
        || async { journal.recent(recent(Some(middle))).await.unwrap().len() },
    )
    .await;
    measure("jobs, first page", runs, || async {
        let filter = JobFilter {
            limit: 51,
            visibility: visibility.clone(),
            ..JobFilter::default()
        };
        journal.jobs(filter).await.unwrap().len()
    })
    .await;
    measure("the header's counts", runs, || async {
        let counts = journal
            .job_counts("1970-01-01T00:00:00Z", visibility.clone())
            .await
            .unwrap();
        (counts.succeeded + counts.failed) as usize
    })
    .await;
}

async fn measure<F, Fut>(what: &str, runs: usize, read: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    let mut rows = 0;
    for _ in 0..runs {
        let started = Instant::now();
        rows = read().await;
        times.push(started.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {what} | {:.1} ms | {:.1} ms | {rows} |",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
}

/// `count` deliveries with an ended job each, round the repositories, all private.
fn fill(store: &std::path::Path, count: usize, repositories: usize) {
    let payload = br#"{"action":"opened","number":1,"repository":{"full_name":"octo/repo","private":true},"sender":{"login":"mona"}}"#;
    let compressed = lz4_flex::compress_prepend_size(payload);
    let mut conn = rusqlite::Connection::open(store).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut delivery = tx
            .prepare(
                "INSERT INTO deliveries (seq, id, event, action, repository, received_at, payload, sender, headers)
                 VALUES (?1, ?2, 'pull_request', 'opened', ?3, ?4, ?5, 'mona', '[]')",
            )
            .unwrap();
        let mut job = tx
            .prepare(
                "INSERT INTO jobs (id, delivery, plugin, state, attempts, created_at, started_at, finished_at)
                 VALUES (?1, ?1, 'bench', ?2, 1, ?3, ?3, ?3)",
            )
            .unwrap();
        let at = "2026-12-01T00:00:00Z";
        for n in 1..=count as i64 {
            let state = if n % 13 == 0 { "failed" } else { "succeeded" };
            let repository = format!("octo/repo-{}", n as usize % repositories);
            delivery
                .execute(params![n, format!("bench-{n}"), repository, at, compressed])
                .unwrap();
            job.execute(params![n, state, at]).unwrap();
        }
        let mut repository = tx
            .prepare("INSERT INTO repositories (name, private, seq) VALUES (?1, 1, ?2)")
            .unwrap();
        for n in 0..repositories {
            repository
                .execute(params![format!("octo/repo-{n}"), count as i64])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}
