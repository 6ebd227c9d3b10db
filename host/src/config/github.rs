//! `[github]`: the GitHub (or GitHub Enterprise) API the plugins talk to, who the host acts as
//! there, and the client's bounds on retries, waits and answers.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Invalid, at_least_one, check_env_name, check_http_url, invalid};

/// `[github]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GitHubConfig {
    /// REST API base URL; GitHub Enterprise Server is `https://HOST/api/v3`.
    pub api_url: String,
    /// GitHub's web address, where people sign in ("Sign in with GitHub" on the dashboard);
    /// GitHub Enterprise Server is `https://HOST`.
    pub web_url: String,
    /// Who the host acts as: `token` (a personal access token, the default) or `app` (a
    /// GitHub App, each job under an installation token narrowed to its plugin's permissions).
    pub auth: GitHubAuth,
    /// The App's id (its settings page, "App ID"), with `auth = "app"`; or give `client_id`.
    pub app_id: Option<u64>,
    /// The App's client id (`Iv1.…`), which GitHub also takes as the JWT's issuer.
    pub client_id: Option<String>,
    /// Name of the environment variable holding the App's PEM private key.
    pub private_key_env: String,
    /// A file holding the App's PEM private key, used instead of `private_key_env` when set.
    pub private_key_file: Option<PathBuf>,
    /// Installation tokens kept at most (one per installation, repository and permission
    /// set); the least recently minted go first.
    pub max_cached_tokens: usize,
    /// Name of the environment variable holding the API token.
    pub token_env: String,
    /// A file holding the API token, used instead of `token_env` when set.
    pub token_file: Option<PathBuf>,
    /// Retries of a call that got 5xx, 429 or a rate-limit 403.
    pub max_retries: u32,
    /// First retry delay when GitHub gives none; doubles each retry.
    pub backoff_ms: u64,
    /// Longest wait the client accepts for a rate limit before failing the call as retryable.
    pub max_wait_secs: u64,
    /// MiB an answer may have (GitHub's, and those of `http_post` endpoints): a larger one is
    /// refused, without reading more of it than this.
    pub max_answer_mib: u64,
    /// Seconds a call may take, its answer read whole; a call that takes longer is retried.
    pub timeout_secs: u64,
    /// Set by `serve --github-stand-in`, never by the file: `api_url` is the stand-in's, which
    /// needs no token, and a reload keeps it so.
    #[serde(skip)]
    pub stand_in: bool,
}

impl Default for GitHubConfig {
    fn default() -> Self {
        Self {
            api_url: "https://api.github.com".to_owned(),
            web_url: "https://github.com".to_owned(),
            auth: GitHubAuth::default(),
            app_id: None,
            client_id: None,
            private_key_env: "GITHUB_APP_PRIVATE_KEY".to_owned(),
            private_key_file: None,
            max_cached_tokens: 1000,
            token_env: "GITHUB_TOKEN".to_owned(),
            token_file: None,
            max_retries: 4,
            backoff_ms: 500,
            max_wait_secs: 60,
            max_answer_mib: 32,
            timeout_secs: 60,
            stand_in: false,
        }
    }
}

impl GitHubConfig {
    /// Sends the plugins' GitHub calls to the stand-in at `url`, with a token of its own: it
    /// mints no App tokens.
    pub fn use_stand_in(&mut self, url: String) {
        self.api_url = url;
        self.auth = GitHubAuth::Token;
        self.stand_in = true;
    }

    pub(super) fn validate(&self) -> Result<(), Invalid> {
        check_http_url(&self.api_url).map_err(|p| invalid("github.api_url", p))?;
        check_http_url(&self.web_url).map_err(|p| invalid("github.web_url", p))?;
        check_env_name("github.token_env", &self.token_env)?;
        check_env_name("github.private_key_env", &self.private_key_env)?;
        if self.auth == GitHubAuth::App {
            match (&self.app_id, &self.client_id) {
                (None, None) => {
                    return Err(invalid(
                        "github.app_id",
                        "auth = \"app\" needs the App's id (app_id) or its client id (client_id), from the App's settings page",
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        "github.client_id",
                        "set app_id or client_id, not both",
                    ));
                }
                (None, Some(id)) if id.is_empty() || !id.bytes().all(|b| b.is_ascii_graphic()) => {
                    return Err(invalid(
                        "github.client_id",
                        format!("{id:?} is not a client id"),
                    ));
                }
                _ => {}
            }
        }
        at_least_one(&[
            ("github.max_cached_tokens", self.max_cached_tokens as u64),
            ("github.max_answer_mib", self.max_answer_mib),
            ("github.timeout_secs", self.timeout_secs),
        ])
    }
}

/// How the host authenticates to GitHub.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GitHubAuth {
    /// One token for everything, from `token_env` or `token_file`.
    #[default]
    Token,
    /// A GitHub App: a JWT signed with its private key mints installation tokens.
    App,
}

impl GitHubConfig {
    /// What a job calling GitHub without a token fails with: the empty `token_file` (as
    /// written), or the unset variable `token_env` names.
    pub fn missing_token_error(&self) -> String {
        match &self.token_file {
            Some(file) => format!(
                "no GitHub token: {} ([github] token_file) is empty: put a token in it",
                file.display()
            ),
            None => format!(
                "no GitHub token: set the environment variable {}",
                self.token_env
            ),
        }
    }
}

impl super::Config {
    /// Why the host has no GitHub token and what to do, naming where it looked: the empty
    /// `token_file` (its path resolved), or the unset variable `token_env` names.
    pub fn missing_github_token(&self) -> String {
        match &self.github.token_file {
            Some(file) => format!(
                "{} ([github] token_file) is empty: put a token in it",
                self.secret_path(file).display()
            ),
            None => format!(
                "{} is not set: export it with a token, or name a file holding one in [github] token_file",
                self.github.token_env
            ),
        }
    }
}
