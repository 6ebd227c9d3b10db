//! Tried as an attacker would, against a server process: slow, silent and stalled clients, huge
//! unsigned bodies over HTTP/1.1 and HTTP/2, more sockets than the open-file limit, readers of a
//! big log that never read. Each keeps the host answering, with its memory (read from /proc)
//! under the documented bound. Timeouts are short here; the bounds asserted are generous.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use switchyard::{
    ingress::WebhookSecret,
    job_log::{LINK_SECRET, LogLinks},
    journal::{JobState, SqliteJournal, prelude::*},
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use crate::support::{
    SECRET, behaviours, example, expand, library,
    net::{free_port, wait_until_listening},
    send_signed_bytes,
    server::{Server, ended_jobs},
};

/// The bound docs/security.md gives for the host's memory under any unsigned load, with defaults.
const RSS_BOUND_MIB: u64 = 256;

const SECRET_VARIABLE: &str = "HOSTILE_TEST_SECRET";

/// The dashboard's people, for the tests that enable it.
const DASHBOARD_TOKENS: &str = "alice:alice-token-0123456789abcdef0123456789\n";

/// A server process under attack.
struct Target {
    server: Server,
    port: u16,
    dir: tempfile::TempDir,
}

impl Target {
    /// Starts `switchyard serve` with these `[server]` keys and plugin entries, under an
    /// open-file limit when given.
    async fn start(server_keys: &str, plugins: &str, open_files: Option<u32>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let target = Self {
            server: spawn(dir.path(), port, server_keys, plugins, open_files),
            port,
            dir,
        };
        wait_until_listening(port).await;
        target
    }

    fn restart(&mut self, server_keys: &str, plugins: &str) {
        let _ = self.server.0.kill();
        let _ = self.server.0.wait();
        self.server = spawn(self.dir.path(), self.port, server_keys, plugins, None);
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The host's peak resident memory so far, in MiB.
    fn peak_rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.server.0.id()))
            .expect("the server is running");
        let line = status
            .lines()
            .find(|line| line.starts_with("VmHWM:"))
            .unwrap();
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .expect("VmHWM in kB");
        kib / 1024
    }

    fn host_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("host.log")).unwrap_or_default()
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("switchyard.db")
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(("127.0.0.1", self.port)).await.unwrap()
    }

    /// A connection from `from` (any 127.0.0.0/8 address: a client of its own) that sends a
    /// GET of `path` and then reads nothing.
    async fn hold(&self, path: &str, from: std::net::Ipv4Addr) -> TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((from, 0).into()).unwrap();
        let mut stream = socket
            .connect(([127, 0, 0, 1], self.port).into())
            .await
            .unwrap();
        // The dashboard answers only for its own host: the port is part of it.
        let port = self.port;
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        stream
    }

    /// The host's resident memory now, in MiB.
    fn rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.server.0.id()))
            .expect("the server is running");
        let line = status
            .lines()
            .find(|line| line.starts_with("VmRSS:"))
            .unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            / 1024
    }

    /// POSTs `body` as a delivery GitHub signed.
    async fn deliver(&self, event: &str, delivery: &str, body: Vec<u8>) -> u16 {
        send_signed_bytes(&self.url("/event_handler"), event, delivery, body).await
    }

    /// A signed delivery and `/healthz` are both answered, each within `limit`.
    async fn still_answers(&self, delivery: &str, limit: Duration) {
        // A connection per request, as GitHub makes them: an idle pooled one may be evicted.
        let client = reqwest::Client::builder()
            .timeout(limit)
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let health = client.get(self.url("/healthz")).send().await;
        assert_eq!(
            health.map(|r| r.status().as_u16()).ok(),
            Some(200),
            "/healthz"
        );
        let body = serde_json::to_vec(&example("pull_request", Some("opened"))).unwrap();
        let answer = client
            .post(self.url("/event_handler"))
            .header("content-type", "application/json")
            .header("x-github-event", "pull_request")
            .header("x-github-delivery", delivery)
            .header(
                "x-hub-signature-256",
                WebhookSecret::new(SECRET).sign_sha256(&body),
            )
            .body(body)
            .send()
            .await;
        assert_eq!(
            answer.map(|r| r.status().as_u16()).ok(),
            Some(202),
            "a signed delivery"
        );
    }
}

fn spawn(
    dir: &Path,
    port: u16,
    server_keys: &str,
    plugins: &str,
    open_files: Option<u32>,
) -> Server {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
         secret_env = \"{SECRET_VARIABLE}\"\n{server_keys}\n\
         [store]\npath = \"{{dir}}/switchyard.db\"\n{plugins}"
    );
    let config = dir.join("config.toml");
    std::fs::write(&config, expand(&text, dir)).unwrap();
    // For the tests that enable the dashboard (`tokens_file = "dashboard-tokens"`).
    std::fs::write(dir.join("dashboard-tokens"), DASHBOARD_TOKENS).unwrap();
    // Through `sh`, whose `ulimit` sets the limit the host then lives under; `exec` keeps the
    // pid the host's.
    let limit = open_files.map_or(String::new(), |n| format!("ulimit -n {n} && "));
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("{limit}exec \"$0\" serve --config \"$1\""))
        .arg(env!("CARGO_BIN_EXE_switchyard"))
        .arg(&config)
        .env(SECRET_VARIABLE, SECRET)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("host.log")).unwrap())
        .spawn()
        .unwrap();
    Server(child)
}

/// Whether the server closes `stream` within `limit`, reading and dropping whatever it sends.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut sink = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut sink)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Raises this test process's own open-file limit, for holding many sockets.
fn raise_own_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
}

#[tokio::test]
async fn silent_and_slow_header_connections_are_closed() {
    let target = Target::start("header_timeout_secs = 1", "", None).await;
    let mut silent = Vec::new();
    for _ in 0..200 {
        silent.push(target.connect().await);
    }
    // Headers a byte at a time, every 200 ms: whole after 20 s, far past the timeout.
    let request = b"POST /event_handler HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: ping\r\n\r\n";
    let mut slow = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let mut stream = target.connect().await;
        slow.spawn(async move {
            for byte in request {
                if stream.write_all(&[*byte]).await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            closed_within(&mut stream, Duration::from_secs(1)).await
        });
    }
    for stream in &mut silent {
        assert!(
            closed_within(stream, Duration::from_secs(20)).await,
            "a silent socket stayed open"
        );
    }
    while let Some(closed) = slow.join_next().await {
        assert!(closed.unwrap(), "a slow sender finished its headers");
    }
    target
        .still_answers("after-slow", Duration::from_secs(10))
        .await;
}

#[tokio::test]
async fn slow_bodies_and_partial_headers_past_the_cap_lose_their_place_to_github() {
    raise_own_open_file_limit();
    // Timeouts far longer than the test: only eviction can make room.
    let keys = "max_connections = 100\nheader_timeout_secs = 120\nbody_timeout_secs = 120";
    let target = Target::start(keys, "", None).await;
    let mut held = Vec::new();
    // Bodies that never finish arriving, on connections that look busy.
    for _ in 0..150 {
        let mut stream = target.connect().await;
        let head = "POST /event_handler HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                    Content-Length: 10\r\n\r\n123456789";
        stream.write_all(head.as_bytes()).await.unwrap();
        held.push(stream);
    }
    target
        .still_answers("past-slow-bodies", Duration::from_secs(5))
        .await;
    // Headers begun and never finished.
    for _ in 0..150 {
        let mut stream = target.connect().await;
        stream.write_all(b"G").await.unwrap();
        held.push(stream);
    }
    target
        .still_answers("past-partial-headers", Duration::from_secs(5))
        .await;
    assert!(target.server.0.id() > 0);
    drop(held);
}

#[tokio::test]
async fn a_body_of_unknown_length_is_refused() {
    let target = Target::start("", "", None).await;
    let mut stream = target.connect().await;
    let request = "POST /event_handler HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                   Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer));
    let n = read.await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 411"), "{answer}");
}

#[tokio::test]
async fn a_stalled_body_is_cut_off() {
    let target = Target::start("body_timeout_secs = 1", "", None).await;
    let mut stream = target.connect().await;
    let head = "POST /event_handler HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Content-Length: 20000000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[b' '; 1024]).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer));
    assert!(read.await.is_ok(), "the stalled body was waited for");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

#[tokio::test]
async fn huge_unsigned_bodies_over_http1_and_http2_keep_memory_bounded() {
    // Defaults, but for a body timeout long enough for the stall to outlast the measurement.
    let target = Target::start("body_timeout_secs = 120", "", None).await;
    const BODY: usize = 24 << 20;
    let head = format!(
        "POST /event_handler HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         X-GitHub-Event: push\r\nX-GitHub-Delivery: x\r\nX-Hub-Signature-256: sha256=00\r\n\
         Content-Length: {BODY}\r\n\r\n"
    );
    // 40 connections each send all but the last byte of 24 MiB, then stall.
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let mut stream = target.connect().await;
        let head = head.clone();
        writers.spawn(async move {
            let chunk = vec![b' '; 1 << 20];
            let send = async {
                stream.write_all(head.as_bytes()).await?;
                for _ in 0..BODY / chunk.len() - 1 {
                    stream.write_all(&chunk).await?;
                }
                stream.write_all(&chunk[1..]).await
            };
            // A refused body is answered and closed; one being read stalls.
            let _ = tokio::time::timeout(Duration::from_secs(60), send).await;
            stream
        });
    }
    let mut stalled = Vec::new();
    while let Some(stream) = writers.join_next().await {
        stalled.push(stream.unwrap());
    }
    // And 400 sockets each holding most of a header's allowance, unfinished.
    let header = format!("GET /healthz HTTP/1.1\r\nX-Filler: {}", "x".repeat(15_000));
    for _ in 0..400 {
        let mut stream = target.connect().await;
        stream.write_all(header.as_bytes()).await.unwrap();
        stalled.push(stream);
    }
    // While they stall, GitHub's deliveries still get in.
    target
        .still_answers("during-http1", Duration::from_secs(10))
        .await;
    let after_http1 = target.peak_rss_mib();

    // One HTTP/2 connection, 40 streams of 24 MiB each.
    let http2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut streams = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let request = http2
            .post(target.url("/event_handler"))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .body(vec![b' '; BODY]);
        streams.spawn(request.send());
    }
    while let Some(answer) = streams.join_next().await {
        assert!(answer.unwrap().is_err(), "HTTP/2 was served");
    }
    target
        .still_answers("after-http2", Duration::from_secs(10))
        .await;
    let peak = target.peak_rss_mib();
    assert!(
        peak < RSS_BOUND_MIB,
        "peak RSS {peak} MiB ({after_http1} MiB after HTTP/1.1)"
    );
    drop(stalled);
}

#[tokio::test]
async fn sockets_past_the_open_file_limit_do_not_lock_github_out() {
    raise_own_open_file_limit();
    // Asks for more connections than 1,024 descriptors allow: the host lowers the cap.
    let target = Target::start("max_connections = 5000", "", Some(1024)).await;
    let mut idle = Vec::new();
    for _ in 0..1_100 {
        let connect = TcpStream::connect(("127.0.0.1", target.port));
        match tokio::time::timeout(Duration::from_secs(10), connect).await {
            Ok(Ok(stream)) => idle.push(stream),
            other => panic!("connection {} was not taken: {other:?}", idle.len()),
        }
    }
    target
        .still_answers("past-the-cap", Duration::from_secs(10))
        .await;
    let log = target.host_log();
    assert!(
        log.contains("max_connections lowered to 768"),
        "no warning about the cap: {log}"
    );
    assert!(!log.contains("Too many open files"), "{log}");
    // Room was made by closing the sockets that waited longest.
    let mut closed = 0;
    for stream in &mut idle[..400] {
        if closed_within(stream, Duration::from_millis(50)).await {
            closed += 1;
        }
    }
    assert!(
        closed >= 300,
        "only {closed} of the oldest idle sockets were closed"
    );
}

/// A job writing a 50 MB log, and one printing a 300 MB line without a newline.
fn log_writers() -> String {
    let line = "a line of a long build log, with enough text to look like one...";
    behaviours(
        "big-log",
        "",
        &format!(
            "behaviour = \"run\"\nscript = \"yes '{line}' | head -c 50000000\"\ntimeout_secs = 120"
        ),
    ) + &behaviours(
        "long-line",
        "",
        "behaviour = \"run\"\nscript = \"head -c 300000000 /dev/zero | tr '\\\\0' a\"\ntimeout_secs = 120",
    )
}

#[tokio::test]
async fn big_logs_stream_to_readers_that_do_not_read_and_need_their_key() {
    let _ = library("switchyard-test-behaviours");
    let server_keys = "max_log_readers = 40\nmax_log_readers_per_client = 40";
    let mut target = Target::start(server_keys, &log_writers(), None).await;
    target.still_answers("logs", Duration::from_secs(10)).await;
    let jobs = ended_jobs(&target.store(), "logs", 2).await;
    assert!(
        jobs.iter().all(|j| j.state == JobState::Succeeded),
        "{jobs:?}"
    );
    let job = |plugin: &str| jobs.iter().find(|j| j.plugin == plugin).unwrap();
    let journal = SqliteJournal::open(&target.store()).unwrap();
    let links = LogLinks::new(
        &target.url(""),
        &journal.host_key(LINK_SECRET).await.unwrap(),
    );
    let after_commands = target.peak_rss_mib();

    // The 300 MB line was cut, not held.
    let client = reqwest::Client::new();
    let long_line = client
        .get(links.url(job("long-line").id, job("long-line").link_salt))
        .send()
        .await
        .unwrap();
    assert_eq!(long_line.status(), 200);
    let text = long_line.text().await.unwrap();
    assert!(text.len() < 100_000, "{} bytes", text.len());
    assert!(
        text.contains("line cut: 300000000 bytes"),
        "{}",
        &text[text.len() - 100..]
    );

    // 40 readers of the 50 MB log that read nothing after their request.
    let big = links.path(job("big-log").id, job("big-log").link_salt);
    let mut stalled = Vec::new();
    for _ in 0..40 {
        let mut stream = target.connect().await;
        let request = format!("GET {big} HTTP/1.1\r\nHost: x\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The 41st reader is turned away until one of them goes.
    let busy = client
        .get(links.url(job("big-log").id, job("big-log").link_salt))
        .send()
        .await
        .unwrap();
    assert_eq!(busy.status(), 503);
    assert_eq!(busy.headers()["retry-after"], "1");
    let peak = target.peak_rss_mib();
    assert!(
        peak < RSS_BOUND_MIB,
        "peak RSS {peak} MiB ({after_commands} MiB before the readers)"
    );
    drop(stalled);

    // A reader that reads gets all of it, once the stalled readers' places are given back.
    let deadline = Instant::now() + Duration::from_secs(30);
    let whole = loop {
        let response = client
            .get(links.url(job("big-log").id, job("big-log").link_salt))
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            break response.bytes().await.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "readers' places were not given back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // All of the build's output; before it, at most the host's note that the sandbox was set
    // up again (bubblewrap losing its network setup on a loaded machine, retried) with what
    // that first sandbox printed.
    let before = whole.len().checked_sub(50_000_000).unwrap_or_else(|| {
        panic!("{} bytes of the log's 50,000,000", whole.len());
    });
    let (retried, output) = whole.split_at(before);
    assert!(
        retried.is_empty()
            || String::from_utf8_lossy(retried)
                .contains("switchyard: the sandbox ended while it was set up; starting it again"),
        "before the output: {:?}",
        String::from_utf8_lossy(retried)
    );
    assert!(
        output.starts_with(b"a line of a long build log"),
        "the output"
    );

    // Without its key, or with another's, a log is not there; with it, after a restart too.
    let big_url = links.url(job("big-log").id, job("big-log").link_salt);
    let other_key = links.url(job("long-line").id, job("long-line").link_salt);
    let other_key = other_key.rsplit('/').next().unwrap();
    let (base, _) = big_url.rsplit_once('/').unwrap();
    for wrong in [
        format!("{base}/{other_key}"),
        format!("{base}/"),
        base.to_owned(),
        format!("{base}/{}", "0".repeat(32)),
    ] {
        let response = client.get(&wrong).send().await.unwrap();
        assert_eq!(response.status(), 404, "{wrong}");
    }
    target.restart(server_keys, &log_writers());
    wait_until_listening(target.port).await;
    let after_restart = client
        .get(links.url(job("long-line").id, job("long-line").link_salt))
        .send()
        .await
        .unwrap();
    assert_eq!(after_restart.status(), 200);
}

/// A `push` of 16 MB, as GitHub sends for a push of many commits: 4,000 commits whose
/// messages are full of what HTML escapes.
fn big_push() -> Vec<u8> {
    let mut payload = example("push", None);
    let message = "fix \"quotes\" & <tags> in 'strings'; ".repeat(110);
    let commits: Vec<serde_json::Value> = (0..4000)
        .map(|n| serde_json::json!({ "id": format!("{n:040x}"), "message": message }))
        .collect();
    payload["commits"] = serde_json::Value::Array(commits);
    let body = serde_json::to_vec(&payload).unwrap();
    assert!(
        body.len() > 16_000_000 && body.len() < 17_000_000,
        "{}",
        body.len()
    );
    body
}

/// Reads what `stream` was sent until it is closed (true) or `limit` passes (false), and the
/// status line's code.
async fn answer_and_close(stream: &mut TcpStream, limit: Duration) -> (u16, bool) {
    let deadline = Instant::now() + limit;
    let mut head = Vec::new();
    let mut sink = vec![0u8; 1 << 16];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let closed = match tokio::time::timeout(left, stream.read(&mut sink)).await {
            Err(_) => Some(false),
            Ok(Ok(0) | Err(_)) => Some(true),
            Ok(Ok(n)) => {
                if head.len() < 12 {
                    head.extend_from_slice(&sink[..n.min(12)]);
                }
                None
            }
        };
        if let Some(closed) = closed {
            let status = String::from_utf8_lossy(&head);
            let code = status.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
            return (code, closed);
        }
    }
}

#[tokio::test]
async fn dashboard_readers_of_a_big_delivery_and_a_long_log_that_never_read_keep_memory_bounded() {
    let _ = library("switchyard-test-behaviours");
    raise_own_open_file_limit();
    // Defaults but for the write timeout, short enough to see it drop the readers here (the
    // bound does not depend on it); the header timeout outlasts the test.
    let server_keys = "write_timeout_secs = 20\nheader_timeout_secs = 300";
    let dashboard = "[dashboard]\nenabled = true\naccess = \"public-read\"\n\
                     tokens_file = \"dashboard-tokens\"\n";
    let empty_lines = behaviours(
        "empty-lines",
        "",
        "behaviour = \"run\"\nscript = \"yes '' | head -n 300000\"\ntimeout_secs = 120",
    );
    let target = Target::start(server_keys, &format!("{dashboard}{empty_lines}"), None).await;
    let push = big_push();
    assert_eq!(target.deliver("push", "big-push", push.clone()).await, 202);
    let pull = serde_json::to_vec(&example("pull_request", Some("opened"))).unwrap();
    assert_eq!(target.deliver("pull_request", "empty", pull).await, 202);
    let job = ended_jobs(&target.store(), "empty", 1).await[0].id;
    let at_rest = target.rss_mib();

    // What a reader that reads gets: a page of the payload's start with the whole as a
    // download, a log window of 5,000 lines, follow events of at most 256 KiB.
    let client = reqwest::Client::new();
    let page = client
        .get(target.url("/dashboard/deliveries/big-push"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.len() < 2 << 20,
        "a delivery page of {} bytes",
        page.len()
    );
    assert!(
        page.contains(&format!("The first 262144 of {} bytes", push.len())),
        "no note of the cut"
    );
    assert!(page.contains("href=\"/dashboard/deliveries/big-push/payload\""));
    let download = client
        .get(target.url("/dashboard/deliveries/big-push/payload"))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap(), push);
    let log_page = client
        .get(target.url(&format!("/dashboard/jobs/{job}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        log_page.len() < 1 << 20,
        "a job page of {} bytes",
        log_page.len()
    );
    assert_eq!(log_page.matches("<a class=\"ln\"").count(), 5000);
    assert!(log_page.contains("id=\"show-earlier\""));
    let stream = client
        .get(target.url(&format!("/dashboard/jobs/{job}/follow?offset=0")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events: Vec<&str> = stream
        .split("\n\n")
        .filter(|e| e.contains("event: lines"))
        .collect();
    assert!(events.len() > 1);
    assert!(events.iter().all(|event| event.len() < 300 << 10));
    assert!(stream.matches("<a class=\"ln\"").count() >= 300_000);
    assert!(stream.contains("event: end"));

    // Readers that send their GET and never read, up to the connection cap (512), from
    // many addresses: of the delivery's page and its download, the log's page and its follow
    // stream.
    // One download is admitted before the crowd comes (its answer has begun), so that the write
    // timeout has an unread answer to drop whatever order the others are served in.
    let mut first = target
        .hold(
            "/dashboard/deliveries/big-push/payload",
            std::net::Ipv4Addr::new(127, 0, 1, 1),
        )
        .await;
    let mut status = [0u8; 12];
    first.read_exact(&mut status).await.unwrap();
    assert_eq!(&status[9..], b"200", "{}", String::from_utf8_lossy(&status));
    let mut held = Vec::new();
    let paths = [
        "/dashboard/deliveries/big-push".to_owned(),
        "/dashboard/deliveries/big-push/payload".to_owned(),
        format!("/dashboard/jobs/{job}"),
        format!("/dashboard/jobs/{job}?line=1"),
        format!("/dashboard/jobs/{job}/follow?offset=0"),
    ];
    for n in 0..500u32 {
        let from = std::net::Ipv4Addr::from(0x7f00_0002 + n / 4);
        let path = &paths[n as usize % paths.len()];
        held.push((path.clone(), target.hold(path, from).await));
    }
    // In place: the budget's waiters are turned away after 5 s.
    tokio::time::sleep(Duration::from_secs(8)).await;
    target
        .still_answers("during-dashboard-readers", Duration::from_secs(10))
        .await;
    let (now, peak) = (target.rss_mib(), target.peak_rss_mib());
    eprintln!("dashboard readers: peak {peak} MiB, {now} MiB now, {at_rest} MiB at rest");
    assert!(
        peak < RSS_BOUND_MIB,
        "peak RSS {peak} MiB, {now} MiB now ({at_rest} MiB at rest)"
    );

    // Past the write timeout, a reader of the download that never read has been dropped.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let mut checks = tokio::task::JoinSet::new();
    for (path, mut stream) in held {
        if path.ends_with("/payload") {
            checks
                .spawn(async move { answer_and_close(&mut stream, Duration::from_secs(5)).await });
        }
    }
    let (_, closed) = answer_and_close(&mut first, Duration::from_secs(5)).await;
    assert!(
        closed,
        "a download not read was kept past the write timeout"
    );
    let mut dropped = 1;
    while let Some(checked) = checks.join_next().await {
        let (status, closed) = checked.unwrap();
        if status == 200 {
            assert!(
                closed,
                "a download not read was kept past the write timeout"
            );
            dropped += 1;
        }
    }
    eprintln!("{dropped} unread downloads dropped at the write timeout");
    // And what they held is free: the whole payload again.
    let download = client
        .get(target.url("/dashboard/deliveries/big-push/payload"))
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert_eq!(download.bytes().await.unwrap().len(), push.len());
}
