//! The web dashboard at `/dashboard`: deliveries, jobs with a live log viewer, deployments and
//! plugins, rendered on the server with templates that escape by default (askama), working
//! without JavaScript and live with a little of it (`host/assets/dashboard.js`). Every page
//! needs a sign-in unless `[dashboard] access = "public-read"`; with no token configured every
//! page says which setting to set. Secrets are masked in everything rendered, as in job logs.

mod actions;
mod auth;
mod budget;
mod client;
mod limit;
mod log_view;
mod pages;

use std::sync::Arc;

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use tokio_util::sync::CancellationToken;

pub use auth::SESSION_SECRET;
pub use client::TrustedProxies;

use crate::{
    config::{Config, DashboardAccess, secret_from_env, secret_from_file},
    ingress::Dispatcher,
    job_log::{JobLogs, LogLinks, LogReaders},
    journal::{Journal, Visibility, unix_millis},
    locks::Locks,
    plugins::Plugins,
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
}

/// `[dashboard]`'s caps on what one answer shows.
#[derive(Debug, Clone, Copy)]
struct PageLimits {
    /// Bytes of a delivery's payload its page shows.
    payload_shown: usize,
    /// A job page's log window, and a follow event's.
    log: log_view::Cap,
}

/// Reads the `name:token` lines the config names. `Err` says what to set; it never holds a
/// token.
pub fn load_tokens(config: &Config) -> Result<Vec<(String, String)>, String> {
    let settings = &config.dashboard;
    match &settings.tokens_file {
        Some(file) => {
            let path = config.secret_path(file);
            let text = secret_from_file(&path)
                .map_err(|problem| format!("[dashboard] tokens_file: {problem}"))?;
            auth::parse_tokens(&text).map_err(|problem| {
                format!(
                    "[dashboard] tokens_file {}: {problem}; write `name:token` lines",
                    path.display()
                )
            })
        }
        None => {
            let variable = &settings.tokens_env;
            let text = secret_from_env(variable).ok_or_else(|| {
                format!(
                    "set {variable} to `name:token` lines (one per person), or name a file of them in [dashboard] tokens_file"
                )
            })?;
            auth::parse_tokens(&text)
                .map_err(|problem| format!("{variable}: {problem}; set it to `name:token` lines"))
        }
    }
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
        if let Err(hint) = &tokens {
            tracing::warn!("the dashboard is not configured: {hint}");
        }
        let origins = std::iter::once(config.public_url())
            .chain(config.dashboard.aliases.iter().cloned())
            .filter_map(|url| origin_and_hosts(&url))
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
        }
    }
}

/// A URL's origin (`scheme://host[:port]`, the default port left out as browsers send it) and
/// the `Host` values a request for it carries (with and without a default port).
fn origin_and_hosts(url: &str) -> Option<(String, Vec<String>)> {
    let url = reqwest::Url::parse(url).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    let hosts = match (url.port(), url.port_or_known_default()) {
        (Some(port), _) => vec![format!("{host}:{port}")],
        (None, Some(default)) => vec![host.clone(), format!("{host}:{default}")],
        (None, None) => vec![host],
    };
    Some((url.origin().ascii_serialization(), hosts))
}

impl Dashboard {
    /// Whether a request's `Host` is one the dashboard is reached at. Any other is refused, so
    /// a page whose name was rebound to this host's address (DNS rebinding) reads nothing.
    fn answers_for(&self, host: Option<&str>) -> bool {
        host.is_some_and(|host| {
            let host = host.trim().to_ascii_lowercase();
            self.hosts.contains(&host)
        })
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
        .route("/dashboard/plugins", get(pages::plugins::show))
        .route(
            "/dashboard/sign-in",
            get(pages::sign_in::form).post(pages::sign_in::sign_in),
        )
        .route("/dashboard/sign-out", post(pages::sign_in::sign_out))
        .route("/dashboard/assets/{file}", get(asset))
        // Not a fallback: merged into the host's router, that would answer every unknown path
        // outside `/dashboard` as the dashboard.
        .route("/dashboard/{*rest}", get(pages::not_found))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Who is looking: the signed-in name, if any, and the token their forms carry.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub name: Option<String>,
    /// What the journal's queries show them: everything once signed in, only public
    /// repositories' deliveries, jobs, logs and deployments to a visitor.
    pub visibility: Visibility,
    /// The session's CSRF token (see `auth::Access::form_token`), when signed in.
    pub form_token: Option<String>,
    /// The session cookie's value, against which a form's token is checked.
    session: Option<String>,
}

/// No inline script or style, nothing from elsewhere, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Access for every dashboard request, and the security headers on every answer.
async fn guard(State(state): State<WebState>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    let mut response = if !state.dashboard.answers_for(host) {
        tracing::warn!(
            host = host.unwrap_or(""),
            "a dashboard request for another host refused"
        );
        pages::message(
            StatusCode::MISDIRECTED_REQUEST,
            "Wrong address",
            "The dashboard answers only at its own address ([server] public_url, or one of [dashboard] aliases).",
        )
    } else if path.starts_with("/dashboard/assets/") {
        next.run(request).await
    } else {
        match &state.dashboard.access {
            Err(hint) => pages::not_configured(hint),
            Ok(access) => {
                let cookie = request
                    .headers()
                    .get(header::COOKIE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|cookies| auth::cookie(cookies, auth::COOKIE));
                let session = match cookie {
                    Some(cookie) => live_session(&state, access, cookie).await,
                    None => None,
                };
                let viewer = Viewer {
                    visibility: match session {
                        Some(_) => Visibility::All,
                        None => Visibility::Public,
                    },
                    form_token: session
                        .as_ref()
                        .map(|(cookie, _)| access.form_token(cookie)),
                    name: session.as_ref().map(|(_, name)| name.clone()),
                    session: session.map(|(cookie, _)| cookie),
                };
                let signing = path == "/dashboard/sign-in" || path == "/dashboard/sign-out";
                let open = signing || state.dashboard.mode == DashboardAccess::PublicRead;
                if viewer.name.is_none() && request.method() == Method::POST && !signing {
                    // The actions need a sign-in whatever `access` says.
                    pages::message(
                        StatusCode::UNAUTHORIZED,
                        "Sign in first",
                        "Changing anything needs a sign-in. Sign in, then try again from the page.",
                    )
                } else if viewer.name.is_none() && !open {
                    let wanted = request
                        .uri()
                        .path_and_query()
                        .map_or("/dashboard", |p| p.as_str());
                    let query: String = form_urlencoded::Serializer::new(String::new())
                        .append_pair("next", wanted)
                        .finish();
                    Redirect::to(&format!("/dashboard/sign-in?{query}")).into_response()
                } else {
                    request.extensions_mut().insert(viewer);
                    next.run(request).await
                }
            }
        }
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !path.starts_with("/dashboard/assets/") {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The session `cookie` and its person's name, when it is genuine, not expired, and began
/// after that person last signed out. A journal that cannot say counts as signed out.
async fn live_session(
    state: &WebState,
    access: &auth::Access,
    cookie: &str,
) -> Option<(String, String)> {
    let (name, begun) = access.verify(cookie, unix_millis())?;
    match state.journal.sessions_ended(name).await {
        Ok(ended) if ended.is_some_and(|ended| begun <= ended) => None,
        Ok(_) => Some((cookie.to_owned(), name.to_owned())),
        Err(error) => {
            tracing::error!(%error, "cannot read when dashboard sessions ended");
            None
        }
    }
}

/// The stylesheet and script, built into the binary: no CDN, no build step.
async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (content_type, body): (&str, &'static str) = match file.as_str() {
        "dashboard.css" => (
            "text/css; charset=utf-8",
            include_str!("../../assets/dashboard.css"),
        ),
        "dashboard.js" => (
            "text/javascript; charset=utf-8",
            include_str!("../../assets/dashboard.js"),
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_origin_is_the_url_before_its_path_and_hosts_carry_its_port() {
        for (url, origin, hosts) in [
            (
                "http://127.0.0.1:9393",
                "http://127.0.0.1:9393",
                vec!["127.0.0.1:9393"],
            ),
            (
                "https://CI.example.com/",
                "https://ci.example.com",
                vec!["ci.example.com", "ci.example.com:443"],
            ),
            (
                "https://ci.example.com/switchyard/",
                "https://ci.example.com",
                vec!["ci.example.com", "ci.example.com:443"],
            ),
            ("http://[::1]:8080", "http://[::1]:8080", vec!["[::1]:8080"]),
        ] {
            let (found, found_hosts) = super::origin_and_hosts(url).unwrap();
            assert_eq!(found, origin);
            assert_eq!(found_hosts, hosts);
        }
    }
}
