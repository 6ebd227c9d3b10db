//! End-to-end benchmark: the real `switchyard serve` (release build) with a durable journal and
//! the event-log plugin subscribed to everything, driven over loopback with signed ~22 KB
//! `pull_request` deliveries (GitHub's own example, each with a unique delivery id), side by
//! side with a bare webhook server (the `bare_webhook_server` example: HMAC and a full JSON
//! parse, nothing stored) in the same run. For each concurrency level it reports, for both,
//! requests/s and p50/p99 latency to the 202; for Switchyard also its CPU time per delivery
//! (user + system, all threads), the jobs that ended per second during the load, and its peak
//! resident memory so far. Then, at concurrency 1, the time from a delivery's arrival to a
//! plugin's first GitHub call: the CI runner's `pending` status, received by a fake GitHub in
//! this process.
//!
//! Run: `cargo bench -p switchyard --bench ingress`
//! Env: `BENCH_SECS` (per level, default 5), `BENCH_LEVELS` (default "1,16,64"), `BENCH_REST`
//! (seconds of idle before each run after the first, default 20: this machine runs slower for a
//! while after sustained load, so each run starts from the same rested state), `BENCH_IDS`
//! (`uuid`, the default, random GUIDs as GitHub sends; or `sequential`, `bench-N`),
//! `BENCH_FIRST_CALLS` (deliveries timed to the first GitHub call, default 200; 0 skips it),
//! `BENCH_STORE` (`sqlite`, the default, or `postgres`: a private PostgreSQL server of the
//! benchmark's own with PostgreSQL's durability defaults, `fsync` on, beside one host on SQLite
//! measured in the same run; for PostgreSQL it also reports the transactions committed per
//! delivery, WAL syncs per second and the server's CPU per delivery), `BENCH_HOSTS` (with `postgres`: how many
//! hosts share the database, default 1; the load is split evenly between them, and CPU, jobs
//! and peak memory are summed over them), `BENCH_WORKERS` (settings of `[workers]` to use
//! instead of the defaults, separated by `;`, such as `memory_queue_mib = 16`).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
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
    let first_calls: usize = env_or("BENCH_FIRST_CALLS", "200")
        .parse()
        .expect("BENCH_FIRST_CALLS is a number");
    let ids = match env_or("BENCH_IDS", "uuid").as_str() {
        "sequential" => DeliveryIds::Sequential(Arc::new(AtomicU64::new(0))),
        "uuid" => DeliveryIds::Random,
        other => panic!("BENCH_IDS is uuid or sequential, not {other:?}"),
    };
    let store = Store::from_env();
    let target = build();
    let dir = tempfile::tempdir().unwrap();
    let bare_port = free_port();
    let bare = Server(
        Command::new(target.join("examples/bare_webhook_server"))
            .arg(bare_port.to_string())
            .stdout(Stdio::null())
            .spawn()
            .expect("the bare server starts"),
    );
    let start_host = |name: &str, store: &Store| {
        let port = free_port();
        let dir = dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        (
            start_switchyard(&target, &dir, port, EVENT_LOG, store),
            port,
        )
    };
    let hosts: Vec<(Server, u16)> = (0..store.hosts)
        .map(|n| start_host(&format!("host-{n}"), &store))
        .collect();
    // Beside PostgreSQL, one host on SQLite in the same sitting, for the comparison.
    let beside = store
        .url
        .is_some()
        .then(|| start_host("beside", &Store::sqlite()));
    let mut servers = vec![("bare", vec![bare_port], Vec::new())];
    if let Some((server, port)) = &beside {
        servers.push(("sqlite", vec![*port], vec![server.0.id()]));
    }
    servers.push((
        store.name(),
        hosts.iter().map(|(_, port)| *port).collect(),
        hosts.iter().map(|(server, _)| server.0.id()).collect(),
    ));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        wait_until_listening(bare_port).await;
        for (_, ports, _) in &servers {
            for &port in ports {
                wait_until_listening(port).await;
            }
        }
        let mut database = match &store.url {
            Some(url) => Some(Database::connect(url).await),
            None => None,
        };
        let body = Bytes::from(pull_request_payload());
        let signature = WebhookSecret::new(SECRET).sign_sha256(&body);
        println!(
            "payload {} bytes, {} ids; journal: {}; plugin: event-log on every delivery; {secs} s per run, {} s rest before each",
            body.len(),
            ids.name(),
            store.describe(),
            rest.as_secs()
        );
        println!(
            "{:>11} {:>11} {:>9} {:>8} {:>8} {:>8} {:>9} {:>9} {:>8} {:>9}",
            "concurrency", "server", "requests", "req/s", "p50 ms", "p99 ms", "CPU µs", "jobs/s", "jobs %", "peak MB"
        );
        let mut first = true;
        for concurrency in levels {
            for (name, ports, pids) in &servers {
                if !first {
                    tokio::time::sleep(rest).await;
                }
                first = false;
                let measured = *name != "bare";
                let on_postgres = *name == "postgres";
                let cpu_before: Duration = pids.iter().map(|&pid| cpu_time(pid)).sum();
                let jobs_before = if measured { jobs_ended(ports).await } else { 0.0 };
                let database_before = match (&mut database, on_postgres) {
                    (Some(database), true) => Some(database.counters().await),
                    _ => None,
                };
                let run = drive_all(ports, &body, &signature, concurrency, Duration::from_secs(secs), &ids).await;
                let requests = run.latencies.len();
                let rate = requests as f64 / run.elapsed.as_secs_f64();
                let (cpu, jobs, share, peak) = if measured {
                    let cpu_after: Duration = pids.iter().map(|&pid| cpu_time(pid)).sum();
                    let cpu = (cpu_after - cpu_before).as_secs_f64() * 1e6 / requests as f64;
                    let jobs = (jobs_ended(ports).await - jobs_before) / run.elapsed.as_secs_f64();
                    let peak: u64 = pids.iter().map(|&pid| peak_rss(pid)).sum();
                    (
                        format!("{cpu:.0}"),
                        format!("{jobs:.0}"),
                        format!("{:.0}", 100.0 * jobs / rate),
                        format!("{:.1}", peak as f64 / 1e6),
                    )
                } else {
                    ("-".into(), "-".into(), "-".into(), "-".into())
                };
                println!(
                    "{:>11} {:>11} {:>9} {:>8.0} {:>8.2} {:>8.2} {:>9} {:>9} {:>8} {:>9}",
                    concurrency,
                    name,
                    requests,
                    rate,
                    percentile(&run.latencies, 0.50),
                    percentile(&run.latencies, 0.99),
                    cpu,
                    jobs,
                    share,
                    peak,
                );
                if let (Some(database), Some(before)) = (&mut database, database_before) {
                    let after = database.counters().await;
                    let seconds = run.elapsed.as_secs_f64();
                    println!(
                        "{:>21} transactions committed per delivery {:.3}, WAL syncs/s {:.0}, PostgreSQL CPU µs per delivery {:.0}",
                        "",
                        (after.commits - before.commits) as f64 / requests as f64,
                        (after.wal_syncs - before.wal_syncs) as f64 / seconds,
                        (after.cpu - before.cpu).as_secs_f64() * 1e6 / requests as f64,
                    );
                }
            }
        }
    });
    for (server, _) in hosts.into_iter().chain(beside) {
        stop(server);
    }
    drop(bare);
    if first_calls > 0 {
        runtime.block_on(first_github_call(&target, first_calls, &ids));
    }
}

/// Kills a benchmark process when dropped (a panic, or the end).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// SIGTERM, and waits for the clean exit.
fn stop(mut server: Server) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = server.0.wait();
}

/// Builds the release binary, the plugins the benchmark loads and the bare server; returns
/// the release folder.
fn build() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // One build of everything the benchmark runs, in a target folder of its own: cargo's own
    // bench build unifies features with the dev-dependencies, and sharing a folder with it
    // would rebuild half the dependency tree at every switch.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("bench-build");
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--lib",
            "--bins",
            "--example",
            "bare_webhook_server",
        ])
        .args([
            "-p",
            "switchyard",
            "-p",
            "switchyard-event-log",
            "-p",
            "switchyard-ci",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&workspace)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "release build failed");
    target.join("release")
}

const EVENT_LOG: &str = "[[plugins]]\nname = \"event-log\"\nlibrary = \"{release}/libswitchyard_event_log.so\"\nevents = [\"*\"]\n[plugins.settings]\npath = \"data/events.jsonl\"\n";

/// Starts `switchyard serve` in `dir` with the shipped layout (the store under `data/`, beside
/// the config), default settings, and `plugins` (`{release}` is the release folder).
fn start_switchyard(release: &Path, dir: &Path, port: u16, plugins: &str, store: &Store) -> Server {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nsecret_env = \"BENCH_SECRET\"\n\
             [store]\n{}\n[workers]\n{}\n{}",
            store.keys(),
            env_or("BENCH_WORKERS", "").replace(';', "\n"),
            plugins.replace("{release}", &release.display().to_string())
        ),
    )
    .unwrap();
    Server(
        Command::new(release.join("switchyard"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("BENCH_SECRET", SECRET)
            .env(
                "BENCH_DATABASE_URL",
                store.url.as_deref().unwrap_or_default(),
            )
            .env("GITHUB_TOKEN", "bench-token")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("the server starts"),
    )
}

/// From a delivery's arrival to a plugin's first GitHub call, at concurrency 1: a host with the
/// CI runner, whose first call on a pull request is its `pending` status, against a fake GitHub
/// in this process that notes when each status arrives.
async fn first_github_call(release: &Path, count: usize, ids: &DeliveryIds) {
    let arrived: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let github = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let github_port = github.local_addr().unwrap().port();
    let noted = Arc::clone(&arrived);
    let fake = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let noted = Arc::clone(&noted);
        async move {
            let now = Instant::now();
            if let Some(sha) = uri
                .path()
                .strip_prefix("/repos/Codertocat/Hello-World/statuses/")
            {
                noted.lock().unwrap().push((sha.to_owned(), now));
            }
            (
                axum::http::StatusCode::CREATED,
                axum::Json(serde_json::json!({"id": 1})),
            )
        }
    });
    tokio::spawn(async move { axum::serve(github, fake).await });
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // Checkouts fail fast (nothing answers at the clone URL): only the first call is timed.
    let ci = format!(
        "[github]\napi_url = \"http://127.0.0.1:{github_port}\"\n\
         [[plugins]]\nname = \"ci\"\nlibrary = \"{{release}}/libswitchyard_ci.so\"\n\
         [plugins.settings]\ncommand = \"true\"\nclone_url = \"file:///nonexistent/{{full_name}}.git\"\n"
    );
    let server = start_switchyard(release, dir.path(), port, &ci, &Store::sqlite());
    wait_until_listening(port).await;
    let template: serde_json::Value = serde_json::from_slice(&pull_request_payload()).unwrap();
    let client = reqwest::Client::new();
    let mut latencies = Vec::with_capacity(count);
    for n in 0..count {
        let sha = format!("{n:040x}");
        let mut payload = template.clone();
        payload["pull_request"]["head"]["sha"] = sha.clone().into();
        let body = serde_json::to_vec(&payload).unwrap();
        let signature = WebhookSecret::new(SECRET).sign_sha256(&body);
        let sent = Instant::now();
        let answer = client
            .post(format!("http://127.0.0.1:{port}/event_handler"))
            .header("content-type", "application/json")
            .header("x-github-event", "pull_request")
            .header("x-github-delivery", ids.next())
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
            .await
            .expect("the server answers");
        assert_eq!(answer.status(), 202);
        let deadline = sent + Duration::from_secs(10);
        let at = loop {
            let found = arrived
                .lock()
                .unwrap()
                .iter()
                .find(|(s, _)| *s == sha)
                .map(|(_, at)| *at);
            if let Some(at) = found {
                break at;
            }
            assert!(
                Instant::now() < deadline,
                "no pending status for delivery {n}"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        latencies.push(at - sent);
        // Let the job's failed checkout finish, so the next delivery finds an idle host.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.sort();
    println!(
        "arrival to first GitHub call (CI runner's pending status), concurrency 1, {count} deliveries: p50 {:.2} ms, p99 {:.2} ms",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99)
    );
    stop(server);
}

/// Peak resident memory of a process so far (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the server runs");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|kb| kb.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Delivery ids: `bench-0`, `bench-1`, ... or random UUIDs, as GitHub's GUIDs are. A random id
/// lands on a random page of the journal's id index, so it costs one more page write.
#[derive(Clone)]
enum DeliveryIds {
    Sequential(Arc<AtomicU64>),
    Random,
}

impl DeliveryIds {
    fn name(&self) -> &'static str {
        match self {
            Self::Sequential(_) => "sequential",
            Self::Random => "random GUID",
        }
    }

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

/// Where the measured hosts keep their journal (`BENCH_STORE`, `BENCH_HOSTS`).
struct Store {
    /// The PostgreSQL database's URL; `None` for SQLite.
    url: Option<String>,
    hosts: usize,
    /// The benchmark's own PostgreSQL server, stopped when dropped.
    _server: Option<switchyard_testkit::TestPostgres>,
}

impl Store {
    fn sqlite() -> Self {
        Self {
            url: None,
            hosts: 1,
            _server: None,
        }
    }

    /// The measured hosts' row in the table.
    fn name(&self) -> &'static str {
        match self.url {
            None => "sqlite",
            Some(_) => "postgres",
        }
    }

    fn from_env() -> Self {
        let hosts: usize = env_or("BENCH_HOSTS", "1")
            .parse()
            .expect("BENCH_HOSTS is a number");
        match env_or("BENCH_STORE", "sqlite").as_str() {
            "sqlite" => {
                assert_eq!(hosts, 1, "hosts share a journal only on PostgreSQL");
                Self::sqlite()
            }
            "postgres" => {
                let server = switchyard_testkit::TestPostgres::durable()
                    .expect("BENCH_STORE=postgres needs PostgreSQL installed");
                Self {
                    url: Some(server.database()),
                    hosts: hosts.max(1),
                    _server: Some(server),
                }
            }
            other => panic!("BENCH_STORE is sqlite or postgres, not {other:?}"),
        }
    }

    /// The `[store]` keys of a host's config.
    fn keys(&self) -> &'static str {
        match self.url {
            None => "path = \"data/switchyard.db\"",
            Some(_) => "backend = \"postgres\"\nurl_env = \"BENCH_DATABASE_URL\"",
        }
    }

    fn describe(&self) -> String {
        match self.url {
            None => "SQLite WAL, each answer after its commit is synced".to_owned(),
            Some(_) => format!(
                "PostgreSQL (local, its durability defaults: fsync on, synchronous_commit on), {} host(s) sharing it, beside one host on SQLite",
                self.hosts
            ),
        }
    }
}

/// Drives every host at once, the connections split evenly between them.
async fn drive_all(
    ports: &[u16],
    body: &Bytes,
    signature: &str,
    concurrency: usize,
    duration: Duration,
    ids: &DeliveryIds,
) -> Run {
    let each = (concurrency / ports.len()).max(1);
    let runs = ports
        .iter()
        .map(|&port| drive(port, body, signature, each, duration, ids));
    let runs = futures_util::future::join_all(runs).await;
    let elapsed = runs.iter().map(|run| run.elapsed).max().unwrap_or_default();
    let mut latencies: Vec<Duration> = runs.into_iter().flat_map(|run| run.latencies).collect();
    latencies.sort();
    Run { latencies, elapsed }
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
async fn jobs_ended(ports: &[u16]) -> f64 {
    let mut ended = 0.0;
    for &port in ports {
        ended += jobs_ended_on(port).await;
    }
    ended
}

async fn jobs_ended_on(port: u16) -> f64 {
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
    process_cpu(pid).expect("the server runs")
}

/// [`cpu_time`], or `None` when the process is gone.
fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()?? as u64;
    Some(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The benchmark's own connection to the measured database, for PostgreSQL's counters.
struct Database(tokio_postgres::Client);

/// PostgreSQL's counters at one moment.
struct Counters {
    /// Transactions committed in the measured database (`pg_stat_database.xact_commit`).
    commits: i64,
    /// Times the server synced its WAL to disk (`pg_stat_wal.wal_sync`).
    wal_syncs: i64,
    /// CPU time of every PostgreSQL process so far.
    cpu: Duration,
}

impl Database {
    async fn connect(url: &str) -> Self {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("the benchmark connects to its database");
        tokio::spawn(connection);
        Self(client)
    }

    async fn counters(&mut self) -> Counters {
        // The server publishes its statistics at most once a second.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let row = self
            .0
            .query_one(
                "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
                        (SELECT wal_sync FROM pg_stat_wal)",
                &[],
            )
            .await
            .expect("PostgreSQL's statistics");
        Counters {
            commits: row.get(0),
            wal_syncs: row.get(1),
            cpu: postgres_cpu(),
        }
    }
}

/// CPU time (user + system) of every process named `postgres` (the benchmark's server is the
/// only one running).
fn postgres_cpu() -> Duration {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|name| name.trim() == "postgres")
        })
        .filter_map(process_cpu)
        .sum()
}
