//! The chat and pager notifiers against a local receiver standing in for Slack and PagerDuty.
//! The host runs as its own process: the endpoints are secrets, read only from the environment.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use switchyard::journal::JobState;

use crate::support::{
    EVENT_LOG, SECRET, example, expand,
    net::{free_port, wait_until_listening},
    receiver::Receiver,
    send_signed,
    server::{Server, ended_jobs, spawn_server},
};

/// The secret part of the chat URL: it must never show in a log.
const CHAT_TOKEN: &str = "T000/B000/XXXXsecretXXXX";
const ROUTING_KEY: &str = "R0UTINGKEYsecret";

struct Notifiers {
    dir: tempfile::TempDir,
    receiver: Receiver,
    webhook_url: String,
    _server: Server,
}

impl Notifiers {
    /// Starts a receiver, then a host whose `[[plugins]]` come from `plugins(receiver_url)`.
    async fn start(plugins: impl FnOnce(&str) -> String) -> Self {
        let receiver = Receiver::start().await;
        let plugins = plugins(&receiver.url);
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nsecret_env = \"TEST_WEBHOOK_SECRET\"\n\
             [github]\napi_url = \"http://127.0.0.1:9\"\nbackoff_ms = 10\n\
             [store]\npath = \"{{dir}}/switchyard.db\"\n\
             [workers]\nretry_backoff_ms = 10\n{plugins}"
        );
        let config = dir.path().join("config.toml");
        std::fs::write(&config, expand(&text, dir.path())).unwrap();
        let chat_url = format!("{}/services/{CHAT_TOKEN}", receiver.url);
        let server = spawn_server(
            &config,
            &[
                ("TEST_WEBHOOK_SECRET", SECRET),
                ("TEST_CHAT_URL", &chat_url),
                ("TEST_PAGER_KEY", ROUTING_KEY),
            ],
            Some(&dir.path().join("host.log")),
        );
        wait_until_listening(port).await;
        Self {
            dir,
            receiver,
            webhook_url: format!("http://127.0.0.1:{port}/event_handler"),
            _server: server,
        }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("switchyard.db")
    }

    async fn send(&self, event: &str, delivery: &str, payload: &Value) {
        assert_eq!(
            send_signed(&self.webhook_url, event, delivery, payload).await,
            202
        );
    }

    /// Everything the host wrote: its own log and every job log.
    fn all_logs(&self) -> String {
        let mut text = std::fs::read_to_string(self.dir.path().join("host.log")).unwrap();
        for entry in std::fs::read_dir(self.dir.path().join("logs"))
            .into_iter()
            .flatten()
        {
            // Lossy: beside each log lies its binary `.times` record.
            text += &String::from_utf8_lossy(&std::fs::read(entry.unwrap().path()).unwrap());
        }
        text
    }
}

fn chat(extra_settings: &str) -> String {
    format!(
        "[[plugins]]\nname = \"chat\"\nlibrary = \"{{lib:switchyard-chat}}\"\n\
         [plugins.settings]\nurl_env = \"TEST_CHAT_URL\"\n{extra_settings}\n"
    )
}

fn pager(receiver_url: &str, extra_settings: &str) -> String {
    format!(
        "[[plugins]]\nname = \"pager\"\nlibrary = \"{{lib:switchyard-pager}}\"\n\
         [plugins.settings]\nrouting_key_env = \"TEST_PAGER_KEY\"\nurl = \"{receiver_url}/v2/enqueue\"\n\
         severity = \"critical\"\n{extra_settings}\n"
    )
}

fn deployment_status(state: &str) -> Value {
    let mut payload = example("deployment_status", None);
    payload["deployment_status"]["state"] = json!(state);
    payload["deployment_status"]["description"] = json!(format!("Deploy {state}"));
    payload["deployment_status"]["log_url"] = json!("https://ci.example.com/jobs/7/log");
    payload["deployment"]["environment"] = json!("production");
    payload["deployment"]["payload"] = json!({"deploy_user": "mona"});
    payload
}

fn status(state: &str) -> Value {
    let mut payload = example("status", None);
    payload["state"] = json!(state);
    payload["context"] = json!("ci/switchyard");
    payload["target_url"] = json!("https://ci.example.com/jobs/3/log");
    payload
}

fn texts(receiver: &Receiver) -> Vec<String> {
    receiver
        .received()
        .iter()
        .map(|(_, body)| body["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn chat_tells_deployments_and_failures_and_never_logs_its_url() {
    let notifiers = Notifiers::start(|_| chat("")).await;
    let deployment = deployment_status("failure");
    notifiers
        .send("deployment_status", "chat-1", &deployment)
        .await;
    ended_jobs(&notifiers.store(), "chat-1", 1).await;
    let failing = status("failure");
    notifiers.send("status", "chat-2", &failing).await;
    ended_jobs(&notifiers.store(), "chat-2", 1).await;
    let passing = status("success");
    notifiers.send("status", "chat-3", &passing).await;
    let jobs = ended_jobs(&notifiers.store(), "chat-3", 1).await;
    assert_eq!(
        jobs[0].note.as_deref(),
        Some("skipped: status success is not told")
    );

    let received = notifiers.receiver.received();
    assert_eq!(received.len(), 2, "{received:?}");
    assert!(
        received
            .iter()
            .all(|(path, _)| *path == format!("/services/{CHAT_TOKEN}"))
    );
    let repo = deployment["repository"]["full_name"].as_str().unwrap();
    let sha = &deployment["deployment"]["sha"].as_str().unwrap()[..7];
    assert_eq!(
        texts(&notifiers.receiver)[0],
        format!(
            "{repo}: deployment to production failure ({sha} by mona): Deploy failure \
             - https://ci.example.com/jobs/7/log"
        )
    );
    let status_text = &texts(&notifiers.receiver)[1];
    let status_sha = &failing["sha"].as_str().unwrap()[..7];
    assert!(
        status_text.starts_with(&format!(
            "{}: ci/switchyard failure on {status_sha}",
            failing["repository"]["full_name"].as_str().unwrap()
        )) && status_text.ends_with("https://ci.example.com/jobs/3/log"),
        "{status_text}"
    );
    assert!(
        !notifiers.all_logs().contains("secret"),
        "a secret was logged"
    );
}

#[tokio::test]
async fn pager_triggers_then_resolves_with_one_dedup_key() {
    let notifiers = Notifiers::start(|url| pager(url, "")).await;
    notifiers
        .send("deployment_status", "page-1", &deployment_status("failure"))
        .await;
    ended_jobs(&notifiers.store(), "page-1", 1).await;
    notifiers
        .send(
            "deployment_status",
            "page-2",
            &deployment_status("in_progress"),
        )
        .await;
    ended_jobs(&notifiers.store(), "page-2", 1).await;
    notifiers
        .send("deployment_status", "page-3", &deployment_status("success"))
        .await;
    ended_jobs(&notifiers.store(), "page-3", 1).await;

    let received = notifiers.receiver.received();
    assert_eq!(received.len(), 2, "in_progress pages nobody: {received:?}");
    let (trigger, resolve) = (&received[0].1, &received[1].1);
    assert_eq!(received[0].0, "/v2/enqueue");
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["routing_key"], ROUTING_KEY);
    let repo = example("deployment_status", None)["repository"]["full_name"].clone();
    assert_eq!(trigger["payload"]["source"], repo);
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(
        trigger["links"][0]["href"],
        "https://ci.example.com/jobs/7/log"
    );
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
    assert!(
        !notifiers.all_logs().contains(ROUTING_KEY),
        "the routing key was logged"
    );
}

#[tokio::test]
async fn pager_retries_429_and_500_then_delivers_once() {
    let notifiers = Notifiers::start(|url| pager(url, "")).await;
    notifiers
        .receiver
        .answer_next(429, r#"{"status":"throttled"}"#);
    notifiers.receiver.answer_next(500, "oops");
    notifiers
        .send("deployment_status", "retry-1", &deployment_status("error"))
        .await;
    let jobs = ended_jobs(&notifiers.store(), "retry-1", 1).await;
    assert_eq!(jobs[0].state, JobState::Succeeded, "{jobs:?}");
    let received = notifiers.receiver.received();
    assert_eq!(received.len(), 3, "two refusals, then the delivery");
    assert!(
        received.iter().all(|(_, body)| *body == received[0].1),
        "the same event each time"
    );
}

#[tokio::test]
async fn a_400_fails_the_job_with_the_apis_message() {
    let notifiers = Notifiers::start(|url| pager(url, "")).await;
    notifiers.receiver.answer_next(
        400,
        r#"{"status":"invalid event","message":"Event object is invalid","errors":["Length of 'routing_key' is incorrect"]}"#,
    );
    notifiers
        .send("deployment_status", "bad-1", &deployment_status("failure"))
        .await;
    let jobs = ended_jobs(&notifiers.store(), "bad-1", 1).await;
    assert_eq!(jobs[0].state, JobState::Failed);
    let error = jobs[0].error.as_deref().unwrap_or_default();
    let host = notifiers
        .receiver
        .url
        .trim_start_matches("http://")
        .split(':')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        error,
        format!(
            "POST to {host} answered 400: Event object is invalid \
             (Length of 'routing_key' is incorrect)"
        )
    );
    assert_eq!(
        notifiers.receiver.received().len(),
        1,
        "a 400 is not retried"
    );
}

#[tokio::test]
async fn a_disabled_notifier_sends_nothing() {
    let notifiers = Notifiers::start(|_| {
        let chat = chat("").replace("[plugins.settings]", "enabled = false\n[plugins.settings]");
        format!("{chat}{EVENT_LOG}")
    })
    .await;
    notifiers
        .send("deployment_status", "off-1", &deployment_status("failure"))
        .await;
    let jobs = ended_jobs(&notifiers.store(), "off-1", 1).await;
    assert_eq!(
        jobs[0].plugin, "event-log",
        "only the enabled plugin got a job"
    );
    assert!(notifiers.receiver.received().is_empty());
}

#[test]
fn check_names_a_missing_endpoint_variable() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_check_config(dir.path());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["check", "--config"])
        .arg(&config)
        .env("TEST_WEBHOOK_SECRET", SECRET)
        .env_remove("TEST_PAGER_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("environment variable TEST_PAGER_KEY is not set"),
        "{stderr}"
    );
    assert!(stderr.contains("pager"), "the plugin is named: {stderr}");
}

fn write_check_config(dir: &Path) -> PathBuf {
    let text = format!(
        "[server]\nsecret_env = \"TEST_WEBHOOK_SECRET\"\n[store]\npath = \"{{dir}}/s.db\"\n{}",
        pager("http://127.0.0.1:9", "")
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, expand(&text, dir)).unwrap();
    path
}
