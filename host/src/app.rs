//! Wiring: the shared state, the HTTP routes, start-up (journal, plugins, workers, recovery of
//! unfinished jobs) and serving until a shutdown signal.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::FromRef,
    middleware,
    routing::{get, post},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    catch_up::{CatchUp, Hook},
    checkout::{self, Checkouts},
    config::{Backend, StoreTls},
    config::{Config, GitHubAuth, secret_from_env, secret_from_file},
    github::{self, AppKey, GitHub, stand_in},
    ingress::{self, BodyLimits, Dispatcher, IngressSettings, IngressState, WebhookSecret},
    job_log::{self, JobLogs, LINK_SECRET, LogLinks, LogReaders, LogState},
    journal::{self as journals, Journal, JournalError, PostgresSettings, StoreTarget},
    locks::Locks,
    metrics::Metrics,
    ops::{self, OpsState},
    outbound::{RetryPolicy, WebhookClient},
    plugins::{PluginSet, PluginSetError, Plugins, ServiceDeps},
    reload::Reloader,
    retention::Retention,
    sandbox::{Disks, Sandbox, SandboxError},
    server::{self, ServerLimits, TlsCertificates},
    web::{self, Dashboard, TrustedProxies, WebState},
    workers::{Cancellations, WorkerDeps, Workers},
};

/// State shared by every request handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub ingress: Arc<IngressSettings>,
    /// The host's GitHub identity: ingress shows it installation events.
    pub github: Arc<dyn GitHub>,
    pub journal: Arc<dyn Journal>,
    pub plugins: Arc<Plugins>,
    pub workers: Workers,
    pub logs: JobLogs,
    pub links: LogLinks,
    /// Places for job logs streamed at their links (the dashboard's follow streams have
    /// their own).
    pub log_readers: LogReaders,
    /// `[server] trusted_proxies`: who a log link's reader is, behind a reverse proxy.
    pub proxies: Arc<TrustedProxies>,
    pub metrics: Arc<Metrics>,
    /// Cancelled when the host begins to shut down: log streams end, workers stop.
    pub stopping: CancellationToken,
    /// The web dashboard, when `[dashboard] enabled`.
    pub dashboard: Option<Arc<Dashboard>>,
    /// Named locks, shared with the jobs' services: the dashboard releases them.
    pub locks: Arc<Locks>,
}

impl FromRef<AppState> for LogState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            journal: Arc::clone(&state.journal),
            logs: state.logs.clone(),
            links: state.links.clone(),
            log_readers: state.log_readers.clone(),
            proxies: Arc::clone(&state.proxies),
            stopping: state.stopping.clone(),
        }
    }
}

impl FromRef<AppState> for Dispatcher {
    fn from_ref(state: &AppState) -> Self {
        Self {
            journal: Arc::clone(&state.journal),
            workers: state.workers.clone(),
        }
    }
}

impl FromRef<AppState> for Arc<IngressSettings> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.ingress)
    }
}

impl FromRef<AppState> for IngressState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            settings: Arc::clone(&state.ingress),
            github: Arc::clone(&state.github),
            plugins: Arc::clone(&state.plugins),
            dispatcher: Dispatcher::from_ref(state),
            links: state.links.clone(),
        }
    }
}

impl FromRef<AppState> for OpsState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            ingress: Arc::clone(&state.ingress),
            journal: Arc::clone(&state.journal),
            plugins: Arc::clone(&state.plugins),
            metrics: Arc::clone(&state.metrics),
            dispatcher: Dispatcher::from_ref(state),
            links: state.links.clone(),
        }
    }
}

/// The HTTP interface: the webhook endpoint, job logs, health, metrics and admin calls.
pub fn app(state: AppState, webhook_path: &str) -> Router {
    let counted = middleware::from_fn_with_state(Arc::clone(&state.metrics), ops::count_deliveries);
    let router = Router::new()
        .route(
            webhook_path,
            post(ingress::receive)
                .fallback(ingress::method_not_allowed)
                .route_layer(counted),
        )
        .route("/jobs/{id}/log/{key}", get(job_log::serve_log))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/admin/replay", post(ops::replay))
        .route("/admin/plugins", post(ops::plugins))
        .with_state(state.clone());
    match &state.dashboard {
        Some(dashboard) => router.merge(web::router(WebState {
            dashboard: Arc::clone(dashboard),
            journal: Arc::clone(&state.journal),
            logs: state.logs.clone(),
            links: state.links.clone(),
            plugins: Arc::clone(&state.plugins),
            dispatcher: Dispatcher::from_ref(&state),
            workers: state.workers.clone(),
            locks: Arc::clone(&state.locks),
            stopping: state.stopping.clone(),
        })),
        None => router,
    }
}

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "the webhook secret is not set: export {variable} (named by [server] secret_env in {config}), or name a file holding it in [server] secret_file"
    )]
    NoSecret { variable: String, config: String },
    #[error("{setting}: {problem}")]
    SecretFile {
        setting: &'static str,
        problem: String,
    },
    #[error(
        "the webhook secret in {origin} is blank: set it to the secret configured on GitHub's webhook (a long random string)"
    )]
    BlankSecret { origin: String },
    #[error("{setting}: {problem}")]
    Store {
        setting: &'static str,
        problem: String,
    },
    #[error(
        "the GitHub App's private key is not set: export {variable} (named by [github] private_key_env in {config}) with the .pem file GitHub made for the App, or name that file in [github] private_key_file"
    )]
    NoAppKey { variable: String, config: String },
    #[error("the GitHub App's private key in {origin}: {problem}")]
    AppKey { origin: String, problem: String },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Plugins(#[from] PluginSetError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(reqwest::Error),
    #[error(transparent)]
    Tls(#[from] server::TlsError),
    #[error("cannot start the GitHub stand-in: {0}")]
    StandIn(std::io::Error),
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
}

/// A started host: journal open, plugins loaded, workers running.
pub struct Switchyard {
    pub config: Arc<Config>,
    pub state: AppState,
    pub reloader: Arc<Reloader>,
    /// The certificate HTTPS is served with, when `[server] tls_cert` is set.
    pub tls: Option<Arc<TlsCertificates>>,
    /// SIGHUPs received since before the start (see [`serve`]), for the reloader.
    hangups: Option<tokio::signal::unix::Signal>,
}

/// The secrets the host runs with, read from the files or environment variables the config
/// names.
#[derive(Clone)]
pub struct Secrets {
    pub webhook: WebhookSecret,
    pub github_token: Option<String>,
    /// With `[github] auth = "app"`: the App's private key, checked to be RSA.
    pub github_app_key: Option<Arc<AppKey>>,
}

impl Secrets {
    /// Reads the secrets, each from its `*_file` when one is set, else its `*_env`. The
    /// webhook secret is required, and so is an App's private key; without a GitHub token the
    /// host runs, with one warning, and jobs that call GitHub fail naming the variable.
    pub fn from_env(config: &Config) -> Result<Self, StartError> {
        let webhook = webhook_secret(config)?;
        if config.github.auth == GitHubAuth::App {
            let key = github_app_key(config)?;
            return Ok(Self {
                webhook,
                github_token: None,
                github_app_key: Some(Arc::new(key)),
            });
        }
        let github_token =
            match &config.github.token_file {
                Some(file) => Some(secret_from_file(&config.secret_path(file)).map_err(
                    |problem| StartError::SecretFile {
                        setting: "[github] token_file",
                        problem,
                    },
                )?),
                None => secret_from_env(&config.github.token_env),
            }
            .filter(|token| !token.is_empty());
        // The stand-in takes any token; it is only ever sent there, on loopback.
        let github_token = match config.github.stand_in {
            true => Some("stand-in-token".to_owned()),
            false => github_token,
        };
        if github_token.is_none() {
            tracing::warn!(
                "no GitHub token: {}; until then jobs that call GitHub fail",
                config.missing_github_token()
            );
        }
        Ok(Self {
            webhook,
            github_token,
            github_app_key: None,
        })
    }

    /// Every secret value, for masking in job logs: the webhook secret, the token and its
    /// form in git's header, the App key's lines. (Installation tokens are masked by their
    /// shape: see `job_log`.)
    fn values(&self) -> impl Iterator<Item = String> {
        let webhook = String::from_utf8_lossy(self.webhook.as_bytes()).into_owned();
        let encoded = self
            .github_token
            .as_deref()
            .map(checkout::encoded_credentials);
        let key_lines = self
            .github_app_key
            .iter()
            .flat_map(|key| key.masked_lines().to_vec());
        std::iter::once(webhook)
            .chain(self.github_token.clone())
            .chain(encoded)
            .chain(key_lines)
    }
}

/// Reads and checks the App's private key: from `[github] private_key_file` when set, else
/// the variable `private_key_env` names. Errors name the file or variable, never the key.
pub fn github_app_key(config: &Config) -> Result<AppKey, StartError> {
    let github = &config.github;
    let (pem, origin) = match &github.private_key_file {
        Some(file) => {
            let path = config.secret_path(file);
            let pem = secret_from_file(&path).map_err(|problem| StartError::SecretFile {
                setting: "[github] private_key_file",
                problem,
            })?;
            (pem, path.display().to_string())
        }
        None => {
            let pem =
                secret_from_env(&github.private_key_env).ok_or_else(|| StartError::NoAppKey {
                    variable: github.private_key_env.clone(),
                    config: config.file.display().to_string(),
                })?;
            (pem, github.private_key_env.clone())
        }
    };
    AppKey::from_pem(&pem).map_err(|problem| StartError::AppKey { origin, problem })
}

/// Secrets shorter than this are accepted with a warning: easy to guess by brute force.
const SHORT_SECRET: usize = 16;

/// Reads the webhook secret named by the config, or says which variable to set.
pub fn webhook_secret(config: &Config) -> Result<WebhookSecret, StartError> {
    let variable = &config.server.secret_env;
    // Where it came from, for the messages below: the file when one is named, else the variable.
    let (secret, source) = match &config.server.secret_file {
        Some(file) => {
            let path = config.secret_path(file);
            let secret = secret_from_file(&path).map_err(|problem| StartError::SecretFile {
                setting: "[server] secret_file",
                problem,
            })?;
            (secret, path.display().to_string())
        }
        None => {
            let secret = secret_from_env(variable).ok_or_else(|| StartError::NoSecret {
                variable: variable.clone(),
                config: config.file.display().to_string(),
            })?;
            (secret, variable.clone())
        }
    };
    if secret.trim().is_empty() {
        return Err(StartError::BlankSecret { origin: source });
    }
    if secret.len() < SHORT_SECRET {
        tracing::warn!(
            %source,
            bytes = secret.len(),
            "the webhook secret is shorter than {SHORT_SECRET} bytes: anyone who guesses it can send deliveries; use a long random string"
        );
    }
    Ok(WebhookSecret::new(secret))
}

/// Where the journal is, from `[store]`: the SQLite file, or PostgreSQL with its connection URL
/// read from `url_file` or `url_env` (a secret: errors name the setting, never the value).
pub fn store_target(config: &Config) -> Result<StoreTarget, StartError> {
    let store = &config.store;
    if store.backend == Backend::Sqlite {
        return Ok(StoreTarget::Sqlite(config.store_path()));
    }
    let (url, origin) = match &store.url_file {
        Some(file) => {
            let path = config.secret_path(file);
            let url = secret_from_file(&path).map_err(|problem| StartError::Store {
                setting: "[store] url_file",
                problem,
            })?;
            (url, format!("[store] url_file ({})", path.display()))
        }
        None => {
            let url = secret_from_env(&store.url_env).ok_or_else(|| StartError::Store {
                setting: "[store] url_env",
                problem: format!(
                    "backend = \"postgres\" needs the connection URL: export {} (postgres://user:password@host:port/database), or name a file holding it in [store] url_file",
                    store.url_env
                ),
            })?;
            (url, format!("[store] url_env ({})", store.url_env))
        }
    };
    let tls = match store.tls {
        StoreTls::Off => None,
        StoreTls::On => Some(Arc::new(store_tls(config)?)),
    };
    Ok(StoreTarget::Postgres(PostgresSettings {
        url: url.trim().to_owned(),
        origin,
        pool_size: store.pool_size,
        tls,
        lease: Duration::from_secs(store.lease_secs),
        poll: Duration::from_secs(store.poll_secs),
    }))
}

/// TLS to PostgreSQL with the ring provider the rest of the binary uses: the server's
/// certificate must chain to `tls_ca_file`'s authorities, or else to the Mozilla roots.
fn store_tls(config: &Config) -> Result<rustls::ClientConfig, StartError> {
    use rustls_pki_types::{CertificateDer, pem::PemObject as _};
    let problem = |problem: String| StartError::Store {
        setting: "[store] tls_ca_file",
        problem,
    };
    let mut roots = rustls::RootCertStore::empty();
    match &config.store.tls_ca_file {
        Some(file) => {
            let path = config.secret_path(file);
            let certificates = CertificateDer::pem_file_iter(&path)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|error| problem(format!("cannot read {}: {error}", path.display())))?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(problem(format!("{} holds no certificate", path.display())));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| problem(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Switchyard {
    /// Opens the journal, loads the plugins, starts the workers and re-runs jobs a crash or
    /// shutdown left unfinished.
    pub async fn start(config: Config, secrets: Secrets) -> Result<Self, StartError> {
        // First: a bad certificate is a config mistake, found before anything is opened.
        let tls = match config.tls_files() {
            Some((cert, key)) => Some(Arc::new(TlsCertificates::load(&cert, &key)?)),
            None => None,
        };
        let metrics = Arc::new(Metrics::new());
        let github = github::connect(
            &config.github,
            secrets.github_token.clone(),
            secrets.github_app_key.clone(),
            Arc::clone(&metrics),
        )
        .map_err(StartError::HttpClient)?;
        let store = config.store_path();
        let journal = journals::open(store_target(&config)?).await?;
        let links = LogLinks::new(&config.public_url(), &journal.host_key(LINK_SECRET).await?);
        let store_dir = store.parent().unwrap_or(std::path::Path::new("."));
        // Workspaces are mounted filesystems only where commands run sandboxed by a root host.
        let mounts = nix::unistd::geteuid().is_root()
            && config.sandbox.mode != crate::config::SandboxMode::None;
        let disks = Disks::start(config.sandbox.disk_reserve_mib, mounts).await;
        let checkouts = Checkouts::new(store_dir.join("workspaces"), &config.github.api_url)
            .with_disks(disks)
            .protecting(config.host_folders());
        // Left by a crash; no job runs yet, and the jobs they belonged to check out again.
        checkouts.clean_all().await;
        // Plugins' secrets too (chat URLs, routing keys), in case a plugin echoes one.
        // And what `pass_env` hands builds (a registry token).
        let passed = config
            .plugins
            .iter()
            .flat_map(|entry| entry.pass_env.clone());
        let from_files = config
            .secret_files()
            .into_iter()
            .filter_map(|file| secret_from_file(&file).ok());
        // Each dashboard token on its own, beside the whole variable or file holding them.
        let dashboard_tokens = match config.dashboard.enabled {
            true => Some(web::load_tokens(&config)),
            false => None,
        };
        let token_values = dashboard_tokens
            .iter()
            .flat_map(|tokens| tokens.iter().flatten())
            .map(|(_, token)| token.clone())
            .collect::<Vec<_>>();
        let plugin_secrets = config
            .secret_variables()
            .into_iter()
            .chain(passed)
            .filter_map(|variable| secret_from_env(&variable))
            .chain(from_files)
            .chain(token_values);
        let logs = JobLogs::new(
            store_dir.join("logs"),
            secrets.values().chain(plugin_secrets),
        )
        .with_limit(config.sandbox.log_mib << 20)
        .kept_in(&journal);
        // Before any job is stored: no id of a job whose log is here is given again.
        logs.skip_logged_ids(journal.as_ref()).await?;
        let plugins = Arc::new(Plugins::new(PluginSet::load(&config)?));
        let sandbox = Sandbox::start(&config.sandbox, config.secret_files()).await?;
        tracing::info!(sandbox = %sandbox.describe(), workspaces = %checkouts.describe_disks(), "commands run in");
        for plugin in plugins.current().iter() {
            tracing::info!(
                plugin = %plugin.name(),
                package = %plugin.info.package,
                version = %plugin.info.version,
                events = %plugin.subscriptions().iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
                "plugin loaded"
            );
        }
        if config.github.auth == GitHubAuth::App {
            crate::plugins::warn_undeclared(&plugins.current());
        }
        let locks = Arc::new(Locks::new(Arc::clone(&journal)));
        let workers = Workers::new(WorkerDeps {
            journal: Arc::clone(&journal),
            plugins: Arc::clone(&plugins),
            services: Arc::new(ServiceDeps {
                logs: logs.clone(),
                github: Arc::clone(&github),
                journal: Arc::clone(&journal),
                checkouts,
                webhooks: WebhookClient::new(
                    RetryPolicy::from_config(&config.github),
                    Arc::clone(&metrics),
                )
                .map_err(StartError::HttpClient)?,
                locks: Arc::clone(&locks),
                sandbox: Arc::new(sandbox),
                hidden_env: config.secret_variables(),
                cancellations: Cancellations::new(Arc::clone(&journal)),
            }),
            links: links.clone(),
            metrics: Arc::clone(&metrics),
            concurrency: config.workers.concurrency,
            memory_queue_bytes: config.workers.memory_queue_mib << 20,
            retry_backoff: Duration::from_millis(config.workers.retry_backoff_ms),
            cancel_grace: Duration::from_secs(config.workers.cancel_grace_secs),
            max_interruptions: config.workers.max_interruptions,
        });
        // No job runs yet: any marked running was cut off by a crash or a shutdown.
        let interrupted = journal.requeue_interrupted().await?;
        let unfinished = journal.unfinished_count().await?;
        if unfinished > 0 {
            tracing::info!(
                jobs = unfinished,
                interrupted,
                "running jobs left unfinished"
            );
            workers.recover();
        }
        // Checked when the config was loaded.
        let proxies =
            Arc::new(TrustedProxies::parse(&config.server.trusted_proxies).unwrap_or_default());
        let dashboard = match dashboard_tokens {
            Some(tokens) => Some(Arc::new(Dashboard::new(
                &config,
                tokens,
                &journal.host_key(web::SESSION_SECRET).await?,
                Arc::clone(&proxies),
            ))),
            None => None,
        };
        let state = AppState {
            dashboard,
            locks,
            ingress: Arc::new(IngressSettings {
                secret: secrets.webhook,
                accept_sha1: config.server.accept_sha1,
                redeliveries: config.server.redeliveries,
                bodies: BodyLimits::new(
                    config.server.body_budget_mib << 20,
                    config.server.body_timeout(),
                ),
            }),
            github,
            journal,
            plugins,
            workers,
            logs,
            links,
            log_readers: LogReaders::new(
                config.server.max_log_readers,
                config.server.max_log_readers_per_client,
            ),
            proxies,
            stopping: CancellationToken::new(),
            metrics: Arc::clone(&metrics),
        };
        let reloader = Arc::new(Reloader::new(
            config.clone(),
            Arc::clone(&state.plugins),
            metrics,
            tls.clone(),
        ));
        Ok(Self {
            config: Arc::new(config),
            state,
            reloader,
            tls,
            hangups: None,
        })
    }

    /// Retention of this host's journal and logs, per `[store] keep_days`.
    pub fn retention(&self) -> Retention {
        Retention {
            journal: Arc::clone(&self.state.journal),
            logs: self.state.logs.clone(),
            metrics: Arc::clone(&self.state.metrics),
            keep_days: self.config.store.keep_days,
        }
    }

    /// Catching up the deliveries GitHub failed to deliver, per `[catch_up]`.
    pub fn catch_up(&self) -> CatchUp {
        CatchUp {
            github: Arc::clone(&self.state.github),
            journal: Arc::clone(&self.state.journal),
            metrics: Arc::clone(&self.state.metrics),
            settings: self.config.catch_up.clone(),
            hooks: Hook::from_config(&self.config),
        }
    }

    pub fn router(&self) -> Router {
        app(self.state.clone(), &self.config.server.webhook_path)
    }

    /// Serves on `listener` until `shutdown` completes, then lets running jobs finish within
    /// the configured grace period. Jobs not finished by then run again on the next start.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let watching = tokio::spawn(Arc::clone(&self.reloader).watch(self.hangups.take()));
        let pruning = tokio::spawn(self.retention().run());
        let catching_up = self
            .config
            .catch_up
            .enabled
            .then(|| tokio::spawn(self.catch_up().run()));
        let settings = &self.config.server;
        let limits = ServerLimits {
            max_connections: settings.max_connections,
            header_timeout: settings.header_timeout(),
            write_timeout: settings.write_timeout(),
        }
        .fit_open_files();
        let grace = Duration::from_secs(settings.shutdown_grace_secs);
        let stopping = self.state.stopping.clone();
        // At the signal everything stops at once: connections are asked to close (log streams
        // end), and workers start no more jobs and give running ones the grace. Both within
        // the grace, whatever clients keep open.
        let signalled = async {
            shutdown.await;
            stopping.cancel();
        };
        let serving = server::serve(
            listener,
            self.router(),
            limits,
            self.tls.clone(),
            self.state.stopping.clone().cancelled_owned(),
            grace,
        );
        let finishing = async {
            self.state.stopping.cancelled().await;
            watching.abort();
            pruning.abort();
            if let Some(catching_up) = &catching_up {
                catching_up.abort();
            }
            tracing::info!(
                jobs = self.state.workers.running(),
                grace_secs = grace.as_secs(),
                "stopped taking deliveries; finishing running jobs"
            );
            if !self.state.workers.shutdown(grace).await {
                tracing::warn!(
                    "grace period over; unfinished jobs will run again on the next start"
                );
            }
        };
        tokio::join!(signalled, serving, finishing);
        Ok(())
    }
}

/// `switchyard serve`: start, listen on `[server] listen`, stop on SIGINT or SIGTERM. With
/// `github_stand_in`, plugins' GitHub calls go to a local stand-in that prints them (see
/// `github::stand_in`), so a plugin can be tried without a token or GitHub.
pub async fn serve(mut config: Config, github_stand_in: bool) -> Result<(), StartError> {
    // First of all: SIGHUP's default action ends the process, and one can come while the host
    // starts (migrations, plugin loading, the sandbox probe) from a certificate renewal hook or
    // `systemctl reload`. Once handled, one received meanwhile reloads as serving begins.
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let addr = config.server.listen;
    let webhook = format!("{}{}", config.public_url(), config.server.webhook_path);
    let stand_in = match github_stand_in {
        true => Some(stand_in::start().await.map_err(StartError::StandIn)?),
        false => None,
    };
    if let Some(stand_in) = &stand_in {
        tracing::warn!(
            url = %stand_in.url,
            "GitHub stand-in: plugins' GitHub calls are answered locally and printed; nothing reaches GitHub"
        );
        config.github.use_stand_in(stand_in.url.clone());
    }
    let secrets = Secrets::from_env(&config)?;
    let mut host = Switchyard::start(config, secrets).await?;
    host.hangups = hangups;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|error| StartError::Bind { addr, error })?;
    tracing::info!(%addr, %webhook, "switchyard is listening");
    host.serve(listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).ok();
    let term = async {
        match terminate.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
