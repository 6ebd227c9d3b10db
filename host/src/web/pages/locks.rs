//! The locks as the deployments page shows them: who holds each, and which jobs wait for it.

use axum::response::Response;

use super::super::message::journal_failed;
use super::super::{Viewer, WebState};
use super::visible::visible_job;
use crate::journal::{JobId, Visibility};

/// A lock, its holder and the jobs waiting for it.
pub(super) struct LockView {
    pub(super) name: String,
    pub(super) job: JobId,
    pub(super) attempt: u32,
    pub(super) acquired_at: String,
    pub(super) waiting: Vec<(JobId, String)>,
}

/// The locks held now that `viewer` may see (a lock shows as its holder's job does), each
/// with the jobs waiting for it.
pub(super) async fn lock_views(
    state: &WebState,
    viewer: &Viewer,
) -> Result<Vec<LockView>, Response> {
    let mut locks = match state.journal.locks().await {
        Ok(locks) => locks,
        Err(error) => return Err(journal_failed(error)),
    };
    if viewer.visibility != Visibility::All {
        // A lock shows as its holder's job does.
        let mut shown = Vec::with_capacity(locks.len());
        for lock in locks {
            match visible_job(state, viewer, lock.job).await {
                Ok(Some(_)) => shown.push(lock),
                Ok(None) => {}
                Err(error) => return Err(journal_failed(error)),
            }
        }
        locks = shown;
    }
    let waiting = state.locks.waiting_now();
    Ok(locks
        .into_iter()
        .map(|lock| LockView {
            waiting: waiting
                .iter()
                .filter(|wait| wait.name == lock.name)
                .map(|wait| (wait.job, wait.since.clone()))
                .collect(),
            name: lock.name,
            job: lock.job,
            attempt: lock.attempt,
            acquired_at: lock.acquired_at,
        })
        .collect())
}
