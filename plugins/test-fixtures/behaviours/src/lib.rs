//! A plugin for the host's tests: its settings choose what it does with each event, so one
//! library covers panics, hangs, retries and every host service.

use std::{path::PathBuf, time::Duration};

use serde::Deserialize;
use switchyard_plugin_api::prelude::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, tag = "behaviour", rename_all = "snake_case")]
enum Behaviour {
    /// Panics with a message naming the delivery.
    Panic,
    /// Sleeps on the plugin's own tokio runtime, then succeeds.
    Sleep { millis: u64 },
    /// Fails retryably until the given attempt, then succeeds.
    SucceedOnAttempt { attempt: u32 },
    /// Sets a commit status on the pull request's head sha, declaring `permissions` (none
    /// declared when left out, as a plugin written before permissions existed).
    CommitStatus {
        #[serde(default)]
        permissions: Option<Permissions>,
    },
    /// Makes one GitHub call (`{repo}` in `path` becomes the event's repository) and logs the
    /// answer's status, declaring `permissions` like `commit_status`.
    GithubCall {
        method: String,
        path: String,
        #[serde(default)]
        body: Option<serde_json::Value>,
        #[serde(default)]
        permissions: Option<Permissions>,
    },
    /// Runs a shell command through the host, holding the lock `lock` (waiting for it) when
    /// one is named.
    Run {
        script: String,
        #[serde(default)]
        timeout_secs: Option<u64>,
        #[serde(default)]
        lock: Option<String>,
    },
    /// Checks `sha` out from `clone_url` through the host, then runs `script` in the checkout.
    Checkout {
        clone_url: String,
        sha: String,
        script: String,
    },
    /// Refuses to start, as a plugin with bad settings would.
    RefuseToStart,
    /// Panics when asked for its subscriptions.
    PanicInSubscriptions,
    /// Leaves a task holding the host behind, which after `millis` tries to log, take a lock
    /// and run a command (touching `{dir}/ran`), and writes what each answered to `{dir}/late.txt`.
    LateServices { dir: PathBuf, millis: u64 },
    /// For deliveries whose id starts with `prefix`, blocks its thread for `millis`; other
    /// deliveries succeed at once.
    BlockThreadFor { prefix: String, millis: u64 },
    /// Waits for the host to cancel the job, logs the reason, and fails with it.
    AwaitCancel,
    /// Counts its runs in `{dir}/runs`. The first `interrupted` runs wait for the host to cancel
    /// them, write the reason as a line of `{dir}/reasons`, and fail with it (or, with
    /// `ignore_cancel`, go on waiting until the host drops them); later runs succeed.
    Interruptible {
        dir: PathBuf,
        interrupted: usize,
        #[serde(default)]
        ignore_cancel: bool,
    },
    /// Takes the comment commands `commands` (each `/NAME`, needing `permission`, or the
    /// author's when `or_author`), and writes each command it is handed as a JSON line of
    /// `{dir}/commands.jsonl`, with `tag`; `/NAME --answer` also replies and reacts.
    Commands {
        dir: PathBuf,
        commands: Vec<String>,
        #[serde(default = "default_permission")]
        permission: Role,
        #[serde(default)]
        or_author: bool,
        #[serde(default)]
        tag: String,
    },
}

fn default_permission() -> Role {
    Role::Write
}

struct Behaving(Behaviour);

#[async_trait]
impl Plugin for Behaving {
    fn subscriptions(&self) -> Vec<Subscription> {
        if let Behaviour::PanicInSubscriptions = self.0 {
            panic!("no subscriptions today");
        }
        vec!["pull_request".parse().expect("valid subscription")]
    }

    fn commands(&self) -> Vec<CommandSpec> {
        let Behaviour::Commands {
            commands,
            permission,
            or_author,
            ..
        } = &self.0
        else {
            return Vec::new();
        };
        let spec = |name: &String| {
            let spec = CommandSpec::new(name, "a test command")
                .usage(&format!("/{name} [ARGS]"))
                .needs(*permission)
                .on(Applies::Both);
            if *or_author { spec.or_author() } else { spec }
        };
        commands.iter().map(spec).collect()
    }

    fn permissions(&self) -> Option<Permissions> {
        match &self.0 {
            Behaviour::CommitStatus { permissions } | Behaviour::GithubCall { permissions, .. } => {
                permissions.clone()
            }
            _ => None,
        }
    }

    async fn handle(&self, event: &Event, host: &Host) -> Result<Outcome, PluginError> {
        match &self.0 {
            Behaviour::Panic => panic!("boom in delivery {}", event.delivery),
            Behaviour::Commands { dir, tag, .. } => {
                let Some(command) = &event.command else {
                    return Ok(Outcome::Skipped("not a command".into()));
                };
                let line = serde_json::json!({"tag": tag, "job": event.job.id, "command": command});
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join("commands.jsonl"))
                    .map_err(|e| PluginError::fatal(e.to_string()))?;
                std::io::Write::write_all(&mut file, format!("{line}\n").as_bytes())
                    .map_err(|e| PluginError::fatal(e.to_string()))?;
                // `/NAME --answer` answers through the host, in the thread and with a reaction.
                if command.args.first().map(String::as_str) == Some("--answer") {
                    host.reply(&format!("`/{}` done", command.name)).await?;
                    host.react("rocket").await?;
                }
                Ok(Outcome::Done)
            }
            Behaviour::Sleep { millis } => {
                // Spawning and sleeping prove the plugin's own runtime is up.
                let slept = tokio::spawn(tokio::time::sleep(Duration::from_millis(*millis)));
                slept.await.map_err(|e| PluginError::fatal(e.to_string()))?;
                host.log(format!("slept {millis} ms")).await;
                Ok(Outcome::Done)
            }
            Behaviour::SucceedOnAttempt { attempt } => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                host.log(format!("attempt {} at {now}", event.job.attempt))
                    .await;
                if event.job.attempt < *attempt {
                    return Err(PluginError::retryable(format!(
                        "attempt {} is too early",
                        event.job.attempt
                    )));
                }
                Ok(Outcome::Done)
            }
            Behaviour::CommitStatus { .. } => {
                let repo = event.repository.as_deref().unwrap_or_default();
                let sha = event.payload()["pull_request"]["head"]["sha"]
                    .as_str()
                    .unwrap_or_default();
                let status = CommitStatus::new(StatusState::Success, "test/behaviours", "ok")
                    .with_target_url(&event.job.log_url);
                host.create_status(repo, sha, &status).await?;
                Ok(Outcome::Done)
            }
            Behaviour::GithubCall {
                method, path, body, ..
            } => {
                let repo = event.repository.as_deref().unwrap_or_default();
                let path = path.replace("{repo}", repo);
                let answer = host.github(method, &path, body.clone()).await?;
                host.log(format!("{method} {path}: {}", answer.status))
                    .await;
                Ok(Outcome::Done)
            }
            Behaviour::Run {
                script,
                timeout_secs,
                lock,
            } => {
                if let Some(lock) = lock {
                    host.lock(lock).await?;
                }
                let mut request = RunRequest::shell(script.clone());
                request.timeout_secs = *timeout_secs;
                let output = host.run(&request).await?;
                if output.success() {
                    Ok(Outcome::Done)
                } else {
                    Err(PluginError::fatal(format!("command ended: {output:?}")))
                }
            }
            Behaviour::Checkout {
                clone_url,
                sha,
                script,
            } => {
                let path = host.checkout(clone_url, sha).await?;
                let mut request = RunRequest::shell(script.clone());
                request.cwd = Some(path);
                let output = host.run(&request).await?;
                if output.success() {
                    Ok(Outcome::Done)
                } else {
                    Err(PluginError::fatal(format!("command ended: {output:?}")))
                }
            }
            Behaviour::LateServices { dir, millis } => {
                let (late, dir, millis) = (host.clone(), dir.clone(), *millis);
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(millis)).await;
                    late.log("a late line").await;
                    let lock = late.try_lock("late-lock").await;
                    let touch = RunRequest::shell(format!("touch {}", dir.join("ran").display()));
                    let run = late.run(&touch).await;
                    let answers = format!("lock: {lock:?}\nrun: {run:?}\n");
                    let _ = std::fs::write(dir.join("late.txt"), answers);
                });
                Ok(Outcome::Done)
            }
            Behaviour::BlockThreadFor { prefix, millis } => {
                if event.delivery.starts_with(prefix.as_str()) {
                    // What a plugin must not do: block its thread.
                    std::thread::sleep(Duration::from_millis(*millis));
                }
                host.log("ran").await;
                Ok(Outcome::Done)
            }
            Behaviour::AwaitCancel => {
                let reason = host.cancelled().await;
                host.log(format!("cancelled: {reason}")).await;
                Err(PluginError::fatal(format!("stopped: {reason}")))
            }
            Behaviour::Interruptible {
                dir,
                interrupted,
                ignore_cancel,
            } => {
                let append = |file: &str, line: String| {
                    use std::io::Write as _;
                    let mut file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(dir.join(file))
                        .map_err(|e| PluginError::fatal(e.to_string()))?;
                    writeln!(file, "{line}").map_err(|e| PluginError::fatal(e.to_string()))
                };
                append("runs", format!("attempt {}", event.job.attempt))?;
                let runs = std::fs::read_to_string(dir.join("runs")).unwrap_or_default();
                if runs.lines().count() > *interrupted {
                    return Ok(Outcome::Done);
                }
                let reason = host.cancelled().await;
                append("reasons", reason.to_string())?;
                if *ignore_cancel {
                    std::future::pending::<()>().await;
                }
                Err(PluginError::fatal(format!("stopped: {reason}")))
            }
            Behaviour::RefuseToStart | Behaviour::PanicInSubscriptions => {
                unreachable!("never handles a job")
            }
        }
    }
}

declare_plugin!(Behaving, |config: &PluginConfig| {
    match config.settings()? {
        Behaviour::RefuseToStart => Err(PluginError::fatal("refusing to start, as asked")),
        behaviour => Ok(Behaving(behaviour)),
    }
});
