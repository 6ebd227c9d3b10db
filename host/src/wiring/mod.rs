//! The host's wiring: start-up (secrets, journal, plugins, workers, recovery of unfinished
//! jobs), serving until a shutdown signal, and the graceful stop. `routes` is the HTTP
//! interface it serves, `credentials` what it reads from files and the environment.

mod credentials;
mod routes;

pub use credentials::{Secrets, github_app_key, store_target, webhook_secret};
pub use routes::{HostState, routes};

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{
    catch_up::{CatchUp, Hook},
    commands::CommandService,
    config::{Config, GitHubAuth, secret_from_env, secret_from_file},
    github::{self, stand_in},
    ingress::{BodyLimits, IngressSettings},
    job_log::{JobLogs, LINK_SECRET, LogLinks, LogReaders},
    journal::{self as journals, JournalError},
    ops::metrics::Metrics,
    ops::reload::Reloader,
    ops::retention::Retention,
    plugins::{PluginSet, PluginSetError, Plugins, ServiceDeps},
    sandbox::{Disks, Sandbox, SandboxError},
    server::{self, ServerLimits, TlsCertificates},
    services::checkout::Checkouts,
    services::deploys::Deploys,
    services::heads::Heads,
    services::locks::Locks,
    services::outbound::{RetryPolicy, WebhookClient},
    web::{self, Dashboard, TrustedProxies},
    workers::{Cancellations, WorkerDeps, Workers},
};

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
    pub state: HostState,
    pub reloader: Arc<Reloader>,
    /// The certificate HTTPS is served with, when `[server] tls_cert` is set.
    pub tls: Option<Arc<TlsCertificates>>,
    /// SIGHUPs received since before the start (see [`serve`]), for the reloader.
    hangups: Option<tokio::signal::unix::Signal>,
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
        .kept_in(journal.clone());
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
        let locks = Arc::new(Locks::new(journal.clone()));
        let commands = Arc::new(
            CommandService::new(Arc::clone(&github), journal.clone())
                .with_approvals(journal.clone()),
        );
        let workers = Workers::new(WorkerDeps {
            journal: journal.clone(),
            plugins: Arc::clone(&plugins),
            services: Arc::new(ServiceDeps {
                logs: logs.clone(),
                github: Arc::clone(&github),
                journal: journal.clone(),
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
                commands: Arc::clone(&commands),
                heads: Arc::new(Heads::new(Arc::clone(&journal))),
                deploys: Arc::new(Deploys::new(Arc::clone(&journal), commands)),
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
        let state = HostState {
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
            journal: self.state.journal.clone(),
            logs: self.state.logs.clone(),
            metrics: Arc::clone(&self.state.metrics),
            keep_days: self.config.store.keep_days,
        }
    }

    /// Catching up the deliveries GitHub failed to deliver, per `[catch_up]`.
    pub fn catch_up(&self) -> CatchUp {
        CatchUp {
            github: Arc::clone(&self.state.github),
            journal: self.state.journal.clone(),
            metrics: Arc::clone(&self.state.metrics),
            settings: self.config.catch_up.clone(),
            hooks: Hook::from_config(&self.config),
        }
    }

    pub fn router(&self) -> Router {
        routes(self.state.clone(), &self.config.server.webhook_path)
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
                jobs = self.state.workers.jobs_running(),
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
