//! The one trait a plugin implements, and the small types it speaks in.

use std::{fmt, path::PathBuf, str::FromStr};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{CommandSpec, Event, Host, Permissions};

/// A Switchyard plugin. Implement this, then export it with [`crate::declare_plugin!`].
///
/// One value serves every job of its plugin entry, concurrently, so `handle` takes `&self`.
#[async_trait::async_trait]
pub trait Plugin: Send + Sync + 'static {
    /// The events this plugin wants when the config gives no `events` list.
    fn subscriptions(&self) -> Vec<Subscription>;

    /// The GitHub permissions this plugin's jobs need, beside [`Self::subscriptions`]. When
    /// the host acts as a GitHub App, each job's token is narrowed to the event's repository and
    /// to exactly these (an entry in `config.toml` may narrow them further), so declare what
    /// the plugin calls: creating commit statuses needs `statuses: write`, checking out code
    /// `contents: read`. A plugin that never calls GitHub declares [`Permissions::none`].
    ///
    /// `None`, the default, means "not declared" (a plugin written before permissions
    /// existed): its jobs get the installation's permissions, narrowed to the event's
    /// repository, and the host warns about it at start.
    fn permissions(&self) -> Option<Permissions> {
        None
    }

    /// The comment commands this plugin takes (`/retest`, `/deploy ENV`). The host parses
    /// `issue_comment` deliveries, checks the commenter's permission against each command's
    /// declaration and acknowledges it before the plugin is called, with the command in
    /// [`Event::command`]. The default, no command, is what plugins built before commands
    /// existed declare.
    fn commands(&self) -> Vec<CommandSpec> {
        Vec::new()
    }

    /// Handles one event. Return [`PluginError::retryable`] for failures worth another try.
    async fn handle(&self, event: &Event, host: &Host) -> Result<Outcome, PluginError>;
}

/// How a handled event ended.
///
/// `Done` and `Skipped` are what plugins said before verdicts existed, and still mean what they
/// meant: `Done` is a [`Verdict::Passed`] job, `Skipped` a [`Verdict::Skipped`] one. A plugin
/// whose work can fail without the plugin failing (a build that exits non-zero, a deploy that
/// did not go through) reports it with [`Outcome::Finished`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The plugin did its work, and it passed.
    Done,
    /// The plugin chose not to act, and says why (recorded in the journal).
    Skipped(String),
    /// The plugin did its work, and says how it went: `verdict` is what the dashboard, the
    /// CLI and the metrics show, `summary` a line recorded beside it ("exited with status 3").
    Finished { verdict: Verdict, summary: String },
}

impl Outcome {
    /// A job whose work failed (a build exited non-zero, a deploy was refused), with why.
    pub fn failed(summary: impl Into<String>) -> Self {
        Self::Finished {
            verdict: Verdict::Failed,
            summary: summary.into(),
        }
    }

    /// The verdict this outcome stands for.
    pub fn verdict(&self) -> Verdict {
        match self {
            Self::Done => Verdict::Passed,
            Self::Skipped(_) => Verdict::Skipped,
            Self::Finished { verdict, .. } => *verdict,
        }
    }
}

/// What a job's work came to, as people scan for it: red for `Failed`, `Errored` and
/// `TimedOut`, green for `Passed`.
///
/// A plugin reports `Passed`, `Failed`, `Skipped` (and may report the others, for work of its
/// own that errored or timed out, a build's own time limit say). The host decides the rest
/// where the plugin cannot: a job that ends with a plugin error is `Errored`, one the host's
/// timeout stopped `TimedOut`, one a person or a newer job cancelled `Cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Passed,
    Failed,
    Errored,
    TimedOut,
    Cancelled,
    Skipped,
}

impl Verdict {
    /// Every verdict, in the order pages list them.
    pub const ALL: [Verdict; 6] = [
        Self::Passed,
        Self::Failed,
        Self::Errored,
        Self::TimedOut,
        Self::Cancelled,
        Self::Skipped,
    ];

    /// The verdict's stored and serialized name (`timed_out`), as in JSON, SQL and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "passed",
            Self::Failed => "failed",
            Self::Errored => "errored",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
            Self::Skipped => "skipped",
        }
    }

    /// Reads [`Self::as_str`]'s names back.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|verdict| verdict.as_str() == name)
    }

    /// Whether the job's work went wrong: failed, errored or timed out (what "failed" means
    /// on the dashboard, in `deliveries --failed` and in the counts).
    pub fn is_bad(self) -> bool {
        matches!(self, Self::Failed | Self::Errored | Self::TimedOut)
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TimedOut => "timed out",
            other => other.as_str(),
        })
    }
}

/// Why a handler failed. The host records the message and retries when `retryable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct PluginError {
    pub message: String,
    pub retryable: bool,
}

impl PluginError {
    /// A failure another attempt will not fix (bad input, a 4xx from an API).
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }

    /// A failure worth retrying later (a network error, an API that is down).
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }
}

/// What the host hands a plugin's constructor: its entry in `config.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginConfig {
    /// The entry's `name` in `config.toml`.
    pub name: String,
    /// The entry's free `[plugins.settings]` table.
    pub settings: serde_json::Value,
    /// The folder of `config.toml`: relative paths in settings are relative to it.
    pub config_dir: PathBuf,
    /// Threads of this instance's own tokio runtime.
    #[serde(default = "default_worker_threads")]
    pub worker_threads: usize,
    /// The GitHub App the host acts as (`[github] auth = "app"`), `None` with a personal token:
    /// check runs are only open to Apps, and events about check runs name the App that made
    /// them.
    #[serde(default)]
    pub github_app: Option<GitHubApp>,
    /// True when the host only checks the config (`switchyard check`): read and validate the
    /// settings, but create nothing on disk (no folders, no files) and start nothing.
    #[serde(default)]
    pub check_only: bool,
}

/// The GitHub App the host acts as, as `[github]` names it: by id or by client id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitHubApp {
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub client_id: Option<String>,
}

impl GitHubApp {
    /// Whether a payload's `app` object (a check run's or check suite's) is this App: events
    /// about another App's check runs are not this host's to act on.
    pub fn is(&self, app: &serde_json::Value) -> bool {
        let id = self.id.is_some_and(|id| app["id"].as_u64() == Some(id));
        let client = self
            .client_id
            .as_deref()
            .is_some_and(|client| app["client_id"].as_str() == Some(client));
        id || client
    }
}

fn default_worker_threads() -> usize {
    2
}

impl PluginConfig {
    /// Deserializes `settings` into the plugin's own settings struct. Use
    /// `#[serde(deny_unknown_fields)]` on it so typos are reported, not ignored.
    pub fn settings<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        let settings = match &self.settings {
            serde_json::Value::Null => serde_json::Value::Object(Default::default()),
            other => other.clone(),
        };
        serde_json::from_value(settings)
            .map_err(|e| PluginError::fatal(format!("plugins.settings: {e}")))
    }

    /// Resolves a path from settings against the config file's folder.
    pub fn resolve_path(&self, path: impl Into<PathBuf>) -> PathBuf {
        let path = path.into();
        if path.is_absolute() {
            path
        } else {
            self.config_dir.join(path)
        }
    }

    /// Reads a secret from the file a setting names (by convention `*_file`, the twin of
    /// `*_env`): relative to the config file's folder, with a leading `$CREDENTIALS_DIRECTORY`
    /// (systemd's credentials) expanded, without its trailing newline. The error names the
    /// file, never the content.
    pub fn secret_from_file(
        &self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<String, PluginError> {
        let path = path.as_ref();
        let credentials = path
            .strip_prefix("$CREDENTIALS_DIRECTORY")
            .ok()
            .zip(std::env::var_os("CREDENTIALS_DIRECTORY"));
        let path = match credentials {
            Some((rest, dir)) => PathBuf::from(dir).join(rest),
            None => self.resolve_path(path),
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            PluginError::fatal(format!(
                "cannot read the secret file {}: {e}",
                path.display()
            ))
        })?;
        Ok(text.trim_end_matches(['\n', '\r']).to_owned())
    }

    /// Reads the secret that the settings `{name}_file` (a file) or `{name}_env` (a variable)
    /// point at, the file first: the usual pair of settings for a secret.
    pub fn secret(
        &self,
        name: &str,
        env: Option<&str>,
        file: Option<&std::path::Path>,
    ) -> Result<String, PluginError> {
        match (file, env) {
            (Some(file), _) => self.secret_from_file(file),
            (None, Some(variable)) => self.secret_from_env(variable),
            (None, None) => Err(PluginError::fatal(format!(
                "settings: set {name}_env (the variable holding it) or {name}_file (a file holding it)"
            ))),
        }
    }

    /// Reads a secret from the environment variable a setting names, with an error that names the
    /// variable (never the value).
    pub fn secret_from_env(&self, variable: &str) -> Result<String, PluginError> {
        match std::env::var(variable) {
            Ok(value) if !value.is_empty() => Ok(value),
            // The host's environment is the one it started with: a variable exported later
            // reaches it only through a restart, never a live reload.
            _ => Err(PluginError::fatal(format!(
                "environment variable {variable} is not set in the host's environment, which it reads once, at start: export it and restart switchyard (a config reload cannot add it), or read the secret from a file (a `*_file` setting)"
            ))),
        }
    }
}

/// Which events a plugin wants: `"pull_request"`, `"pull_request.opened"`, or `"*"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subscription {
    event: Option<String>,
    action: Option<String>,
}

impl Subscription {
    /// Every event.
    pub fn all() -> Self {
        Self {
            event: None,
            action: None,
        }
    }

    /// Every action of one event. Panics unless `event` is a valid event name (a programming
    /// error in the plugin, caught by its first test).
    pub fn event(event: &str) -> Self {
        event.parse().expect("a valid event name")
    }

    /// One action of one event, e.g. `("pull_request", "opened")`. Panics like [`Self::event`].
    pub fn action(event: &str, action: &str) -> Self {
        format!("{event}.{action}")
            .parse()
            .expect("a valid event and action name")
    }

    /// Whether an event with this name and action is wanted.
    pub fn matches(&self, event: &str, action: Option<&str>) -> bool {
        let event_ok = self.event.as_deref().is_none_or(|e| e == event);
        let action_ok = match (&self.action, action) {
            (None, _) => true,
            (Some(want), Some(have)) => want == have,
            (Some(_), None) => false,
        };
        event_ok && action_ok
    }
}

/// Why a subscription string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid subscription {input:?}: {reason}")]
#[non_exhaustive]
pub struct SubscriptionError {
    pub input: String,
    pub reason: &'static str,
}

fn is_event_word(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl FromStr for Subscription {
    type Err = SubscriptionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = |reason| SubscriptionError {
            input: s.to_owned(),
            reason,
        };
        if s == "*" {
            return Ok(Self::all());
        }
        let (event, action) = match s.split_once('.') {
            Some((event, action)) => (event, Some(action)),
            None => (s, None),
        };
        if !is_event_word(event) {
            return Err(error(
                "expected an event name like `pull_request` (lowercase letters, digits, `_`), optionally `.action`, or `*`",
            ));
        }
        if action.is_some_and(|a| !is_event_word(a)) {
            return Err(error(
                "expected an action like `opened` after the `.` (lowercase letters, digits, `_`)",
            ));
        }
        Ok(Self {
            event: Some(event.to_owned()),
            action: action.map(str::to_owned),
        })
    }
}

impl fmt::Display for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.event, &self.action) {
            (None, _) => f.write_str("*"),
            (Some(event), None) => f.write_str(event),
            (Some(event), Some(action)) => write!(f, "{event}.{action}"),
        }
    }
}

impl Serialize for Subscription {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Subscription {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_match_event_and_action() {
        // (subscription, event, action, expected)
        let cases = [
            ("*", "push", None, true),
            ("*", "pull_request", Some("opened"), true),
            ("pull_request", "pull_request", Some("closed"), true),
            ("pull_request", "push", None, false),
            ("pull_request.opened", "pull_request", Some("opened"), true),
            ("pull_request.opened", "pull_request", Some("closed"), false),
            ("pull_request.opened", "pull_request", None, false),
            ("deployment", "deployment_status", Some("created"), false),
        ];
        for (sub, event, action, expected) in cases {
            let sub: Subscription = sub.parse().unwrap();
            assert_eq!(
                sub.matches(event, action),
                expected,
                "{sub} vs {event}.{action:?}"
            );
        }
    }

    #[test]
    fn subscriptions_parse_and_print_round_trip() {
        for s in [
            "*",
            "push",
            "pull_request.synchronize",
            "check_run.completed",
        ] {
            assert_eq!(s.parse::<Subscription>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn bad_subscriptions_are_refused_with_the_input() {
        for s in [
            "",
            "Pull_Request",
            "pull_request.",
            ".opened",
            "pull request",
            "a.b.c",
            "**",
        ] {
            let err = s.parse::<Subscription>().unwrap_err();
            assert_eq!(err.input, s);
        }
    }
}
