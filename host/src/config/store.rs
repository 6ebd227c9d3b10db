//! `[store]`: where the journal of deliveries and jobs lives (SQLite, or PostgreSQL shared by
//! several hosts), how long it keeps them, and the PostgreSQL connection and leases.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Invalid, at_least_one, check_env_name, invalid};

/// `[store]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Where the journal lives: `sqlite` (one host, the file at `path`) or `postgres` (any
    /// number of hosts sharing one database).
    pub backend: Backend,
    /// SQLite journal file; job logs go in a `logs` folder beside it. With PostgreSQL, its
    /// folder still holds this host's own files (workspaces, plugin copies).
    pub path: PathBuf,
    /// Days finished jobs, their logs and deliveries are kept; delivery ids at least 7.
    pub keep_days: u32,
    /// PostgreSQL: the environment variable holding the connection URL (a secret: it carries
    /// the password).
    pub url_env: String,
    /// PostgreSQL: a file holding the connection URL, read instead of `url_env` when set.
    pub url_file: Option<PathBuf>,
    /// PostgreSQL: connections this host keeps open at most (one more listens for wake-ups).
    pub pool_size: usize,
    /// PostgreSQL: `off`, or `on` for TLS to the server (certificates checked against
    /// `tls_ca_file`, or the Mozilla roots when unset).
    pub tls: StoreTls,
    /// PostgreSQL: PEM file of the certificate authorities the server's certificate must chain
    /// to.
    pub tls_ca_file: Option<PathBuf>,
    /// PostgreSQL: seconds a running job's lease lasts unless its host renews it. A host that
    /// dies leaves its jobs to the others after this long.
    pub lease_secs: u64,
    /// PostgreSQL: seconds between looks for queued jobs without a wake-up (and for expired
    /// leases).
    pub poll_secs: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            backend: Backend::default(),
            path: PathBuf::from("switchyard.db"),
            keep_days: 30,
            url_env: "SWITCHYARD_DATABASE_URL".to_owned(),
            url_file: None,
            pool_size: 16,
            tls: StoreTls::default(),
            tls_ca_file: None,
            lease_secs: 30,
            poll_secs: 5,
        }
    }
}

impl StoreConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        at_least_one(&[("store.keep_days", u64::from(self.keep_days))])?;
        check_env_name("store.url_env", &self.url_env)?;
        at_least_one(&[
            ("store.pool_size", self.pool_size as u64),
            ("store.poll_secs", self.poll_secs),
        ])?;
        // Renewed every third of it: shorter leaves no room for a slow renewal.
        if self.lease_secs < 3 {
            return Err(invalid("store.lease_secs", "must be at least 3"));
        }
        if self.backend == Backend::Sqlite
            && (self.url_file.is_some() || self.tls == StoreTls::On || self.tls_ca_file.is_some())
        {
            return Err(invalid(
                "store.backend",
                "url_file and tls settings are for backend = \"postgres\"; set it, or remove them",
            ));
        }
        Ok(())
    }
}

/// `[store] backend`: which database holds the journal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Sqlite,
    Postgres,
}

/// `[store] tls`: whether the connection to PostgreSQL is encrypted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreTls {
    #[default]
    Off,
    On,
}
