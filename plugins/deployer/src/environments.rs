//! Per-environment settings (`[plugins.settings.environment_settings.NAME]`): each
//! environment's command, URL, when it deploys (`on`), its required contexts and who may deploy
//! it by command. Today's `environment` and `environments` keep their meaning beside them.

use std::collections::BTreeMap;

use serde::Deserialize;
use switchyard_plugin_api::Role;

/// When an environment deploys by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum On {
    /// A merged pull request deploys it (as `environment` does).
    #[default]
    Merge,
    /// The default branch's head deploys once GitHub sees it green.
    Green,
    /// Only `/deploy` (and the dashboard) deploy it.
    Manual,
}

/// One environment's table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentTable {
    /// The deploy command; default the entry's `command`.
    #[serde(default)]
    pub command: Option<String>,
    /// Given with `success`; default the entry's `environment_url`.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub on: On,
    /// Absent: the entry's `required_contexts`.
    #[serde(default)]
    pub required_contexts: Option<Vec<String>>,
    /// The least permission to deploy it by command, lock or unlock one's own lock.
    #[serde(default = "default_deploy")]
    pub deploy: Role,
    /// The least permission to `--force` a deploy and to unlock someone else's lock.
    #[serde(default = "default_force")]
    pub force: Role,
    /// Whether `/deploy ENV` may deploy a pull request's head; default yes, except for a
    /// production-like name (see [`production_like`]), which takes branch heads only.
    #[serde(default)]
    pub pull_requests: Option<bool>,
}

fn default_deploy() -> Role {
    Role::Write
}
fn default_force() -> Role {
    Role::Maintain
}

/// `production`, `prod`, `live`, or a name starting `production-`/`prod-` or ending
/// `-production`/`-prod`: environments whose pull request heads are refused by default.
pub fn production_like(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["production", "prod", "live"].contains(&name.as_str())
        || ["production-", "prod-", "production_", "prod_"]
            .iter()
            .any(|p| name.starts_with(p))
        || ["-production", "-prod", "_production", "_prod"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// Whether `name` may be an environment's name here: letters, digits, `.`, `-`, `_`, at most
/// 64 characters (so it can be echoed back in a thread as it is).
pub fn is_environment_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

/// What one environment does, its table merged over the entry's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    pub name: String,
    pub command: String,
    pub url: Option<String>,
    pub on: On,
    pub required_contexts: Vec<String>,
    /// What an automatic deploy on green asks GitHub for: the table's or the entry's contexts,
    /// or `None` (GitHub's default: every context green) when neither names any.
    pub green_contexts: Option<Vec<String>>,
    /// `None` for an environment without a table: run as today, with no permission checked
    /// where it runs (only its sticky lock).
    pub deploy: Option<Role>,
    pub force: Role,
    pub pull_requests: bool,
}

/// Every environment the entry runs: those of `environment_settings`, `environment` and
/// `environments`.
#[derive(Debug, Clone)]
pub struct Environments {
    all: BTreeMap<String, Environment>,
}

/// The entry-wide settings environments fall back on.
pub struct Defaults<'a> {
    pub command: &'a str,
    pub url: Option<&'a str>,
    pub required_contexts: &'a [String],
    /// `environment`, when given or when no table is.
    pub on_merge: Option<&'a str>,
    pub environments: &'a [String],
}

impl Environments {
    pub fn new(
        tables: &BTreeMap<String, EnvironmentTable>,
        defaults: &Defaults<'_>,
    ) -> Result<Self, String> {
        let mut all = BTreeMap::new();
        for (name, table) in tables {
            if !is_environment_name(name) {
                return Err(format!(
                    "environment_settings.{name}: use letters, digits, `.`, `-` and `_`"
                ));
            }
            let command = table.command.as_deref().unwrap_or(defaults.command);
            if command.trim().is_empty() {
                return Err(format!("environment_settings.{name}.command is empty"));
            }
            if table.force < table.deploy {
                return Err(format!(
                    "environment_settings.{name}: force ({}) is below deploy ({})",
                    table.force, table.deploy
                ));
            }
            all.insert(
                name.clone(),
                Environment {
                    name: name.clone(),
                    command: command.to_owned(),
                    url: table.url.clone().or(defaults.url.map(str::to_owned)),
                    on: table.on,
                    required_contexts: table
                        .required_contexts
                        .clone()
                        .unwrap_or_else(|| defaults.required_contexts.to_vec()),
                    green_contexts: table.required_contexts.clone().or_else(|| {
                        (!defaults.required_contexts.is_empty())
                            .then(|| defaults.required_contexts.to_vec())
                    }),
                    deploy: Some(table.deploy),
                    force: table.force,
                    pull_requests: table.pull_requests.unwrap_or(!production_like(name)),
                },
            );
        }
        let legacy = |name: &str, on: On| Environment {
            name: name.to_owned(),
            command: defaults.command.to_owned(),
            url: defaults.url.map(str::to_owned),
            on,
            required_contexts: defaults.required_contexts.to_vec(),
            green_contexts: None,
            deploy: None,
            force: default_force(),
            pull_requests: false,
        };
        if let Some(name) = defaults.on_merge {
            all.entry(name.to_owned())
                .or_insert_with(|| legacy(name, On::Merge));
        }
        for name in defaults.environments {
            all.entry(name.clone())
                .or_insert_with(|| legacy(name, On::Manual));
        }
        Ok(Self { all })
    }

    pub fn get(&self, name: &str) -> Option<&Environment> {
        self.all.get(name)
    }

    /// Those that deploy by themselves `on` this.
    pub fn on(&self, on: On) -> impl Iterator<Item = &Environment> {
        self.all.values().filter(move |e| e.on == on)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.all.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables(toml_text: &str) -> BTreeMap<String, EnvironmentTable> {
        #[derive(Deserialize)]
        struct Wrap {
            environment_settings: BTreeMap<String, EnvironmentTable>,
        }
        let wrap: Wrap = toml_from(toml_text);
        wrap.environment_settings
    }

    fn toml_from<T: serde::de::DeserializeOwned>(text: &str) -> T {
        // The plugin reads its settings as JSON from the host; TOML-shaped tests use JSON too.
        serde_json::from_str(text).unwrap()
    }

    const DEFAULTS: Defaults<'static> = Defaults {
        command: "./deploy",
        url: Some("https://example.com"),
        required_contexts: &[],
        on_merge: None,
        environments: &[],
    };

    #[test]
    fn tables_fall_back_on_the_entrys_settings() {
        let envs = Environments::new(
            &tables(
                r#"{"environment_settings": {
                    "staging": {},
                    "production": {"on": "manual", "deploy": "maintain", "command": "./ship",
                                   "required_contexts": ["ci"]}}}"#,
            ),
            &DEFAULTS,
        )
        .unwrap();
        let staging = envs.get("staging").unwrap();
        assert_eq!(staging.command, "./deploy");
        assert_eq!(staging.url.as_deref(), Some("https://example.com"));
        assert_eq!((staging.on, staging.deploy), (On::Merge, Some(Role::Write)));
        assert!(staging.pull_requests);
        let production = envs.get("production").unwrap();
        assert_eq!(production.command, "./ship");
        assert_eq!(production.on, On::Manual);
        assert_eq!(production.deploy, Some(Role::Maintain));
        assert_eq!(production.force, Role::Maintain);
        assert_eq!(production.required_contexts, ["ci"]);
        assert!(
            !production.pull_requests,
            "production takes branch heads only"
        );
        let merge: Vec<_> = envs.on(On::Merge).map(|e| e.name.as_str()).collect();
        assert_eq!(merge, ["staging"]);
    }

    #[test]
    fn today_s_settings_keep_their_meaning_beside_tables() {
        let environments = ["qa".to_owned()];
        let defaults = Defaults {
            on_merge: Some("production"),
            environments: &environments,
            ..DEFAULTS
        };
        let envs = Environments::new(
            &tables(r#"{"environment_settings": {"staging": {"on": "green"}}}"#),
            &defaults,
        )
        .unwrap();
        assert_eq!(
            envs.names().collect::<Vec<_>>(),
            ["production", "qa", "staging"]
        );
        assert_eq!(envs.get("production").unwrap().on, On::Merge);
        assert_eq!(envs.get("production").unwrap().deploy, None);
        assert_eq!(envs.get("qa").unwrap().on, On::Manual);
        assert_eq!(envs.get("staging").unwrap().on, On::Green);
    }

    #[test]
    fn bad_tables_are_refused_at_load() {
        for (text, says) in [
            (
                r#"{"environment_settings": {"<b>": {}}}"#,
                "letters, digits",
            ),
            (
                r#"{"environment_settings": {"p": {"deploy": "admin", "force": "write"}}}"#,
                "below deploy",
            ),
            (
                r#"{"environment_settings": {"p": {"command": " "}}}"#,
                "command is empty",
            ),
        ] {
            let error = Environments::new(&tables(text), &DEFAULTS).unwrap_err();
            assert!(error.contains(says), "{error}");
        }
        let unknown: Result<BTreeMap<String, EnvironmentTable>, _> =
            serde_json::from_str(r#"{"p": {"environment": "x"}}"#);
        assert!(unknown.is_err());
    }

    #[test]
    fn production_like_names_refuse_pull_requests_by_default() {
        for name in ["production", "Prod", "live", "prod-eu", "eu-production"] {
            assert!(production_like(name), "{name}");
        }
        for name in ["staging", "preview", "producer", "qa"] {
            assert!(!production_like(name), "{name}");
        }
    }
}
