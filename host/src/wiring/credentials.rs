//! The secrets the host runs with, read from the files or environment variables the config
//! names: the webhook secret, the GitHub token or App key, and the journal's connection URL
//! (with its TLS). Errors name the setting, file or variable, never the value.

use std::{sync::Arc, time::Duration};

use crate::{
    config::{Backend, Config, GitHubAuth, StoreTls, secret_from_env, secret_from_file},
    github::AppKey,
    ingress::WebhookSecret,
    journal::{self as journals, PostgresSettings, StoreTarget},
    services::checkout,
};

use super::StartError;

/// The secrets the host runs with, read from the files or environment variables the config
/// names.
#[derive(Clone)]
pub struct Secrets {
    pub webhook: WebhookSecret,
    pub github_token: Option<String>,
    /// With `[github] auth = "app"`: the App's private key, checked to be RSA.
    pub github_app_key: Option<Arc<AppKey>>,
}

impl Secrets {
    /// Reads the secrets, each from its `*_file` when one is set, else its `*_env`. The
    /// webhook secret is required, and so is an App's private key; without a GitHub token the
    /// host runs, with one warning, and jobs that call GitHub fail naming the variable.
    pub fn from_env(config: &Config) -> Result<Self, StartError> {
        let webhook = webhook_secret(config)?;
        if config.github.auth == GitHubAuth::App {
            let key = github_app_key(config)?;
            return Ok(Self {
                webhook,
                github_token: None,
                github_app_key: Some(Arc::new(key)),
            });
        }
        let github_token =
            match &config.github.token_file {
                Some(file) => Some(secret_from_file(&config.secret_path(file)).map_err(
                    |problem| StartError::SecretFile {
                        setting: "[github] token_file",
                        problem,
                    },
                )?),
                None => secret_from_env(&config.github.token_env),
            }
            .filter(|token| !token.is_empty());
        // The stand-in takes any token; it is only ever sent there, on loopback.
        let github_token = match config.github.stand_in {
            true => Some("stand-in-token".to_owned()),
            false => github_token,
        };
        if github_token.is_none() {
            tracing::warn!(
                "no GitHub token: {}; until then jobs that call GitHub fail",
                config.missing_github_token()
            );
        }
        Ok(Self {
            webhook,
            github_token,
            github_app_key: None,
        })
    }

    /// Every secret value, for masking in job logs: the webhook secret, the token and its
    /// form in git's header, the App key's lines. (Installation tokens are masked by their
    /// shape: see `job_log`.)
    pub(super) fn values(&self) -> impl Iterator<Item = String> {
        let webhook = String::from_utf8_lossy(self.webhook.as_bytes()).into_owned();
        let encoded = self
            .github_token
            .as_deref()
            .map(checkout::encoded_credentials);
        let key_lines = self
            .github_app_key
            .iter()
            .flat_map(|key| key.masked_lines().to_vec());
        std::iter::once(webhook)
            .chain(self.github_token.clone())
            .chain(encoded)
            .chain(key_lines)
    }
}

/// Reads and checks the App's private key: from `[github] private_key_file` when set, else
/// the variable `private_key_env` names. Errors name the file or variable, never the key.
pub fn github_app_key(config: &Config) -> Result<AppKey, StartError> {
    let github = &config.github;
    let (pem, origin) = match &github.private_key_file {
        Some(file) => {
            let path = config.secret_path(file);
            let pem = secret_from_file(&path).map_err(|problem| StartError::SecretFile {
                setting: "[github] private_key_file",
                problem,
            })?;
            (pem, path.display().to_string())
        }
        None => {
            let pem =
                secret_from_env(&github.private_key_env).ok_or_else(|| StartError::NoAppKey {
                    variable: github.private_key_env.clone(),
                    config: config.file.display().to_string(),
                })?;
            (pem, github.private_key_env.clone())
        }
    };
    AppKey::from_pem(&pem).map_err(|problem| StartError::AppKey { origin, problem })
}

/// Secrets shorter than this are accepted with a warning: easy to guess by brute force.
const SHORT_SECRET: usize = 16;

/// Reads the webhook secret named by the config, or says which variable to set.
pub fn webhook_secret(config: &Config) -> Result<WebhookSecret, StartError> {
    let variable = &config.server.secret_env;
    // Where it came from, for the messages below: the file when one is named, else the variable.
    let (secret, source) = match &config.server.secret_file {
        Some(file) => {
            let path = config.secret_path(file);
            let secret = secret_from_file(&path).map_err(|problem| StartError::SecretFile {
                setting: "[server] secret_file",
                problem,
            })?;
            (secret, path.display().to_string())
        }
        None => {
            let secret = secret_from_env(variable).ok_or_else(|| StartError::NoSecret {
                variable: variable.clone(),
                config: config.file.display().to_string(),
            })?;
            (secret, variable.clone())
        }
    };
    if secret.trim().is_empty() {
        return Err(StartError::BlankSecret { origin: source });
    }
    if secret.len() < SHORT_SECRET {
        tracing::warn!(
            %source,
            bytes = secret.len(),
            "the webhook secret is shorter than {SHORT_SECRET} bytes: anyone who guesses it can send deliveries; use a long random string"
        );
    }
    Ok(WebhookSecret::new(secret))
}

/// Where the journal is, from `[store]`: the SQLite file, or PostgreSQL with its connection URL
/// read from `url_file` or `url_env` (a secret: errors name the setting, never the value).
pub fn store_target(config: &Config) -> Result<StoreTarget, StartError> {
    let store = &config.store;
    if store.backend == Backend::Sqlite {
        return Ok(StoreTarget::Sqlite(config.store_path()));
    }
    let (url, origin) = match &store.url_file {
        Some(file) => {
            let path = config.secret_path(file);
            let url = secret_from_file(&path).map_err(|problem| StartError::Store {
                setting: "[store] url_file",
                problem,
            })?;
            (url, format!("[store] url_file ({})", path.display()))
        }
        None => {
            let url = secret_from_env(&store.url_env).ok_or_else(|| StartError::Store {
                setting: "[store] url_env",
                problem: format!(
                    "backend = \"postgres\" needs the connection URL: export {} (postgres://user:password@host:port/database), or name a file holding it in [store] url_file",
                    store.url_env
                ),
            })?;
            (url, format!("[store] url_env ({})", store.url_env))
        }
    };
    let tls = match store.tls {
        StoreTls::Off => None,
        StoreTls::On => Some(Arc::new(store_tls(config)?)),
    };
    Ok(StoreTarget::Postgres(PostgresSettings {
        url: url.trim().to_owned(),
        origin,
        pool_size: store.pool_size,
        tls,
        lease: Duration::from_secs(store.lease_secs),
        poll: Duration::from_secs(store.poll_secs),
    }))
}

/// TLS to PostgreSQL (see [`journals::tls_config`]), from `[store] tls_ca_file`.
fn store_tls(config: &Config) -> Result<rustls::ClientConfig, StartError> {
    let ca_file = config
        .store
        .tls_ca_file
        .as_ref()
        .map(|file| config.secret_path(file));
    journals::tls_config(ca_file.as_deref()).map_err(|problem| StartError::Store {
        setting: "[store] tls_ca_file",
        problem,
    })
}
