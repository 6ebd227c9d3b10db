//! What every dashboard page shares: the header with the signed-in name and the job counts,
//! and rendering within the render budget.

use askama::Template;
use axum::{
    http::header,
    response::{IntoResponse, Response},
};

use super::super::{
    Viewer, WebState,
    budget::Reserved,
    message::{internal_error, journal_failed},
};
use crate::ingress::MAX_BODY_BYTES;
use crate::journal::JobCounts;

/// The header every page has.
pub struct Head {
    pub title: String,
    pub user: Option<String>,
    /// The session's CSRF token, for the forms of the actions.
    pub form_token: String,
    pub counts: JobCounts,
}

/// A page rendered within its reservation, and sent with its size kept reserved until the
/// client has taken it (see `budget`).
pub(super) fn page(reserved: Reserved, template: &impl Template) -> Response {
    match template.render() {
        Ok(page) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
                (header::CONTENT_LENGTH, page.len().to_string()),
            ],
            reserved.body(page.into()),
        )
            .into_response(),
        Err(error) => {
            tracing::error!(error = error.to_string(), "cannot render a dashboard page");
            internal_error()
        }
    }
}

/// What a page may hold besides a log window or a payload: its rows, trail and header.
pub(super) const PAGE_BYTES: usize = 2 << 20;

/// A payload read back from the journal: compressed and not, each at most GitHub's largest.
pub(super) const PAYLOAD_READ: usize = 2 * MAX_BODY_BYTES;

/// Reserves `bytes` in the dashboard's budget.
pub(super) async fn reserve(state: &WebState, bytes: usize) -> Result<Reserved, Response> {
    state.dashboard.budget.reserve(bytes).await
}

pub(super) async fn head(
    state: &WebState,
    viewer: &Viewer,
    title: String,
) -> Result<Head, Response> {
    let hour_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let since = hour_ago
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let counts = state
        .journal
        .job_counts(&since, viewer.visibility)
        .await
        .map_err(journal_failed)?;
    Ok(Head {
        title,
        user: viewer.name.clone(),
        form_token: viewer.form_token.clone().unwrap_or_default(),
        counts,
    })
}
