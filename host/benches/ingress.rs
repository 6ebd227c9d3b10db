//! Ingress benchmark: the real `switchyard serve` (release build) with a durable journal and the
//! event-log plugin subscribed to everything, driven over loopback with signed ~22 KB
//! `pull_request` deliveries (GitHub's own example, each with a unique delivery id) at
//! concurrency 1, 16 and 64. Reports requests/s, p50/p99 latency to the 202, the server's CPU
//! time (user + system, all threads) per delivery, and how many jobs ended per second meanwhile
//! (below the request rate, the backlog grew: it waits in the journal).
//!
//! `BENCH_IDS=uuid` sends random UUIDs as delivery ids instead of `bench-N`.
//!
//! Calibration: `BENCH_TARGET_PORT` and `BENCH_TARGET_PID` drive a server already running
//! instead, such as the `bare_webhook_server` example (HMAC and JSON parse only).
//!
//! Run: `cargo bench -p switchyard --bench ingress`
//! Env: `BENCH_SECS` (per level, default 5), `BENCH_LEVELS` (default "1,16,64"), `BENCH_REST`
//! (seconds of idle before each level after the first, default 20: this machine runs slower
//! for a while after sustained load, so each level starts from the same rested state).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use switchyard::ingress::WebhookSecret;

#[path = "../tests/it/support/net.rs"]
mod net;
use net::{free_port, wait_until_listening};

const SECRET: &str = "bench-secret";

fn main() {
    let secs: u64 = env_or("BENCH_SECS", "5")
        .parse()
        .expect("BENCH_SECS is a number");
    let levels: Vec<usize> = env_or("BENCH_LEVELS", "1,16,64")
        .split(',')
        .map(|l| l.trim().parse().expect("BENCH_LEVELS is a list of numbers"))
        .collect();
    let rest = Duration::from_secs(
        env_or("BENCH_REST", "20")
            .parse()
            .expect("BENCH_REST is a number"),
    );
    // Calibration: drive a server already running (the `bare_webhook_server` example) instead.
    let other: Option<(u16, u32)> = std::env::var("BENCH_TARGET_PORT").ok().map(|port| {
        let pid = std::env::var("BENCH_TARGET_PID").expect("BENCH_TARGET_PID goes with the port");
        (port.parse().unwrap(), pid.parse().unwrap())
    });
    let dir = tempfile::tempdir().unwrap();
    let mut switchyard = None;
    let (port, pid) = match other {
        Some(target) => target,
        None => {
            let port = free_port();
            let server = start_switchyard(dir.path(), port);
            let pid = server.id();
            switchyard = Some(server);
            (port, pid)
        }
    };

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        wait_until_listening(port).await;
        let body = Bytes::from(pull_request_payload());
        let signature = WebhookSecret::new(SECRET).sign_sha256(&body);
        match other {
            Some(_) => println!("payload {} bytes; server on port {port}; {secs} s per level", body.len()),
            None => println!(
                "payload {} bytes; journal: SQLite WAL, synchronous=FULL; plugin: event-log on every delivery; {secs} s per level, {} s rest between",
                body.len(),
                rest.as_secs()
            ),
        }
        println!(
            "{:>11} {:>10} {:>10} {:>10} {:>10} {:>14} {:>10}",
            "concurrency", "requests", "req/s", "p50 ms", "p99 ms", "server CPU µs", "jobs/s"
        );
        let ids = match env_or("BENCH_IDS", "sequential").as_str() {
            "sequential" => DeliveryIds::Sequential(Arc::new(AtomicU64::new(0))),
            "uuid" => DeliveryIds::Random,
            other => panic!("BENCH_IDS is sequential or uuid, not {other:?}"),
        };
        for (level, concurrency) in levels.into_iter().enumerate() {
            if level > 0 {
                tokio::time::sleep(rest).await;
            }
            let cpu_before = cpu_time(pid);
            // Only Switchyard runs jobs (and serves /metrics).
            let jobs_before = match switchyard {
                Some(_) => Some(jobs_ended(port).await),
                None => None,
            };
            let run = drive(port, &body, &signature, concurrency, Duration::from_secs(secs), &ids).await;
            let cpu = cpu_time(pid) - cpu_before;
            let requests = run.latencies.len();
            let jobs = match jobs_before {
                Some(before) => format!("{:.0}", (jobs_ended(port).await - before) / run.elapsed.as_secs_f64()),
                None => "-".to_owned(),
            };
            println!(
                "{:>11} {:>10} {:>10.0} {:>10.2} {:>10.2} {:>14.0} {:>10}",
                concurrency,
                requests,
                requests as f64 / run.elapsed.as_secs_f64(),
                percentile(&run.latencies, 0.50),
                percentile(&run.latencies, 0.99),
                cpu.as_secs_f64() * 1e6 / requests as f64,
                jobs,
            );
        }
    });
    if let Some(mut server) = switchyard {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(server.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = server.wait();
    }
}

/// Builds the release binary and event-log, and starts `switchyard serve` in `dir` with the
/// shipped layout: the store under `data/`, beside the config.
fn start_switchyard(dir: &Path, port: u16) -> Child {
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
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nsecret_env = \"BENCH_SECRET\"\n\
             [store]\npath = \"data/switchyard.db\"\n\
             [[plugins]]\nname = \"event-log\"\nlibrary = \"{}\"\nevents = [\"*\"]\n[plugins.settings]\npath = \"data/events.jsonl\"\n",
            target.join("libswitchyard_event_log.so").display()
        ),
    )
    .unwrap();
    Command::new(target.join("switchyard"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("BENCH_SECRET", SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("the server starts")
}

/// Delivery ids: `bench-0`, `bench-1`, ... or random UUIDs, as GitHub's GUIDs are. A random id
/// lands on a random page of the journal's id index, so it costs one more page write.
#[derive(Clone)]
enum DeliveryIds {
    Sequential(Arc<AtomicU64>),
    Random,
}

impl DeliveryIds {
    fn next(&self) -> String {
        match self {
            Self::Sequential(counter) => {
                format!("bench-{}", counter.fetch_add(1, Ordering::Relaxed))
            }
            Self::Random => uuid::Uuid::new_v4().to_string(),
        }
    }
}

struct Run {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

/// One sender per connection, each posting as soon as its previous delivery is answered. The
/// sender speaks HTTP/1.1 through hyper's bare connection (no pool, no URL parsing) so that the
/// load generator, which shares the machine's two cores with the server, costs as little as it
/// can.
async fn drive(
    port: u16,
    body: &Bytes,
    signature: &str,
    concurrency: usize,
    duration: Duration,
    ids: &DeliveryIds,
) -> Run {
    let started = Instant::now();
    let deadline = started + duration;
    let senders = (0..concurrency).map(|_| {
        let (body, signature, ids) = (body.clone(), signature.to_owned(), ids.clone());
        tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("the server accepts a connection");
            stream.set_nodelay(true).unwrap();
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(connection);
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let delivery = ids.next();
                let request = hyper::Request::post("/event_handler")
                    .header("host", "127.0.0.1")
                    .header("content-type", "application/json")
                    .header("x-github-event", "pull_request")
                    .header("x-github-delivery", delivery)
                    .header("x-hub-signature-256", &signature)
                    .body(Full::new(body.clone()))
                    .unwrap();
                let sent = Instant::now();
                sender.ready().await.expect("the connection stays open");
                let response = sender
                    .send_request(request)
                    .await
                    .expect("the server answers");
                assert_eq!(response.status(), 202, "every delivery is accepted");
                response.into_body().collect().await.unwrap();
                latencies.push(sent.elapsed());
            }
            latencies
        })
    });
    let mut latencies = Vec::new();
    for sender in senders.collect::<Vec<_>>() {
        latencies.extend(sender.await.unwrap());
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

/// Jobs ended so far, whatever their outcome, from the server's `/metrics`.
async fn jobs_ended(port: u16) -> f64 {
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .and_then(|response| response.error_for_status())
        .expect("the server serves /metrics");
    let text = metrics.text().await.unwrap();
    text.lines()
        .filter(|line| line.starts_with("switchyard_jobs_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the server runs");
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .unwrap()
        .unwrap() as u64;
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}
