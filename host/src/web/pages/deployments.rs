//! The deployments page: what is deployed now per repository and environment, the history of
//! deployment statuses, and the locks with the releases people made.

use askama::Template;
use axum::{
    Extension,
    extract::{Query, State},
    response::Response,
};
use serde::Deserialize;

use super::super::message::journal_failed;
use super::super::{Viewer, WebState};
use super::{
    deployments_unlock::{StickyLockView, sticky_lock_views},
    jobs::{DeploymentFields, short},
    layout::{Head, PAGE_BYTES, PAYLOAD_READ, filters, head, page, reserve},
    locks::{LockView, lock_views},
    params::Params,
    trail::trail,
    visible::masked,
};
use crate::journal::{ActionFilter, ActionRecord, PostFilter, RecentFilter};

/// A deployment status as the deployments page shows it: from a `deployment_status` delivery,
/// or posted by a job here.
#[derive(Clone)]
struct DeploymentView {
    repository: String,
    environment: String,
    state: String,
    sha: String,
    /// Who: the status's creator on GitHub, or the job that posted it.
    by: String,
    at: String,
    /// Where it is recorded: the delivery's page or the job's.
    link: String,
    source: String,
}

#[derive(Template)]
#[template(path = "deployments.html")]
struct DeploymentsPage {
    head: Head,
    notice: Option<ActionRecord>,
    /// Locks released by people.
    actions: Vec<ActionRecord>,
    current: Vec<DeploymentView>,
    locks: Vec<LockView>,
    /// The deployer's sticky locks (`/lock`), with Unlock.
    sticky: Vec<StickyLockView>,
    history: Vec<DeploymentView>,
}

/// The fields of a `deployment_status` delivery the deployments page shows (read with serde,
/// as a job's subject is).
#[derive(Deserialize, Default)]
#[serde(default)]
struct StatusFields {
    deployment: Option<DeploymentFields>,
    deployment_status: Option<PostedStatusFields>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PostedStatusFields {
    state: Option<String>,
    created_at: Option<String>,
    creator: Option<LoginField>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LoginField {
    login: Option<String>,
}

/// Deployment statuses read back from the journal, at most this many of each source.
const DEPLOYMENT_HISTORY: usize = 100;

/// An RFC 3339 time, for ordering statuses from both sources.
fn instant(at: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()
}

/// `GET /dashboard/deployments`: what is deployed now per repository and environment (the last
/// `success`), from the deployment statuses jobs here posted and from `deployment_status`
/// deliveries, the history, and who holds and who waits for each lock.
pub(in crate::web) async fn show(
    State(state): State<WebState>,
    Extension(viewer): Extension<Viewer>,
    Query(params): Params,
) -> Response {
    let reserved = match reserve(&state, PAYLOAD_READ + PAGE_BYTES).await {
        Ok(reserved) => reserved,
        Err(busy) => return busy,
    };
    let filter = RecentFilter {
        limit: DEPLOYMENT_HISTORY,
        event: Some("deployment_status".to_owned()),
        visibility: viewer.visibility.clone(),
        ..RecentFilter::default()
    };
    let records = match state.journal.recent(filter).await {
        Ok(records) => records,
        Err(error) => return journal_failed(error),
    };
    let mut history = Vec::new();
    for record in records {
        let Ok(Some(delivery)) = state.journal.delivery(&record.id).await else {
            continue;
        };
        let Ok(status) = serde_json::from_slice::<StatusFields>(&delivery.payload) else {
            continue;
        };
        drop(delivery);
        let text = |v: Option<String>| masked(&state, &v.unwrap_or_default());
        let deployment = status.deployment.unwrap_or_default();
        let posted = status.deployment_status.unwrap_or_default();
        history.push(DeploymentView {
            repository: record.repository.clone().unwrap_or_default(),
            environment: text(deployment.environment),
            state: text(posted.state),
            sha: short(&text(deployment.sha)).to_owned(),
            by: text(posted.creator.unwrap_or_default().login),
            at: text(posted.created_at),
            link: format!(
                "/dashboard/deliveries/{}",
                form_urlencoded::byte_serialize(record.id.as_bytes()).collect::<String>()
            ),
            source: format!("delivery {}", record.id),
        });
    }
    let filter = PostFilter {
        limit: DEPLOYMENT_HISTORY,
        deployments: true,
        visibility: viewer.visibility.clone(),
        ..PostFilter::default()
    };
    let posts = match state.journal.posts(filter).await {
        Ok(posts) => posts,
        Err(error) => return journal_failed(error),
    };
    for record in posts {
        let post = record.post;
        if post.kind != "deployment_status" {
            continue;
        }
        let text = |v: Option<String>| masked(&state, &v.unwrap_or_default());
        history.push(DeploymentView {
            repository: masked(&state, &post.repository),
            environment: text(post.environment),
            state: text(post.state),
            sha: short(&text(post.sha)).to_owned(),
            by: format!("job #{}", post.job),
            at: record.at,
            link: format!("/dashboard/jobs/{}", post.job),
            source: format!("posted by job #{}", post.job),
        });
    }
    // Newest first, whichever source told.
    history.sort_by_key(|d| std::cmp::Reverse(instant(&d.at)));
    let mut current: Vec<DeploymentView> = Vec::new();
    for status in history.iter().filter(|d| d.state == "success") {
        let seen = current
            .iter()
            .any(|c| c.repository == status.repository && c.environment == status.environment);
        if !seen {
            current.push(status.clone());
        }
    }
    let locks = match lock_views(&state, &viewer).await {
        Ok(locks) => locks,
        Err(response) => return response,
    };
    let sticky = match sticky_lock_views(&state, &viewer).await {
        Ok(sticky) => sticky,
        Err(error) => return journal_failed(error),
    };
    let filter = ActionFilter {
        action: Some("release".to_owned()),
        ..ActionFilter::default()
    };
    let (notice, actions) = match trail(&state, &viewer, &params, filter).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let head = match head(&state, &viewer, "Deployments".to_owned()).await {
        Ok(head) => head,
        Err(response) => return response,
    };
    page(
        reserved,
        &DeploymentsPage {
            head,
            notice,
            actions,
            current,
            locks,
            sticky,
            history,
        },
    )
}
