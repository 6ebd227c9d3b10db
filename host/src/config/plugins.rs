//! `[[plugins]]`: the handler plugins, in the order they are listed: which library each entry
//! loads, which events and repositories reach it, and its limits. Whether a library exists and
//! loads is checked when it is loaded (`plugins::PluginSet::load`), not here.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use switchyard_plugin_api::{Permissions, Role, Subscription};

use super::{Invalid, check_env_name, invalid};

/// One `[[plugins]]` entry. `name` and `library` are required, so its defaults are per field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginEntry {
    /// Unique name of this entry: used in logs, the journal and `switchyard replay --plugin`.
    pub name: String,
    /// Path of the plugin's shared library, relative to the config file's folder.
    pub library: PathBuf,
    /// Whether the plugin gets events.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Overrides the plugin's own subscriptions: `"pull_request.opened"`, `"deployment"`, `"*"`.
    #[serde(default)]
    pub events: Option<Vec<Subscription>>,
    /// Only events from these repositories: `"owner/repo"` or `"owner/*"`.
    #[serde(default)]
    pub repositories: Option<Vec<RepositoryPattern>>,
    /// A job running longer is cut off and fails.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Tries of a job whose failures are retryable, the first included.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Threads of the plugin's own tokio runtime.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Whether the entry's commands reach the network (builds fetch dependencies).
    #[serde(default = "default_true")]
    pub network: bool,
    /// Host paths bound into the entry's sandboxes at the same place, read-only, or writable
    /// with a `:rw` suffix: an SSH key, a kubeconfig, a local mirror.
    #[serde(default)]
    pub binds: Vec<String>,
    /// Host environment variables passed into the entry's commands (masked in logs).
    #[serde(default)]
    pub pass_env: Vec<String>,
    /// MiB each of the entry's jobs may write in its workspace, instead of `[sandbox] disk_mib`.
    #[serde(default)]
    pub disk_mib: Option<u64>,
    /// Narrows the GitHub permissions the plugin declares, for its jobs' App tokens:
    /// `{ statuses = "write" }`. Can only take away: more than the plugin declares is refused.
    #[serde(default)]
    pub permissions: Option<Permissions>,
    /// Raises the permission a comment command of the plugin needs: `{ retest = "maintain" }`.
    /// Can only raise: below the plugin's own is refused when it loads (see docs/commands.md).
    #[serde(default)]
    pub commands: Option<BTreeMap<String, Role>>,
    /// Whether commands run for a fork's pull request (`RunRequest::untrusted`) get the entry's
    /// `pass_env` values and `:rw` binds like any other: false withholds them (see
    /// docs/security.md).
    #[serde(default)]
    pub trust_forks: bool,
    /// What becomes of the entry's `:rw` binds in a fork's commands: `read-only` or `none`.
    #[serde(default)]
    pub fork_binds: ForkBinds,
    /// Free settings handed to the plugin.
    #[serde(default)]
    pub settings: toml::Table,
}

/// What becomes of an entry's writable binds in a fork's commands (`fork_binds`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForkBinds {
    /// Bound read-only: a cache the fork may read but not poison.
    #[default]
    ReadOnly,
    /// Not bound at all.
    None,
}

fn default_true() -> bool {
    true
}
fn default_timeout_secs() -> u64 {
    600
}
fn default_max_attempts() -> u32 {
    3
}
fn default_threads() -> usize {
    2
}

impl PluginEntry {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// Checks every entry, and that no two share a name.
pub(super) fn validate(plugins: &[PluginEntry]) -> Result<(), Invalid> {
    for (i, plugin) in plugins.iter().enumerate() {
        let key = |k: &str| format!("plugins[{i}].{k}");
        let valid_name = !plugin.name.is_empty()
            && plugin
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_name {
            return Err(invalid(key("name"), "use letters, digits, `-` and `_`"));
        }
        if plugins[..i].iter().any(|p| p.name == plugin.name) {
            return Err(invalid(
                key("name"),
                format!("{:?} is used twice", plugin.name),
            ));
        }
        if plugin.timeout_secs == 0 {
            return Err(invalid(key("timeout_secs"), "must be at least 1"));
        }
        if plugin.max_attempts == 0 {
            return Err(invalid(key("max_attempts"), "must be at least 1"));
        }
        for bind in &plugin.binds {
            let path = bind.strip_suffix(":rw").unwrap_or(bind);
            if !Path::new(path).is_absolute() || path.contains(':') {
                return Err(invalid(
                    key("binds"),
                    format!(
                        "{bind:?}: use an absolute path, with `:rw` after it to make it writable"
                    ),
                ));
            }
        }
        for variable in &plugin.pass_env {
            check_env_name(key("pass_env"), variable)?;
        }
    }
    Ok(())
}

/// `owner/repo` or `owner/*`, compared case-insensitively as GitHub does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryPattern {
    owner: String,
    repo: Option<String>,
}

impl RepositoryPattern {
    pub fn matches(&self, full_name: &str) -> bool {
        let Some((owner, repo)) = full_name.split_once('/') else {
            return false;
        };
        owner.eq_ignore_ascii_case(&self.owner)
            && self
                .repo
                .as_deref()
                .is_none_or(|r| r.eq_ignore_ascii_case(repo))
    }
}

impl std::str::FromStr for RepositoryPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid =
            || format!("invalid repository {s:?}: expected \"owner/repo\" or \"owner/*\"");
        let (owner, repo) = s.split_once('/').ok_or_else(invalid)?;
        let word = |w: &str| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if !word(owner) || !(repo == "*" || word(repo)) {
            return Err(invalid());
        }
        Ok(Self {
            owner: owner.to_owned(),
            repo: (repo != "*").then(|| repo.to_owned()),
        })
    }
}

impl<'de> Deserialize<'de> for RepositoryPattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}
