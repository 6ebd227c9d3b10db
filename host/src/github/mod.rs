//! GitHub: what plugins' calls go through, as the host's identity. Two kinds of auth:
//! `token` (one personal access token, the default) and `app` (a GitHub App: each job under an
//! installation token narrowed to its plugin's permissions and the event's repository).
//!
//! - `client`: one REST call to `[github] api_url`, with retries.
//! - `token`: the personal-token identity.
//! - `jwt`: the App's private key and its RS256 JWT, corrected for clock skew.
//! - `app`: the App identity: installations, token minting, eviction on uninstall.
//! - `tokens`: the installation token cache.
//! - `comments`: the host's own calls for comment commands (permission, reactions, replies).
//! - `people`: the host's own calls about people signing in to the dashboard.
//! - `permissions`: naming the permission a refused call lacked.
//! - `posted`: what a job posted (statuses, check runs, deployments), for the dashboard.
//! - `stand_in`: a local stand-in for trying plugins (`serve --github-stand-in`).

pub mod app;
pub mod client;
pub(crate) mod comments;
pub mod jwt;
pub(crate) mod people;
pub mod permissions;
pub mod posted;
pub mod stand_in;
pub mod token;
pub mod tokens;

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::Deserialize;
use switchyard_plugin_api::{GitHubResponse, HostError, Permissions, wire::GitHubCall};

pub use app::App;
pub use jwt::AppKey;
pub use token::TokenAuth;

use crate::{
    config::{GitHubAuth, GitHubConfig},
    ops::metrics::Metrics,
};

/// Who is calling: a job of a plugin entry, for the event it handles.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The plugin entry's name.
    pub plugin: String,
    /// What its jobs' App tokens may do (`None`: not declared, the installation's).
    pub permissions: Option<Permissions>,
    /// The event's `owner/repo`: App tokens are narrowed to it.
    pub repository: Option<String>,
    /// For a call about an organization and no repository (its members): the App's
    /// installation on it gives the token.
    pub organization: Option<String>,
    /// The delivery's payload, whose `installation.id` is read when a token is needed.
    payload: Bytes,
    installation: OnceLock<Option<u64>>,
}

impl Caller {
    pub fn new(
        plugin: String,
        permissions: Option<Permissions>,
        repository: Option<String>,
        payload: Bytes,
    ) -> Self {
        Self {
            plugin,
            permissions,
            repository,
            organization: None,
            payload,
            installation: OnceLock::new(),
        }
    }

    /// The host's own call about `organization` (no plugin, no event), with `permissions`.
    pub fn for_organization(organization: &str, permissions: Permissions) -> Self {
        Self {
            organization: Some(organization.to_owned()),
            ..Self::new(String::new(), Some(permissions), None, Bytes::new())
        }
    }

    /// A caller with no plugin, event or repository.
    pub fn nobody() -> Self {
        Self::new(String::new(), None, None, Bytes::new())
    }

    /// The delivery's payload, as GitHub sent it.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The payload's `installation.id`, which GitHub sends with every App delivery: read once.
    pub fn installation(&self) -> Option<u64> {
        *self.installation.get_or_init(|| self.read_installation())
    }

    fn read_installation(&self) -> Option<u64> {
        #[derive(Deserialize)]
        struct Id {
            id: u64,
        }
        #[derive(Deserialize)]
        struct Payload {
            installation: Option<Id>,
        }
        serde_json::from_slice::<Payload>(&self.payload)
            .ok()?
            .installation
            .map(|i| i.id)
    }
}

/// What the host needs from GitHub; a trait so tests and other backends can stand in.
#[async_trait::async_trait]
pub trait GitHub: Send + Sync {
    /// A plugin's REST call, made as `caller`.
    async fn send(&self, call: GitHubCall, caller: &Caller) -> Result<GitHubResponse, HostError>;

    /// The token `caller`'s checkouts give git, if any.
    async fn git_token(&self, caller: &Caller) -> Result<Option<String>, HostError>;

    /// A call as the host itself, for no job: with the App's JWT (the App's own endpoints,
    /// such as `/app/hook/deliveries`) or with the token. Returns the answer and, for a list,
    /// the cursor of its next page.
    async fn as_host(
        &self,
        call: GitHubCall,
    ) -> Result<(GitHubResponse, Option<String>), HostError> {
        let _ = call;
        Err(HostError::NotConfigured(
            "this GitHub identity makes no calls of its own".to_owned(),
        ))
    }

    /// Sees each accepted delivery before it is dispatched: an App forgets the tokens of an
    /// installation that was deleted or suspended, or of repositories removed from it.
    fn observe(&self, _event: &str, _payload: &[u8]) {}
}

/// Every call fails with the same message: an App without its key.
struct Unconfigured(String);

#[async_trait::async_trait]
impl GitHub for Unconfigured {
    async fn send(&self, _: GitHubCall, _: &Caller) -> Result<GitHubResponse, HostError> {
        Err(HostError::NotConfigured(self.0.clone()))
    }

    async fn git_token(&self, _: &Caller) -> Result<Option<String>, HostError> {
        Err(HostError::NotConfigured(self.0.clone()))
    }
}

/// The GitHub identity `config` asks for: `token` with the personal token, `app` with the
/// App's key.
pub fn connect(
    config: &GitHubConfig,
    token: Option<String>,
    app_key: Option<Arc<AppKey>>,
    metrics: Arc<Metrics>,
) -> Result<Arc<dyn GitHub>, reqwest::Error> {
    let api = client::Api::new(config, metrics)?;
    Ok(match (config.auth, app_key) {
        (GitHubAuth::Token, _) => {
            Arc::new(TokenAuth::new(api, token, config.missing_token_error()))
        }
        (GitHubAuth::App, Some(key)) => Arc::new(App::new(config, api, key)),
        (GitHubAuth::App, None) => Arc::new(Unconfigured(format!(
            "no GitHub App private key: set the environment variable {} or [github] private_key_file",
            config.private_key_env
        ))),
    })
}
