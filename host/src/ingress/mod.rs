//! Ingress: the webhook endpoint. It verifies, parses just enough to route, has the journal
//! commit the delivery and its jobs, hands the jobs to the workers and answers, without ever
//! waiting for a plugin. Client faults get a 4xx with a short JSON reason; nothing is stored or
//! dispatched for them.

mod body;
mod delivery;
mod signature;

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

pub use body::{BodyError, BodyLimits, ReadBody};
pub use delivery::{IngressError, MAX_BODY_BYTES, VerifiedDelivery};
pub use signature::{SignatureError, SignatureHeaders, WebhookSecret, verify};

use crate::{
    config::Redeliveries,
    event::Delivery,
    github::GitHub,
    http_error::error_response,
    job_log::LogLinks,
    journal::{Appended, JournalError, Queue},
    plugins::Plugins,
    plugins::interest,
    workers::Workers,
};

/// Settings ingress reads on every request.
pub struct IngressSettings {
    pub secret: WebhookSecret,
    pub accept_sha1: bool,
    pub redeliveries: Redeliveries,
    /// Bounds on reading request bodies, the webhook's and the admin calls'.
    pub bodies: BodyLimits,
}

/// What the webhook endpoint uses.
#[derive(Clone)]
pub struct IngressState {
    pub settings: Arc<IngressSettings>,
    /// The host's GitHub identity: it is shown installation events.
    pub github: Arc<dyn GitHub>,
    pub plugins: Arc<Plugins>,
    pub dispatcher: Dispatcher,
    /// Each job's log link, in the answer.
    pub links: LogLinks,
}

/// `POST {webhook_path}`.
pub async fn receive(
    State(state): State<IngressState>,
    VerifiedDelivery(delivery): VerifiedDelivery,
) -> Result<Response, IngressError> {
    if delivery.kind.is_ping() {
        tracing::info!(delivery = %delivery.id, "ping received");
        return Ok((
            StatusCode::OK,
            Json(json!({"delivery": delivery.id.as_str(), "pong": true})),
        )
            .into_response());
    }
    if matches!(
        delivery.kind.as_str(),
        "installation" | "installation_repositories"
    ) {
        state
            .github
            .observe(delivery.kind.as_str(), &delivery.payload);
    }
    let plugins = state.plugins.current();
    let targets = interest::route(&plugins, &delivery);
    // A comment runs its commands once, whatever is redelivered: a replay from the dashboard
    // is the way to run one again (and passes the trust check again).
    let rerun = state.settings.redeliveries == Redeliveries::Rerun
        && delivery.kind.as_str() != "issue_comment";
    let delivery = Arc::new(delivery);
    let appended = state
        .dispatcher
        .commit_and_dispatch(Arc::clone(&delivery), targets, rerun)
        .await
        .map_err(|error| {
            tracing::error!(delivery = %delivery.id, error = error.to_string(), "journal append failed");
            if error.is_unavailable() {
                IngressError::Unavailable
            } else {
                IngressError::Internal
            }
        })?;
    match appended {
        Appended::Duplicate => {
            tracing::info!(delivery = %delivery.id, "delivery seen before; not dispatched again");
            Ok((
                StatusCode::OK,
                Json(json!({"delivery": delivery.id.as_str(), "duplicate": true, "jobs": []})),
            )
                .into_response())
        }
        Appended::New(jobs) => {
            let count = jobs.len();
            tracing::debug!(delivery = %delivery.id, event = %delivery.kind, jobs = count, "delivery accepted");
            // Each job with its log link: what `switchyard send` shows a person trying it, and
            // what GitHub's Recent Deliveries shows.
            let jobs: Vec<_> = jobs
                .iter()
                .map(|job| json!({"job": job.id.0, "plugin": job.plugin, "log": state.links.url(job.id, job.link_salt)}))
                .collect();
            let answer = json!({"delivery": delivery.id.as_str(), "jobs": jobs});
            Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
        }
    }
}

/// What stores a delivery and hands its jobs over: the webhook, replays from the admin call and
/// from the dashboard.
#[derive(Clone)]
pub struct Dispatcher {
    pub journal: Arc<dyn Queue>,
    pub workers: Workers,
}

impl Dispatcher {
    /// Has the journal commit `delivery` with a job per target and hands the jobs to the
    /// workers, in a task of its own: once the commit is under way it runs to the hand-over even
    /// if the client goes (GitHub gives up after 10 s) and this request's future is dropped.
    pub async fn commit_and_dispatch(
        &self,
        delivery: Arc<Delivery>,
        targets: Vec<String>,
        rerun: bool,
    ) -> Result<Appended, JournalError> {
        let (journal, workers) = (Arc::clone(&self.journal), self.workers.clone());
        let handed_over = tokio::spawn(async move {
            let appended = journal.append(delivery, targets, rerun).await?;
            if let Appended::New(jobs) = &appended {
                workers.dispatch(jobs.clone());
            }
            Ok(appended)
        });
        handed_over.await.map_err(|_| JournalError::Unavailable)?
    }
}

/// Answer for other methods on the webhook path.
pub async fn method_not_allowed() -> Response {
    let mut response = error_response(StatusCode::METHOD_NOT_ALLOWED, "use POST");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}
