//! Plugins: loading the libraries listed in the config, the ABI handshake, instance lifetimes
//! and calling a plugin for one job. The host's unsafe code lives in `loader` and `services`.

mod elf;
pub(crate) mod interest;
mod loader;
mod services;

use crate::sandbox::Allowance;

use std::{
    path::Path,
    sync::{Arc, RwLock},
    time::SystemTime,
};

use switchyard_plugin_api::{
    CommandSpec, GitHubApp, Outcome, Permissions, PluginConfig, PluginError, Subscription,
    template_url, wire::CallResult,
};

pub use loader::{LoadError, PluginInfo};
pub use services::{JobServices, ServiceDeps};

use crate::{
    config::{Config, PluginEntry},
    plugins::interest::Interest,
};

/// A loaded, running plugin entry.
pub struct LoadedPlugin {
    pub entry: PluginEntry,
    pub info: PluginInfo,
    /// The library file as it was when loaded: a reload reloads the plugin when it changed.
    library: LibraryStamp,
    /// The events it gets: the config's `events` when given, else the plugin's own.
    pub interest: Interest,
    /// What its commands may have in their sandbox.
    pub allowance: Arc<Allowance>,
    /// The GitHub permissions the plugin declares (`None`: it declares none).
    pub declared: Option<Permissions>,
    /// What its jobs' App tokens may do: the entry's `permissions` when given (within the
    /// declared ones), else the declared ones; `None` for the installation's.
    pub permissions: Option<Permissions>,
    /// The comment commands it takes, with the permissions the entry's `commands` raised.
    pub commands: Vec<CommandSpec>,
    instance: loader::PluginInstance,
}

impl LoadedPlugin {
    pub fn name(&self) -> &str {
        &self.entry.name
    }

    pub fn subscriptions(&self) -> &[Subscription] {
        &self.interest.subscriptions
    }

    /// Runs the plugin's handler for one job. `head` is a JSON `wire::CallHead`.
    pub async fn handle(
        &self,
        head: &[u8],
        payload: &[u8],
        services: Arc<JobServices>,
    ) -> Result<Outcome, PluginError> {
        let answer = self.instance.call(head, payload, services.into_ffi()).await;
        match serde_json::from_slice::<CallResult>(answer.as_slice()) {
            Ok(CallResult::Ok(outcome)) => Ok(outcome),
            Ok(CallResult::Err(error)) => Err(error),
            Err(e) => Err(PluginError::fatal(format!(
                "plugin gave an unreadable answer: {e}"
            ))),
        }
    }
}

/// A plugin entry that could not be loaded, named as in the config: its `library` when the
/// file was refused, its `settings` when the plugin refused to start with them.
#[derive(Debug, thiserror::Error)]
#[error("{}: plugins[{index}] ({name:?}).{}: {error}", file.display(), self.key())]
pub struct PluginSetError {
    pub file: std::path::PathBuf,
    pub index: usize,
    pub name: String,
    pub error: LoadError,
}

impl PluginSetError {
    fn key(&self) -> &'static str {
        match self.error {
            LoadError::Create { .. } => "settings",
            LoadError::Widened { .. } => "permissions",
            LoadError::Commands { .. } => "commands",
            _ => "library",
        }
    }
}

/// The enabled plugins of one config, in config order, and its disabled entries (shown on the
/// dashboard, never loaded).
#[derive(Default)]
pub struct PluginSet {
    plugins: Vec<Arc<LoadedPlugin>>,
    disabled: Vec<PluginEntry>,
}

impl PluginSet {
    /// Loads and starts every enabled plugin; the first failure is returned, naming its entry.
    pub fn load(config: &Config) -> Result<Self, PluginSetError> {
        Self::load_reusing(config, &Self::default())
    }

    /// Like [`Self::load`], but keeps the running instance of every plugin whose entry and
    /// library file are unchanged in `previous`. Each library is checked and opened through a
    /// private copy in the store's `plugin-copies` folder (see `loader::open_copy`).
    pub fn load_reusing(config: &Config, previous: &PluginSet) -> Result<Self, PluginSetError> {
        Self::load_from(config, previous, &config.plugin_copies_dir(), false)
    }

    /// Loads the plugins as `switchyard check` does, writing nothing of the config's: the
    /// private copies go to a temporary folder (under `$TMPDIR`) removed once they are mapped,
    /// and each plugin is told it is only checked (`PluginConfig::check_only`), so it creates
    /// none of its files.
    pub fn check(config: &Config) -> Result<Self, PluginSetError> {
        let scratch = tempfile::Builder::new()
            .prefix("switchyard-check-")
            .tempdir()
            .map_err(|e| PluginSetError {
                file: config.file.clone(),
                index: 0,
                name: String::new(),
                error: LoadError::Open {
                    path: std::env::temp_dir(),
                    reason: format!("cannot make a folder for the plugin copies: {e}"),
                },
            })?;
        Self::load_from(config, &Self::default(), scratch.path(), true)
    }

    fn load_from(
        config: &Config,
        previous: &PluginSet,
        scratch: &std::path::Path,
        check_only: bool,
    ) -> Result<Self, PluginSetError> {
        let mut plugins = Vec::new();
        for (index, entry) in config.plugins.iter().enumerate() {
            if !entry.enabled {
                continue;
            }
            let failed = |error| PluginSetError {
                file: config.file.clone(),
                index,
                name: entry.name.clone(),
                error,
            };
            let path = config.library_path(entry).map_err(|searched| {
                failed(LoadError::NotFound {
                    name: entry.library.display().to_string(),
                    searched,
                })
            })?;
            let stamp = LibraryStamp::of(&path);
            if let Some(running) = previous.get(&entry.name)
                && running.entry == *entry
                && stamp.is_some_and(|stamp| stamp == running.library)
            {
                plugins.push(Arc::clone(running));
                continue;
            }
            let library = loader::open_copy(&path, scratch).map_err(failed)?;
            let plugin_config = PluginConfig {
                name: entry.name.clone(),
                settings: serde_json::to_value(&entry.settings)
                    .expect("TOML tables always convert to JSON"),
                config_dir: config.dir.clone(),
                worker_threads: entry.threads,
                github_app: (config.github.auth == crate::config::GitHubAuth::App).then(|| {
                    GitHubApp {
                        id: config.github.app_id,
                        client_id: config.github.client_id.clone(),
                    }
                }),
                check_only,
            };
            let loader::Created {
                instance,
                subscriptions: own,
                permissions: declared,
                commands,
            } = library.instantiate(&plugin_config).map_err(failed)?;
            let permissions = effective_permissions(declared.as_ref(), entry.permissions.as_ref())
                .map_err(|reason| failed(LoadError::Widened { reason }))?;
            let commands = crate::commands::effective(commands, entry.commands.as_ref())
                .map_err(|reason| failed(LoadError::Commands { reason }))?;
            plugins.push(Arc::new(LoadedPlugin {
                declared,
                permissions,
                commands,
                interest: Interest {
                    subscriptions: entry.events.clone().unwrap_or(own),
                    repositories: entry.repositories.clone(),
                },
                allowance: Arc::new(Allowance {
                    clone_url: plugin_config.settings["clone_url"]
                        .as_str()
                        .map(|template| template_url(&plugin_config, template.to_owned())),
                    ..Allowance::of(entry, &config.sandbox)
                }),
                entry: entry.clone(),
                info: library.info.clone(),
                library: stamp.unwrap_or_default(),
                instance,
            }));
        }
        let disabled = config
            .plugins
            .iter()
            .filter(|entry| !entry.enabled)
            .cloned()
            .collect();
        Ok(Self { plugins, disabled })
    }

    /// The config's entries with `enabled = false`.
    pub fn disabled(&self) -> &[PluginEntry] {
        &self.disabled
    }

    /// Names of the plugins that declare no GitHub permissions, and whose entries give none:
    /// as an App, their jobs' tokens have all of the installation's permissions.
    pub fn undeclared(&self) -> impl Iterator<Item = &str> {
        self.plugins
            .iter()
            .filter(|p| p.permissions.is_none())
            .map(|p| p.name())
    }

    pub fn get(&self, name: &str) -> Option<&Arc<LoadedPlugin>> {
        self.plugins.iter().find(|p| p.name() == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<LoadedPlugin>> {
        self.plugins.iter()
    }
}

/// The permissions of an entry's jobs: the entry's, when it gives some, which may only narrow
/// what the plugin declares; else the plugin's own.
fn effective_permissions(
    declared: Option<&Permissions>,
    entry: Option<&Permissions>,
) -> Result<Option<Permissions>, String> {
    match (declared, entry) {
        (Some(declared), Some(entry)) if !entry.within(declared) => Err(format!(
            "{} beyond what the plugin declares ({declared}): an entry can only narrow a plugin's permissions",
            entry.beyond(declared).join(", ")
        )),
        (_, Some(entry)) => Ok(Some(entry.clone())),
        (declared, None) => Ok(declared.cloned()),
    }
}

/// Warns about each plugin that declares no GitHub permissions, when the host is an App.
pub fn warn_undeclared(set: &PluginSet) {
    for name in set.undeclared() {
        tracing::warn!(
            plugin = %name,
            "the plugin {name:?} declares no GitHub permissions: its jobs' App tokens have all of the installation's permissions (narrowed to the event's repository). Give its entry `permissions = {{ ... }}` in config.toml, or rebuild it against a plugin-api that declares them"
        );
    }
}

/// The current plugin set. Behind a lock so a config reload can swap it as a whole: jobs keep
/// the set (and instances) they started with, new deliveries see the new one.
#[derive(Default)]
pub struct Plugins {
    set: RwLock<Arc<PluginSet>>,
    last_reload: std::sync::Mutex<Option<LastReload>>,
}

/// The last reload of the config, for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastReload {
    /// RFC 3339.
    pub at: String,
    /// What it changed, or why it kept the running set.
    pub outcome: Result<String, String>,
}

impl Plugins {
    pub fn new(set: PluginSet) -> Self {
        Self {
            set: RwLock::new(Arc::new(set)),
            last_reload: std::sync::Mutex::default(),
        }
    }

    /// Swaps in a new set. Jobs running on the old one finish on it; an old instance is
    /// destroyed when its last job ends (its library stays mapped: see `loader`).
    pub fn replace(&self, set: PluginSet) {
        *self.set.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
    }

    pub fn current(&self) -> Arc<PluginSet> {
        Arc::clone(&self.set.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Records how a reload ended.
    pub fn reloaded(&self, outcome: Result<String, String>) {
        let last = LastReload {
            at: crate::event::now_rfc3339(),
            outcome,
        };
        *self.last_reload.lock().unwrap_or_else(|p| p.into_inner()) = Some(last);
    }

    /// The last reload since the host started, if any.
    pub fn last_reload(&self) -> Option<LastReload> {
        self.last_reload
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A library file's size and modification time: what a rebuild changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct LibraryStamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl LibraryStamp {
    fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}
