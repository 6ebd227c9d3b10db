//! `switchyard-event-log`: appends one JSON line per event to a file, an audit log of every
//! delivery the host dispatched to it. It is also the smallest complete plugin to copy from.

mod record;
mod rotate;

use std::{path::PathBuf, sync::Mutex};

use rotate::RotatingFile;
use serde::Deserialize;
use switchyard_plugin_api::prelude::*;

/// `[plugins.settings]` of an event-log entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// File to append to, relative to the config file's folder. Created when missing.
    #[serde(default = "default_path")]
    path: PathBuf,
    /// MiB past which the file is renamed to `PATH.1` and a new one started; 0: never.
    #[serde(default = "default_rotate_mib")]
    rotate_mib: u64,
}

fn default_path() -> PathBuf {
    PathBuf::from("events.jsonl")
}

fn default_rotate_mib() -> u64 {
    100
}

struct EventLog {
    // One short `write_all` per line on an O_APPEND file: cheaper than a blocking-pool hop, and
    // the lock keeps concurrent jobs' lines whole. `None` in an instance that was only checked.
    file: Mutex<Option<RotatingFile>>,
}

impl EventLog {
    fn open(config: &PluginConfig) -> Result<Self, PluginError> {
        let settings: Settings = config.settings()?;
        let path = config.resolve_path(settings.path);
        let limit = (settings.rotate_mib > 0).then_some(settings.rotate_mib << 20);
        if config.check_only {
            // `switchyard check`: the settings are good; the file is made when the host runs.
            return Ok(Self {
                file: Mutex::new(None),
            });
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| PluginError::fatal(format!("cannot create {}: {e}", dir.display())))?;
        }
        let file = RotatingFile::open(path.clone(), limit)
            .map_err(|e| PluginError::fatal(format!("cannot open {}: {e}", path.display())))?;
        Ok(Self {
            file: Mutex::new(Some(file)),
        })
    }
}

#[async_trait]
impl Plugin for EventLog {
    fn subscriptions(&self) -> Vec<Subscription> {
        vec![Subscription::all()]
    }

    /// Writes a file; calls GitHub for nothing.
    fn permissions(&self) -> Option<Permissions> {
        Some(Permissions::none())
    }

    async fn handle(&self, event: &Event, _host: &Host) -> Result<Outcome, PluginError> {
        let line = record::line(event);
        let mut file = self
            .file
            .lock()
            .map_err(|_| PluginError::fatal("event log file lock poisoned"))?;
        let file = file
            .as_mut()
            .ok_or_else(|| PluginError::fatal("the event log was only checked, never opened"))?;
        file.append(line.as_bytes())
            .map_err(|e| PluginError::retryable(format!("cannot append to the event log: {e}")))?;
        Ok(Outcome::Done)
    }
}

declare_plugin!(EventLog, EventLog::open);
