//! The web dashboard at `/dashboard`: deliveries, jobs with a live log viewer, deployments and
//! plugins, rendered on the server with templates that escape by default (askama), working
//! without JavaScript and live with a little of it (`host/assets/dashboard.js`). Every page
//! needs a sign-in unless `[dashboard] access = "public-read"`; with no token configured every
//! page says which setting to set. Secrets are masked in everything rendered, as in job logs.

mod actions;
mod auth;
mod budget;
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

use crate::{
    config::{Config, DashboardAccess, secret_from_env, secret_from_file},
    ingress::Dispatcher,
    job_log::{JobLogs, LogLinks, LogReaders},
    journal::Journal,
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
    /// The public URL's origin (`https://host:port`): where the actions' forms come from.
    origin: String,
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
    pub fn new(config: &Config, tokens: Result<Vec<(String, String)>, String>, key: &[u8]) -> Self {
        if let Err(hint) = &tokens {
            tracing::warn!("the dashboard is not configured: {hint}");
        }
        Self {
            mode: config.dashboard.access,
            access: tokens.map(|tokens| auth::Access::new(tokens, key)),
            secure_cookie: config.public_url().starts_with("https://"),
            page_size: config.dashboard.page_size,
            origin: origin_of(&config.public_url()),
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

/// The origin (`scheme://host[:port]`) of a URL: everything before the path.
fn origin_of(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    match url[after_scheme..].find('/') {
        Some(path) => url[..after_scheme + path].to_owned(),
        None => url.to_owned(),
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
        .route("/dashboard", get(pages::deliveries))
        .route("/dashboard/", get(pages::deliveries))
        .route("/dashboard/deliveries", get(pages::deliveries))
        .route("/dashboard/deliveries/{id}", get(pages::delivery))
        .route("/dashboard/deliveries/{id}/payload", get(pages::payload))
        .route("/dashboard/deliveries/{id}/replay", post(actions::replay))
        .route("/dashboard/jobs", get(pages::jobs))
        .route("/dashboard/jobs/{id}", get(pages::job))
        .route("/dashboard/jobs/{id}/follow", get(pages::follow))
        .route("/dashboard/jobs/{id}/cancel", post(actions::cancel))
        .route("/dashboard/deployments", get(pages::deployments))
        .route("/dashboard/locks/release", post(actions::release_lock))
        .route("/dashboard/plugins", get(pages::plugins))
        .route(
            "/dashboard/sign-in",
            get(pages::sign_in_page).post(pages::sign_in),
        )
        .route("/dashboard/sign-out", post(pages::sign_out))
        .route("/dashboard/assets/{file}", get(asset))
        // Not a fallback: merged into the host's router, that would answer every unknown path
        // outside `/dashboard` as the dashboard.
        .route("/dashboard/{*rest}", get(pages::not_found))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Who is looking: the signed-in name, if any, and the token their forms carry.
#[derive(Clone, Debug, Default)]
pub struct Viewer {
    pub name: Option<String>,
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
    let mut response = if path.starts_with("/dashboard/assets/") {
        next.run(request).await
    } else {
        match &state.dashboard.access {
            Err(hint) => pages::not_configured(hint),
            Ok(access) => {
                let now = now_secs();
                let session = request
                    .headers()
                    .get(header::COOKIE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|cookies| auth::cookie(cookies, auth::COOKIE))
                    .filter(|cookie| access.verify(cookie, now).is_some())
                    .map(str::to_owned);
                let viewer = Viewer {
                    name: session
                        .as_deref()
                        .and_then(|cookie| access.verify(cookie, now))
                        .map(str::to_owned),
                    form_token: session.as_deref().map(|cookie| access.form_token(cookie)),
                    session,
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

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
    fn an_origin_is_the_url_before_its_path() {
        for (url, origin) in [
            ("http://127.0.0.1:9393", "http://127.0.0.1:9393"),
            ("https://ci.example.com/", "https://ci.example.com"),
            (
                "https://ci.example.com/switchyard/",
                "https://ci.example.com",
            ),
        ] {
            assert_eq!(super::origin_of(url), origin);
        }
    }
}
