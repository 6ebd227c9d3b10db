//! The web dashboard at `/dashboard`: deliveries, jobs with a live log viewer, deployments and
//! plugins, rendered on the server with templates that escape by default (askama), working
//! without JavaScript and live with a little of it (`host/assets/dashboard.js`). Every page
//! needs a sign-in unless `[dashboard] access = "public-read"`; with no token configured every
//! page says which setting to set. Secrets are masked in everything rendered, as in job logs.

mod actions;
mod assets;
mod auth;
mod budget;
mod client;
mod guard;
mod limit;
mod log_view;
mod message;
mod pages;
mod people;
mod signed_form;

use std::sync::Arc;

use axum::{
    Router, middleware,
    routing::{get, post},
};
use tokio_util::sync::CancellationToken;

pub use auth::{SESSION_SECRET, load_tokens};
pub use client::TrustedProxies;
use guard::Viewer;

use crate::{
    config::{Config, DashboardAccess},
    ingress::Dispatcher,
    job_log::{JobLogs, LogLinks, LogReaders},
    journal::Journal,
    plugins::Plugins,
    services::locks::Locks,
    workers::Workers,
};

/// The dashboard's settings and who may sign in.
pub struct Dashboard {
    mode: DashboardAccess,
    /// The tokens, or what to set when there are none.
    access: Result<auth::Access, String>,
    /// `Secure` on the session cookie: the public URL is https.
    secure_cookie: bool,
    page_size: usize,
    /// The origins (`https://host[:port]`) the dashboard is reached at: the public URL's and
    /// `[dashboard] aliases`. The actions' forms come from one of them.
    origins: Vec<String>,
    /// The `Host` values those origins are asked for with: any other is refused.
    hosts: Vec<String>,
    /// Whose `X-Forwarded-For` names the client, for the sign-in limit.
    proxies: Arc<TrustedProxies>,
    /// How long a cancelled job has to stop: a lock's release waits that long for its holder.
    cancel_grace: std::time::Duration,
    /// Failed sign-ins per address.
    sign_ins: limit::SignInLimit,
    /// What one page or follow event shows at most.
    limits: PageLimits,
    /// The memory every page, download and follow event is made and sent within.
    budget: budget::RenderBudget,
    /// Places for follow streams, apart from the log links' own.
    followers: LogReaders,
    /// "Sign in with GitHub", when `[dashboard] github_client_id` is set.
    github_sign_in: Option<people::GitHubSignIn>,
}

/// `[dashboard]`'s caps on what one answer shows.
#[derive(Debug, Clone, Copy)]
struct PageLimits {
    /// Bytes of a delivery's payload its page shows.
    payload_shown: usize,
    /// A job page's log window, and a follow event's.
    log: log_view::Cap,
}

impl Dashboard {
    /// `tokens` as [`load_tokens`] read them; `key` signs session cookies.
    /// `proxies`: `[server] trusted_proxies`, parsed once by the wiring and shared with the log
    /// links.
    pub fn new(
        config: &Config,
        tokens: Result<Vec<(String, String)>, String>,
        key: &[u8],
        proxies: Arc<TrustedProxies>,
    ) -> Self {
        let github_sign_in = people::GitHubSignIn::from_config(config);
        // People signing in with GitHub need no named token beside them.
        let tokens = match (tokens, &github_sign_in) {
            (Err(_), Some(_)) => Ok(Vec::new()),
            (tokens, _) => tokens,
        };
        if let Err(hint) = &tokens {
            tracing::warn!(hint = hint.as_str(), "the dashboard is not configured");
        }
        let origins = std::iter::once(config.public_url())
            .chain(config.dashboard.aliases.iter().cloned())
            .filter_map(|url| guard::origin_and_hosts(&url))
            .collect::<Vec<_>>();
        Self {
            mode: config.dashboard.access,
            access: tokens.map(|tokens| auth::Access::new(tokens, key)),
            secure_cookie: config.public_url().starts_with("https://"),
            page_size: config.dashboard.page_size,
            origins: origins.iter().map(|(origin, _)| origin.clone()).collect(),
            hosts: origins.into_iter().flat_map(|(_, hosts)| hosts).collect(),
            proxies,
            cancel_grace: std::time::Duration::from_secs(config.workers.cancel_grace_secs),
            sign_ins: limit::SignInLimit::default(),
            limits: PageLimits {
                payload_shown: config.dashboard.payload_shown_kib << 10,
                log: log_view::Cap {
                    lines: config.dashboard.log_window_lines,
                    bytes: config.dashboard.log_window_kib << 10,
                },
            },
            budget: budget::RenderBudget::new(config.dashboard.render_budget_mib << 20),
            followers: LogReaders::new(
                config.dashboard.max_followers,
                config.dashboard.max_followers_per_client,
            ),
            github_sign_in,
        }
    }
}

/// What the dashboard's handlers use.
#[derive(Clone)]
pub struct WebState {
    pub dashboard: Arc<Dashboard>,
    pub journal: Arc<dyn Journal>,
    pub logs: JobLogs,
    pub links: LogLinks,
    pub plugins: Arc<Plugins>,
    /// Replays store and dispatch through it, as the webhook does.
    pub dispatcher: Dispatcher,
    /// Cancelling jobs.
    pub workers: Workers,
    /// Waking the jobs waiting for a lock a person released.
    pub locks: Arc<Locks>,
    pub stopping: CancellationToken,
    /// The host's own GitHub identity: whether a person may sign in, and what they may read
    /// and do, are asked with it (never with the person's token).
    pub github: Arc<dyn crate::github::GitHub>,
}

/// The dashboard's routes, under `/dashboard`.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/dashboard", get(pages::deliveries::list))
        .route("/dashboard/", get(pages::deliveries::list))
        .route("/dashboard/deliveries", get(pages::deliveries::list))
        .route("/dashboard/deliveries/{id}", get(pages::deliveries::one))
        .route(
            "/dashboard/deliveries/{id}/payload",
            get(pages::deliveries::payload),
        )
        .route("/dashboard/deliveries/{id}/replay", post(actions::replay))
        .route("/dashboard/jobs", get(pages::jobs::list))
        .route("/dashboard/jobs/{id}", get(pages::jobs::one))
        .route("/dashboard/jobs/{id}/follow", get(pages::follow::follow))
        .route("/dashboard/jobs/{id}/cancel", post(actions::cancel))
        .route("/dashboard/deployments", get(pages::deployments::show))
        .route("/dashboard/locks/release", post(actions::release_lock))
        .route(
            "/dashboard/locks/unlock",
            post(pages::deployments_unlock::unlock),
        )
        .route("/dashboard/plugins", get(pages::plugins::show))
        .route(
            "/dashboard/repositories/{owner}/{name}",
            get(pages::places::repository::show),
        )
        .route(
            "/dashboard/repositories/{owner}/{name}/pulls/{number}",
            get(pages::places::pull_request::show),
        )
        .route(
            "/dashboard/repositories/{owner}/{name}/commits/{sha}",
            get(pages::places::commit::show),
        )
        .route("/dashboard/search", get(pages::places::search::search))
        .route(
            "/dashboard/sign-in",
            get(pages::sign_in::form).post(pages::sign_in::sign_in),
        )
        .route(
            "/dashboard/sign-in/github",
            get(pages::github_sign_in::begin),
        )
        .route(
            "/dashboard/sign-in/github/callback",
            get(pages::github_sign_in::callback),
        )
        .route("/dashboard/sign-out", post(pages::sign_in::sign_out))
        .route("/dashboard/assets/{file}", get(assets::asset))
        // Not a fallback: merged into the host's router, that would answer every unknown path
        // outside `/dashboard` as the dashboard.
        .route("/dashboard/{*rest}", get(message::not_found))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard::guard))
        .with_state(state)
}
