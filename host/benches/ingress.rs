//! Ingress benchmark: the real `switchyard serve` (release build) with a durable journal and the
//! event-log plugin subscribed to everything, driven over loopback with signed ~22 KB
//! `pull_request` deliveries (GitHub's own example, each with a unique delivery id) at
//! concurrency 1, 16 and 64. Reports requests/s and p50/p99 latency to the 202.
//!
//! Run: `cargo bench -p switchyard --bench ingress`
//! Env: `BENCH_SECS` (per level, default 5), `BENCH_LEVELS` (default "1,16,64").

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use switchyard::ingress::WebhookSecret;

#[path = "../tests/it/support/net.rs"]
mod net;
use net::{free_port, wait_until_listening};

const SECRET: &str = "bench-secret";

fn main() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "-p",
            "switchyard",
            "-p",
            "switchyard-event-log",
        ])
        .current_dir(&workspace)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "release build failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("release");

    let secs: u64 = env_or("BENCH_SECS", "5")
        .parse()
        .expect("BENCH_SECS is a number");
    let levels: Vec<usize> = env_or("BENCH_LEVELS", "1,16,64")
        .split(',')
        .map(|l| l.trim().parse().expect("BENCH_LEVELS is a list of numbers"))
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nsecret_env = \"BENCH_SECRET\"\n\
             [store]\npath = \"switchyard.db\"\n\
             [[plugins]]\nname = \"event-log\"\nlibrary = \"{}\"\nevents = [\"*\"]\n[plugins.settings]\npath = \"events.jsonl\"\n",
            target.join("libswitchyard_event_log.so").display()
        ),
    )
    .unwrap();
    let mut server = Command::new(target.join("switchyard"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("BENCH_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("the server starts");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let url = format!("http://127.0.0.1:{port}/event_handler");
        wait_until_listening(port).await;
        let body = bytes::Bytes::from(pull_request_payload());
        let signature = WebhookSecret::new(SECRET).sign_sha256(&body);
        println!(
            "payload {} bytes; journal: SQLite WAL, synchronous=FULL; plugin: event-log on every delivery; {secs} s per level",
            body.len()
        );
        println!("{:>11} {:>10} {:>10} {:>10} {:>10}", "concurrency", "requests", "req/s", "p50 ms", "p99 ms");
        let counter = Arc::new(AtomicU64::new(0));
        for concurrency in levels {
            let run = drive(&url, &body, &signature, concurrency, Duration::from_secs(secs), &counter).await;
            println!(
                "{:>11} {:>10} {:>10.0} {:>10.2} {:>10.2}",
                concurrency,
                run.latencies.len(),
                run.latencies.len() as f64 / run.elapsed.as_secs_f64(),
                percentile(&run.latencies, 0.50),
                percentile(&run.latencies, 0.99),
            );
        }
    });
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = server.wait();
}

struct Run {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

async fn drive(
    url: &str,
    body: &bytes::Bytes,
    signature: &str,
    concurrency: usize,
    duration: Duration,
    counter: &Arc<AtomicU64>,
) -> Run {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let started = Instant::now();
    let deadline = started + duration;
    let workers = (0..concurrency).map(|_| {
        let (client, url, body, signature, counter) = (
            client.clone(),
            url.to_owned(),
            body.clone(),
            signature.to_owned(),
            Arc::clone(counter),
        );
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let delivery = format!("bench-{}", counter.fetch_add(1, Ordering::Relaxed));
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-github-event", "pull_request")
                    .header("x-github-delivery", delivery)
                    .header("x-hub-signature-256", &signature)
                    .body(body.clone())
                    .send()
                    .await
                    .expect("the server answers");
                assert_eq!(response.status(), 202, "every delivery is accepted");
                let _ = response.bytes().await;
                latencies.push(sent.elapsed());
            }
            latencies
        })
    });
    let mut latencies = Vec::new();
    for worker in workers.collect::<Vec<_>>() {
        latencies.extend(worker.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Run { latencies, elapsed }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}

/// GitHub's example `pull_request.opened` payload, compact as GitHub sends it (~21 KB).
fn pull_request_payload() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pull_request.opened.json"
    );
    let example: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    serde_json::to_vec(&example).unwrap()
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}
