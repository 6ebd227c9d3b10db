//! What a viewer is shown: a delivery or a job only when their visibility allows it, and any
//! text with the host's secrets masked.

use super::super::{Viewer, WebState};
use crate::journal::{JobFilter, JobId, JobRow, JournalError, RecentFilter, Visibility};

/// Masks secrets in text shown on a page, as job logs mask them.
pub(super) fn masked(state: &WebState, text: &str) -> String {
    String::from_utf8_lossy(&state.logs.mask(text.as_bytes())).into_owned()
}

/// The delivery `id` with its payload, when `viewer` may see it: the visibility filter of the
/// deliveries list first, so a private repository's delivery is as absent as an unknown one.
pub(in crate::web) async fn visible_delivery(
    state: &WebState,
    viewer: &Viewer,
    id: &str,
) -> Result<Option<crate::event::Delivery>, JournalError> {
    if viewer.visibility != Visibility::All {
        let filter = RecentFilter {
            limit: 1,
            id: Some(id.to_owned()),
            visibility: viewer.visibility.clone(),
            ..RecentFilter::default()
        };
        if state.journal.recent(filter).await?.is_empty() {
            return Ok(None);
        }
    }
    state.journal.delivery(id).await
}

/// The job `id` with its delivery's facts, when `viewer` may see it.
pub(super) async fn visible_job(
    state: &WebState,
    viewer: &Viewer,
    id: JobId,
) -> Result<Option<JobRow>, JournalError> {
    let filter = JobFilter {
        limit: 1,
        id: Some(id),
        visibility: viewer.visibility.clone(),
        ..JobFilter::default()
    };
    Ok(state.journal.jobs(filter).await?.into_iter().next())
}
