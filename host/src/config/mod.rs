//! `config.toml`: parse, fill defaults, validate, then freeze. Every error names the file, the
//! key and the problem. Secrets are never read from here: only the names of the environment
//! variables that hold them.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use switchyard_plugin_api::{Permissions, Subscription};

/// GitHub's cap on a webhook payload, in MiB: ingress refuses larger bodies, and the body
/// budget must hold one.
pub const MAX_BODY_MIB: usize = 25;

/// The least `[dashboard] render_budget_mib`: a delivery's page reads back a payload of up to
/// [`MAX_BODY_MIB`], compressed and not, and renders a page of at most a few MiB.
pub const MIN_RENDER_BUDGET_MIB: usize = 2 * MAX_BODY_MIB + 4;

/// The whole configuration, as loaded from one file. Whether plugin libraries exist and load is
/// checked when they are loaded (`plugins::PluginSet::load`), with the same kind of message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Folders searched for a plugin `library` given as a bare file name, before the running
    /// binary's own folder and `../lib/switchyard/plugins` beside it.
    #[serde(default)]
    pub plugin_dirs: Vec<PathBuf>,
    /// Where and how webhooks are received.
    pub server: ServerConfig,
    /// The GitHub (or GitHub Enterprise) API the plugins talk to.
    #[serde(default)]
    pub github: GitHubConfig,
    /// The journal of deliveries and jobs.
    #[serde(default)]
    pub store: StoreConfig,
    /// How jobs are run.
    #[serde(default)]
    pub workers: WorkersConfig,
    /// Where the commands jobs run go: a sandbox, by default.
    #[serde(default)]
    pub sandbox: SandboxConfig,
    /// Handler plugins, in the order they are listed.
    #[serde(default)]
    pub plugins: Vec<PluginEntry>,
    /// The web dashboard (`/dashboard`): off unless enabled.
    #[serde(default)]
    pub dashboard: DashboardConfig,
    /// Catching up the deliveries GitHub failed to deliver: off unless enabled.
    #[serde(default)]
    pub catch_up: CatchUpConfig,
    /// The folder of the config file; relative paths are resolved against it.
    #[serde(skip)]
    pub dir: PathBuf,
    /// The config file itself, for error messages.
    #[serde(skip)]
    pub file: PathBuf,
}

/// `[dashboard]`: the web pages at `/dashboard`, for people. Its tokens are secrets, so they
/// come from `tokens_file` or the variable `tokens_env` names, never from this file.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    /// Serve the dashboard at all.
    #[serde(default)]
    pub enabled: bool,
    /// Who may read the pages.
    #[serde(default)]
    pub access: DashboardAccess,
    /// The variable holding `name:token` lines, one per person.
    #[serde(default = "default_dashboard_tokens_env")]
    pub tokens_env: String,
    /// A file of `name:token` lines; when set, `tokens_env` is not read.
    #[serde(default)]
    pub tokens_file: Option<PathBuf>,
    /// Rows on a page of deliveries or jobs.
    #[serde(default = "default_dashboard_page_size")]
    pub page_size: usize,
    /// Other origins (`scheme://host[:port]`) the dashboard is reached at besides
    /// `[server] public_url`'s: an SSH tunnel's `http://localhost:9393`, an internal name.
    /// Dashboard requests for any other `Host` are refused, so a DNS rebinding page cannot
    /// read it.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// KiB of a delivery's payload its page shows; the whole payload is a download.
    #[serde(default = "default_dashboard_payload_shown_kib")]
    pub payload_shown_kib: usize,
    /// Lines of log a job page (or one event of its follow stream) shows at most.
    #[serde(default = "default_dashboard_log_window_lines")]
    pub log_window_lines: usize,
    /// KiB of rendered HTML a job page's log window (or one follow event) holds at most.
    #[serde(default = "default_dashboard_log_window_kib")]
    pub log_window_kib: usize,
    /// MiB of pages, payloads and follow events being read, rendered and sent at once, across
    /// all dashboard readers; past it a request waits a few seconds, then gets 503.
    #[serde(default = "default_dashboard_render_budget_mib")]
    pub render_budget_mib: usize,
    /// Log follow streams (`/dashboard/jobs/N/follow`) open at once, apart from the log
    /// links' own `[server] max_log_readers`.
    #[serde(default = "default_dashboard_max_followers")]
    pub max_followers: usize,
    /// Follow streams one client address (an IPv6 /64) may have open at once.
    #[serde(default = "default_dashboard_max_followers_per_client")]
    pub max_followers_per_client: usize,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            access: DashboardAccess::default(),
            tokens_env: default_dashboard_tokens_env(),
            tokens_file: None,
            page_size: default_dashboard_page_size(),
            aliases: Vec::new(),
            payload_shown_kib: default_dashboard_payload_shown_kib(),
            log_window_lines: default_dashboard_log_window_lines(),
            log_window_kib: default_dashboard_log_window_kib(),
            render_budget_mib: default_dashboard_render_budget_mib(),
            max_followers: default_dashboard_max_followers(),
            max_followers_per_client: default_dashboard_max_followers_per_client(),
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

fn default_dashboard_tokens_env() -> String {
    "SWITCHYARD_DASHBOARD_TOKENS".to_owned()
}

fn default_dashboard_page_size() -> usize {
    50
}
fn default_dashboard_payload_shown_kib() -> usize {
    256
}
// 5,000 lines of the log viewer's markup are about 400 KiB: a page, not a 19 MiB wall.
fn default_dashboard_log_window_lines() -> usize {
    5000
}
fn default_dashboard_log_window_kib() -> usize {
    1024
}
// Room for one of GitHub's largest payloads read back (compressed and not) and a few pages.
fn default_dashboard_render_budget_mib() -> usize {
    64
}
fn default_dashboard_max_followers() -> usize {
    32
}
fn default_dashboard_max_followers_per_client() -> usize {
    4
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Path GitHub POSTs deliveries to.
    #[serde(default = "default_webhook_path")]
    pub webhook_path: String,
    /// Base of the links to job logs sent to GitHub. Defaults to `http://{listen}`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Name of the environment variable holding the webhook secret.
    #[serde(default = "default_secret_env")]
    pub secret_env: String,
    /// A file holding the webhook secret, used instead of `secret_env` when set (a systemd
    /// credential: `$CREDENTIALS_DIRECTORY/webhook-secret`).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Accept the legacy SHA-1 `X-Hub-Signature` when `X-Hub-Signature-256` is absent.
    #[serde(default)]
    pub accept_sha1: bool,
    /// What to do with a delivery id seen before: `ignore` (answer 200, run nothing) or `rerun`.
    #[serde(default)]
    pub redeliveries: Redeliveries,
    /// On SIGINT/SIGTERM, how long running jobs may take to finish before the host exits.
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
    /// Connections served at once. At the cap the oldest connection still waiting for a
    /// request is closed to make room; if every one is mid-request, new ones wait in the
    /// listen backlog. Lowered at start to what the open-file limit allows.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Time a client has to send a request's headers, counted from the connection's start or
    /// the end of the previous response: it also closes silent and idle keep-alive sockets.
    #[serde(default = "default_header_timeout_secs")]
    pub header_timeout_secs: u64,
    /// Time a client has to send a request's whole body once its headers are in.
    #[serde(default = "default_body_timeout_secs")]
    pub body_timeout_secs: u64,
    /// MiB of request bodies being read at once, across all requests. A request that would
    /// go past it is answered 503 with `Retry-After`.
    #[serde(default = "default_body_budget_mib")]
    pub body_budget_mib: usize,
    /// Job logs streamed at once at their links; more readers get 503 with `Retry-After`.
    #[serde(default = "default_max_log_readers")]
    pub max_log_readers: usize,
    /// Job logs one client address (an IPv6 /64) may stream at once at their links.
    #[serde(default = "default_max_log_readers_per_client")]
    pub max_log_readers_per_client: usize,
    /// Time a write of an answer may wait on a client that does not read it; then the
    /// connection is dropped.
    #[serde(default = "default_write_timeout_secs")]
    pub write_timeout_secs: u64,
    /// PEM certificate chain to serve HTTPS with (set with `tls_key`). Read again on SIGHUP and
    /// on every config reload, so a renewed certificate needs no restart.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Reverse proxies (addresses or CIDR networks) whose `X-Forwarded-For` is believed: a
    /// request from one of them counts, for the dashboard's sign-in limit, as from the
    /// right-most forwarded address that is not a trusted proxy. Empty: every peer is the
    /// client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

impl ServerConfig {
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs)
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs)
    }

    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_secs)
    }
}

/// What a delivery id seen before gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Redeliveries {
    /// Answer 200 and dispatch nothing: protects against replayed requests.
    #[default]
    Ignore,
    /// Dispatch again: GitHub's "Redeliver" button re-runs the handlers.
    Rerun,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitHubConfig {
    /// REST API base URL; GitHub Enterprise Server is `https://HOST/api/v3`.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Who the host acts as: `token` (a personal access token, the default) or `app` (a
    /// GitHub App, each job under an installation token narrowed to its plugin's permissions).
    #[serde(default)]
    pub auth: GitHubAuth,
    /// The App's id (its settings page, "App ID"), with `auth = "app"`; or give `client_id`.
    #[serde(default)]
    pub app_id: Option<u64>,
    /// The App's client id (`Iv1.…`), which GitHub also takes as the JWT's issuer.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Name of the environment variable holding the App's PEM private key.
    #[serde(default = "default_private_key_env")]
    pub private_key_env: String,
    /// A file holding the App's PEM private key, used instead of `private_key_env` when set.
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// Installation tokens kept at most (one per installation, repository and permission
    /// set); the least recently minted go first.
    #[serde(default = "default_max_cached_tokens")]
    pub max_cached_tokens: usize,
    /// Name of the environment variable holding the API token.
    #[serde(default = "default_token_env")]
    pub token_env: String,
    /// A file holding the API token, used instead of `token_env` when set.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Retries of a call that got 5xx, 429 or a rate-limit 403.
    #[serde(default = "default_github_retries")]
    pub max_retries: u32,
    /// First retry delay when GitHub gives none; doubles each retry.
    #[serde(default = "default_github_backoff_ms")]
    pub backoff_ms: u64,
    /// Longest wait the client accepts for a rate limit before failing the call as retryable.
    #[serde(default = "default_github_max_wait_secs")]
    pub max_wait_secs: u64,
    /// MiB an answer may have (GitHub's, and those of `http_post` endpoints): a larger one is
    /// refused, without reading more of it than this.
    #[serde(default = "default_github_max_answer_mib")]
    pub max_answer_mib: u64,
    /// Seconds a call may take, its answer read whole; a call that takes longer is retried.
    #[serde(default = "default_github_timeout_secs")]
    pub timeout_secs: u64,
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

/// `[catch_up]`: on start and every `interval_secs`, list the webhook's recent deliveries on
/// GitHub and have GitHub send again each one it never delivered (no attempt answered OK)
/// that the journal does not hold.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CatchUpConfig {
    /// Run rounds at all (`switchyard catch-up` works either way).
    #[serde(default)]
    pub enabled: bool,
    /// Seconds between rounds; one also runs at start.
    #[serde(default = "default_catch_up_interval_secs")]
    pub interval_secs: u64,
    /// Redeliveries asked for per round and hook, at most; the rest wait for the next round.
    #[serde(default = "default_catch_up_max_redeliveries")]
    pub max_redeliveries: usize,
    /// Hours back the first round looks (later rounds go back to where the last one got).
    /// GitHub keeps deliveries redeliverable for about 3 days.
    #[serde(default = "default_catch_up_max_age_hours")]
    pub max_age_hours: u64,
    /// Deliveries per page of GitHub's list (1 to 100).
    #[serde(default = "default_catch_up_page_size")]
    pub page_size: u32,
    /// Pages read per round and hook, at most.
    #[serde(default = "default_catch_up_max_pages")]
    pub max_pages: u32,
    /// With `[github] auth = "token"`: the repository and organization webhooks whose
    /// deliveries to look at (an App's own webhook needs none).
    #[serde(default)]
    pub hooks: Vec<HookConfig>,
}

impl Default for CatchUpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: default_catch_up_interval_secs(),
            max_redeliveries: default_catch_up_max_redeliveries(),
            max_age_hours: default_catch_up_max_age_hours(),
            page_size: default_catch_up_page_size(),
            max_pages: default_catch_up_max_pages(),
            hooks: Vec::new(),
        }
    }
}

/// One webhook of `[catch_up] hooks`: a repository's or an organization's, by its id (the
/// number at the end of its settings page's URL).
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Where the journal lives: `sqlite` (one host, the file at `path`) or `postgres` (any
    /// number of hosts sharing one database).
    #[serde(default)]
    pub backend: Backend,
    /// SQLite journal file; job logs go in a `logs` folder beside it. With PostgreSQL, its
    /// folder still holds this host's own files (workspaces, plugin copies).
    #[serde(default = "default_store_path")]
    pub path: PathBuf,
    /// Days finished jobs, their logs and deliveries are kept; delivery ids at least 7.
    #[serde(default = "default_keep_days")]
    pub keep_days: u32,
    /// PostgreSQL: the environment variable holding the connection URL (a secret: it carries
    /// the password).
    #[serde(default = "default_database_url_env")]
    pub url_env: String,
    /// PostgreSQL: a file holding the connection URL, read instead of `url_env` when set.
    pub url_file: Option<PathBuf>,
    /// PostgreSQL: connections this host keeps open at most (one more listens for wake-ups).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// PostgreSQL: `off`, or `on` for TLS to the server (certificates checked against
    /// `tls_ca_file`, or the Mozilla roots when unset).
    #[serde(default)]
    pub tls: StoreTls,
    /// PostgreSQL: PEM file of the certificate authorities the server's certificate must chain
    /// to.
    pub tls_ca_file: Option<PathBuf>,
    /// PostgreSQL: seconds a running job's lease lasts unless its host renews it. A host that
    /// dies leaves its jobs to the others after this long.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u64,
    /// PostgreSQL: seconds between looks for queued jobs without a wake-up (and for expired
    /// leases).
    #[serde(default = "default_poll_secs")]
    pub poll_secs: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreTls {
    #[default]
    Off,
    On,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkersConfig {
    /// Jobs that may run at once, across all plugins.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// First delay before retrying a job that failed retryably; doubles each attempt.
    #[serde(default = "default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
    /// Payload MiB that queued jobs may hold in memory; more wait in the journal only.
    #[serde(default = "default_memory_queue_mib")]
    pub memory_queue_mib: usize,
    /// Seconds a cancelled job (its timeout, a shutdown, a person) has to post a final status
    /// and return before its commands are killed and its future dropped.
    #[serde(default = "default_cancel_grace_secs")]
    pub cancel_grace_secs: u64,
    /// Times a job may be interrupted by a graceful shutdown (and handed back to run again)
    /// before it is given up: restarts every few minutes must not keep a long job alive forever.
    /// Such interruptions do not count toward a plugin's `max_attempts`.
    #[serde(default = "default_max_interruptions")]
    pub max_interruptions: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// `auto` (bubblewrap where it works; where not, commands fail saying how to fix it),
    /// `bwrap` (required: the host does not start without it) or `none` (unsandboxed).
    #[serde(default)]
    pub mode: SandboxMode,
    /// The bubblewrap program.
    #[serde(default = "default_bwrap")]
    pub bwrap: PathBuf,
    /// The user commands run as when the host runs as root.
    #[serde(default = "default_run_as")]
    pub run_as: String,
    /// Processes a command's tree may have at once (a fork bomb ends the build).
    #[serde(default = "default_sandbox_pids")]
    pub pids: u64,
    /// Memory a command's tree may use, in MiB.
    #[serde(default = "default_sandbox_memory_mib")]
    pub memory_mib: u64,
    /// CPU seconds each process of a command may use.
    #[serde(default = "default_sandbox_cpu_secs")]
    pub cpu_secs: u64,
    /// MiB a job's log may grow to; past it, output is dropped with a note.
    #[serde(default = "default_log_mib")]
    pub log_mib: u64,
    /// MiB a job's workspace holds (a filesystem of its own): a build writing more fails.
    /// 0 leaves workspaces unlimited. An entry's `disk_mib` overrides it.
    #[serde(default = "default_disk_mib")]
    pub disk_mib: u64,
    /// MiB the workspaces' filesystem keeps free: a job starts only while its free space,
    /// less what running jobs may still write, stays above it.
    #[serde(default = "default_disk_reserve_mib")]
    pub disk_reserve_mib: u64,
    /// `on`: a build with `network = true` reaches the outside world but nothing of the host's
    /// (refused where that cannot be set up); `off`: it reaches what the host reaches.
    #[serde(default)]
    pub network_isolation: NetworkIsolation,
    /// Networks a build may not reach, beside the host's own addresses, loopback and
    /// link-local ones: CIDRs such as `"10.0.0.0/8"` (a company's LAN, other hosts).
    #[serde(default)]
    pub deny_networks: Vec<Cidr>,
}

/// Whether builds with the network are kept off the host's own network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkIsolation {
    #[default]
    On,
    Off,
}

/// An IP network: an address and a prefix length, `"192.168.0.0/16"` or `"fd00::/8"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    pub address: std::net::IpAddr,
    pub prefix: u8,
}

impl TryFrom<String> for Cidr {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let invalid = || format!("{text:?} is not a network such as \"10.0.0.0/8\"");
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.as_str(), None),
        };
        let address: std::net::IpAddr = address.parse().map_err(|_| invalid())?;
        let most = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().map_err(|_| invalid())?,
            None => most,
        };
        if prefix > most {
            return Err(invalid());
        }
        Ok(Self { address, prefix })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMode {
    #[default]
    Auto,
    Bwrap,
    None,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginEntry {
    /// Unique name of this entry: used in logs, the journal and `switchyard replay --plugin`.
    pub name: String,
    /// Path of the plugin's shared library, relative to the config file's folder.
    pub library: PathBuf,
    /// Whether the plugin gets events.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Overrides the plugin's own subscriptions: `"pull_request.opened"`, `"deployment"`, `"*"`.
    #[serde(default)]
    pub events: Option<Vec<Subscription>>,
    /// Only events from these repositories: `"owner/repo"` or `"owner/*"`.
    #[serde(default)]
    pub repositories: Option<Vec<RepositoryPattern>>,
    /// A job running longer is cut off and fails.
    #[serde(default = "default_plugin_timeout_secs")]
    pub timeout_secs: u64,
    /// Tries of a job whose failures are retryable, the first included.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Threads of the plugin's own tokio runtime.
    #[serde(default = "default_plugin_threads")]
    pub threads: usize,
    /// Whether the entry's commands reach the network (builds fetch dependencies).
    #[serde(default = "default_true")]
    pub network: bool,
    /// Host paths bound into the entry's sandboxes at the same place, read-only, or writable
    /// with a `:rw` suffix: an SSH key, a kubeconfig, a local mirror.
    #[serde(default)]
    pub binds: Vec<String>,
    /// Host environment variables passed into the entry's commands (masked in logs).
    #[serde(default)]
    pub pass_env: Vec<String>,
    /// MiB each of the entry's jobs may write in its workspace, instead of `[sandbox] disk_mib`.
    #[serde(default)]
    pub disk_mib: Option<u64>,
    /// Narrows the GitHub permissions the plugin declares, for its jobs' App tokens:
    /// `{ statuses = "write" }`. Can only take away: more than the plugin declares is refused.
    #[serde(default)]
    pub permissions: Option<Permissions>,
    /// Free settings handed to the plugin.
    #[serde(default)]
    pub settings: toml::Table,
}

impl PluginEntry {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// `owner/repo` or `owner/*`, compared case-insensitively as GitHub does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryPattern {
    owner: String,
    repo: Option<String>,
}

impl RepositoryPattern {
    pub fn matches(&self, full_name: &str) -> bool {
        let Some((owner, repo)) = full_name.split_once('/') else {
            return false;
        };
        owner.eq_ignore_ascii_case(&self.owner)
            && self
                .repo
                .as_deref()
                .is_none_or(|r| r.eq_ignore_ascii_case(repo))
    }
}

impl std::str::FromStr for RepositoryPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid =
            || format!("invalid repository {s:?}: expected \"owner/repo\" or \"owner/*\"");
        let (owner, repo) = s.split_once('/').ok_or_else(invalid)?;
        let word = |w: &str| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if !word(owner) || !(repo == "*" || word(repo)) {
            return Err(invalid());
        }
        Ok(Self {
            owner: owner.to_owned(),
            repo: (repo != "*").then(|| repo.to_owned()),
        })
    }
}

impl<'de> Deserialize<'de> for RepositoryPattern {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9393))
}
fn default_webhook_path() -> String {
    "/event_handler".to_owned()
}
fn default_secret_env() -> String {
    "SWITCHYARD_WEBHOOK_SECRET".to_owned()
}
fn default_shutdown_grace_secs() -> u64 {
    30
}
fn default_max_connections() -> usize {
    512
}
// GitHub sends a delivery's headers and body at once, and gives up on an answer after 10 s.
fn default_header_timeout_secs() -> u64 {
    10
}
fn default_body_timeout_secs() -> u64 {
    10
}
// Room for two of GitHub's largest (25 MB) payloads or thousands of ordinary ones.
fn default_body_budget_mib() -> usize {
    64
}
fn default_max_log_readers() -> usize {
    64
}
fn default_max_log_readers_per_client() -> usize {
    8
}
fn default_write_timeout_secs() -> u64 {
    30
}
fn default_api_url() -> String {
    "https://api.github.com".to_owned()
}
fn default_token_env() -> String {
    "GITHUB_TOKEN".to_owned()
}
fn default_private_key_env() -> String {
    "GITHUB_APP_PRIVATE_KEY".to_owned()
}
fn default_max_cached_tokens() -> usize {
    1000
}
fn default_github_retries() -> u32 {
    4
}
fn default_github_backoff_ms() -> u64 {
    500
}
fn default_github_max_wait_secs() -> u64 {
    60
}
fn default_github_max_answer_mib() -> u64 {
    32
}
fn default_github_timeout_secs() -> u64 {
    60
}
fn default_catch_up_interval_secs() -> u64 {
    300
}
fn default_catch_up_max_redeliveries() -> usize {
    100
}
fn default_catch_up_max_age_hours() -> u64 {
    72
}
fn default_catch_up_page_size() -> u32 {
    100
}
fn default_catch_up_max_pages() -> u32 {
    50
}
fn default_store_path() -> PathBuf {
    PathBuf::from("switchyard.db")
}
fn default_database_url_env() -> String {
    "SWITCHYARD_DATABASE_URL".to_owned()
}
fn default_pool_size() -> usize {
    16
}
fn default_lease_secs() -> u64 {
    30
}
fn default_poll_secs() -> u64 {
    5
}
fn default_keep_days() -> u32 {
    30
}
fn default_concurrency() -> usize {
    16
}
fn default_retry_backoff_ms() -> u64 {
    2_000
}
fn default_memory_queue_mib() -> usize {
    4
}
fn default_cancel_grace_secs() -> u64 {
    10
}
fn default_max_interruptions() -> u32 {
    10
}
fn default_bwrap() -> PathBuf {
    PathBuf::from("bwrap")
}
fn default_run_as() -> String {
    "nobody".to_owned()
}
fn default_sandbox_pids() -> u64 {
    1024
}
fn default_sandbox_memory_mib() -> u64 {
    4096
}
fn default_sandbox_cpu_secs() -> u64 {
    7200
}
fn default_log_mib() -> u64 {
    100
}
fn default_disk_mib() -> u64 {
    10 * 1024
}
fn default_disk_reserve_mib() -> u64 {
    2 * 1024
}
fn default_true() -> bool {
    true
}
fn default_plugin_timeout_secs() -> u64 {
    600
}
fn default_max_attempts() -> u32 {
    3
}
fn default_plugin_threads() -> usize {
    2
}

impl Default for GitHubConfig {
    fn default() -> Self {
        Self {
            api_url: default_api_url(),
            auth: GitHubAuth::default(),
            app_id: None,
            client_id: None,
            private_key_env: default_private_key_env(),
            private_key_file: None,
            max_cached_tokens: default_max_cached_tokens(),
            token_env: default_token_env(),
            token_file: None,
            max_retries: default_github_retries(),
            backoff_ms: default_github_backoff_ms(),
            max_wait_secs: default_github_max_wait_secs(),
            max_answer_mib: default_github_max_answer_mib(),
            timeout_secs: default_github_timeout_secs(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: Backend::default(),
            path: default_store_path(),
            keep_days: default_keep_days(),
            url_env: default_database_url_env(),
            url_file: None,
            pool_size: default_pool_size(),
            tls: StoreTls::default(),
            tls_ca_file: None,
            lease_secs: default_lease_secs(),
            poll_secs: default_poll_secs(),
        }
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            mode: SandboxMode::default(),
            bwrap: default_bwrap(),
            run_as: default_run_as(),
            pids: default_sandbox_pids(),
            memory_mib: default_sandbox_memory_mib(),
            cpu_secs: default_sandbox_cpu_secs(),
            log_mib: default_log_mib(),
            disk_mib: default_disk_mib(),
            disk_reserve_mib: default_disk_reserve_mib(),
            network_isolation: NetworkIsolation::default(),
            deny_networks: Vec::new(),
        }
    }
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            concurrency: default_concurrency(),
            retry_backoff_ms: default_retry_backoff_ms(),
            memory_queue_mib: default_memory_queue_mib(),
            cancel_grace_secs: default_cancel_grace_secs(),
            max_interruptions: default_max_interruptions(),
        }
    }
}

/// A config that cannot be used, naming the file, the key and the problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {error}", file.display())]
    Read {
        file: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: {message}", file.display())]
    Parse { file: PathBuf, message: String },
    #[error("{}: {key}: {problem}", file.display())]
    Invalid {
        file: PathBuf,
        key: String,
        problem: String,
    },
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|error| ConfigError::Read {
            file: file.to_owned(),
            error,
        })?;
        Self::parse(&text, file)
    }

    /// Parses and validates config text that was read from `file`.
    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.file = file.to_owned();
        config.dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        config.validate()?;
        Ok(config)
    }

    fn invalid(&self, key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.clone(),
            key: key.into(),
            problem: problem.into(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let server = &self.server;
        check_webhook_path(&server.webhook_path)
            .map_err(|problem| self.invalid("server.webhook_path", problem))?;
        if let Some(url) = &server.public_url {
            check_http_url(url).map_err(|p| self.invalid("server.public_url", p))?;
        }
        check_http_url(&self.github.api_url).map_err(|p| self.invalid("github.api_url", p))?;
        crate::web::TrustedProxies::parse(&server.trusted_proxies)
            .map_err(|problem| self.invalid("server.trusted_proxies", problem))?;
        for alias in &self.dashboard.aliases {
            check_http_url(alias).map_err(|p| self.invalid("dashboard.aliases", p))?;
        }
        if !(1..=500).contains(&self.dashboard.page_size) {
            return Err(self.invalid("dashboard.page_size", "must be between 1 and 500"));
        }
        for (key, variable) in [
            ("server.secret_env", &server.secret_env),
            ("github.token_env", &self.github.token_env),
            ("github.private_key_env", &self.github.private_key_env),
            ("dashboard.tokens_env", &self.dashboard.tokens_env),
        ] {
            if !is_env_name(variable) {
                return Err(self.invalid(
                    key,
                    format!("{variable:?} is not an environment variable name"),
                ));
            }
        }
        if self.github.auth == GitHubAuth::App {
            match (&self.github.app_id, &self.github.client_id) {
                (None, None) => {
                    return Err(self.invalid(
                        "github.app_id",
                        "auth = \"app\" needs the App's id (app_id) or its client id (client_id), from the App's settings page",
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(
                        self.invalid("github.client_id", "set app_id or client_id, not both")
                    );
                }
                (None, Some(id)) if id.is_empty() || !id.bytes().all(|b| b.is_ascii_graphic()) => {
                    return Err(
                        self.invalid("github.client_id", format!("{id:?} is not a client id"))
                    );
                }
                _ => {}
            }
        }
        if self.github.max_cached_tokens == 0 {
            return Err(self.invalid("github.max_cached_tokens", "must be at least 1"));
        }
        for (key, value) in [
            ("github.max_answer_mib", self.github.max_answer_mib),
            ("github.timeout_secs", self.github.timeout_secs),
        ] {
            if value == 0 {
                return Err(self.invalid(key, "must be at least 1"));
            }
        }
        for (key, value) in [
            ("server.max_connections", server.max_connections as u64),
            ("server.header_timeout_secs", server.header_timeout_secs),
            ("server.body_timeout_secs", server.body_timeout_secs),
            ("server.max_log_readers", server.max_log_readers as u64),
            (
                "server.max_log_readers_per_client",
                server.max_log_readers_per_client as u64,
            ),
            ("server.write_timeout_secs", server.write_timeout_secs),
            (
                "dashboard.payload_shown_kib",
                self.dashboard.payload_shown_kib as u64,
            ),
            (
                "dashboard.log_window_lines",
                self.dashboard.log_window_lines as u64,
            ),
            (
                "dashboard.log_window_kib",
                self.dashboard.log_window_kib as u64,
            ),
            (
                "dashboard.max_followers",
                self.dashboard.max_followers as u64,
            ),
            (
                "dashboard.max_followers_per_client",
                self.dashboard.max_followers_per_client as u64,
            ),
        ] {
            if value == 0 {
                return Err(self.invalid(key, "must be at least 1"));
            }
        }
        match (&server.tls_cert, &server.tls_key) {
            (Some(_), None) => {
                return Err(self.invalid("server.tls_key", "must be set with tls_cert"));
            }
            (None, Some(_)) => {
                return Err(self.invalid("server.tls_cert", "must be set with tls_key"));
            }
            _ => {}
        }
        // A delivery's page reads its payload back compressed and whole, and renders it.
        if self.dashboard.render_budget_mib < MIN_RENDER_BUDGET_MIB {
            return Err(self.invalid(
                "dashboard.render_budget_mib",
                format!(
                    "must be at least {MIN_RENDER_BUDGET_MIB}: a delivery's page reads back payloads of up to 25 MB"
                ),
            ));
        }
        // One of GitHub's largest payloads must fit, or such a delivery could never arrive.
        if server.body_budget_mib < MAX_BODY_MIB {
            return Err(self.invalid(
                "server.body_budget_mib",
                format!("must be at least {MAX_BODY_MIB}: GitHub's largest payloads are 25 MB"),
            ));
        }
        let sandbox = &self.sandbox;
        for (key, value) in [
            ("sandbox.pids", sandbox.pids),
            ("sandbox.memory_mib", sandbox.memory_mib),
            ("sandbox.cpu_secs", sandbox.cpu_secs),
            ("sandbox.log_mib", sandbox.log_mib),
        ] {
            if value == 0 {
                return Err(self.invalid(key, "must be at least 1"));
            }
        }
        let store = &self.store;
        if store.keep_days == 0 {
            return Err(self.invalid("store.keep_days", "must be at least 1"));
        }
        if !is_env_name(&store.url_env) {
            return Err(self.invalid(
                "store.url_env",
                format!("{:?} is not an environment variable name", store.url_env),
            ));
        }
        for (key, value) in [
            ("store.pool_size", store.pool_size as u64),
            ("store.poll_secs", store.poll_secs),
        ] {
            if value == 0 {
                return Err(self.invalid(key, "must be at least 1"));
            }
        }
        // Renewed every third of it: shorter leaves no room for a slow renewal.
        if store.lease_secs < 3 {
            return Err(self.invalid("store.lease_secs", "must be at least 3"));
        }
        if store.backend == Backend::Sqlite
            && (store.url_file.is_some()
                || store.tls == StoreTls::On
                || store.tls_ca_file.is_some())
        {
            return Err(self.invalid(
                "store.backend",
                "url_file and tls settings are for backend = \"postgres\"; set it, or remove them",
            ));
        }
        if self.workers.concurrency == 0 {
            return Err(self.invalid("workers.concurrency", "must be at least 1"));
        }
        self.validate_catch_up()?;
        if self.workers.max_interruptions == 0 {
            return Err(self.invalid("workers.max_interruptions", "must be at least 1"));
        }
        for (i, plugin) in self.plugins.iter().enumerate() {
            let key = |k: &str| format!("plugins[{i}].{k}");
            let valid_name = !plugin.name.is_empty()
                && plugin
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid_name {
                return Err(self.invalid(key("name"), "use letters, digits, `-` and `_`"));
            }
            if self.plugins[..i].iter().any(|p| p.name == plugin.name) {
                return Err(self.invalid(key("name"), format!("{:?} is used twice", plugin.name)));
            }
            if plugin.timeout_secs == 0 {
                return Err(self.invalid(key("timeout_secs"), "must be at least 1"));
            }
            if plugin.max_attempts == 0 {
                return Err(self.invalid(key("max_attempts"), "must be at least 1"));
            }
            for bind in &plugin.binds {
                let path = bind.strip_suffix(":rw").unwrap_or(bind);
                if !Path::new(path).is_absolute() || path.contains(':') {
                    return Err(self.invalid(
                        key("binds"),
                        format!("{bind:?}: use an absolute path, with `:rw` after it to make it writable"),
                    ));
                }
            }
            if let Some(variable) = plugin.pass_env.iter().find(|v| !is_env_name(v)) {
                return Err(self.invalid(
                    key("pass_env"),
                    format!("{variable:?} is not an environment variable name"),
                ));
            }
        }
        Ok(())
    }

    fn validate_catch_up(&self) -> Result<(), ConfigError> {
        let catch_up = &self.catch_up;
        for (key, value) in [
            ("catch_up.interval_secs", catch_up.interval_secs),
            (
                "catch_up.max_redeliveries",
                catch_up.max_redeliveries as u64,
            ),
            ("catch_up.max_age_hours", catch_up.max_age_hours),
            ("catch_up.max_pages", u64::from(catch_up.max_pages)),
        ] {
            if value == 0 {
                return Err(self.invalid(key, "must be at least 1"));
            }
        }
        if !(1..=100).contains(&catch_up.page_size) {
            return Err(self.invalid("catch_up.page_size", "must be between 1 and 100"));
        }
        for (i, hook) in catch_up.hooks.iter().enumerate() {
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
                    return Err(self.invalid(key, "set repository or organization, one of them"));
                }
                (Some(name), None) | (None, Some(name)) => {
                    return Err(self.invalid(
                        key,
                        format!("{name:?} is not an `owner/repo` or an organization's login"),
                    ));
                }
            }
        }
        match self.github.auth {
            GitHubAuth::App if !catch_up.hooks.is_empty() => Err(self.invalid(
                "catch_up.hooks",
                "with auth = \"app\" the App's own webhook is caught up (with its JWT): remove hooks",
            )),
            GitHubAuth::Token if catch_up.enabled && catch_up.hooks.is_empty() => Err(self.invalid(
                "catch_up.hooks",
                "with auth = \"token\" name the webhooks to catch up, e.g. hooks = [{ repository = \"owner/repo\", id = 123 }]",
            )),
            _ => Ok(()),
        }
    }

    /// The plugin's library path, resolved against the config file's folder.
    /// Names of every environment variable that holds a secret: the webhook secret, the GitHub
    /// token, the App's private key (with `auth = "app"`), and each plugin setting ending in `_env` (by convention, such as the chat
    /// plugin's `url_env`). Commands run for plugins never inherit them.
    pub fn secret_variables(&self) -> Vec<String> {
        let from_plugins = self.plugins.iter().flat_map(|entry| {
            entry
                .settings
                .iter()
                .filter(|(key, _)| key.ends_with("_env"))
                .filter_map(|(_, value)| value.as_str().map(str::to_owned))
        });
        let database =
            (self.store.backend == Backend::Postgres).then(|| self.store.url_env.clone());
        let app_key =
            (self.github.auth == GitHubAuth::App).then(|| self.github.private_key_env.clone());
        [
            self.server.secret_env.clone(),
            self.github.token_env.clone(),
            self.dashboard.tokens_env.clone(),
        ]
        .into_iter()
        .chain(database)
        .chain(app_key)
        .chain(from_plugins)
        .collect()
    }

    /// Files holding secrets, named by `*_file` settings: the host's own and plugins' (by
    /// convention, every plugin setting ending in `_file` names one). Never visible to builds.
    pub fn secret_files(&self) -> Vec<PathBuf> {
        let from_plugins = self.plugins.iter().flat_map(|entry| {
            entry
                .settings
                .iter()
                .filter(|(key, _)| key.ends_with("_file"))
                .filter_map(|(_, value)| value.as_str().map(PathBuf::from))
        });
        [
            self.server.secret_file.clone(),
            self.github.token_file.clone(),
            self.store.url_file.clone(),
            self.github.private_key_file.clone(),
            self.dashboard.tokens_file.clone(),
        ]
        .into_iter()
        .flatten()
        .chain(from_plugins)
        .map(|path| self.secret_path(&path))
        .collect()
    }

    /// A `*_file` setting's path: `$CREDENTIALS_DIRECTORY/...` (systemd's credentials)
    /// expanded, and relative paths resolved against the config file's folder.
    pub fn secret_path(&self, path: &Path) -> PathBuf {
        let credentials = path
            .strip_prefix("$CREDENTIALS_DIRECTORY")
            .ok()
            .zip(std::env::var_os("CREDENTIALS_DIRECTORY"));
        match credentials {
            Some((rest, dir)) => PathBuf::from(dir).join(rest),
            None => self.dir.join(path),
        }
    }

    /// The plugin's library file. A path (`target/release/libx.so`) is relative to the config
    /// file's folder; a bare file name (`libx.so`) is looked for in `plugin_dirs`, the running
    /// binary's folder (where cargo builds the plugins beside it) and `../lib/switchyard/plugins`
    /// beside that (an installed layout). `Err` lists the folders searched.
    pub fn library_path(&self, plugin: &PluginEntry) -> Result<PathBuf, Vec<PathBuf>> {
        let library = &plugin.library;
        if library.components().count() > 1 || library.is_absolute() {
            return Ok(self.dir.join(library));
        }
        let searched = self.plugin_search_path();
        searched
            .iter()
            .map(|dir| dir.join(library))
            .find(|candidate| candidate.is_file())
            .ok_or(searched)
    }

    /// Where bare library names are looked for, in order.
    pub fn plugin_search_path(&self) -> Vec<PathBuf> {
        let binary = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf));
        let installed = binary
            .as_ref()
            .map(|dir| dir.join("../lib/switchyard/plugins"));
        self.plugin_dirs
            .iter()
            .map(|dir| self.dir.join(dir))
            .chain(binary)
            .chain(installed)
            .collect()
    }

    /// The journal's path, resolved against the config file's folder.
    /// The certificate and key files when the host serves HTTPS (validation makes it both or
    /// neither), relative to the config's folder or under `$CREDENTIALS_DIRECTORY`.
    pub fn tls_files(&self) -> Option<(PathBuf, PathBuf)> {
        let (cert, key) = (
            self.server.tls_cert.as_ref()?,
            self.server.tls_key.as_ref()?,
        );
        Some((self.secret_path(cert), self.secret_path(key)))
    }

    pub fn store_path(&self) -> PathBuf {
        self.dir.join(&self.store.path)
    }

    /// Where plugin libraries are copied to be loaded: beside the journal, so on a file system
    /// the host writes to and may map code from (unlike a `noexec` /tmp).
    pub fn plugin_copies_dir(&self) -> PathBuf {
        let store = self.store_path();
        store
            .parent()
            .unwrap_or(Path::new("."))
            .join("plugin-copies")
    }

    /// Base URL for links to job logs.
    /// `https` when the host serves TLS itself.
    pub fn scheme(&self) -> &'static str {
        if self.tls_files().is_some() {
            "https"
        } else {
            "http"
        }
    }

    pub fn public_url(&self) -> String {
        match &self.server.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("{}://{}", self.scheme(), self.server.listen),
        }
    }
}

/// The host's own paths: the webhook may not be one of them or lie under one.
const HOST_PATHS: [&str; 6] = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/admin",
    "/jobs",
    "/dashboard",
];

fn check_webhook_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err("must start with `/`".to_owned());
    }
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-._~/".contains(&b);
    if !path.bytes().all(plain) || path.contains("//") {
        return Err(format!(
            "{path:?}: use letters, digits, `-`, `.`, `_`, `~` and single `/`"
        ));
    }
    let taken = HOST_PATHS.iter().find(|own| {
        path.strip_prefix(**own)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    });
    match taken {
        Some(own) => Err(format!(
            "{path:?} collides with the host's own {own} (taken: {})",
            HOST_PATHS.join(", ")
        )),
        None => Ok(()),
    }
}

fn check_http_url(url: &str) -> Result<(), String> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        Ok(_) => Err(format!("{url:?} is not an http(s) URL")),
        Err(e) => Err(format!("{url:?} is not a URL: {e}")),
    }
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Reads a secret from a file: its content without the trailing newline. The error names the
/// file, never the content.
pub fn secret_from_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read the secret file {}: {error}", path.display()))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// Reads a secret from the environment; `None` when unset or empty.
pub fn secret_from_env(variable: &str) -> Option<String> {
    std::env::var(variable).ok().filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/switchyard/config.toml"))
    }

    #[test]
    fn builds_network_and_disk_settings_have_defaults_and_bad_networks_are_refused() {
        let config = parse("[server]\n").unwrap();
        let sandbox = &config.sandbox;
        assert_eq!(
            (sandbox.disk_mib, sandbox.disk_reserve_mib),
            (10 * 1024, 2 * 1024)
        );
        assert_eq!(sandbox.network_isolation, NetworkIsolation::On);
        assert!(sandbox.deny_networks.is_empty());
        let config = parse(
            "[server]\n[sandbox]\nnetwork_isolation = \"off\"\n\
             deny_networks = [\"10.0.0.0/8\", \"fd00::/8\", \"192.0.2.7\"]\n\
             [[plugins]]\nname = \"ci\"\nlibrary = \"/x.so\"\ndisk_mib = 20480\n",
        )
        .unwrap();
        assert_eq!(config.sandbox.network_isolation, NetworkIsolation::Off);
        let networks: Vec<String> = config
            .sandbox
            .deny_networks
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(networks, ["10.0.0.0/8", "fd00::/8", "192.0.2.7/32"]);
        assert_eq!(config.plugins[0].disk_mib, Some(20480));
        for bad in ["10.0.0.0/33", "fd00::/129", "lan", "10.0.0.0/x", "/8"] {
            let error = parse(&format!(
                "[server]\n[sandbox]\ndeny_networks = [\"{bad}\"]\n"
            ))
            .unwrap_err()
            .to_string();
            assert!(
                error.contains("is not a network such as \"10.0.0.0/8\""),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn secret_variables_include_plugin_settings_ending_in_env() {
        let config = parse(
            "[server]\n[github]\ntoken_env = \"GH\"\n\
             [[plugins]]\nname = \"chat\"\nlibrary = \"/x.so\"\nenabled = false\n\
             [plugins.settings]\nurl_env = \"CHAT_URL\"\nstates = [\"failure\"]\n",
        )
        .unwrap();
        // The dashboard's tokens too: masked in logs, never inherited by commands.
        assert_eq!(
            config.secret_variables(),
            [
                "SWITCHYARD_WEBHOOK_SECRET",
                "GH",
                "SWITCHYARD_DASHBOARD_TOKENS",
                "CHAT_URL"
            ]
        );
    }

    #[test]
    fn the_dashboard_is_off_unless_enabled_and_its_settings_are_checked() {
        let config = parse(
            "[server]
",
        )
        .unwrap();
        assert_eq!(config.dashboard, DashboardConfig::default());
        assert!(!config.dashboard.enabled);
        let config = parse(
            "[server]
[dashboard]
enabled = true
access = \"public-read\"
tokens_file = \"tokens\"
",
        )
        .unwrap();
        assert_eq!(config.dashboard.access, DashboardAccess::PublicRead);
        assert!(
            config
                .secret_files()
                .contains(&PathBuf::from("/etc/switchyard/tokens"))
        );
        assert!(
            parse(
                "[server]
[dashboard]
access = \"open\"
"
            )
            .is_err()
        );
        assert!(
            parse(
                "[server]
[dashboard]
page_size = 0
"
            )
            .is_err()
        );
        assert!(
            parse(
                "[server]
[dashboard]
tokens_env = \"not a name\"
"
            )
            .is_err()
        );
        assert!(
            parse(
                "[server]
webhook_path = \"/dashboard/hook\"
"
            )
            .is_err()
        );
        // The caps on what readers cost: each at least 1, the budget room for a payload.
        for (key, value, ok) in [
            ("render_budget_mib", 53, false),
            ("render_budget_mib", 54, true),
            ("log_window_lines", 0, false),
            ("log_window_kib", 0, false),
            ("payload_shown_kib", 0, false),
            ("max_followers", 0, false),
            ("max_followers_per_client", 0, false),
            ("max_followers_per_client", 1, true),
        ] {
            let parsed = parse(&format!("[server]\n[dashboard]\n{key} = {value}\n"));
            assert_eq!(parsed.is_ok(), ok, "{key} = {value}");
        }
        for key in ["write_timeout_secs", "max_log_readers_per_client"] {
            assert!(parse(&format!("[server]\n{key} = 0\n")).is_err(), "{key}");
        }
    }

    #[test]
    fn the_app_key_is_a_secret_only_in_app_mode() {
        let config = parse(
            "[server]\n[github]\nauth = \"app\"\napp_id = 7\nprivate_key_file = \"app.pem\"\n",
        )
        .unwrap();
        assert_eq!(
            config.secret_variables(),
            [
                "SWITCHYARD_WEBHOOK_SECRET",
                "GITHUB_TOKEN",
                "SWITCHYARD_DASHBOARD_TOKENS",
                "GITHUB_APP_PRIVATE_KEY"
            ]
        );
        assert_eq!(
            config.secret_files(),
            [Path::new("/etc/switchyard/app.pem")]
        );
        let token = parse("[server]\n").unwrap();
        assert_eq!(token.github.auth, GitHubAuth::Token);
        assert!(
            !token
                .secret_variables()
                .contains(&"GITHUB_APP_PRIVATE_KEY".to_owned())
        );
    }

    #[test]
    fn webhook_paths_that_collide_or_are_not_plain_are_refused() {
        let path = |p: &str| parse(&format!("[server]\nwebhook_path = \"{p}\"\n"));
        for good in [
            "/event_handler",
            "/hooks/github",
            "/jobsx",
            "/healthzz",
            "/a.b~c-d_e/",
        ] {
            assert!(path(good).is_ok(), "{good}");
        }
        // (path, problem)
        let cases = [
            ("/admin/replay", "collides with the host's own /admin"),
            ("/admin", "collides with the host's own /admin"),
            ("/healthz", "collides with the host's own /healthz"),
            ("/jobs/1/log", "collides with the host's own /jobs"),
            ("/metrics/", "collides with the host's own /metrics"),
            ("/{id}", "use letters, digits"),
            ("/a*", "use letters, digits"),
            ("/a//b", "use letters, digits"),
            ("/a b", "use letters, digits"),
            ("event_handler", "must start with `/`"),
        ];
        for (bad, problem) in cases {
            let error = path(bad).unwrap_err().to_string();
            assert!(
                error.contains("server.webhook_path") && error.contains(problem),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn the_shipped_config_parses() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.toml");
        let config = Config::load(&file).unwrap();
        assert_eq!(config.server.webhook_path, "/event_handler");
        assert_eq!(config.github.api_url, "https://api.github.com");
        assert!(
            config
                .plugins
                .iter()
                .any(|p| p.name == "event-log" && p.enabled)
        );
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let config = parse("[server]\n").unwrap();
        assert_eq!(config.server.listen, default_listen());
        assert_eq!(config.server.webhook_path, "/event_handler");
        assert_eq!(config.server.secret_env, "SWITCHYARD_WEBHOOK_SECRET");
        assert_eq!(config.server.redeliveries, Redeliveries::Ignore);
        assert!(!config.server.accept_sha1);
        assert_eq!(config.github.api_url, "https://api.github.com");
        assert_eq!(config.github.token_env, "GITHUB_TOKEN");
        assert_eq!(
            config.store_path(),
            Path::new("/etc/switchyard/switchyard.db")
        );
        assert_eq!(config.public_url(), "http://127.0.0.1:9393");
    }

    #[test]
    fn catch_up_is_off_by_default_and_its_hooks_fit_the_auth() {
        let config = parse("[server]\n").unwrap();
        assert_eq!(config.catch_up, CatchUpConfig::default());
        assert!(!config.catch_up.enabled);
        let app = "[server]\n[github]\nauth = \"app\"\napp_id = 1\n";
        let hook = "[[catch_up.hooks]]\nrepository = \"octo/app\"\nid = 5\n";
        // (config text, None when valid, else what the message must contain)
        let cases = [
            (format!("{app}[catch_up]\nenabled = true\n"), None),
            (
                format!("[server]\n[catch_up]\nenabled = true\n{hook}"),
                None,
            ),
            (
                "[server]\n[catch_up]\nenabled = true\n".to_owned(),
                Some("catch_up.hooks: with auth = \"token\" name the webhooks"),
            ),
            (
                format!("{app}[catch_up]\nenabled = true\n{hook}"),
                Some("catch_up.hooks: with auth = \"app\""),
            ),
            (
                "[server]\n[[catch_up.hooks]]\nrepository = \"octo\"\nid = 5\n".to_owned(),
                Some("catch_up.hooks[0]: \"octo\" is not an `owner/repo`"),
            ),
            (
                "[server]\n[[catch_up.hooks]]\nid = 5\n".to_owned(),
                Some("catch_up.hooks[0]: set repository or organization"),
            ),
            (
                "[server]\n[catch_up]\npage_size = 101\n".to_owned(),
                Some("catch_up.page_size: must be between 1 and 100"),
            ),
            (
                "[server]\n[catch_up]\ninterval_secs = 0\n".to_owned(),
                Some("catch_up.interval_secs: must be at least 1"),
            ),
            (
                "[server]\n[github]\nmax_answer_mib = 0\n".to_owned(),
                Some("github.max_answer_mib: must be at least 1"),
            ),
            (
                "[server]\n[github]\ntimeout_secs = 0\n".to_owned(),
                Some("github.timeout_secs: must be at least 1"),
            ),
        ];
        for (text, expected) in cases {
            match (parse(&text), expected) {
                (Ok(_), None) => {}
                (Err(error), Some(fragment)) => {
                    assert!(error.to_string().contains(fragment), "{text}: {error}")
                }
                (result, _) => panic!("{text}: {result:?}"),
            }
        }
    }

    #[test]
    fn errors_name_the_file_the_key_and_the_problem() {
        // (config text, fragments the message must contain)
        let cases: &[(&str, &[&str])] = &[
            (
                "[server]\nlisten = \"x\"",
                &["config.toml", "listen", "invalid socket address"],
            ),
            (
                "[server]\nsecret = \"hunter2\"",
                &["config.toml", "unknown field `secret`"],
            ),
            (
                "[server]\nwebhook_path = \"hook\"",
                &["server.webhook_path", "must start with `/`"],
            ),
            (
                "[server]\nsecret_env = \"not a name\"",
                &["server.secret_env", "not an environment variable name"],
            ),
            (
                "[server]\n[github]\napi_url = \"ftp://x\"",
                &["github.api_url", "not an http(s) URL"],
            ),
            (
                "[server]\nredeliveries = \"sometimes\"",
                &["redeliveries", "unknown variant `sometimes`"],
            ),
            (
                "[server]\n[[plugins]]\nname = \"ci\"\nlibrary = \"x.so\"\nevents = [\"Pull Request\"]",
                &["events", "invalid subscription \"Pull Request\""],
            ),
            (
                "[server]\n[[plugins]]\nname = \"ci\"\nlibrary = \"x.so\"\nrepositories = [\"octo\"]",
                &["repositories", "expected \"owner/repo\" or \"owner/*\""],
            ),
            (
                "[server]\n[[plugins]]\nname = \"ci\"\nlibrary = \"x.so\"\nenabled = false\n[[plugins]]\nname = \"ci\"\nlibrary = \"x.so\"\nenabled = false",
                &["plugins[1].name", "\"ci\" is used twice"],
            ),
            (
                "[server]\n[[plugins]]\nname = \"ci\"\nlibrary = \"x.so\"\nlibary = \"typo\"",
                &["unknown field `libary`"],
            ),
            (
                "[server]\n[github]\nauth = \"app\"",
                &[
                    "github.app_id",
                    "needs the App's id (app_id) or its client id",
                ],
            ),
            (
                "[server]\n[github]\nauth = \"app\"\napp_id = 1\nclient_id = \"Iv1.x\"",
                &["github.client_id", "not both"],
            ),
            (
                "[server]\n[github]\nauth = \"oauth\"",
                &["auth", "unknown variant `oauth`"],
            ),
            (
                "[server]\n[github]\nauth = \"app\"\napp_id = 1\nprivate_key_env = \"A KEY\"",
                &["github.private_key_env", "not an environment variable name"],
            ),
            (
                "[server]\n[[plugins]]\nname = \"ci\"\nlibrary = \"x.so\"\npermissions = { contents = \"all\" }",
                &["permissions", "contents: invalid access \"all\""],
            ),
        ];
        for (text, fragments) in cases {
            let message = parse(text).unwrap_err().to_string();
            for fragment in *fragments {
                assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
            }
        }
    }

    #[test]
    fn repository_patterns_match_owner_and_repo() {
        // (pattern, repository, expected)
        let cases = [
            ("octo/repo", "octo/repo", true),
            ("octo/repo", "Octo/Repo", true),
            ("octo/repo", "octo/other", false),
            ("octo/*", "octo/anything", true),
            ("octo/*", "other/anything", false),
            ("octo/*", "octo", false),
        ];
        for (pattern, repo, expected) in cases {
            let pattern: RepositoryPattern = pattern.parse().unwrap();
            assert_eq!(pattern.matches(repo), expected, "{pattern:?} vs {repo}");
        }
    }
}
