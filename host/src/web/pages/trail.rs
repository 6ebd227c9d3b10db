//! The audit trail a page shows: the actions people took on what it is about, and the one
//! whose form led to it.

use std::collections::HashMap;

use axum::response::Response;

use super::super::message::journal_failed;
use super::super::{Viewer, WebState};
use super::{params::param, visible::masked};
use crate::journal::{ActionFilter, ActionRecord};

/// Actions of the audit trail shown on a page, at most this many.
pub(super) const TRAIL: usize = 50;

/// The audit trail `filter` selects (newest first), and the action `?action=ID` names: the
/// result of the form that led here.
pub(super) async fn trail(
    state: &WebState,
    viewer: &Viewer,
    params: &HashMap<String, String>,
    filter: ActionFilter,
) -> Result<(Option<ActionRecord>, Vec<ActionRecord>), Response> {
    let actions = state
        .journal
        .actions(ActionFilter {
            limit: TRAIL,
            visibility: viewer.visibility.clone(),
            ..filter
        })
        .await
        .map_err(journal_failed)?;
    let notice = match param(params, "action").and_then(|id| id.parse::<i64>().ok()) {
        Some(id) => {
            let one = ActionFilter {
                limit: 1,
                id: Some(id),
                visibility: viewer.visibility.clone(),
                ..ActionFilter::default()
            };
            let found = state.journal.actions(one).await.map_err(journal_failed)?;
            found.into_iter().next()
        }
        None => None,
    };
    let masked_action = |mut action: ActionRecord| {
        action.outcome = masked(state, &action.outcome);
        action.lock = action.lock.map(|lock| masked(state, &lock));
        action
    };
    Ok((
        notice.map(masked_action),
        actions.into_iter().map(masked_action).collect(),
    ))
}
