//! Appending to a job log kept in PostgreSQL: 50 appends (a line each, as `JobLogs::append`
//! makes them, the limit checked) to an empty log and to one of 200,000 chunks, on the private
//! test server (`switchyard_testkit::TestPostgres`). An append must cost the same at any
//! length of the log. It reports each case's median and worst time for the 50 appends over the
//! rounds, the time to read the long log's last 256 KiB window and its length, and that of the
//! sum of its chunks' lengths that every append ran before.
//!
//! Run: `cargo bench -p switchyard --bench log_append`
//! Env: `BENCH_CHUNKS` (default 200000), `BENCH_ROUNDS` (default 20), `BENCH_APPENDS` (per
//! round, default 50).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use switchyard::{
    job_log::JobLogs,
    journal::{JobId, LogStore as _, PostgresJournal, PostgresSettings},
};
use switchyard_testkit::TestPostgres;

fn env_or(name: &str, default: &str) -> u64 {
    std::env::var(name).map_or_else(|_| default.parse().unwrap(), |v| v.parse().unwrap())
}

fn main() {
    let chunks = env_or("BENCH_CHUNKS", "200000");
    let rounds = env_or("BENCH_ROUNDS", "20");
    let appends = env_or("BENCH_APPENDS", "50");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run(chunks, rounds, appends));
}

async fn run(chunks: u64, rounds: u64, appends: u64) {
    let server = TestPostgres::get().expect("PostgreSQL is installed");
    let url = server.database();
    let journal = Arc::new(
        PostgresJournal::open(PostgresSettings {
            url: url.clone(),
            origin: "the bench".into(),
            pool_size: 4,
            tls: None,
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(1),
        })
        .await
        .unwrap(),
    );
    let long = JobId(1);
    let started = Instant::now();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    // Rows inserted as a host's appends are (the trigger places each after the one before).
    client
        .execute(
            "INSERT INTO job_logs (job, n, data)
             SELECT $1, g, convert_to('output line ' || g || E'\\n', 'UTF8')
             FROM generate_series(0, $2::bigint - 1) g",
            &[&long.0, &(chunks as i64)],
        )
        .await
        .unwrap();
    client.batch_execute("ANALYZE job_logs").await.unwrap();
    println!(
        "filled a log of {chunks} chunks ({} bytes) in {:.1} s",
        journal.log_len(long).await.unwrap(),
        started.elapsed().as_secs_f64()
    );
    let logs = JobLogs::new(std::path::PathBuf::new(), [])
        .kept_in(journal.clone())
        .with_limit(100 << 20);
    let line = b"a line of a build's output, as a command prints it\n";
    let mut empty = Vec::new();
    let mut full = Vec::new();
    for round in 0..rounds {
        // Each round's empty log is a job of its own.
        let fresh = JobId(1_000 + round as i64);
        for (job, times) in [(fresh, &mut empty), (long, &mut full)] {
            let started = Instant::now();
            for _ in 0..appends {
                logs.append(job, line).await.unwrap();
            }
            times.push(started.elapsed());
        }
    }
    println!("{appends} appends, {rounds} rounds:");
    for (case, times) in [("an empty log", empty), ("a log of {chunks} chunks", full)] {
        let case = case.replace("{chunks}", &chunks.to_string());
        report(&case, times);
    }
    let length = journal.log_len(long).await.unwrap();
    let mut window = Vec::new();
    let mut lengths = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let read = journal.log_chunks(long, length - 256 * 1024, length).await;
        window.push(started.elapsed());
        assert!(read.unwrap().len() > 1000);
        let started = Instant::now();
        journal.log_len(long).await.unwrap();
        lengths.push(started.elapsed());
    }
    report("the long log's last 256 KiB window", window);
    report("the long log's length", lengths);
    // What each append cost before the chunks knew their places: summing the log's chunks.
    let mut sums = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        client
            .query_one(
                "SELECT coalesce(sum(octet_length(data)), 0)::bigint FROM job_logs WHERE job = $1",
                &[&long.0],
            )
            .await
            .unwrap();
        sums.push(started.elapsed());
    }
    report(
        "the long log's length summed, as each append did before",
        sums,
    );
}

fn report(case: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  {case}: median {:.1} ms, worst {:.1} ms",
        ms(times[times.len() / 2]),
        ms(*times.last().unwrap())
    );
}
