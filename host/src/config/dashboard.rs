//! `[dashboard]`: the web pages at `/dashboard`, for people: who may read them, where their
//! tokens come from, and the caps on what readers cost.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Invalid, MAX_BODY_MIB, at_least_one, check_env_name, check_http_url, invalid};

/// The least `[dashboard] render_budget_mib`: a delivery's page reads back a payload of up to
/// [`MAX_BODY_MIB`], compressed and not, and renders a page of at most a few MiB.
pub const MIN_RENDER_BUDGET_MIB: usize = 2 * MAX_BODY_MIB + 4;

/// `[dashboard]`. Its tokens are secrets, so they come from `tokens_file` or the variable
/// `tokens_env` names, never from this file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// Serve the dashboard at all.
    pub enabled: bool,
    /// Who may read the pages.
    pub access: DashboardAccess,
    /// The variable holding `name:token` lines, one per person.
    pub tokens_env: String,
    /// A file of `name:token` lines; when set, `tokens_env` is not read.
    pub tokens_file: Option<PathBuf>,
    /// Rows on a page of deliveries or jobs.
    pub page_size: usize,
    /// Other origins (`scheme://host[:port]`) the dashboard is reached at besides
    /// `[server] public_url`'s: an SSH tunnel's `http://localhost:9393`, an internal name.
    /// Dashboard requests for any other `Host` are refused, so a DNS rebinding page cannot
    /// read it.
    pub aliases: Vec<String>,
    /// KiB of a delivery's payload its page shows; the whole payload is a download.
    pub payload_shown_kib: usize,
    /// Lines of log a job page (or one event of its follow stream) shows at most.
    pub log_window_lines: usize,
    /// KiB of rendered HTML a job page's log window (or one follow event) holds at most.
    pub log_window_kib: usize,
    /// MiB of pages, payloads and follow events being read, rendered and sent at once, across
    /// all dashboard readers; past it a request waits a few seconds, then gets 503.
    pub render_budget_mib: usize,
    /// Log follow streams (`/dashboard/jobs/N/follow`) open at once, apart from the log
    /// links' own `[server] max_log_readers`.
    pub max_followers: usize,
    /// Follow streams one client address (an IPv6 /64) may have open at once.
    pub max_followers_per_client: usize,
    /// "Sign in with GitHub": the client id of the GitHub App (or OAuth App) people sign in
    /// through. Unset: only named tokens sign in.
    pub github_client_id: Option<String>,
    /// The variable holding that App's client secret.
    pub github_client_secret_env: String,
    /// A file holding the client secret; when set, `github_client_secret_env` is not read.
    pub github_client_secret_file: Option<PathBuf>,
    /// Organizations whose members may sign in with GitHub (membership asked with the host's
    /// own identity at sign-in and at each refresh).
    pub allowed_organizations: Vec<String>,
    /// GitHub's numeric ids of people who may sign in with GitHub, members or not.
    pub allowed_users: Vec<u64>,
    /// GitHub's numeric ids of people who, signed in with GitHub, see everything a named token
    /// sees, events of no repository included.
    pub admins: Vec<u64>,
    /// Seconds a person signed in with GitHub is trusted before the host asks GitHub again
    /// whether they may still sign in (and, with it, what they may read); at most 300.
    pub github_refresh_secs: u64,
    /// Private repositories (the most recently active first) whose permission GitHub is asked
    /// for per person and refresh: each person's call budget.
    pub github_lookups_per_refresh: usize,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            access: DashboardAccess::default(),
            tokens_env: "SWITCHYARD_DASHBOARD_TOKENS".to_owned(),
            tokens_file: None,
            page_size: 50,
            aliases: Vec::new(),
            payload_shown_kib: 256,
            // 5,000 lines of the log viewer's markup are about 400 KiB: a page, not a 19 MiB
            // wall.
            log_window_lines: 5000,
            log_window_kib: 1024,
            // Room for one of GitHub's largest payloads read back (compressed and not) and a
            // few pages.
            render_budget_mib: 64,
            max_followers: 32,
            max_followers_per_client: 4,
            github_client_id: None,
            github_client_secret_env: "SWITCHYARD_GITHUB_CLIENT_SECRET".to_owned(),
            github_client_secret_file: None,
            allowed_organizations: Vec::new(),
            allowed_users: Vec::new(),
            admins: Vec::new(),
            github_refresh_secs: 300,
            github_lookups_per_refresh: 200,
        }
    }
}

impl DashboardConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        for alias in &self.aliases {
            check_http_url(alias).map_err(|p| invalid("dashboard.aliases", p))?;
        }
        if !(1..=500).contains(&self.page_size) {
            return Err(invalid("dashboard.page_size", "must be between 1 and 500"));
        }
        check_env_name("dashboard.tokens_env", &self.tokens_env)?;
        self.validate_github_sign_in()?;
        at_least_one(&[
            ("dashboard.payload_shown_kib", self.payload_shown_kib as u64),
            ("dashboard.log_window_lines", self.log_window_lines as u64),
            ("dashboard.log_window_kib", self.log_window_kib as u64),
            ("dashboard.max_followers", self.max_followers as u64),
            (
                "dashboard.max_followers_per_client",
                self.max_followers_per_client as u64,
            ),
        ])?;
        // A delivery's page reads its payload back compressed and whole, and renders it.
        if self.render_budget_mib < MIN_RENDER_BUDGET_MIB {
            return Err(invalid(
                "dashboard.render_budget_mib",
                format!(
                    "must be at least {MIN_RENDER_BUDGET_MIB}: a delivery's page reads back payloads of up to 25 MB"
                ),
            ));
        }
        Ok(())
    }
}

impl DashboardConfig {
    /// "Sign in with GitHub" lets in only the people named: an organization's members or
    /// numeric ids, never anyone with a GitHub account.
    fn validate_github_sign_in(&self) -> Result<(), Invalid> {
        check_env_name(
            "dashboard.github_client_secret_env",
            &self.github_client_secret_env,
        )?;
        for organization in &self.allowed_organizations {
            let valid = !organization.is_empty()
                && organization.len() <= 39
                && organization
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !valid {
                return Err(invalid(
                    "dashboard.allowed_organizations",
                    format!("{organization:?} is not an organization's login"),
                ));
            }
        }
        if !(1..=300).contains(&self.github_refresh_secs) {
            return Err(invalid(
                "dashboard.github_refresh_secs",
                "must be between 1 and 300: losing access on GitHub loses it here within 5 minutes",
            ));
        }
        if !(1..=10_000).contains(&self.github_lookups_per_refresh) {
            return Err(invalid(
                "dashboard.github_lookups_per_refresh",
                "must be between 1 and 10000",
            ));
        }
        match &self.github_client_id {
            Some(id) if id.is_empty() || !id.bytes().all(|b| b.is_ascii_graphic()) => Err(invalid(
                "dashboard.github_client_id",
                format!("{id:?} is not a client id"),
            )),
            Some(_) if self.allowed_organizations.is_empty() && self.allowed_users.is_empty() => {
                Err(invalid(
                    "dashboard.allowed_organizations",
                    "\"Sign in with GitHub\" needs allowed_organizations or allowed_users: without them anyone with a GitHub account could sign in",
                ))
            }
            _ => Ok(()),
        }
    }
}

/// `[dashboard] access`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DashboardAccess {
    /// Every page needs a sign-in.
    #[default]
    Private,
    /// Pages are open to anyone who reaches the host; actions (to come) need a sign-in.
    PublicRead,
}
