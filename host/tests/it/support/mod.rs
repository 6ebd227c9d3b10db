//! Shared test helpers: plugin libraries built once, a host on a free loopback port with a
//! temporary store, signed requests, and waiting for jobs to end. The fake GitHub and the local
//! git repositories are the public test kit's, so plugin authors test against the same ones.

pub mod net;
pub mod receiver;
pub mod server;

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
    time::{Duration, Instant},
};

use switchyard::{
    Config, Switchyard,
    ingress::WebhookSecret,
    journal::{JobId, JobRecord, JobState},
    wiring::Secrets,
};
pub use switchyard_testkit::{FakeGitHub, Origin};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub const SECRET: &str = "test-secret-value";
pub const TOKEN: &str = "test-token-value";

/// The workspace's plugin packages, which tests load as `{lib:PACKAGE}`.
const PACKAGES: [&str; 9] = [
    "switchyard-chat",
    "switchyard-pager",
    "switchyard-ci",
    "switchyard-deployer",
    "switchyard-deploy-template",
    "switchyard-event-log",
    "switchyard-test-behaviours",
    "switchyard-test-old-abi",
    "switchyard-test-not-a-plugin",
];

/// Path of a plugin library of this workspace, built (once per test run) in the test profile.
pub fn library(package: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut cargo = std::process::Command::new(env!("CARGO"));
        cargo.arg("build").current_dir(workspace());
        // Build scripts (ring, cc) rerun when the package variables cargo set for this test
        // differ from the outer build's: inherited, they rebuild dependencies at every switch.
        for (name, _) in std::env::vars() {
            if [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_NAME",
                "OUT_DIR",
            ]
            .iter()
            .any(|prefix| name.starts_with(prefix))
            {
                cargo.env_remove(name);
            }
        }
        for package in PACKAGES {
            cargo.args(["-p", package]);
        }
        let status = cargo.status().expect("cargo runs");
        assert!(status.success(), "building the plugin libraries failed");
    });
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    target
        .join("debug")
        .join(format!("lib{}.so", package.replace('-', "_")))
}

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// A fixture payload from GitHub's own examples: the first of `event` with `action`.
pub fn example(event: &str, action: Option<&str>) -> serde_json::Value {
    static FIXTURES: OnceLock<serde_json::Value> = OnceLock::new();
    let fixtures = FIXTURES.get_or_init(|| {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webhook-examples.json");
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    });
    let hook = fixtures
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == event)
        .unwrap_or_else(|| panic!("no fixture for {event}"));
    hook["examples"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| action.is_none_or(|a| e["action"] == a))
        .unwrap_or_else(|| panic!("no {event}.{action:?} example"))
        .clone()
}

/// What to put in a test host's config beside the defaults.
#[derive(Default)]
pub struct HostSpec {
    /// Extra `[server]` keys.
    pub server: String,
    /// `[[plugins]]` tables; `{lib:PACKAGE}` becomes that library's path, `{dir}` the store.
    pub plugins: String,
    pub github_url: Option<String>,
    pub github_token: Option<&'static str>,
    /// Extra `[github]` keys.
    pub github: String,
    /// Act as the fake GitHub's App (`auth = "app"`, its id, the test key in a file).
    pub app: bool,
    /// Extra `[workers]` keys.
    pub workers: String,
    /// Extra `[store]` keys.
    pub store: String,
    /// `[dashboard]` keys; no table when empty.
    pub dashboard: String,
    /// `[catch_up]` keys (and `[[catch_up.hooks]]` after them); no table when empty.
    pub catch_up: String,
}

/// A running host on a free loopback port.
pub struct TestHost {
    pub base: String,
    pub dir: tempfile::TempDir,
    pub host_state: switchyard::wiring::HostState,
    pub reloader: std::sync::Arc<switchyard::ops::reload::Reloader>,
    github_token: Option<&'static str>,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<()>>,
    /// The listening socket, kept open across `restart` so that no other test's host takes
    /// the port while this one is down (connections wait in its backlog meanwhile).
    listening: Option<std::net::TcpListener>,
}

pub fn expand(text: &str, dir: &Path) -> String {
    let mut text = text.replace("{dir}", &dir.display().to_string());
    for package in PACKAGES {
        text = text.replace(
            &format!("{{lib:{package}}}"),
            &library(package).display().to_string(),
        );
    }
    text
}

impl TestHost {
    pub async fn start(spec: HostSpec) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n{server}\n\
             [github]\napi_url = \"{github}\"\nbackoff_ms = 10\n{github_extra}\n\
             [store]\npath = \"{{dir}}/switchyard.db\"\n{store}\n\
             [workers]\nretry_backoff_ms = 10\n{workers}\n{dashboard}\n{catch_up}\n{plugins}",
            catch_up = if spec.catch_up.is_empty() {
                String::new()
            } else {
                format!("[catch_up]\n{}\n", spec.catch_up)
            },
            dashboard = if spec.dashboard.is_empty() {
                String::new()
            } else {
                format!("[dashboard]\n{}\n", spec.dashboard)
            },
            server = spec.server,
            github = spec.github_url.as_deref().unwrap_or("http://127.0.0.1:9"),
            github_extra = spec.github,
            // A cancelled job's grace, short unless a test sets its own.
            workers = if spec.workers.contains("cancel_grace_secs") {
                spec.workers.clone()
            } else {
                format!("cancel_grace_secs = 1\n{}", spec.workers)
            },
            store = spec.store,
            // Workspaces of a size every test machine has room for (the default 10 GiB each
            // would make builds wait for disk on a fuller machine).
            plugins = match spec.plugins.contains("[sandbox]\n") {
                true => spec
                    .plugins
                    .replace("[sandbox]\n", "[sandbox]\ndisk_mib = 512\n"),
                false => format!("[sandbox]\ndisk_mib = 512\n{}", spec.plugins),
            },
        );
        let text = match spec.app {
            true => {
                std::fs::write(
                    dir.path().join("app.pem"),
                    switchyard_testkit::app::TEST_APP_KEY,
                )
                .unwrap();
                text.replace(
                    "[github]\n",
                    &format!(
                        "[github]\nauth = \"app\"\napp_id = {}\nprivate_key_file = \"app.pem\"\n",
                        switchyard_testkit::app::TEST_APP_ID
                    ),
                )
            }
            false => text,
        };
        let text = expand(&text, dir.path());
        // Written out, so the host's watcher sees edits (see `rewrite_plugins`).
        let file = dir.path().join("config.toml");
        std::fs::write(&file, &text).unwrap();
        Self::serve(dir, listener, spec.github_token).await
    }

    /// Starts a host from the config file in `dir`, on `listener`.
    async fn serve(
        dir: tempfile::TempDir,
        listener: TcpListener,
        github_token: Option<&'static str>,
    ) -> Self {
        let port = listener.local_addr().unwrap().port();
        let listener = listener.into_std().unwrap();
        let listening = Some(listener.try_clone().unwrap());
        let listener = TcpListener::from_std(listener).unwrap();
        let config = Config::load(&dir.path().join("config.toml")).unwrap();
        let secrets = Secrets {
            webhook: WebhookSecret::new(SECRET),
            github_token: github_token.map(str::to_owned),
            github_app_key: (config.github.auth == switchyard::config::GitHubAuth::App)
                .then(|| std::sync::Arc::new(switchyard::wiring::github_app_key(&config).unwrap())),
        };
        let host = Switchyard::start(config, secrets).await.unwrap();
        let host_state = host.state.clone();
        let reloader = std::sync::Arc::clone(&host.reloader);
        let (stop, stopped) = oneshot::channel();
        let served = tokio::spawn(async move {
            host.serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            base: format!("http://127.0.0.1:{port}"),
            dir,
            host_state,
            reloader,
            github_token,
            http: reqwest::Client::new(),
            stop: Some(stop),
            served: Some(served),
            listening,
        }
    }

    /// Shuts the host down as SIGTERM would, then starts it again on the same store, config
    /// and port.
    pub async fn restart(mut self) -> Self {
        self.shut_down().await;
        let kept = self
            .listening
            .take()
            .expect("a host keeps its listening socket");
        let listener = TcpListener::from_std(kept).unwrap();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        Self::serve(dir, listener, self.github_token).await
    }

    /// Shuts the host down as SIGTERM would, runs `meanwhile` while nothing listens on its
    /// port, then starts it again on the same store, config and port.
    pub async fn restart_after(mut self, meanwhile: impl std::future::Future<Output = ()>) -> Self {
        let port: u16 = self.base.rsplit(':').next().unwrap().parse().unwrap();
        self.shut_down().await;
        drop(self.listening.take());
        meanwhile.await;
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        Self::serve(dir, listener, self.github_token).await
    }

    /// Replaces the `[[plugins]]` part of the config file the way editors save: a new file
    /// renamed over the old one.
    pub fn rewrite_plugins(&self, plugins: &str) {
        let file = self.dir.path().join("config.toml");
        let text = std::fs::read_to_string(&file).unwrap();
        let head = text.split("[[plugins]]").next().unwrap();
        let temporary = self.dir.path().join(".config.toml.swp");
        std::fs::write(
            &temporary,
            format!("{head}{}", expand(plugins, self.dir.path())),
        )
        .unwrap();
        std::fs::rename(&temporary, &file).unwrap();
    }

    /// Names of the plugins in the current set.
    pub fn plugin_names(&self) -> Vec<String> {
        let set = self.host_state.plugins.current();
        set.iter().map(|p| p.name().to_owned()).collect()
    }

    pub fn webhook_url(&self) -> String {
        format!("{}/event_handler", self.base)
    }

    /// POSTs a JSON body signed with the test secret.
    pub async fn send(
        &self,
        event: &str,
        delivery: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let body = serde_json::to_vec(body).unwrap();
        let signature = WebhookSecret::new(SECRET).sign_sha256(&body);
        self.post(
            &[
                ("content-type", "application/json"),
                ("x-github-event", event),
                ("x-github-delivery", delivery),
                ("x-hub-signature-256", &signature),
            ],
            body,
        )
        .await
    }

    /// POSTs raw bytes with exactly these headers.
    pub async fn post(&self, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, serde_json::Value) {
        let mut request = self.http.post(self.webhook_url()).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    /// A streaming GET, for reading a response chunk by chunk.
    pub async fn get_streaming(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// The path of `job`'s log, with its key (signed with no salt when there is no such job).
    pub async fn log_path(&self, job: JobId) -> String {
        let salt = match self.host_state.journal.job(job).await {
            Ok(record) => record.link_salt,
            Err(_) => Default::default(),
        };
        self.host_state.links.path(job, salt)
    }

    /// Waits until the delivery has `count` jobs, all ended; panics after 30 s.
    pub async fn ended_jobs(&self, delivery: &str, count: usize) -> Vec<JobRecord> {
        ended_jobs(&*self.host_state.journal, delivery, count).await
    }

    /// Sends a valid delivery and waits for its event-log job: any delivery answered before it
    /// and dispatched would be in the journal and the event log by then. Asserts that this
    /// one is all there is in both.
    pub async fn nothing_else_dispatched(&self) {
        let payload = example("pull_request", Some("opened"));
        assert_eq!(self.send("pull_request", "sentinel", &payload).await.0, 202);
        self.ended_jobs("sentinel", 1).await;
        let filter = switchyard::journal::RecentFilter {
            limit: 100,
            ..Default::default()
        };
        let stored = self.host_state.journal.recent(filter).await.unwrap();
        let ids: Vec<&str> = stored.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["sentinel"], "something else was stored");
        let logged = self.events_logged();
        assert_eq!(logged.len(), 1, "something else was dispatched: {logged:?}");
    }

    pub fn events_logged(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("events.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub async fn stop(mut self) {
        self.shut_down().await;
    }

    async fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.unwrap();
        }
    }
}

/// An event-log plugin entry writing to `{dir}/events.jsonl`.
pub const EVENT_LOG: &str = "[[plugins]]\nname = \"event-log\"\nlibrary = \"{lib:switchyard-event-log}\"\n[plugins.settings]\npath = \"{dir}/events.jsonl\"\n";

/// A behaviours plugin entry named `name`, with extra entry keys and a settings table body.
pub fn behaviours(name: &str, entry: &str, settings: &str) -> String {
    format!(
        "[[plugins]]\nname = \"{name}\"\nlibrary = \"{{lib:switchyard-test-behaviours}}\"\n{entry}\n[plugins.settings]\n{settings}\n"
    )
}

/// The `binds` line of a plugin entry that lets its sandboxed git read `origin`'s repositories
/// and its commands write to `origin.scratch()`.
pub fn binds(origin: &Origin) -> String {
    format!("binds = {:?}", origin.binds())
}

/// POSTs `payload` to a webhook URL as GitHub would: JSON, signed with the test secret.
pub async fn send_signed(
    url: &str,
    event: &str,
    delivery: &str,
    payload: &serde_json::Value,
) -> u16 {
    send_signed_bytes(url, event, delivery, serde_json::to_vec(payload).unwrap()).await
}

/// POSTs `body` as it is (any size, any bytes) to a webhook URL, signed with the test secret.
pub async fn send_signed_bytes(url: &str, event: &str, delivery: &str, body: Vec<u8>) -> u16 {
    let signature = WebhookSecret::new(SECRET).sign_sha256(&body);
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", signature)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Waits until `delivery` has `count` jobs in `journal`, all ended; panics after 30 s.
pub async fn ended_jobs(
    journal: &dyn switchyard::journal::Journal,
    delivery: &str,
    count: usize,
) -> Vec<JobRecord> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let jobs = journal.jobs_of(delivery).await.unwrap();
        let ended = jobs
            .iter()
            .all(|j| matches!(j.state, JobState::Succeeded | JobState::Failed));
        if jobs.len() == count && ended {
            return jobs;
        }
        assert!(
            Instant::now() < deadline,
            "jobs of {delivery} did not end: {jobs:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `done` until it holds; panics naming `what` after 30 s.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
