//! The real `switchyard` binary, started with one plugin on a free loopback port, fed signed
//! deliveries, and asked how their jobs ended.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use hmac::{Hmac, Mac as _};
use serde_json::Value;
use sha2::Sha256;

use crate::{FakeGitHub, cargo::switchyard_bin};

/// The variables the generated config names for the host's secrets; their values are set in the
/// host process's environment only, never written to a file.
const SECRET_VARIABLE: &str = "SWITCHYARD_TESTKIT_WEBHOOK_SECRET";
const TOKEN_VARIABLE: &str = "SWITCHYARD_TESTKIT_GITHUB_TOKEN";
const APP_KEY_VARIABLE: &str = "SWITCHYARD_TESTKIT_APP_KEY";

/// How long [`HostBuilder::start`] waits for `/readyz`.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`: GitHub's `X-Hub-Signature-256`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs `payload` to `url` as GitHub does; the answer's status, or why there was none.
pub(crate) async fn post_signed(
    url: &str,
    secret: &str,
    event: &str,
    delivery: &str,
    payload: &Value,
) -> Result<u16, String> {
    let body = serde_json::to_vec(payload).expect("a JSON payload serializes");
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("user-agent", "GitHub-Hookshot/switchyard-testkit")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", signature(secret, &body))
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    Ok(response.status().as_u16())
}

/// A fresh random value, for secrets and delivery ids.
fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A TOML basic string: JSON's string escapes are all valid TOML.
fn toml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

/// What the host is started with: one plugin entry and a few choices. Made by
/// [`TestHost::builder`].
#[derive(Debug)]
pub struct HostBuilder<'a> {
    library: PathBuf,
    name: String,
    settings: String,
    entry: String,
    binds: Vec<String>,
    config: String,
    env: Vec<(String, String)>,
    github: Option<&'a FakeGitHub>,
    wait_timeout: Duration,
}

impl<'a> HostBuilder<'a> {
    /// The entry's name, in the journal and logs (default `plugin`).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// The body of the entry's `[plugins.settings]` table, in TOML, e.g.
    /// `command = "./deploy.sh"`.
    pub fn settings(mut self, toml: &str) -> Self {
        self.settings = toml.to_owned();
        self
    }

    /// More keys of the `[[plugins]]` entry, in TOML, e.g. `timeout_secs = 30` or
    /// `events = ["deployment"]`. Use [`HostBuilder::binds`] for `binds`.
    pub fn entry(mut self, toml: &str) -> Self {
        self.entry = toml.to_owned();
        self
    }

    /// Host paths bound into the plugin's sandbox (`binds`: a path, `:rw` after it for
    /// writable), e.g. [`crate::Origin::binds`].
    pub fn binds(mut self, binds: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.binds.extend(binds.into_iter().map(Into::into));
        self
    }

    /// Whole TOML tables added to the config, e.g. `[sandbox]\nmode = "none"` where
    /// bubblewrap is not installed, or `[workers]\nretry_backoff_ms = 10`. The kit writes
    /// `[server]`, `[github]` and `[store]` itself.
    pub fn config(mut self, toml: &str) -> Self {
        self.config = toml.to_owned();
        self
    }

    /// An environment variable for the host process, e.g. one a setting ending in `_env`
    /// names, or `RUST_LOG` (default `info`).
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Points `[github] api_url` at `github` with a random token, and has `github` send the
    /// host a signed webhook for each deployment (status) created, as GitHub does. Without
    /// it, calls to GitHub fail (the API is an unused loopback port). A fake started with
    /// [`FakeGitHub::start_app`] makes the host its App (`auth = "app"`, the test key): each
    /// job's token then has exactly the permissions the plugin declares.
    pub fn github(mut self, github: &'a FakeGitHub) -> Self {
        self.github = Some(github);
        self
    }

    /// How long [`TestHost::wait`] waits for a delivery's jobs to end (default 60 s).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// Starts `switchyard serve` (see [`crate::switchyard_bin`]) with a generated config and a
    /// temporary store, and waits until `/readyz` answers.
    ///
    /// # Panics
    /// When the library or binary is missing, or the host exits or is not ready within 30 s;
    /// the message holds the host's log.
    pub async fn start(self) -> TestHost {
        assert!(
            self.library.is_file(),
            "no plugin library at {} (see switchyard_testkit::cdylib_path)",
            self.library.display()
        );
        let bin = switchyard_bin();
        let mut dir = tempfile::tempdir().expect("a temporary store");
        let secret = random_hex();
        let token = random_hex();
        // A port free a moment ago can be taken before the host binds it: try a few.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = free_port();
            let config = dir.path().join("config.toml");
            std::fs::write(&config, self.config_text(port, dir.path())).expect("the config");
            let log = dir.path().join("host.log");
            let mut command = Command::new(&bin);
            command
                .args(["serve", "--config"])
                .arg(&config)
                .current_dir(dir.path())
                .env(SECRET_VARIABLE, &secret)
                .env(TOKEN_VARIABLE, &token)
                .env(APP_KEY_VARIABLE, crate::app::TEST_APP_KEY)
                .env("RUST_LOG", "info")
                .env_remove("SWITCHYARD_LOG_FORMAT")
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::from(
                    std::fs::File::create(&log).expect("the host's log"),
                ))
                .stderr(Stdio::from(
                    std::fs::OpenOptions::new()
                        .append(true)
                        .open(&log)
                        .expect("the host's log"),
                ));
            let child = command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
            let mut host = TestHost {
                base: format!("http://127.0.0.1:{port}"),
                secret: secret.clone(),
                bin: bin.clone(),
                config,
                log,
                child: Some(child),
                http: reqwest::Client::new(),
                wait_timeout: self.wait_timeout,
                dir,
            };
            match host.until_ready().await {
                Ok(()) => {
                    if let Some(github) = self.github {
                        github.send_webhooks_to(&host.webhook_url(), &host.secret);
                    }
                    return host;
                }
                Err(log) if attempts < 3 && log.contains("in use") => {
                    dir = host.take_dir();
                }
                Err(log) => panic!("the switchyard host did not start:\n{log}"),
            }
        }
    }

    fn config_text(&self, port: u16, dir: &Path) -> String {
        let api_url = self
            .github
            .map_or("http://127.0.0.1:9".to_owned(), |g| g.url().to_owned());
        let binds: Vec<String> = self.binds.iter().map(|b| toml_string(b)).collect();
        format!(
            "[server]\n\
             listen = \"127.0.0.1:{port}\"\n\
             public_url = \"http://127.0.0.1:{port}\"\n\
             webhook_path = \"/event_handler\"\n\
             secret_env = \"{SECRET_VARIABLE}\"\n\
             shutdown_grace_secs = 5\n\n\
             [github]\n\
             api_url = {api_url}\n\
             token_env = \"{TOKEN_VARIABLE}\"\n\
             {app}\
             backoff_ms = 10\n\n\
             [store]\n\
             path = {store}\n\n\
             {config}\n\n\
             [[plugins]]\n\
             name = {name}\n\
             library = {library}\n\
             binds = [{binds}]\n\
             {entry}\n\
             [plugins.settings]\n\
             {settings}\n",
            api_url = toml_string(&api_url),
            app = match self.github.is_some_and(FakeGitHub::is_app) {
                true => format!(
                    "auth = \"app\"\napp_id = {}\nprivate_key_env = \"{APP_KEY_VARIABLE}\"\n",
                    crate::app::TEST_APP_ID
                ),
                false => String::new(),
            },
            store = toml_string(&dir.join("switchyard.db").display().to_string()),
            config = self.config,
            name = toml_string(&self.name),
            library = toml_string(&self.library.display().to_string()),
            binds = binds.join(", "),
            entry = self.entry,
            settings = self.settings,
        )
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("its address").port()
}

/// A running `switchyard serve` with one plugin, a temporary store and a random webhook
/// secret. Stopped (killed) on drop; [`TestHost::stop`] stops it as SIGTERM would.
#[derive(Debug)]
pub struct TestHost {
    base: String,
    secret: String,
    bin: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    http: reqwest::Client,
    wait_timeout: Duration,
    // Last: removed after the process is gone.
    dir: tempfile::TempDir,
}

/// A delivery the host accepted (202).
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The `X-GitHub-Delivery` id.
    pub id: String,
    /// Jobs made for it: 0 when the plugin is not subscribed to the event.
    pub jobs: usize,
    /// Each job's log link, by plugin entry name.
    pub logs: BTreeMap<String, String>,
}

/// The delivery as the host's `202` lists it: `{"delivery": ID, "jobs": [{"job": N, "plugin":
/// NAME, "log": URL}, ...]}`.
fn accepted(id: String, answer: &Value) -> Delivery {
    let jobs = answer["jobs"].as_array().cloned().unwrap_or_default();
    Delivery {
        id,
        jobs: jobs.len(),
        logs: jobs
            .iter()
            .filter_map(|job| {
                let plugin = job["plugin"].as_str()?.to_owned();
                Some((plugin, job["log"].as_str()?.to_owned()))
            })
            .collect(),
    }
}

/// How a job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// The plugin returned `Ok` (done or skipped).
    Succeeded,
    /// The plugin returned an error on its last attempt, panicked or timed out.
    Failed,
}

/// A job that ended.
#[derive(Debug, Clone)]
pub struct Job {
    /// The job's id in the journal.
    pub id: u64,
    /// The plugin entry's name.
    pub plugin: String,
    pub state: JobState,
    /// What the job's work came to, as `switchyard deliveries` prints it (`passed`, `failed`,
    /// `errored`, `timed out`, `cancelled`, `skipped`); `None` while it runs.
    pub verdict: Option<String>,
    /// Attempts made, the first included.
    pub attempts: u32,
    /// The error of a failed job, or the note of a skipped one (`Outcome::Skipped`).
    pub detail: Option<String>,
    /// The job's whole log.
    pub log: String,
    /// The link to the log, as the plugin sees it (`event.job.log_url`).
    pub log_url: String,
}

impl TestHost {
    /// A host that will load the cdylib at `library` (see [`crate::cdylib_path`]).
    pub fn builder<'a>(library: impl Into<PathBuf>) -> HostBuilder<'a> {
        HostBuilder {
            library: library.into(),
            name: "plugin".to_owned(),
            settings: String::new(),
            entry: String::new(),
            binds: Vec::new(),
            config: String::new(),
            env: Vec::new(),
            github: None,
            wait_timeout: Duration::from_secs(60),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Where GitHub would POST deliveries.
    pub fn webhook_url(&self) -> String {
        format!("{}/event_handler", self.base)
    }

    /// The webhook secret, for signing a request by hand (see [`signature`]).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The generated `config.toml`.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// What the host has logged so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `payload` as a GitHub delivery of `event` (the `X-GitHub-Event`, e.g.
    /// `deployment`) with a fresh delivery id, signed as GitHub signs it.
    ///
    /// # Panics
    /// Unless the host answers 202; the message holds the answer and the host's log.
    pub async fn send(&self, event: &str, payload: &Value) -> Delivery {
        let id = format!("testkit-{}", random_hex());
        let body = serde_json::to_vec(payload).expect("a JSON payload serializes");
        let response = self
            .http
            .post(self.webhook_url())
            .header("content-type", "application/json")
            .header("user-agent", "GitHub-Hookshot/switchyard-testkit")
            .header("x-github-event", event)
            .header("x-github-delivery", &id)
            .header("x-hub-signature-256", signature(&self.secret, &body))
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| self.fail(&format!("sending the {event} delivery failed: {e}")));
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or_default();
        if status != 202 {
            self.fail(&format!(
                "the {event} delivery was answered {status}: {answer}"
            ));
        }
        accepted(id, &answer)
    }

    /// Waits until every job of `delivery` has ended, retries included, and returns them
    /// with their logs.
    ///
    /// # Panics
    /// After the wait timeout (60 s unless [`HostBuilder::wait_timeout`]), naming what did not
    /// end, with the host's log.
    pub async fn wait(&self, delivery: &Delivery) -> Vec<Job> {
        let deadline = Instant::now() + self.wait_timeout;
        // A log link's answer follows the log and ends when its job has ended.
        let mut logs = BTreeMap::new();
        for (plugin, url) in &delivery.logs {
            let left = deadline.saturating_duration_since(Instant::now());
            let read = async {
                let response = self.http.get(url).send().await?;
                response.error_for_status()?.text().await
            };
            match tokio::time::timeout(left, read).await {
                Ok(Ok(log)) => logs.insert(plugin.clone(), log),
                Ok(Err(e)) => self.fail(&format!("reading {plugin}'s job log failed: {e}")),
                Err(_) => self.fail(&format!(
                    "{plugin}'s job for delivery {} did not end within {:?}",
                    delivery.id, self.wait_timeout
                )),
            };
        }
        loop {
            let jobs = self.jobs_of(&delivery.id).await;
            let ended: Option<Vec<Job>> = jobs
                .into_iter()
                .map(|(job, state)| {
                    let state = match state.as_str() {
                        "succeeded" => JobState::Succeeded,
                        "failed" => JobState::Failed,
                        _ => return None,
                    };
                    let log = logs.get(&job.plugin).cloned().unwrap_or_default();
                    let log_url = delivery.logs.get(&job.plugin).cloned().unwrap_or_default();
                    Some(Job {
                        state,
                        log,
                        log_url,
                        ..job
                    })
                })
                .collect();
            match ended {
                Some(jobs) if jobs.len() == delivery.jobs => return jobs,
                _ if Instant::now() > deadline => self.fail(&format!(
                    "the jobs of delivery {} did not end within {:?}",
                    delivery.id, self.wait_timeout
                )),
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// The jobs of `delivery` as `switchyard deliveries` lists them, with their states.
    async fn jobs_of(&self, delivery: &str) -> Vec<(Job, String)> {
        let output = tokio::process::Command::new(&self.bin)
            .args(["deliveries", "--limit", "100000", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "error")
            .output()
            .await
            .unwrap_or_else(|e| self.fail(&format!("cannot run switchyard deliveries: {e}")));
        if !output.status.success() {
            self.fail(&format!(
                "switchyard deliveries failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        parse_deliveries(&String::from_utf8_lossy(&output.stdout), delivery)
    }

    /// Stops the host as SIGTERM does (running jobs get the shutdown grace, 5 s) and returns
    /// how it exited.
    ///
    /// # Panics
    /// When it has not exited 10 s later (it is killed).
    pub async fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the host runs until stopped");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().expect("the host's status") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the host did not stop within 10 s of SIGTERM:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls `/readyz` until it answers 200; the host's log if it exits or times out first.
    async fn until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let url = format!("{}/readyz", self.base);
        loop {
            let child = self.child.as_mut().expect("the host runs");
            if let Some(status) = child.try_wait().expect("the host's status") {
                return Err(format!("it exited ({status}):\n{}", self.log()));
            }
            if let Ok(response) = self.http.get(&url).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "/readyz did not answer 200 within {START_TIMEOUT:?}:\n{}",
                    self.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the process and gives back the store folder, for another try.
    fn take_dir(mut self) -> tempfile::TempDir {
        self.kill();
        std::mem::replace(&mut self.dir, tempfile::TempDir::new().expect("a folder"))
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn fail(&self, problem: &str) -> ! {
        panic!("{problem}\n--- switchyard's log ---\n{}", self.log())
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.kill();
        unmount_leftovers(self.dir.path());
    }
}

/// Unmounts what a killed host left mounted under `dir` (its jobs' workspaces, when it ran as
/// root): the host would do it at its next start, but a test host's folder goes with the test,
/// and the mounts would otherwise outlive it, each holding a loop device.
pub fn unmount_leftovers(dir: &Path) {
    // A host's own folder only, never a shared one (`/`, `/tmp`) other tests mount under.
    if !dir.is_absolute() || dir.components().count() < 3 {
        return;
    }
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    // The fifth field is the mount point; a test host's temporary folder needs no unescaping.
    let under: Vec<&str> = mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| Path::new(point).starts_with(dir))
        .collect();
    for point in under.into_iter().rev() {
        let _ = std::process::Command::new("umount")
            .args(["-l", point])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// The jobs of `delivery` in `switchyard deliveries` output, whose blocks read
/// `{received_at}  {id}  {event}  {repository}` then one
/// `    job {id} {plugin}: {state} (attempts {n})[: {detail}]` line per job.
fn parse_deliveries(output: &str, delivery: &str) -> Vec<(Job, String)> {
    let is_header = |line: &str| !line.starts_with(' ') && line.split("  ").count() >= 4;
    let mut lines = output
        .lines()
        .skip_while(|line| !(is_header(line) && line.split("  ").nth(1) == Some(delivery)))
        .skip(1);
    let mut jobs: Vec<(Job, String)> = Vec::new();
    for line in lines.by_ref() {
        if is_header(line) {
            break;
        }
        let Some(rest) = line.strip_prefix("    job ") else {
            // A detail that spans lines.
            if let Some((job, _)) = jobs.last_mut() {
                let detail = job.detail.get_or_insert_default();
                detail.push('\n');
                detail.push_str(line);
            }
            continue;
        };
        let parsed = (|| {
            let (id, rest) = rest.split_once(' ')?;
            let (plugin, rest) = rest.split_once(": ")?;
            // `VERDICT (state STATE, attempts N)` once ended, `STATE (attempts N)` before.
            let (first, rest) = rest.split_once(" (")?;
            let (verdict, state, rest) = match rest.strip_prefix("state ") {
                Some(rest) => {
                    let (state, rest) = rest.split_once(", ")?;
                    (Some(first.to_owned()), state, rest)
                }
                None => (None, first, rest),
            };
            let rest = rest.strip_prefix("attempts ")?;
            let (attempts, rest) = rest.split_once(')')?;
            let job = Job {
                id: id.parse().ok()?,
                plugin: plugin.to_owned(),
                state: JobState::Failed,
                verdict,
                attempts: attempts.parse().ok()?,
                detail: rest.strip_prefix(": ").map(str::to_owned),
                log: String::new(),
                log_url: String::new(),
            };
            Some((job, state.to_owned()))
        })();
        jobs.extend(parsed);
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_output_is_read_for_one_delivery() {
        let output = "2026-11-23T10:00:02Z  d-2  deployment  octo/app\n    \
                      job 5 deploy: timed out (state succeeded, attempts 1)\n\
                      2026-11-23T10:00:01Z  d-1  deployment  octo/app\n    \
                      job 3 deploy: errored (state failed, attempts 3): checkout failed:\nfatal: no such ref\n    \
                      job 4 other: running (attempts 1)\n\
                      2026-11-23T10:00:00Z  d-0  push  -\n    (no plugin subscribed)\n";
        let jobs = parse_deliveries(output, "d-1");
        let summary: Vec<_> = jobs
            .iter()
            .map(|(j, s)| (j.id, j.plugin.as_str(), s.as_str(), j.attempts))
            .collect();
        assert_eq!(
            summary,
            [(3, "deploy", "failed", 3), (4, "other", "running", 1)]
        );
        assert_eq!(
            jobs[0].0.detail.as_deref(),
            Some("checkout failed:\nfatal: no such ref")
        );
        assert_eq!(jobs[1].0.detail, None);
        assert!(parse_deliveries(output, "d-0").is_empty());
        assert!(parse_deliveries(output, "d-9").is_empty());
        assert_eq!(parse_deliveries(output, "d-2")[0].0.id, 5);
        let verdicts: Vec<_> = jobs.iter().map(|(j, _)| j.verdict.as_deref()).collect();
        assert_eq!(verdicts, [Some("errored"), None]);
        let (job, state) = &parse_deliveries(output, "d-2")[0];
        assert_eq!(
            (job.verdict.as_deref(), state.as_str()),
            (Some("timed out"), "succeeded")
        );
    }

    #[test]
    fn the_hosts_202_gives_the_jobs_and_their_log_links() {
        let answer = serde_json::json!({"delivery": "d-1", "jobs": [
            {"job": 4, "plugin": "deploy", "log": "http://127.0.0.1:1/jobs/4/log/k"}
        ]});
        let delivery = accepted("d-1".into(), &answer);
        assert_eq!(delivery.jobs, 1);
        assert_eq!(delivery.logs["deploy"], "http://127.0.0.1:1/jobs/4/log/k");
        let none = accepted(
            "d-2".into(),
            &serde_json::json!({"delivery": "d-2", "jobs": []}),
        );
        assert_eq!((none.jobs, none.logs.len()), (0, 0));
    }

    #[test]
    fn signatures_are_githubs() {
        // GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
        assert_eq!(
            signature("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
