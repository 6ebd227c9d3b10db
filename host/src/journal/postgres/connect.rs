//! Reaching the server: the settings, the pool, the connections of its own that renewal and
//! LISTEN use, TLS, and how driver errors become journal errors.

use std::{path::Path, sync::Arc, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::journal::JournalError;

/// Settings for [`PostgresJournal::open`](super::PostgresJournal::open), from `[store]`.
#[derive(Clone)]
pub struct PostgresSettings {
    /// The connection URL: a secret (it carries the password). Never logged; see [`mask_url`].
    pub url: String,
    /// Where the URL came from (`[store] url_env = "X"`), for error messages.
    pub origin: String,
    pub pool_size: usize,
    /// TLS to the server, with the ring provider the binary uses; `None`: plain TCP.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// How long a started attempt's lease lasts unless renewed.
    pub lease: Duration,
    /// How often queued jobs are looked for without a NOTIFY, and expired leases rescued.
    pub poll: Duration,
}

impl std::fmt::Debug for PostgresSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSettings")
            .field("url", &mask_url(&self.url))
            .field("pool_size", &self.pool_size)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

/// The URL with its password (and any `password=` parameter) replaced by `****`, fit to print.
pub fn mask_url(url: &str) -> String {
    let mut masked = url.to_owned();
    // postgres://user:password@host/...
    if let Some(scheme_end) = masked.find("://") {
        let rest = scheme_end + 3;
        if let Some(at) = masked[rest..].rfind('@').map(|at| rest + at) {
            if let Some(colon) = masked[rest..at].find(':').map(|c| rest + c) {
                masked.replace_range(colon + 1..at, "****");
            }
        }
    }
    // ...?password=secret&...
    if let Some(start) = masked.find("password=") {
        let value = start + "password=".len();
        let end = masked[value..]
            .find(['&', ' '])
            .map_or(masked.len(), |e| value + e);
        masked.replace_range(value..end, "****");
    }
    masked
}

/// TLS to PostgreSQL with the ring provider the rest of the binary uses: the server's
/// certificate must chain to the authorities in `ca_file`, or else to the Mozilla roots. The
/// error is the problem, for the caller to name the setting it came from.
pub fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::{CertificateDer, pem::PemObject as _};
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(format!("{} holds no certificate", path.display()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| error.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A TLS connector or none, for the pool and the listening connection alike.
#[derive(Clone)]
pub(super) enum Tls {
    Off,
    Rustls(MakeRustlsConnect),
}

pub(super) fn db_error(error: tokio_postgres::Error) -> JournalError {
    // A closed connection is the server going away, not this statement's fault.
    if error.is_closed() || error.as_db_error().is_none() && error.to_string().contains("connect") {
        return JournalError::Unreachable(error.to_string());
    }
    match error.as_db_error() {
        // Shown whole: server messages name tables and values, never the URL.
        Some(db) => JournalError::Postgres(format!("{}: {}", db.code().code(), db.message())),
        None => JournalError::Unreachable(error.to_string()),
    }
}

pub(super) fn pool_error(error: deadpool_postgres::PoolError) -> JournalError {
    match error {
        deadpool_postgres::PoolError::Backend(error) => match db_error(error) {
            JournalError::Postgres(message) => JournalError::Unreachable(message),
            other => other,
        },
        other => JournalError::Unreachable(other.to_string()),
    }
}

impl From<tokio_postgres::Error> for JournalError {
    fn from(error: tokio_postgres::Error) -> Self {
        db_error(error)
    }
}

pub(super) fn connect_pool(
    settings: &PostgresSettings,
) -> Result<(Pool, tokio_postgres::Config, Tls), JournalError> {
    let mut config: tokio_postgres::Config = settings.url.parse().map_err(|_| {
        // The parser's message may quote the URL: name the setting instead.
        JournalError::Schema(format!(
            "the PostgreSQL connection URL in {} is not valid (expected postgres://user:password@host:port/database)",
            settings.origin
        ))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    if config.get_application_name().is_none() {
        config.application_name("switchyard");
    }
    // A half-open connection (the server's host gone, a firewall dropping it) is noticed in
    // about 20 s rather than the kernel's two hours.
    config.keepalives_idle(Duration::from_secs(10));
    config.keepalives_interval(Duration::from_secs(3));
    config.keepalives_retries(3);
    let tls = match &settings.tls {
        Some(client) => {
            // Not `prefer`: with TLS on, a server without it is refused, not used in plain.
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            Tls::Rustls(MakeRustlsConnect::new((**client).clone()))
        }
        None => Tls::Off,
    };
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match &tls {
        Tls::Off => Manager::from_config(config.clone(), NoTls, manager_config),
        Tls::Rustls(tls) => Manager::from_config(config.clone(), tls.clone(), manager_config),
    };
    let timeout = Some(Duration::from_secs(5));
    let pool = Pool::builder(manager)
        .max_size(settings.pool_size.max(2))
        .runtime(Runtime::Tokio1)
        .wait_timeout(timeout)
        .create_timeout(timeout)
        .recycle_timeout(timeout)
        .build()
        .map_err(|error| JournalError::Unreachable(error.to_string()))?;
    Ok((pool, config, tls))
}

/// A connection of its own, for the lease renewal.
pub(super) async fn connect(
    config: &tokio_postgres::Config,
    tls: &Tls,
) -> Result<tokio_postgres::Client, JournalError> {
    async fn spawned<T>(
        config: &tokio_postgres::Config,
        tls: T,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error>
    where
        T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
        T::Stream: Send + 'static,
    {
        let (client, connection) = config.connect(tls).await?;
        tokio::spawn(connection);
        Ok(client)
    }
    Ok(match tls {
        Tls::Off => spawned(config, NoTls).await?,
        Tls::Rustls(tls) => spawned(config, tls.clone()).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_in_urls() {
        assert_eq!(
            mask_url("postgres://app:s3cr3t@db.example:5432/switchyard"),
            "postgres://app:****@db.example:5432/switchyard"
        );
        assert_eq!(
            mask_url("postgres://app@db/x?password=s3cr3t&sslmode=require"),
            "postgres://app@db/x?password=****&sslmode=require"
        );
        assert_eq!(
            mask_url("host=db password=s3cr3t user=app"),
            "host=db password=**** user=app"
        );
        assert_eq!(mask_url("postgres://db/x"), "postgres://db/x");
    }
}
