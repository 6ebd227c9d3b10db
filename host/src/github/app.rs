//! `auth = "app"`: Switchyard as a GitHub App. Each job calls GitHub with an installation
//! token narrowed to the event's repository and to its plugin's permissions, minted with the
//! App's JWT and cached (see `tokens`). The installation comes from the delivery's
//! `installation.id`, else from `GET /repos/{owner}/{repo}/installation` (cached).

use std::{collections::HashMap, fmt::Write as _, sync::Mutex};

use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_plugin_api::{GitHubResponse, HostError, Permissions, wire::GitHubCall};

use super::{
    Caller, GitHub,
    client::{Api, CallError, Refusal, host_error},
    jwt::{AppJwt, AppKey, refused_for_times},
    permissions::{NOT_ACCESSIBLE, refusal},
    tokens::{Minted, TokenCache, TokenKey},
};
use crate::config::GitHubConfig;

/// The App client.
pub struct App {
    api: Api,
    jwt: AppJwt,
    tokens: TokenCache,
    /// `owner/repo` (lower case) to its installation, as GitHub answered.
    installations: Mutex<HashMap<String, u64>>,
    max_cached: usize,
}

impl App {
    /// `key` is the App's private key; the JWT's issuer is `app_id`, else `client_id`.
    pub fn new(config: &GitHubConfig, api: Api, key: std::sync::Arc<AppKey>) -> Self {
        let issuer = match (&config.app_id, &config.client_id) {
            (Some(id), _) => id.to_string(),
            (None, Some(client)) => client.clone(),
            (None, None) => String::new(),
        };
        Self {
            api,
            jwt: AppJwt::new(key, issuer),
            tokens: TokenCache::new(config.max_cached_tokens),
            installations: Mutex::default(),
            max_cached: config.max_cached_tokens,
        }
    }

    /// A call to an App endpoint with the App's JWT. When GitHub refuses the JWT for its
    /// times, the clock is corrected from the answer's `Date` and the call made once more.
    pub async fn as_app(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<GitHubResponse, CallError> {
        let call = GitHubCall {
            method: method.to_owned(),
            path: path.to_owned(),
            body,
        };
        self.as_app_paged(&call).await.map(|(answer, _)| answer)
    }

    /// [`App::as_app`], with the cursor of a list's next page.
    async fn as_app_paged(
        &self,
        call: &GitHubCall,
    ) -> Result<(GitHubResponse, Option<String>), CallError> {
        match self.api.send_paged(call, &self.jwt.token()).await {
            Err(CallError::Refused(refused))
                if refused_for_times(refused.status, &refused.message) =>
            {
                let date = refused.headers.get("date").and_then(|v| v.to_str().ok());
                if self.jwt.correct_clock(date) {
                    self.api.send_paged(call, &self.jwt.token()).await
                } else {
                    Err(CallError::Refused(refused))
                }
            }
            answer => answer,
        }
    }

    /// What an App call's failure means, for a job's error or `switchyard app`.
    fn app_error(&self, error: CallError, doing: &str) -> HostError {
        match error {
            CallError::Refused(Refusal {
                status: 401,
                message,
                ..
            }) => HostError::NotConfigured(format!(
                "{doing}: GitHub refused the App's credentials ({message}): check [github] {} = {:?} and that the private key is the App's",
                if self.jwt.issuer().bytes().all(|b| b.is_ascii_digit()) {
                    "app_id"
                } else {
                    "client_id"
                },
                self.jwt.issuer()
            )),
            CallError::Refused(Refusal {
                status, message, ..
            }) => HostError::GitHub {
                status,
                message: format!("{doing}: {message}"),
            },
            CallError::Unavailable(reason) => {
                HostError::GitHubUnavailable(format!("{doing}: {reason}"))
            }
        }
    }

    /// The installation a job's token comes from.
    async fn installation(&self, caller: &Caller) -> Result<u64, HostError> {
        if let Some(id) = caller.installation() {
            return Ok(id);
        }
        // A repository's installation, else an organization's (for the host's own calls).
        let (place, path) = match (&caller.repository, &caller.organization) {
            (Some(repo), _) => (repo.as_str(), format!("/repos/{repo}/installation")),
            (None, Some(org)) => (org.as_str(), format!("/orgs/{org}/installation")),
            (None, None) => {
                return Err(HostError::NotConfigured(
                    "the event names no App installation and no repository, so no installation token can be had for it".to_owned(),
                ));
            }
        };
        let lower = place.to_ascii_lowercase();
        if let Some(id) = self.installations().get(&lower) {
            return Ok(*id);
        }
        let doing = format!("finding the App's installation on {place}");
        let answer = self
            .as_app("GET", &path, None)
            .await
            .map_err(|error| match error {
                CallError::Refused(Refusal { status: 404, .. }) => HostError::NotConfigured(format!(
                    "{doing}: the App is not installed on {place}: install it there (the App's public page, \"Install\")"
                )),
                other => self.app_error(other, &doing),
            })?;
        let id = answer.body["id"].as_u64().ok_or_else(|| {
            HostError::Internal(format!("{doing}: GitHub's answer has no installation id"))
        })?;
        let mut installations = self.installations();
        if installations.len() >= self.max_cached {
            installations.clear();
        }
        installations.insert(lower, id);
        Ok(id)
    }

    fn installations(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.installations.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The job's token: cached, or minted narrowed to its repository and permissions.
    async fn token(
        &self,
        caller: &Caller,
    ) -> Result<(TokenKey, std::sync::Arc<Minted>), HostError> {
        let installation = self.installation(caller).await?;
        let key = TokenKey {
            installation,
            repository: caller.repository.as_deref().map(str::to_ascii_lowercase),
            permissions: caller.permissions.clone(),
        };
        let minted = self
            .tokens
            .get(&key, || self.jwt.now(), || self.mint(&key, caller))
            .await?;
        Ok((key, minted))
    }

    async fn mint(&self, key: &TokenKey, caller: &Caller) -> Result<Minted, HostError> {
        let mut body = json!({});
        if let Some(repo) = &caller.repository {
            let name = repo.split_once('/').map_or(repo.as_str(), |(_, name)| name);
            body["repositories"] = json!([name]);
        }
        if let Some(permissions) = &key.permissions {
            // An empty set would mean "all of the installation's": ask for what every token
            // has anyway.
            let permissions = if permissions.is_empty() {
                Permissions::none().read("metadata")
            } else {
                permissions.clone()
            };
            body["permissions"] = json!(permissions);
        }
        let installation = key.installation;
        let plugin = &caller.plugin;
        let doing = format!("minting an installation token for the plugin {plugin:?}");
        let answer = self
            .as_app(
                "POST",
                &format!("/app/installations/{installation}/access_tokens"),
                Some(body),
            )
            .await
            .map_err(|error| match error {
                CallError::Refused(Refusal { status: 422, message, .. }) => HostError::GitHub {
                    status: 422,
                    message: format!(
                        "{doing}: GitHub refused ({message}): the App's installation {installation} lacks some of {} or the repository: grant them in the App's settings and accept them on the installation, or narrow the entry's `permissions`",
                        caller.permissions.as_ref().map_or("its permissions".to_owned(), ToString::to_string),
                    ),
                },
                CallError::Refused(Refusal { status: 404, .. }) => HostError::NotConfigured(format!(
                    "{doing}: the App's installation {installation} is gone (uninstalled?)"
                )),
                other => self.app_error(other, &doing),
            })?;
        let token = answer.body["token"].as_str().unwrap_or_default().to_owned();
        let expires_at = answer.body["expires_at"]
            .as_str()
            .and_then(|at| {
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|at| at.unix_timestamp());
        let (false, Some(expires_at)) = (token.is_empty(), expires_at) else {
            return Err(HostError::Internal(format!(
                "{doing}: GitHub's answer has no token or expiry"
            )));
        };
        // Never cached: every call would fail on it until it expired. Not quoted: it is a secret.
        if !fits_a_header(&token) {
            return Err(HostError::Internal(format!(
                "{doing}: GitHub's answer has a token that cannot go in a header (spaces, line breaks or other characters no token has)"
            )));
        }
        let permissions =
            serde_json::from_value(answer.body["permissions"].clone()).unwrap_or_default();
        tracing::debug!(plugin = %plugin, installation, repository = caller.repository.as_deref(), "installation token minted");
        Ok(Minted {
            token,
            expires_at,
            permissions,
        })
    }

    /// Why a plugin's call was refused: a 403 for a permission names it and the plugin.
    fn refused(&self, error: CallError, caller: &Caller, call: &GitHubCall) -> HostError {
        match error {
            CallError::Refused(Refusal {
                status: 403,
                message,
                headers,
            }) if message.starts_with(NOT_ACCESSIBLE) => HostError::GitHub {
                status: 403,
                message: refusal(caller, &call.method, &call.path, &headers),
            },
            other => host_error(other),
        }
    }

    /// `switchyard app`: who the App is and where it is installed, as GitHub says with the JWT.
    pub async fn about(&self) -> Result<String, HostError> {
        let app = self
            .as_app("GET", "/app", None)
            .await
            .map_err(|e| self.app_error(e, "asking GitHub who the App is"))?
            .body;
        let installations = self
            .as_app("GET", "/app/installations?per_page=100", None)
            .await
            .map_err(|e| self.app_error(e, "listing the App's installations"))?
            .body;
        let text = |v: &Value| v.as_str().unwrap_or("?").to_owned();
        let permissions = |v: &Value| {
            serde_json::from_value::<Permissions>(v.clone())
                .map_or_else(|_| "?".to_owned(), |p| p.to_string())
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "App {} ({}), id {}, owned by {}",
            text(&app["name"]),
            text(&app["slug"]),
            app["id"],
            text(&app["owner"]["login"]),
        );
        let _ = writeln!(out, "  permissions: {}", permissions(&app["permissions"]));
        let events: Vec<String> = app["events"]
            .as_array()
            .map(|e| e.iter().map(text).collect())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  events: {}",
            if events.is_empty() {
                "none".to_owned()
            } else {
                events.join(", ")
            }
        );
        if self.jwt.skew() != 0 {
            let _ = writeln!(
                out,
                "  this machine's clock is {} s off GitHub's (corrected for; fix it with NTP)",
                self.jwt.skew()
            );
        }
        let list = installations.as_array().cloned().unwrap_or_default();
        let _ = writeln!(out, "installations: {}", list.len());
        for installation in &list {
            let suspended = if installation["suspended_at"].is_string() {
                ", suspended"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  {} on {} ({}), repositories: {}{suspended}",
                installation["id"],
                text(&installation["account"]["login"]),
                text(&installation["target_type"]),
                text(&installation["repository_selection"]),
            );
            let _ = writeln!(
                out,
                "    permissions: {}",
                permissions(&installation["permissions"])
            );
        }
        if list.is_empty() {
            out.push_str(
                "  (none: install the App on an account or organization from its public page)\n",
            );
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl GitHub for App {
    async fn send(&self, call: GitHubCall, caller: &Caller) -> Result<GitHubResponse, HostError> {
        super::client::check_path(&call.path).map_err(HostError::InvalidRequest)?;
        let (key, minted) = self.token(caller).await?;
        match self.api.send(&call, &minted.token).await {
            // Revoked, or expired on GitHub's clock before ours said: a new token, once.
            Err(CallError::Refused(Refusal { status: 401, .. })) => {
                self.tokens.forget(&key, &minted.token);
                let (_, minted) = self.token(caller).await?;
                let answer = self.api.send(&call, &minted.token).await;
                answer.map_err(|e| self.refused(e, caller, &call))
            }
            answer => answer.map_err(|e| self.refused(e, caller, &call)),
        }
    }

    async fn git_token(&self, caller: &Caller) -> Result<Option<String>, HostError> {
        let (_, minted) = self.token(caller).await?;
        Ok(Some(minted.token.clone()))
    }

    async fn as_host(
        &self,
        call: GitHubCall,
    ) -> Result<(GitHubResponse, Option<String>), HostError> {
        let doing = format!("{} {}", call.method, call.path);
        self.as_app_paged(&call)
            .await
            .map_err(|e| self.app_error(e, &doing))
    }

    fn observe(&self, event: &str, payload: &[u8]) {
        #[derive(Deserialize)]
        struct Id {
            id: u64,
        }
        #[derive(Deserialize)]
        struct Repository {
            full_name: String,
        }
        #[derive(Deserialize)]
        struct Hook {
            action: Option<String>,
            installation: Option<Id>,
            #[serde(default)]
            repositories_removed: Vec<Repository>,
        }
        let Ok(Hook {
            action: Some(action),
            installation: Some(Id { id }),
            repositories_removed,
        }) = serde_json::from_slice::<Hook>(payload)
        else {
            return;
        };
        let dropped = match (event, action.as_str()) {
            ("installation", "deleted" | "suspend" | "new_permissions_accepted") => {
                self.installations()
                    .retain(|_, installation| *installation != id);
                self.tokens.evict_installation(id)
            }
            ("installation_repositories", "removed") => {
                let removed: Vec<String> = repositories_removed
                    .into_iter()
                    .map(|r| r.full_name)
                    .collect();
                self.installations()
                    .retain(|repo, _| !removed.iter().any(|r| r.eq_ignore_ascii_case(repo)));
                self.tokens.evict_repositories(id, &removed)
            }
            _ => return,
        };
        tracing::info!(
            installation = id,
            event,
            action,
            dropped,
            "App installation changed: its cached tokens are dropped"
        );
    }
}

/// Whether a token GitHub gave can be sent back as `Authorization: Bearer TOKEN`: visible ASCII
/// only, of a sane length (GitHub's are 40 to a few hundred characters).
fn fits_a_header(token: &str) -> bool {
    token.len() <= 4096 && token.bytes().all(|byte| byte.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::fits_a_header;

    #[test]
    fn a_token_with_a_line_break_or_a_space_is_not_used() {
        assert!(fits_a_header("ghs_16C7e42F292c6912E7710c838347Ae178B4a"));
        assert!(!fits_a_header("ghs_abc\r\nX-Injected: 1"));
        assert!(!fits_a_header("ghs abc"));
        assert!(!fits_a_header("ghs_é"));
        assert!(!fits_a_header(&"a".repeat(5000)));
    }
}
