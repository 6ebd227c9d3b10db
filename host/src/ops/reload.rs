//! Live reload: when `config.toml` changes (or on SIGHUP), parse and validate the whole new
//! config and load its new or changed plugins; only if all of that succeeds is the plugin set
//! swapped, at once. A bad edit keeps the running set and logs what is wrong. Jobs already
//! running finish on the instance they started on; deliveries are routed by whichever set was
//! current when they arrived, so each is dispatched once per matching plugin.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use notify::Watcher as _;
use tokio::sync::mpsc;

use crate::{
    config::{Config, ConfigError},
    ops::metrics::Metrics,
    plugins::{PluginSet, PluginSetError, Plugins},
    server::TlsCertificates,
};

/// How often the config file is checked for a change.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Editors save in bursts (write, rename, chmod): changes this close together are one reload.
const SETTLE: Duration = Duration::from_millis(250);

/// Why a reload kept the running config.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Plugins(#[from] PluginSetError),
}

/// What a reload changed, for the one-line log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub enabled: Vec<String>,
    pub disabled: Vec<String>,
    /// Entries or libraries that changed, now running a new instance.
    pub reloaded: Vec<String>,
    /// Settings that changed but only apply after a restart.
    pub need_restart: Vec<&'static str>,
}

impl fmt::Display for ReloadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [
            ("added", &self.added),
            ("removed", &self.removed),
            ("enabled", &self.enabled),
            ("disabled", &self.disabled),
            ("reloaded", &self.reloaded),
        ];
        let changes: Vec<String> = parts
            .iter()
            .filter(|(_, names)| !names.is_empty())
            .map(|(what, names)| format!("{what} {}", names.join(", ")))
            .collect();
        if changes.is_empty() {
            f.write_str("no plugin changed")
        } else {
            f.write_str(&changes.join("; "))
        }
    }
}

/// Reloads the plugin set from the config file.
pub struct Reloader {
    file: PathBuf,
    current: Mutex<Config>,
    plugins: Arc<Plugins>,
    metrics: Arc<Metrics>,
    tls: Option<Arc<TlsCertificates>>,
}

impl Reloader {
    pub fn new(
        config: Config,
        plugins: Arc<Plugins>,
        metrics: Arc<Metrics>,
        tls: Option<Arc<TlsCertificates>>,
    ) -> Self {
        Self {
            file: config.file.clone(),
            current: Mutex::new(config),
            plugins,
            metrics,
            tls,
        }
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Loads the config file and swaps the plugin set if all of it is good. Blocking: it
    /// opens libraries and starts plugins.
    pub fn reload(&self) -> Result<ReloadSummary, ReloadError> {
        self.reload_certificate();
        let reloaded = self.try_reload();
        match &reloaded {
            Ok(summary) => {
                self.metrics.reloads.inc();
                self.plugins.reloaded(Ok(summary.to_string()));
            }
            Err(error) => {
                self.metrics.reload_failures.inc();
                self.plugins.reloaded(Err(error.to_string()));
            }
        }
        reloaded
    }

    /// Reads the TLS certificate and key again, whatever becomes of the config: a renewal
    /// tool's SIGHUP must take effect even if the config has a typo.
    fn reload_certificate(&self) {
        let Some(tls) = &self.tls else { return };
        match tls.reload() {
            Ok(()) => tracing::info!("TLS certificate reloaded"),
            Err(error) => {
                self.metrics.reload_failures.inc();
                tracing::error!(
                    error = error.to_string(),
                    "TLS certificate not reloaded, still serving the previous one"
                );
            }
        }
    }

    fn try_reload(&self) -> Result<ReloadSummary, ReloadError> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let mut config = Config::load(&self.file)?;
        if current.github.stand_in {
            // `serve --github-stand-in` replaced the file's api_url at start: not a change.
            config.github.use_stand_in(current.github.api_url.clone());
        }
        let previous = self.plugins.current();
        let next = PluginSet::load_reusing(&config, &previous)?;
        if current.github.auth == crate::config::GitHubAuth::App {
            crate::plugins::warn_undeclared(&next);
        }
        let mut summary = ReloadSummary {
            need_restart: restart_only_changes(&current, &config),
            ..ReloadSummary::default()
        };
        for entry in &config.plugins {
            let name = entry.name.clone();
            match current.plugins.iter().find(|old| old.name == entry.name) {
                None => summary.added.push(name),
                Some(old) if !old.enabled && entry.enabled => summary.enabled.push(name),
                Some(old) if old.enabled && !entry.enabled => summary.disabled.push(name),
                Some(_) => {
                    let (old, new) = (previous.get(&entry.name), next.get(&entry.name));
                    if let (Some(old), Some(new)) = (old, new)
                        && !Arc::ptr_eq(old, new)
                    {
                        summary.reloaded.push(name);
                    }
                }
            }
        }
        for old in &current.plugins {
            if !config.plugins.iter().any(|entry| entry.name == old.name) {
                summary.removed.push(old.name.clone());
            }
        }
        self.plugins.replace(next);
        *current = config;
        Ok(summary)
    }

    /// Reloads on every change of the config file and on SIGHUP, until the task is dropped.
    ///
    /// The file is polled (its modification time and a hash of its content), not watched with
    /// inotify: an inotify watch on the file is lost when an editor renames a temporary file
    /// over it, and one on its folder wakes for every write there, which, with the journal or
    /// a plugin's output next to the config, adds about 40% to the host's CPU per delivery.
    /// `hangups`: SIGHUPs already being received (see `app::serve`); else they are from now.
    pub async fn watch(self: Arc<Self>, hangups: Option<tokio::signal::unix::Signal>) {
        let (changed, mut changes) = mpsc::unbounded_channel::<()>();
        let on_event = move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                let _ = changed.send(());
            }
        };
        let polling = notify::Config::default()
            .with_poll_interval(POLL_INTERVAL)
            .with_compare_contents(true);
        let _watcher = match notify::PollWatcher::new(on_event, polling).and_then(|mut watcher| {
            watcher.watch(&self.file, notify::RecursiveMode::NonRecursive)?;
            Ok(watcher)
        }) {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(error = error.to_string(), file = %self.file.display(), "cannot watch the config; reload with SIGHUP");
                None
            }
        };
        let mut hangup = hangups.or_else(|| {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
        });
        loop {
            let hangup_received = async {
                match hangup.as_mut() {
                    Some(signal) => signal.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                Some(()) = changes.recv() => {
                    tokio::time::sleep(SETTLE).await;
                    while changes.try_recv().is_ok() {}
                    tracing::info!(file = %self.file.display(), "config changed; reloading");
                }
                Some(()) = hangup_received => tracing::info!("SIGHUP received; reloading"),
                else => return,
            }
            let reloader = Arc::clone(&self);
            match tokio::task::spawn_blocking(move || reloader.reload()).await {
                Ok(Ok(summary)) => {
                    for setting in &summary.need_restart {
                        tracing::warn!(
                            "{setting} changed: restart switchyard to apply it; running with the old value"
                        );
                    }
                    tracing::info!("config reloaded: {summary}");
                }
                Ok(Err(error)) => {
                    tracing::error!(
                        error = error.to_string(),
                        "config reload failed, still running the previous config"
                    );
                }
                Err(error) => {
                    tracing::error!(
                        error = error.to_string(),
                        "config reload panicked; still running the previous config"
                    )
                }
            }
        }
    }
}

/// Settings read only at startup.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let (o, n) = (&old.server, &new.server);
    let checks = [
        ("[server] listen", o.listen != n.listen),
        ("[server] webhook_path", o.webhook_path != n.webhook_path),
        ("[server] public_url", old.public_url() != new.public_url()),
        ("[server] secret_env", o.secret_env != n.secret_env),
        ("[server] secret_file", o.secret_file != n.secret_file),
        ("[server] tls_cert", o.tls_cert != n.tls_cert),
        ("[server] tls_key", o.tls_key != n.tls_key),
        ("[dashboard]", old.dashboard != new.dashboard),
        ("[catch_up]", old.catch_up != new.catch_up),
        (
            "[server] shutdown_grace_secs",
            o.shutdown_grace_secs != n.shutdown_grace_secs,
        ),
        (
            "[server] max_connections",
            o.max_connections != n.max_connections,
        ),
        (
            "[server] header_timeout_secs",
            o.header_timeout_secs != n.header_timeout_secs,
        ),
        (
            "[server] body_timeout_secs",
            o.body_timeout_secs != n.body_timeout_secs,
        ),
        (
            "[server] body_budget_mib",
            o.body_budget_mib != n.body_budget_mib,
        ),
        (
            "[server] max_log_readers",
            o.max_log_readers != n.max_log_readers,
        ),
        (
            "[server] max_log_readers_per_client",
            o.max_log_readers_per_client != n.max_log_readers_per_client,
        ),
        (
            "[server] write_timeout_secs",
            o.write_timeout_secs != n.write_timeout_secs,
        ),
        ("[store] path", old.store_path() != new.store_path()),
        (
            "[store] keep_days",
            old.store.keep_days != new.store.keep_days,
        ),
        ("[github] api_url", old.github.api_url != new.github.api_url),
        (
            "[github] token_env",
            old.github.token_env != new.github.token_env,
        ),
        (
            "[github] token_file",
            old.github.token_file != new.github.token_file,
        ),
        ("[github] auth", old.github.auth != new.github.auth),
        ("[github] app_id", old.github.app_id != new.github.app_id),
        (
            "[github] client_id",
            old.github.client_id != new.github.client_id,
        ),
        (
            "[github] private_key_env",
            old.github.private_key_env != new.github.private_key_env,
        ),
        (
            "[github] private_key_file",
            old.github.private_key_file != new.github.private_key_file,
        ),
        (
            "[github] max_cached_tokens",
            old.github.max_cached_tokens != new.github.max_cached_tokens,
        ),
        (
            "[workers] concurrency",
            old.workers.concurrency != new.workers.concurrency,
        ),
        (
            "[workers] memory_queue_mib",
            old.workers.memory_queue_mib != new.workers.memory_queue_mib,
        ),
        (
            "[workers] cancel_grace_secs",
            old.workers.cancel_grace_secs != new.workers.cancel_grace_secs,
        ),
        (
            "[workers] max_interruptions",
            old.workers.max_interruptions != new.workers.max_interruptions,
        ),
        ("[sandbox]", old.sandbox != new.sandbox),
    ];
    checks
        .into_iter()
        .filter_map(|(setting, changed)| changed.then_some(setting))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        Config::parse(text, Path::new("/etc/switchyard/config.toml")).unwrap()
    }

    #[test]
    fn settings_read_at_startup_are_named_when_they_change() {
        let old = config("[server]\nlisten = \"127.0.0.1:9393\"\n");
        let same = config("[server]\nlisten = \"127.0.0.1:9393\"\n");
        assert!(restart_only_changes(&old, &same).is_empty());
        let new = config(
            "[server]\nlisten = \"0.0.0.0:80\"\npublic_url = \"http://127.0.0.1:9393\"\n\
             max_connections = 9\n[store]\npath = \"elsewhere.db\"\n\
             [workers]\nconcurrency = 3\nmemory_queue_mib = 1\ncancel_grace_secs = 2\n\
             [sandbox]\npids = 7\n",
        );
        // (public_url stays the same: it was the default for the old listen address)
        assert_eq!(
            restart_only_changes(&old, &new),
            [
                "[server] listen",
                "[server] max_connections",
                "[store] path",
                "[workers] concurrency",
                "[workers] memory_queue_mib",
                "[workers] cancel_grace_secs",
                "[sandbox]",
            ]
        );
    }

    #[test]
    fn the_summary_is_one_line_naming_each_change() {
        let summary = ReloadSummary {
            added: vec!["chat".into()],
            disabled: vec!["pager".into(), "ci".into()],
            ..ReloadSummary::default()
        };
        assert_eq!(summary.to_string(), "added chat; disabled pager, ci");
        assert_eq!(ReloadSummary::default().to_string(), "no plugin changed");
    }
}
