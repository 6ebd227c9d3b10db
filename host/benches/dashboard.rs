//! Dashboard benchmark: a journal of 100,000 deliveries with a job each (one in 13 failed, ten
//! repositories) and one job's log of 50 MB with colours and groups, plus a 25 MB delivery (a
//! push of many commits, GitHub's largest) whose job printed a million empty lines; the host
//! started in this process with the dashboard open (`public-read`), and pages fetched over
//! loopback. For each
//! page it reports the time to the first byte (the answer's head: pages are rendered whole
//! before it, so this is the server's time) and to the full page, median and worst of the runs,
//! and the page's size; then the resident memory before and after serving the big log's page.
//!
//! Run: `cargo bench -p switchyard --bench dashboard`
//! Env: `BENCH_DELIVERIES` (default 100000), `BENCH_LOG_MB` (default 50), `BENCH_RUNS` (per
//! page, default 20).

use std::{
    io::Write as _,
    sync::Arc,
    time::{Duration, Instant},
};

use rusqlite::params;
use switchyard::{
    Config, Switchyard, ingress::WebhookSecret, journal::SqliteJournal, wiring::Secrets,
};

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn main() {
    let deliveries: i64 = env_or("BENCH_DELIVERIES", "100000").parse().unwrap();
    let log_mb: usize = env_or("BENCH_LOG_MB", "50").parse().unwrap();
    let runs: usize = env_or("BENCH_RUNS", "20").parse().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run(deliveries, log_mb, runs));
}

async fn run(deliveries: i64, log_mb: usize, runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("switchyard.db");
    let started = Instant::now();
    // The schema, made by the journal itself; then rows written straight into it.
    drop(SqliteJournal::open(&store).unwrap());
    fill(&store, deliveries);
    let big_job = deliveries; // the last of the ordinary jobs
    let log = write_log(&dir.path().join("logs"), big_job, log_mb << 20);
    let push = add_big_push(&store, deliveries + 1);
    let empty_job = deliveries + 1;
    write_empty_lines(&dir.path().join("logs"), empty_job, 1_000_000);
    println!(
        "filled {deliveries} deliveries and jobs, a {} MB log, a {} MB delivery and a log of a million empty lines in {:.1} s",
        log >> 20,
        push / 1_000_000,
        started.elapsed().as_secs_f64()
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "bench:0b9e4c7a2d6f1e3a5c8b7d9f0e2a4c6b\n").unwrap();
    let config_file = dir.path().join("config.toml");
    std::fs::write(
        &config_file,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[store]\npath = \"switchyard.db\"\n\
             [dashboard]\nenabled = true\naccess = \"public-read\"\ntokens_file = \"tokens\"\n"
        ),
    )
    .unwrap();
    let config = Config::load(&config_file).unwrap();
    let secrets = Secrets {
        webhook: WebhookSecret::new("bench-secret-0123456789"),
        github_token: None,
        github_app_key: None,
    };
    let host = Switchyard::start(config, secrets).await.unwrap();
    let journal = Arc::clone(&host.state.journal);
    assert_eq!(journal.unfinished_count().await.unwrap(), 0);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(host.serve(listener, async {
        let _ = stopped.await;
    }));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();

    println!(
        "\n{:<48} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "page", "ttfb p50", "ttfb max", "full p50", "full max", "bytes"
    );
    let pages = [
        "/dashboard/deliveries".to_owned(),
        "/dashboard/deliveries?repository=octo%2Frepo-3&failed=1".to_owned(),
        "/dashboard/deliveries?before=50000".to_owned(),
        "/dashboard/jobs".to_owned(),
        "/dashboard/jobs?state=failed&repository=octo%2Frepo-7".to_owned(),
        "/dashboard/jobs?plugin=bench&before=20000".to_owned(),
        format!("/dashboard/jobs/{big_job}"),
        format!("/dashboard/jobs/{big_job}?line=1"),
        "/dashboard/deliveries/bench-big-push".to_owned(),
        "/dashboard/deliveries/bench-big-push/payload".to_owned(),
        format!("/dashboard/jobs/{empty_job}"),
        format!("/dashboard/jobs/{empty_job}?line=1"),
    ];
    let mut rss = Vec::new();
    for page in &pages {
        let rss_before = rss_kb();
        let url = format!("{base}{page}");
        let (mut ttfb, mut full, mut bytes) = (Vec::new(), Vec::new(), 0);
        for _ in 0..runs {
            let start = Instant::now();
            let response = http.get(&url).send().await.unwrap();
            let first = start.elapsed();
            assert_eq!(response.status(), 200, "{page}");
            // Counted as it arrives, not kept: the memory figures are the host's.
            let mut response = response;
            bytes = 0;
            while let Some(chunk) = response.chunk().await.unwrap() {
                bytes += chunk.len();
            }
            ttfb.push(first);
            full.push(start.elapsed());
        }
        rss.push((page, rss_before, rss_kb()));
        let (t50, tmax) = stats(&mut ttfb);
        let (f50, fmax) = stats(&mut full);
        println!(
            "{page:<48} {:>8.1}ms {:>8.1}ms {:>8.1}ms {:>8.1}ms {bytes:>10}",
            ms(t50),
            ms(tmax),
            ms(f50),
            ms(fmax)
        );
    }
    println!("\nresident memory (MB) before and after each page's {runs} runs:");
    for (page, before, after) in rss {
        println!("{page:<48} {:>5} -> {:>5}", before / 1024, after / 1024);
    }
    println!(
        "peak resident memory: {} MB (the log is {} MB)",
        peak_kb() / 1024,
        log >> 20
    );
    let _ = stop.send(());
    let _ = serving.await;
}

fn stats(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort();
    (times[times.len() / 2], times[times.len() - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            line.strip_prefix(field)?
                .trim()
                .trim_end_matches(" kB")
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn rss_kb() -> u64 {
    status_kb("VmRSS:")
}

fn peak_kb() -> u64 {
    status_kb("VmHWM:")
}

/// Deliveries `1..=count` with one job each, written in one transaction.
fn fill(store: &std::path::Path, count: i64) {
    let payload = br#"{"action":"opened","number":1,"pull_request":{"number":1,"title":"A change","head":{"sha":"0123456789abcdef0123456789abcdef01234567"}},"repository":{"full_name":"octo/repo"},"sender":{"login":"mona"}}"#;
    let compressed = lz4_flex::compress_prepend_size(payload);
    let headers =
        r#"[["x-github-event","pull_request"],["x-hub-signature-256","sha256=********"]]"#;
    let mut conn = rusqlite::Connection::open(store).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut delivery = tx
            .prepare(
                "INSERT INTO deliveries (seq, id, event, action, repository, received_at, payload, sender, headers)
                 VALUES (?1, ?2, 'pull_request', 'opened', ?3, ?4, ?5, 'mona', ?6)",
            )
            .unwrap();
        let mut job = tx
            .prepare(
                "INSERT INTO jobs (id, delivery, plugin, state, attempts, error, created_at, started_at, finished_at)
                 VALUES (?1, ?1, 'bench', ?2, 1, ?3, ?4, ?4, ?5)",
            )
            .unwrap();
        // One a second up to now: recent enough that retention keeps them all.
        let now = time::OffsetDateTime::now_utc();
        for n in 1..=count {
            let at = (now - time::Duration::seconds(count - n))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap();
            let failed = n % 13 == 0;
            delivery
                .execute(params![
                    n,
                    format!("bench-{n}"),
                    format!("octo/repo-{}", n % 10),
                    at,
                    compressed,
                    headers
                ])
                .unwrap();
            job.execute(params![
                n,
                if failed { "failed" } else { "succeeded" },
                failed.then_some("the build failed"),
                at,
                at
            ])
            .unwrap();
        }
        // Public, as their newest delivery would say: what a visitor of the public-read
        // dashboard measured here may see.
        let mut repository = tx
            .prepare("INSERT INTO repositories (name, private, seq) VALUES (?1, 0, ?2)")
            .unwrap();
        for n in 0..10 {
            repository
                .execute(params![format!("octo/repo-{n}"), count])
                .unwrap();
        }
    }
    tx.commit().unwrap();
}

/// A `push` delivery of about 25 MB (GitHub's largest) as `seq`, with one ended job of the
/// same id; returns its size.
fn add_big_push(store: &std::path::Path, seq: i64) -> usize {
    let message = "fix \"quotes\" & <tags> in 'strings'; ".repeat(110);
    let mut commits = Vec::new();
    let mut n = 0;
    let mut size = 0;
    while size < 25_000_000 - 8_000 {
        let commit = format!(
            "{{\"id\":\"{n:040x}\",\"message\":\"{}\"}}",
            message.replace('"', "\\\"")
        );
        size += commit.len() + 1;
        commits.push(commit);
        n += 1;
    }
    let payload = format!(
        "{{\"ref\":\"refs/heads/main\",\"after\":\"{:040x}\",\"repository\":{{\"full_name\":\"octo/repo-0\"}},\"sender\":{{\"login\":\"mona\"}},\"commits\":[{}]}}",
        n,
        commits.join(",")
    );
    let conn = rusqlite::Connection::open(store).unwrap();
    let at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    conn.execute(
        "INSERT INTO deliveries (seq, id, event, action, repository, received_at, payload, sender, headers)
         VALUES (?1, 'bench-big-push', 'push', NULL, 'octo/repo-0', ?2, ?3, 'mona', '[]')",
        params![seq, at, lz4_flex::compress_prepend_size(payload.as_bytes())],
    )
    .unwrap();
    // Found by its id as the journal finds any (`delivery_ids`).
    conn.execute(
        "INSERT INTO delivery_ids (id, seq) VALUES ('bench-big-push', ?1)",
        params![seq],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO jobs (id, delivery, plugin, state, attempts, created_at, started_at, finished_at)
         VALUES (?1, ?1, 'bench', 'succeeded', 1, ?2, ?2, ?2)",
        params![seq, at],
    )
    .unwrap();
    payload.len()
}

/// A log of `lines` empty lines, as a build printing newlines makes.
fn write_empty_lines(dir: &std::path::Path, job: i64, lines: usize) {
    std::fs::write(dir.join(format!("{job}.log")), vec![b'\n'; lines]).unwrap();
}

/// A log of about `bytes`: numbered lines, some coloured, a group every 1000 lines, an error
/// line now and then.
fn write_log(dir: &std::path::Path, job: i64, bytes: usize) -> usize {
    std::fs::create_dir_all(dir).unwrap();
    let file = std::fs::File::create(dir.join(format!("{job}.log"))).unwrap();
    let mut out = std::io::BufWriter::new(file);
    let mut written = 0;
    let mut n = 0u64;
    while written < bytes {
        n += 1;
        let line = match n % 1000 {
            0 => format!("::group::Step {}\n", n / 1000),
            999 => "::endgroup::\n".to_owned(),
            500 => format!("error: line {n} failed <with> & markup\n"),
            k if k % 7 == 0 => {
                format!("\u{1b}[32m   Compiling\u{1b}[0m crate-{n} v0.1.0 (/build/crate-{n})\n")
            }
            _ => format!("test module_{n}::case_{n} ... ok\n"),
        };
        out.write_all(line.as_bytes()).unwrap();
        written += line.len();
    }
    out.flush().unwrap();
    written
}
