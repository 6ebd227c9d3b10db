//! `[catch_up]`: on start and every `interval_secs`, list the webhook's recent deliveries on
//! GitHub and have GitHub send again each one it never delivered (no attempt answered OK)
//! that the journal does not hold. Off unless enabled.

use serde::Deserialize;

use super::{GitHubAuth, Invalid, at_least_one, invalid};

/// `[catch_up]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct CatchUpConfig {
    /// Run rounds at all (`switchyard catch-up` works either way).
    pub enabled: bool,
    /// Seconds between rounds; one also runs at start.
    pub interval_secs: u64,
    /// Redeliveries asked for per round and hook, at most; the rest wait for the next round.
    pub max_redeliveries: usize,
    /// Hours back the first round looks (later rounds go back to where the last one got).
    /// GitHub keeps deliveries redeliverable for about 3 days.
    pub max_age_hours: u64,
    /// Deliveries per page of GitHub's list (1 to 100).
    pub page_size: u32,
    /// Pages read per round and hook, at most.
    pub max_pages: u32,
    /// With `[github] auth = "token"`: the repository and organization webhooks whose
    /// deliveries to look at (an App's own webhook needs none).
    pub hooks: Vec<HookConfig>,
}

impl Default for CatchUpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 300,
            max_redeliveries: 100,
            max_age_hours: 72,
            page_size: 100,
            max_pages: 50,
            hooks: Vec::new(),
        }
    }
}

/// One webhook of `[catch_up] hooks`: a repository's or an organization's, by its id (the
/// number at the end of its settings page's URL). The id is required, so no defaults here.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    /// `owner/repo`, for a repository webhook.
    #[serde(default)]
    pub repository: Option<String>,
    /// The organization's login, for an organization webhook.
    #[serde(default)]
    pub organization: Option<String>,
    /// The webhook's id.
    pub id: u64,
}

impl CatchUpConfig {
    /// Checks the section; which hooks it needs depends on `[github] auth`.
    pub(super) fn validate(&self, auth: GitHubAuth) -> Result<(), Invalid> {
        at_least_one(&[
            ("catch_up.interval_secs", self.interval_secs),
            ("catch_up.max_redeliveries", self.max_redeliveries as u64),
            ("catch_up.max_age_hours", self.max_age_hours),
            ("catch_up.max_pages", u64::from(self.max_pages)),
        ])?;
        if !(1..=100).contains(&self.page_size) {
            return Err(invalid("catch_up.page_size", "must be between 1 and 100"));
        }
        for (i, hook) in self.hooks.iter().enumerate() {
            let key = format!("catch_up.hooks[{i}]");
            let name_ok = |name: &str, parts: usize| {
                let split: Vec<&str> = name.split('/').collect();
                split.len() == parts
                    && split.iter().all(|part| {
                        !part.is_empty()
                            && part
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                    })
            };
            match (&hook.repository, &hook.organization) {
                (Some(repo), None) if name_ok(repo, 2) => {}
                (None, Some(org)) if name_ok(org, 1) => {}
                (Some(_), Some(_)) | (None, None) => {
                    return Err(invalid(key, "set repository or organization, one of them"));
                }
                (Some(name), None) | (None, Some(name)) => {
                    return Err(invalid(
                        key,
                        format!("{name:?} is not an `owner/repo` or an organization's login"),
                    ));
                }
            }
        }
        match auth {
            GitHubAuth::App if !self.hooks.is_empty() => Err(invalid(
                "catch_up.hooks",
                "with auth = \"app\" the App's own webhook is caught up (with its JWT): remove hooks",
            )),
            GitHubAuth::Token if self.enabled && self.hooks.is_empty() => Err(invalid(
                "catch_up.hooks",
                "with auth = \"token\" name the webhooks to catch up, e.g. hooks = [{ repository = \"owner/repo\", id = 123 }]",
            )),
            _ => Ok(()),
        }
    }
}
