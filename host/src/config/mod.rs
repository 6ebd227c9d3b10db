//! `config.toml`: parse, fill defaults, validate, then freeze. Every error names the file, the
//! key and the problem. Secrets are never read from here: only the names of the environment
//! variables that hold them. One file per section, its defaults and validation beside its
//! type; this module holds the whole, its loading, and the checks that span sections.

mod catch_up;
mod dashboard;
mod github;
mod plugins;
mod sandbox;
mod secrets;
mod server;
mod store;
mod workers;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use catch_up::{CatchUpConfig, HookConfig};
pub use dashboard::{DashboardAccess, DashboardConfig, MIN_RENDER_BUDGET_MIB};
pub use github::{GitHubAuth, GitHubConfig};
pub use plugins::{ForkBinds, PluginEntry, RepositoryPattern};
pub use sandbox::{Cidr, NetworkIsolation, SandboxConfig, SandboxMode};
pub use secrets::{secret_from_env, secret_from_file};
pub use server::{MAX_BODY_MIB, Redeliveries, ServerConfig, TrustedProxies};
pub use store::{Backend, StoreConfig, StoreTls};
pub use workers::WorkersConfig;

/// The whole configuration, as loaded from one file. Whether plugin libraries exist and load is
/// checked when they are loaded (`plugins::PluginSet::load`), with the same kind of message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Folders searched for a plugin `library` given as a bare file name, before the running
    /// binary's own folder and `../lib/switchyard/plugins` beside it.
    #[serde(default)]
    pub plugin_dirs: Vec<PathBuf>,
    /// Where and how webhooks are received. The one section a config must have.
    pub server: ServerConfig,
    /// The GitHub (or GitHub Enterprise) API the plugins talk to.
    #[serde(default)]
    pub github: GitHubConfig,
    /// The journal of deliveries and jobs.
    #[serde(default)]
    pub store: StoreConfig,
    /// How jobs are run.
    #[serde(default)]
    pub workers: WorkersConfig,
    /// Where the commands jobs run go: a sandbox, by default.
    #[serde(default)]
    pub sandbox: SandboxConfig,
    /// Handler plugins, in the order they are listed.
    #[serde(default)]
    pub plugins: Vec<PluginEntry>,
    /// The web dashboard (`/dashboard`): off unless enabled.
    #[serde(default)]
    pub dashboard: DashboardConfig,
    /// Catching up the deliveries GitHub failed to deliver: off unless enabled.
    #[serde(default)]
    pub catch_up: CatchUpConfig,
    /// The folder of the config file; relative paths are resolved against it.
    #[serde(skip)]
    pub dir: PathBuf,
    /// The config file itself, for error messages.
    #[serde(skip)]
    pub file: PathBuf,
}

/// A config that cannot be used, naming the file, the key and the problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {error}", file.display())]
    Read {
        file: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: {message}", file.display())]
    Parse { file: PathBuf, message: String },
    #[error("{}: {key}: {problem}", file.display())]
    Invalid {
        file: PathBuf,
        key: String,
        problem: String,
    },
}

/// A setting a section's validation refuses: its key (`server.webhook_path`) and the problem.
/// [`Config::parse`] adds the file to make it a [`ConfigError::Invalid`].
#[derive(Debug)]
struct Invalid {
    key: String,
    problem: String,
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> Invalid {
    Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|error| ConfigError::Read {
            file: file.to_owned(),
            error,
        })?;
        Self::parse(&text, file)
    }

    /// Parses and validates config text that was read from `file`.
    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.file = file.to_owned();
        config.dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        config
            .validate()
            .map_err(|Invalid { key, problem }| ConfigError::Invalid {
                file: file.to_owned(),
                key,
                problem,
            })?;
        Ok(config)
    }

    /// Each section's own checks, then those that span sections.
    fn validate(&self) -> Result<(), Invalid> {
        self.server.validate()?;
        self.github.validate()?;
        self.dashboard.validate()?;
        self.check_sign_in_app()?;
        self.sandbox.validate()?;
        self.store.validate()?;
        self.workers.validate()?;
        self.catch_up.validate(self.github.auth)?;
        plugins::validate(&self.plugins)
    }

    /// A GitHub App signs people in with its own client id: when `[github]` names the App by
    /// its client id, the dashboard's must be the same App's.
    fn check_sign_in_app(&self) -> Result<(), Invalid> {
        match (&self.github.client_id, &self.dashboard.github_client_id) {
            (Some(app), Some(sign_in)) if self.github.auth == GitHubAuth::App && app != sign_in => {
                Err(invalid(
                    "dashboard.github_client_id",
                    format!(
                        "{sign_in:?} is not the App's client id in [github] client_id ({app:?}): people sign in through the host's own App"
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// The plugin's library file. A path (`target/release/libx.so`) is relative to the config
    /// file's folder; a bare file name (`libx.so`) is looked for in `plugin_dirs`, the running
    /// binary's folder (where cargo builds the plugins beside it) and `../lib/switchyard/plugins`
    /// beside that (an installed layout). `Err` lists the folders searched.
    pub fn library_path(&self, plugin: &PluginEntry) -> Result<PathBuf, Vec<PathBuf>> {
        let library = &plugin.library;
        if library.components().count() > 1 || library.is_absolute() {
            return Ok(self.dir.join(library));
        }
        let searched = self.plugin_search_path();
        searched
            .iter()
            .map(|dir| dir.join(library))
            .find(|candidate| candidate.is_file())
            .ok_or(searched)
    }

    /// Where bare library names are looked for, in order.
    pub fn plugin_search_path(&self) -> Vec<PathBuf> {
        let binary = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf));
        let installed = binary
            .as_ref()
            .map(|dir| dir.join("../lib/switchyard/plugins"));
        self.plugin_dirs
            .iter()
            .map(|dir| self.dir.join(dir))
            .chain(binary)
            .chain(installed)
            .collect()
    }

    /// The certificate and key files when the host serves HTTPS (validation makes it both or
    /// neither), relative to the config's folder or under `$CREDENTIALS_DIRECTORY`.
    pub fn tls_files(&self) -> Option<(PathBuf, PathBuf)> {
        let (cert, key) = (
            self.server.tls_cert.as_ref()?,
            self.server.tls_key.as_ref()?,
        );
        Some((self.secret_path(cert), self.secret_path(key)))
    }

    /// The journal's path, resolved against the config file's folder.
    pub fn store_path(&self) -> PathBuf {
        self.dir.join(&self.store.path)
    }

    /// Where plugin libraries are copied to be loaded: beside the journal, so on a file system
    /// the host writes to and may map code from (unlike a `noexec` /tmp).
    pub fn plugin_copies_dir(&self) -> PathBuf {
        let store = self.store_path();
        store
            .parent()
            .unwrap_or(Path::new("."))
            .join("plugin-copies")
    }

    /// The host's own folders, which no build may see (what, where): the store's (journal,
    /// logs, workspaces), the config's, and systemd's credentials when the host has them.
    pub fn host_folders(&self) -> Vec<(&'static str, PathBuf)> {
        let store = self.store_path();
        let mut folders = vec![
            ("store", store.parent().unwrap_or(Path::new(".")).to_owned()),
            ("config", self.dir.clone()),
        ];
        if let Some(credentials) = std::env::var_os("CREDENTIALS_DIRECTORY") {
            folders.push(("credentials", PathBuf::from(credentials)));
        }
        folders
    }

    /// `https` when the host serves TLS itself.
    pub fn scheme(&self) -> &'static str {
        if self.tls_files().is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Base URL for links to job logs.
    pub fn public_url(&self) -> String {
        match &self.server.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("{}://{}", self.scheme(), self.server.listen),
        }
    }
}

/// Each of `settings` (key, value) must be at least 1.
fn at_least_one(settings: &[(&str, u64)]) -> Result<(), Invalid> {
    match settings.iter().find(|(_, value)| *value == 0) {
        Some((key, _)) => Err(invalid(*key, "must be at least 1")),
        None => Ok(()),
    }
}

/// A setting naming an environment variable must name one a shell could set.
fn check_env_name(key: impl Into<String>, name: &str) -> Result<(), Invalid> {
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{name:?} is not an environment variable name"),
        ))
    }
}

fn check_http_url(url: &str) -> Result<(), String> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        Ok(_) => Err(format!("{url:?} is not an http(s) URL")),
        Err(e) => Err(format!("{url:?} is not a URL: {e}")),
    }
}

#[cfg(test)]
mod tests;
