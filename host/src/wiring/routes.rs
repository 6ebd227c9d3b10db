//! The HTTP interface: the state every handler shares, the substates each part takes from it
//! (axum `FromRef`, so no handler module imports the wiring), and the route table: the webhook,
//! job log links, health, metrics, admin calls and the dashboard.

use std::sync::Arc;

use axum::{
    Router,
    extract::FromRef,
    middleware,
    routing::{get, post},
};
use tokio_util::sync::CancellationToken;

use crate::{
    github::GitHub,
    ingress::{self, Dispatcher, IngressSettings, IngressState},
    job_log::{self, JobLogs, LogLinks, LogReaders, LogState},
    journal::Journal,
    ops::endpoints::{self, OpsState},
    ops::metrics::Metrics,
    plugins::Plugins,
    services::locks::Locks,
    web::{self, Dashboard, TrustedProxies, WebState},
    workers::Workers,
};

/// State shared by every request handler. Cheap to clone.
#[derive(Clone)]
pub struct HostState {
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

impl FromRef<HostState> for LogState {
    fn from_ref(state: &HostState) -> Self {
        Self {
            journal: state.journal.clone(),
            logs: state.logs.clone(),
            links: state.links.clone(),
            log_readers: state.log_readers.clone(),
            proxies: Arc::clone(&state.proxies),
            stopping: state.stopping.clone(),
        }
    }
}

impl FromRef<HostState> for Dispatcher {
    fn from_ref(state: &HostState) -> Self {
        Self {
            journal: state.journal.clone(),
            workers: state.workers.clone(),
        }
    }
}

impl FromRef<HostState> for Arc<IngressSettings> {
    fn from_ref(state: &HostState) -> Self {
        Arc::clone(&state.ingress)
    }
}

impl FromRef<HostState> for IngressState {
    fn from_ref(state: &HostState) -> Self {
        Self {
            settings: Arc::clone(&state.ingress),
            github: Arc::clone(&state.github),
            plugins: Arc::clone(&state.plugins),
            dispatcher: Dispatcher::from_ref(state),
            links: state.links.clone(),
        }
    }
}

impl FromRef<HostState> for OpsState {
    fn from_ref(state: &HostState) -> Self {
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
pub fn routes(state: HostState, webhook_path: &str) -> Router {
    let counted =
        middleware::from_fn_with_state(Arc::clone(&state.metrics), endpoints::count_deliveries);
    let router = Router::new()
        .route(
            webhook_path,
            post(ingress::receive)
                .fallback(ingress::method_not_allowed)
                .route_layer(counted),
        )
        .route("/jobs/{id}/log/{key}", get(job_log::serve_log))
        .route("/healthz", get(endpoints::healthz))
        .route("/readyz", get(endpoints::readyz))
        .route("/metrics", get(endpoints::metrics))
        .route("/admin/replay", post(endpoints::replay))
        .route("/admin/plugins", post(endpoints::plugins))
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
            github: Arc::clone(&state.github),
        })),
        None => router,
    }
}
