//! `[server]`: where and how webhooks are received, the host's own bounds on its clients, and
//! the reverse proxies believed about who a client is.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use ipnet::IpNet;
use serde::Deserialize;

use super::{Invalid, at_least_one, check_env_name, check_http_url, invalid};

/// GitHub's cap on a webhook payload, in MiB: ingress refuses larger bodies, and the body
/// budget must hold one.
pub const MAX_BODY_MIB: usize = 25;

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Path GitHub POSTs deliveries to.
    pub webhook_path: String,
    /// Base of the links to job logs sent to GitHub. Defaults to `http://{listen}` (`https://`
    /// when the host serves TLS itself).
    pub public_url: Option<String>,
    /// Name of the environment variable holding the webhook secret.
    pub secret_env: String,
    /// A file holding the webhook secret, used instead of `secret_env` when set (a systemd
    /// credential: `$CREDENTIALS_DIRECTORY/webhook-secret`).
    pub secret_file: Option<PathBuf>,
    /// Accept the legacy SHA-1 `X-Hub-Signature` when `X-Hub-Signature-256` is absent.
    pub accept_sha1: bool,
    /// What to do with a delivery id seen before: `ignore` (answer 200, run nothing) or `rerun`.
    pub redeliveries: Redeliveries,
    /// On SIGINT/SIGTERM, how long running jobs may take to finish before the host exits.
    pub shutdown_grace_secs: u64,
    /// Connections served at once. At the cap the oldest connection still waiting for a
    /// request is closed to make room; if every one is mid-request, new ones wait in the
    /// listen backlog. Lowered at start to what the open-file limit allows.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, counted from the connection's start or
    /// the end of the previous response: it also closes silent and idle keep-alive sockets.
    pub header_timeout_secs: u64,
    /// Time a client has to send a request's whole body once its headers are in.
    pub body_timeout_secs: u64,
    /// MiB of request bodies being read at once, across all requests. A request that would
    /// go past it is answered 503 with `Retry-After`.
    pub body_budget_mib: usize,
    /// Job logs streamed at once at their links; more readers get 503 with `Retry-After`.
    pub max_log_readers: usize,
    /// Job logs one client address (an IPv6 /64) may stream at once at their links.
    pub max_log_readers_per_client: usize,
    /// Time a write of an answer may wait on a client that does not read it; then the
    /// connection is dropped.
    pub write_timeout_secs: u64,
    /// PEM certificate chain to serve HTTPS with (set with `tls_key`). Read again on SIGHUP and
    /// on every config reload, so a renewed certificate needs no restart.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Reverse proxies (addresses or CIDR networks) whose `X-Forwarded-For` is believed: a
    /// request from one of them counts, for the dashboard's sign-in limit, as from the
    /// right-most forwarded address that is not a trusted proxy. Empty: every peer is the
    /// client. Parsed into [`TrustedProxies`].
    pub trusted_proxies: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9393)),
            webhook_path: "/event_handler".to_owned(),
            public_url: None,
            secret_env: "SWITCHYARD_WEBHOOK_SECRET".to_owned(),
            secret_file: None,
            accept_sha1: false,
            redeliveries: Redeliveries::default(),
            shutdown_grace_secs: 30,
            max_connections: 512,
            // GitHub sends a delivery's headers and body at once, and gives up on an answer
            // after 10 s.
            header_timeout_secs: 10,
            body_timeout_secs: 10,
            // Room for two of GitHub's largest (25 MB) payloads or thousands of ordinary ones.
            body_budget_mib: 64,
            max_log_readers: 64,
            max_log_readers_per_client: 8,
            write_timeout_secs: 30,
            tls_cert: None,
            tls_key: None,
            trusted_proxies: Vec::new(),
        }
    }
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

    pub(super) fn validate(&self) -> Result<(), Invalid> {
        check_webhook_path(&self.webhook_path)
            .map_err(|problem| invalid("server.webhook_path", problem))?;
        if let Some(url) = &self.public_url {
            check_http_url(url).map_err(|p| invalid("server.public_url", p))?;
        }
        TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|problem| invalid("server.trusted_proxies", problem))?;
        check_env_name("server.secret_env", &self.secret_env)?;
        at_least_one(&[
            ("server.max_connections", self.max_connections as u64),
            ("server.header_timeout_secs", self.header_timeout_secs),
            ("server.body_timeout_secs", self.body_timeout_secs),
            ("server.max_log_readers", self.max_log_readers as u64),
            (
                "server.max_log_readers_per_client",
                self.max_log_readers_per_client as u64,
            ),
            ("server.write_timeout_secs", self.write_timeout_secs),
        ])?;
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => return Err(invalid("server.tls_key", "must be set with tls_cert")),
            (None, Some(_)) => return Err(invalid("server.tls_cert", "must be set with tls_key")),
            _ => {}
        }
        // One of GitHub's largest payloads must fit, or such a delivery could never arrive.
        if self.body_budget_mib < MAX_BODY_MIB {
            return Err(invalid(
                "server.body_budget_mib",
                format!("must be at least {MAX_BODY_MIB}: GitHub's largest payloads are 25 MB"),
            ));
        }
        Ok(())
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

/// `[server] trusted_proxies`, parsed: the addresses and networks of the reverse proxies whose
/// `X-Forwarded-For` is believed. Who a request then comes from is the web's business
/// (`web/client.rs`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses addresses (`127.0.0.1`, `::1`) and networks (`10.0.0.0/8`). `Err` names the
    /// entry that is neither.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{entry:?} is not an address or a network (CIDR)"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether `address` is one of the proxies or in one of their networks, as given: an
    /// IPv4-mapped IPv6 address is only in IPv6 networks, so callers map it back first.
    pub fn contains(&self, address: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&address))
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
