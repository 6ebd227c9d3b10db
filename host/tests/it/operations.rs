//! Operations: health, metrics, replay and the operator commands against a running server.

use std::process::Command;

use serde_json::json;
use switchyard::{ingress::WebhookSecret, journal::JobState, ops::signed_call::AdminSignature};

use crate::support::{
    EVENT_LOG, FakeGitHub, HostSpec, SECRET, TOKEN, TestHost, behaviours, example, expand,
    net::{free_port, wait_until_listening},
    send_signed,
    server::{ended_jobs, spawn_server},
};

#[tokio::test]
async fn health_and_readiness_answer() {
    let host = TestHost::start(HostSpec {
        plugins: EVENT_LOG.into(),
        ..Default::default()
    })
    .await;
    assert_eq!(host.get("/healthz").await, (200, "ok\n".to_owned()));
    let (status, body) = host.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body, json!({"journal": "writable", "plugins": 1}));
    host.stop().await;
}

/// The value of one sample, by metric name and labels.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(ref buckets) => {
                buckets.last().map(|b| b.count).unwrap_or_default()
            }
            _ => f64::NAN,
        })
        .unwrap_or_else(|| panic!("no sample {name} {labels:?} in {:?}", scrape.samples))
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_count_what_happened() {
    let github = FakeGitHub::start().await;
    github.answer_next(500, &[], json!({"message": "Server Error"}));
    let host = TestHost::start(HostSpec {
        plugins: format!(
            "{EVENT_LOG}{}",
            behaviours("status", "", "behaviour = \"commit_status\"")
        ),
        github_url: Some(github.url().to_owned()),
        github_token: Some(TOKEN),
        ..Default::default()
    })
    .await;
    let payload = example("pull_request", Some("opened"));
    for delivery in ["m-1", "m-2"] {
        assert_eq!(host.send("pull_request", delivery, &payload).await.0, 202);
        host.ended_jobs(delivery, 2).await;
    }
    let body = serde_json::to_vec(&payload).unwrap();
    let unsigned = [
        ("content-type", "application/json"),
        ("x-github-event", "pull_request"),
        ("x-github-delivery", "m-3"),
    ];
    assert_eq!(host.post(&unsigned, body).await.0, 401);
    host.reloader.reload().unwrap();

    let (status, text) = host.get("/metrics").await;
    assert_eq!(status, 200);
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let deliveries = "switchyard_deliveries_total";
    assert_eq!(
        sample(
            &scrape,
            deliveries,
            &[("event", "pull_request"), ("code", "202")]
        ),
        2.0
    );
    assert_eq!(
        sample(
            &scrape,
            deliveries,
            &[("event", "rejected"), ("code", "401")]
        ),
        1.0
    );
    assert_eq!(
        sample(&scrape, "switchyard_signature_failures_total", &[]),
        1.0
    );
    let jobs = "switchyard_jobs_total";
    assert_eq!(
        sample(
            &scrape,
            jobs,
            &[("plugin", "event-log"), ("outcome", "succeeded")]
        ),
        2.0
    );
    assert_eq!(
        sample(
            &scrape,
            jobs,
            &[("plugin", "status"), ("outcome", "succeeded")]
        ),
        2.0
    );
    let duration = "switchyard_job_duration_seconds_count";
    assert_eq!(sample(&scrape, duration, &[("plugin", "event-log")]), 2.0);
    let calls = "switchyard_outbound_calls_total";
    assert_eq!(
        sample(&scrape, calls, &[("target", "github"), ("status", "500")]),
        1.0
    );
    assert_eq!(
        sample(&scrape, calls, &[("target", "github"), ("status", "201")]),
        2.0
    );
    let retries = "switchyard_outbound_retries_total";
    assert_eq!(sample(&scrape, retries, &[("target", "github")]), 1.0);
    assert_eq!(sample(&scrape, "switchyard_reloads_total", &[]), 1.0);
    assert_eq!(
        sample(&scrape, "switchyard_reload_failures_total", &[]),
        0.0
    );
    assert_eq!(sample(&scrape, "switchyard_queue_depth", &[]), 0.0);
    host.stop().await;
}

/// A signed admin call, as `switchyard replay` makes it: its body and headers, to send again.
fn admin_request(path: &str, body: serde_json::Value) -> (Vec<u8>, [(&'static str, String); 3]) {
    let body = serde_json::to_vec(&body).unwrap();
    let signature = AdminSignature::sign(&WebhookSecret::new(SECRET), path, &body);
    (body, signature.headers())
}

async fn post_admin(
    base: &str,
    path: &str,
    (body, headers): &(Vec<u8>, [(&'static str, String); 3]),
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().post(format!("{base}{path}"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.body(body.clone()).send().await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or_default(),
    )
}

async fn admin(host: &TestHost, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    post_admin(&host.base, path, &admin_request(path, body)).await
}

#[tokio::test]
async fn replay_runs_a_stored_delivery_again() {
    let host = TestHost::start(HostSpec {
        plugins: EVENT_LOG.into(),
        ..Default::default()
    })
    .await;
    let payload = example("pull_request", Some("opened"));
    host.send("pull_request", "again-1", &payload).await;
    host.ended_jobs("again-1", 1).await;

    let (status, answer) = admin(&host, "/admin/replay", json!({"delivery": "again-1"})).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["jobs"][0]["plugin"], "event-log");
    let jobs = host.ended_jobs("again-1", 2).await;
    assert!(
        jobs.iter().all(|j| j.state == JobState::Succeeded),
        "{jobs:?}"
    );
    let logged = host.events_logged();
    assert_eq!(
        logged.iter().filter(|e| e["delivery"] == "again-1").count(),
        2
    );

    let (status, answer) = admin(&host, "/admin/replay", json!({"delivery": "nope"})).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("no delivery \"nope\" in the journal"))
    );
    let request = json!({"delivery": "again-1", "plugin": "ci"});
    let (status, answer) = admin(&host, "/admin/replay", request).await;
    assert_eq!(status, 404);
    assert_eq!(
        answer["error"],
        "plugin \"ci\" is not loaded (loaded: event-log)"
    );
    // Unsigned: refused like an unsigned webhook.
    let response = reqwest::Client::new()
        .post(format!("{}/admin/replay", host.base))
        .body(r#"{"delivery": "again-1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        host.ended_jobs("again-1", 2).await.len(),
        2,
        "nothing more ran"
    );
    host.stop().await;
}

#[tokio::test]
async fn the_operator_commands_work_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nsecret_env = \"TEST_WEBHOOK_SECRET\"\n\
         [store]\npath = \"{{dir}}/switchyard.db\"\n{EVENT_LOG}\
         [[plugins]]\nname = \"ci\"\nlibrary = \"{{lib:switchyard-ci}}\"\nenabled = false\n"
    );
    let config = dir.path().join("config.toml");
    std::fs::write(&config, expand(&text, dir.path())).unwrap();
    let _server = spawn_server(&config, &[("TEST_WEBHOOK_SECRET", SECRET)], None);
    wait_until_listening(port).await;
    let url = format!("http://127.0.0.1:{port}/event_handler");
    let payload = example("pull_request", Some("opened"));
    assert_eq!(
        send_signed(&url, "pull_request", "cli-1", &payload).await,
        202
    );
    let store = dir.path().join("switchyard.db");
    ended_jobs(&store, "cli-1", 1).await;

    let switchyard = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .env("TEST_WEBHOOK_SECRET", SECRET)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let listed = switchyard(&["deliveries", "--limit", "5", "--event", "pull_request"]);
    assert!(listed.contains("cli-1  pull_request.opened"), "{listed}");
    assert!(
        listed.contains("event-log: passed (state succeeded, attempts 1)"),
        "{listed}"
    );
    assert_eq!(switchyard(&["deliveries", "--failed"]), "no deliveries\n");

    let replayed = switchyard(&["replay", "cli-1", "--plugin", "event-log"]);
    assert!(replayed.starts_with("HTTP 202"), "{replayed}");
    ended_jobs(&store, "cli-1", 2).await;

    let plugins = switchyard(&["plugins"]);
    assert!(
        plugins.contains("event-log  enabled  switchyard-event-log 0.1.0  *"),
        "{plugins}"
    );
    assert!(plugins.contains("ci  disabled"), "{plugins}");
}

#[tokio::test]
async fn a_captured_admin_call_is_refused_again_even_after_a_restart_and_webhooks_never_pass() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nsecret_env = \"TEST_WEBHOOK_SECRET\"\n\
         [store]\npath = \"{{dir}}/switchyard.db\"\n{EVENT_LOG}"
    );
    let config = dir.path().join("config.toml");
    std::fs::write(&config, expand(&text, dir.path())).unwrap();
    let env = [("TEST_WEBHOOK_SECRET", SECRET)];
    let server = spawn_server(&config, &env, None);
    wait_until_listening(port).await;
    let base = format!("http://127.0.0.1:{port}");
    let payload = example("pull_request", Some("opened"));
    let url = format!("{base}/event_handler");
    assert_eq!(
        send_signed(&url, "pull_request", "cap-1", &payload).await,
        202
    );
    let store = dir.path().join("switchyard.db");
    ended_jobs(&store, "cap-1", 1).await;

    // Captured on the way and sent again: the first is run, the copy is refused.
    let captured = admin_request("/admin/replay", json!({"delivery": "cap-1"}));
    assert_eq!(post_admin(&base, "/admin/replay", &captured).await.0, 202);
    let (status, answer) = post_admin(&base, "/admin/replay", &captured).await;
    assert_eq!(status, 401, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("made before"),
        "{answer}"
    );
    // Sent to the other admin route: its signature covers the path.
    assert_eq!(post_admin(&base, "/admin/plugins", &captured).await.0, 401);

    // A webhook body, signed as GitHub signs it, is no admin call.
    let webhook = serde_json::to_vec(&json!({"delivery": "cap-1"})).unwrap();
    let response = reqwest::Client::new()
        .post(format!("{base}/admin/plugins"))
        .header(
            "x-hub-signature-256",
            WebhookSecret::new(SECRET).sign_sha256(&webhook),
        )
        .body(webhook)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // After a restart the nonce is still known.
    drop(server);
    let _server = spawn_server(&config, &env, None);
    wait_until_listening(port).await;
    assert_eq!(post_admin(&base, "/admin/replay", &captured).await.0, 401);
    let fresh = admin_request("/admin/replay", json!({"delivery": "cap-1"}));
    assert_eq!(post_admin(&base, "/admin/replay", &fresh).await.0, 202);
    // One delivery, its job, and the two replays that were accepted: nothing more ran.
    assert_eq!(ended_jobs(&store, "cap-1", 3).await.len(), 3);
}

#[tokio::test]
async fn logs_are_plain_text_off_a_terminal_and_json_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nsecret_env = \"TEST_WEBHOOK_SECRET\"\n\
         [store]\npath = \"{{dir}}/switchyard.db\"\n{EVENT_LOG}"
    );
    let config = dir.path().join("config.toml");
    std::fs::write(&config, expand(&text, dir.path())).unwrap();
    let env = [("TEST_WEBHOOK_SECRET", SECRET)];
    for (format, log) in [("text", "text.log"), ("json", "json.log")] {
        let log = dir.path().join(log);
        let env = [env[0], ("SWITCHYARD_LOG_FORMAT", format)];
        let server = spawn_server(&config, &env, Some(&log));
        wait_until_listening(port).await;
        drop(server);
        let written = std::fs::read_to_string(&log).unwrap();
        assert!(
            !written.contains('\u{1b}'),
            "colour codes in a file: {written}"
        );
        let listening = written
            .lines()
            .find(|line| line.contains("switchyard is listening"))
            .unwrap_or_else(|| panic!("{written}"));
        if format == "json" {
            let line: serde_json::Value = serde_json::from_str(listening).unwrap();
            assert_eq!(line["level"], "INFO");
            assert_eq!(line["fields"]["message"], "switchyard is listening");
        } else {
            assert!(serde_json::from_str::<serde_json::Value>(listening).is_err());
        }
    }
}
