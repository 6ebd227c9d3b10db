//! People who sign in with GitHub ("Sign in with GitHub"), beside named tokens: who they are
//! (`oauth`, GitHub's web sign-in, whose token of theirs is used once and dropped), who may sign
//! in (`allowed_organizations`, asked with the host's own identity, and `allowed_users`), and
//! the refresh that asks again while they are signed in, so a person removed from the
//! organization loses the dashboard within [`GitHubSignIn::refresh`]; what each may read
//! (`readable`) and do (`permission`), asked with the host's identity.

pub(super) mod oauth;
pub(super) mod permission;
mod readable;

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::{
    commands::PermissionCache,
    config::{Config, secret_from_env, secret_from_file},
    github::{GitHub, people::organization_member},
};

/// A person signed in with GitHub: their numeric id (what they are keyed by) and login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: u64,
    pub login: String,
}

impl Person {
    /// Whom their sessions belong to in the journal (`Sessions`): `github:12345`. A token's
    /// name holds no `:`, so the two never meet.
    pub fn session_key(&self) -> String {
        format!("github:{}", self.id)
    }

    /// How the audit trail records them, as the commands service records a commenter.
    pub fn actor(&self) -> String {
        format!("github:{} ({})", self.id, self.login)
    }
}

/// Why a person may not sign in, or is signed out at a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Neither in `allowed_users` nor a member of an allowed organization.
    NotAllowed,
    /// GitHub could not say (unreachable, or the host's identity lacks a permission).
    Unknown(String),
}

/// "Sign in with GitHub": the App's client id and secret, GitHub's addresses, who may sign in.
pub struct GitHubSignIn {
    pub(super) client_id: String,
    /// The client secret, or what to set when it is missing.
    pub(super) secret: Result<String, String>,
    /// `[github] web_url`: where the authorize page and the code exchange are.
    pub(super) web_url: String,
    /// `[github] api_url`: where `GET /user` is asked, with the person's token.
    pub(super) api_url: String,
    /// The callback registered with the App: `{public_url}/dashboard/sign-in/github/callback`.
    pub(super) callback_url: String,
    organizations: Vec<String>,
    users: Vec<u64>,
    admins: Vec<u64>,
    /// How long a confirmation that a person may sign in lasts before it is asked again.
    pub(super) refresh: Duration,
    /// When each person was last confirmed, by numeric id.
    confirmed: Mutex<HashMap<u64, Instant>>,
    /// For the code exchange and `GET /user`: bounded answers and a timeout.
    pub(super) http: reqwest::Client,
    /// People's permissions for actions, at most 60 s old.
    actions: PermissionCache,
    /// Private repositories asked about per person and refresh, at most.
    lookups_per_refresh: usize,
    /// Each person's readable private repositories, at most `refresh` old.
    readable: readable::ReadableSets,
}

/// People confirmed at most; past it, those whose confirmation expired are forgotten.
const MAX_CONFIRMED: usize = 10_000;

/// The path GitHub sends people back to, under the dashboard.
pub const CALLBACK_PATH: &str = "/dashboard/sign-in/github/callback";

impl GitHubSignIn {
    /// The settings `config` gives, when `[dashboard] github_client_id` is set. A missing
    /// secret is reported when someone signs in (and warned about here), as missing tokens are.
    pub fn from_config(config: &Config) -> Option<Self> {
        let settings = &config.dashboard;
        let client_id = settings.github_client_id.clone()?;
        let secret = match &settings.github_client_secret_file {
            Some(file) => secret_from_file(&config.secret_path(file))
                .map_err(|problem| format!("[dashboard] github_client_secret_file: {problem}")),
            None => secret_from_env(&settings.github_client_secret_env).ok_or_else(|| {
                format!(
                    "set {} to the App's client secret, or name a file holding it in [dashboard] github_client_secret_file",
                    settings.github_client_secret_env
                )
            }),
        }
        .and_then(|secret| match secret.trim() {
            "" => Err("the GitHub App's client secret is empty".to_owned()),
            secret => Ok(secret.to_owned()),
        });
        if let Err(hint) = &secret {
            tracing::warn!(
                hint = hint.as_str(),
                "\"Sign in with GitHub\" is not configured"
            );
        }
        let timeout = Duration::from_secs(config.github.timeout_secs.min(30));
        let http = reqwest::Client::builder()
            .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            // The token endpoint and `/user` answer where they are asked.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .ok()?;
        Some(Self {
            client_id,
            secret,
            web_url: config.github.web_url.trim_end_matches('/').to_owned(),
            api_url: config.github.api_url.trim_end_matches('/').to_owned(),
            callback_url: format!("{}{CALLBACK_PATH}", config.public_url()),
            organizations: settings.allowed_organizations.clone(),
            users: settings.allowed_users.clone(),
            admins: settings.admins.clone(),
            refresh: Duration::from_secs(settings.github_refresh_secs),
            confirmed: Mutex::default(),
            http,
            actions: PermissionCache::default(),
            lookups_per_refresh: settings.github_lookups_per_refresh,
            readable: readable::ReadableSets::default(),
        })
    }

    /// Whether `person` is one of `[dashboard] admins`: they see what a named token sees.
    pub fn is_admin(&self, person: &Person) -> bool {
        self.admins.contains(&person.id)
    }

    /// Whether `person` may sign in: one of `allowed_users`, or a member of an allowed
    /// organization as the host's own identity sees it (one call per organization, until one
    /// says yes).
    pub async fn allowed(&self, github: &dyn GitHub, person: &Person) -> Result<(), Refused> {
        if self.users.contains(&person.id) {
            return Ok(());
        }
        let mut unknown = None;
        for organization in &self.organizations {
            match organization_member(github, organization, &person.login).await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(
                        organization = organization.as_str(),
                        person = person.id,
                        error = error.to_string(),
                        "cannot ask GitHub whether a person belongs to an organization"
                    );
                    unknown = Some(error.to_string());
                }
            }
        }
        Err(unknown.map_or(Refused::NotAllowed, Refused::Unknown))
    }

    /// Records that `person` was found allowed now.
    pub fn confirmed(&self, person: &Person) {
        let mut confirmed = self.confirmed.lock().unwrap_or_else(|p| p.into_inner());
        if confirmed.len() >= MAX_CONFIRMED {
            let refresh = self.refresh;
            confirmed.retain(|_, at| at.elapsed() < refresh);
        }
        confirmed.insert(person.id, Instant::now());
    }

    /// Whether `person` was found allowed less than [`Self::refresh`] ago.
    pub fn still_confirmed(&self, person: &Person) -> bool {
        let confirmed = self.confirmed.lock().unwrap_or_else(|p| p.into_inner());
        confirmed
            .get(&person.id)
            .is_some_and(|at| at.elapsed() < self.refresh)
    }

    /// Forgets `person`'s confirmation and readable set (found no longer allowed).
    pub fn forget(&self, person: &Person) {
        let mut confirmed = self.confirmed.lock().unwrap_or_else(|p| p.into_inner());
        confirmed.remove(&person.id);
        drop(confirmed);
        self.forget_readable(person);
    }
}
