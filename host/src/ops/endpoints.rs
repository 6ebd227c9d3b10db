//! Operations endpoints: health (`/healthz`, `/readyz`), Prometheus metrics (`/metrics`), the
//! webhook answer counter, and the admin calls behind `switchyard replay` and `switchyard
//! plugins`. Admin calls are POSTs signed with the webhook secret, as `signed_call` describes,
//! so they need no other credential.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    http_error::error_response,
    ingress::{BodyError, Dispatcher, IngressSettings},
    job_log::LogLinks,
    journal::{Appended, Journal},
    ops::metrics::Metrics,
    ops::signed_call::{AdminCallError, AdminSignature, unix_now},
    plugins::Plugins,
    plugins::interest,
};

/// What the operations endpoints use.
#[derive(Clone)]
pub struct OpsState {
    /// The webhook secret admin calls are signed with, and the body bounds.
    pub ingress: Arc<IngressSettings>,
    pub journal: Arc<dyn Journal>,
    pub plugins: Arc<Plugins>,
    pub metrics: Arc<Metrics>,
    /// Replays store and dispatch through it, as the webhook does.
    pub dispatcher: Dispatcher,
    pub links: LogLinks,
}

/// `GET /healthz`: the process is up and serving.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the journal takes writes and the plugins are loaded.
pub async fn readyz(State(state): State<OpsState>) -> Response {
    match state.journal.ping().await {
        Ok(()) => {
            let plugins = state.plugins.current().iter().count();
            Json(json!({"journal": "writable", "plugins": plugins})).into_response()
        }
        Err(error) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("the journal is not writable: {error}"),
        ),
    }
}

/// `GET /metrics`, in the Prometheus text format.
pub async fn metrics(State(state): State<OpsState>) -> Response {
    // Counted in the journal: queued jobs may be there only (see `workers`).
    if let Ok(unfinished) = state.journal.unfinished_count().await {
        state.metrics.queue_depth.set(unfinished as i64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// Counts every answer of the webhook endpoint. Only deliveries that were accepted are
/// labelled with their event: anything else could be an unsigned request naming any event.
pub async fn count_deliveries(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let event = request
        .headers()
        .get("x-github-event")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.run(request).await;
    let status = response.status();
    let event = match event {
        Some(event) if status.is_success() => event,
        _ => "rejected".to_owned(),
    };
    let labels = [event.as_str(), status.as_str()];
    metrics.deliveries.with_label_values(&labels).inc();
    if status == StatusCode::UNAUTHORIZED {
        metrics.signature_failures.inc();
    }
    response
}

/// Body of `POST /admin/replay`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReplayRequest {
    pub delivery: String,
    /// Only this plugin; default: every plugin the delivery routes to now.
    #[serde(default)]
    pub plugin: Option<String>,
}

/// Admin requests are a few hundred bytes.
const MAX_ADMIN_BODY: usize = 64 * 1024;

/// `POST /admin/replay`: dispatch a stored delivery again, as new jobs.
pub async fn replay(State(state): State<OpsState>, request: Request) -> Response {
    let request: ReplayRequest = match admin_body(&state, request).await {
        Ok(request) => request,
        Err(refused) => return refused.into_response(),
    };
    let delivery = match state.journal.delivery(&request.delivery).await {
        Ok(Some(delivery)) => delivery,
        Ok(None) => {
            let message = format!("no delivery {:?} in the journal", request.delivery);
            return error_response(StatusCode::NOT_FOUND, &message);
        }
        Err(error) => return error_response(StatusCode::SERVICE_UNAVAILABLE, &error.to_string()),
    };
    let plugins = state.plugins.current();
    let targets = match interest::replay_targets(&plugins, &delivery, request.plugin.as_deref()) {
        Ok(targets) => targets,
        Err(message) => return error_response(StatusCode::NOT_FOUND, &message),
    };
    match state
        .dispatcher
        .commit_and_dispatch(Arc::new(delivery), targets, true)
        .await
    {
        Ok(Appended::New(jobs)) => {
            let listed: Vec<_> = jobs
                .iter()
                .map(|job| json!({"job": job.id.0, "plugin": job.plugin, "log": state.links.url(job.id, job.link_salt)}))
                .collect();
            tracing::info!(delivery = %request.delivery, jobs = jobs.len(), "delivery replayed");
            let answer = json!({"delivery": request.delivery, "jobs": listed});
            (StatusCode::ACCEPTED, Json(answer)).into_response()
        }
        Ok(Appended::Duplicate) => error_response(StatusCode::CONFLICT, "not replayed"),
        Err(error) => error_response(StatusCode::SERVICE_UNAVAILABLE, &error.to_string()),
    }
}

/// `POST /admin/plugins`: the running plugin set.
pub async fn plugins(State(state): State<OpsState>, request: Request) -> Response {
    if let Err(refused) = admin_body::<serde::de::IgnoredAny>(&state, request).await {
        return refused.into_response();
    }
    let set = state.plugins.current();
    let listed: Vec<_> = set
        .iter()
        .map(|plugin| {
            json!({
                "name": plugin.name(),
                "package": plugin.info.package,
                "version": plugin.info.version,
                "events": plugin.subscriptions().iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({ "plugins": listed })).into_response()
}

/// Why an admin call was refused.
enum Refused {
    Body(BodyError),
    Other(StatusCode, String),
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Self::Body(error) => error.into_response(),
            Self::Other(status, message) => error_response(status, &message),
        }
    }
}

/// Reads an admin call's body within the ingress bounds, checks its signature (see
/// `signed_call`) and claims its nonce, then parses it.
async fn admin_body<T: serde::de::DeserializeOwned>(
    state: &OpsState,
    request: Request,
) -> Result<T, Refused> {
    let path = request.uri().path().to_owned();
    let (parts, body) = state
        .ingress
        .bodies
        .read(request, MAX_ADMIN_BODY)
        .await
        .map_err(Refused::Body)?;
    let unauthorized = |error: AdminCallError| {
        tracing::warn!(%path, error = error.to_string(), "admin call refused");
        Refused::Other(StatusCode::UNAUTHORIZED, error.to_string())
    };
    let now = unix_now();
    let signed = AdminSignature::verify(
        &state.ingress.secret,
        &path,
        &parts.headers,
        &body.bytes,
        now,
    )
    .map_err(unauthorized)?;
    let claimed = state
        .journal
        .claim_nonce(&signed.nonce, signed.remember_until(), now)
        .await
        .map_err(|error| Refused::Other(StatusCode::SERVICE_UNAVAILABLE, error.to_string()))?;
    if !claimed {
        return Err(unauthorized(AdminCallError::Replayed));
    }
    serde_json::from_slice(&body.bytes).map_err(|error| {
        Refused::Other(StatusCode::BAD_REQUEST, format!("malformed body: {error}"))
    })
}
