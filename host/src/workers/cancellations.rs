//! Cancelling a job wherever it is: queued, running on this host, or running on another host
//! that shares the journal. The request is recorded in the journal first (so a queued job is
//! told as it starts, and another host reads it while renewing its lease), then this host's
//! own attempt, if it runs the job, is cancelled at once.
//!
//! Superseding (a newer job of the same line, such as a new push to a pull request) goes the
//! same way: the journal records the latest job of each line and asks the older one to cancel.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use switchyard_plugin_api::{CancelAnswer, CancelReason, HostError, Superseding};
use tokio_util::sync::CancellationToken;

use super::Attempt;
use crate::journal::{JobId, JobState, Journal, JournalError, Supersede};

/// The attempts running on this host, and the way to cancel any job. Cheap to clone.
#[derive(Clone)]
pub struct Cancellations {
    journal: Arc<dyn Journal>,
    running: Arc<Mutex<HashMap<JobId, Arc<Attempt>>>>,
}

impl Cancellations {
    pub fn new(journal: Arc<dyn Journal>) -> Self {
        Self {
            journal,
            running: Arc::default(),
        }
    }

    /// Asks for `job` to be cancelled for `reason`, on whichever host runs it, and returns the
    /// state it was in (`None`: no such job). A queued job is cancelled as its attempt starts;
    /// an ended one is left as it is.
    pub async fn request(
        &self,
        job: JobId,
        reason: CancelReason,
    ) -> Result<Option<JobState>, JournalError> {
        let state = self.journal.request_cancel(job, &reason).await?;
        self.cancel_here(job, reason);
        Ok(state)
    }

    /// A plugin's request to cancel its own job `job` (see `Host::cancel_job`).
    pub async fn request_for_plugin(
        &self,
        plugin: &str,
        job: JobId,
        by: String,
    ) -> Result<CancelAnswer, HostError> {
        let unknown = || HostError::InvalidRequest(format!("no job {job} of plugin {plugin:?}"));
        let record = match self.journal.job(job).await {
            Ok(record) => record,
            Err(JournalError::NoSuchJob(_)) => return Err(unknown()),
            Err(error) => return Err(journal_unavailable(error)),
        };
        if record.plugin != plugin {
            return Err(unknown());
        }
        let state = self
            .request(job, CancelReason::User { by })
            .await
            .map_err(journal_unavailable)?;
        Ok(match state {
            Some(JobState::Queued | JobState::Running) => CancelAnswer::Cancelling,
            _ => CancelAnswer::Ended,
        })
    }

    /// Makes `job` of `plugin` the latest of `line`, cancelling the job it replaces.
    pub async fn supersede(
        &self,
        plugin: &str,
        line: &str,
        job: JobId,
        sha: &str,
    ) -> Result<Superseding, HostError> {
        // Each plugin's lines are its own.
        let line = format!("{plugin}\n{line}");
        let supersede = self.journal.supersede(&line, job, sha).await;
        match supersede.map_err(journal_unavailable)? {
            Supersede::Stale { newer_sha } => Ok(Superseding::Stale { newer_sha }),
            Supersede::Latest { replaced } => {
                if let Some(older) = replaced {
                    let sha = sha.to_owned();
                    self.cancel_here(older, CancelReason::Superseded { sha });
                }
                Ok(Superseding::Latest)
            }
        }
    }

    /// Cancels `job`'s attempt if it runs on this host. Returns whether it did.
    pub fn cancel_here(&self, job: JobId, reason: CancelReason) -> bool {
        let attempt = self.running().get(&job).cloned();
        attempt.map(|attempt| attempt.cancel(reason)).is_some()
    }

    /// Passes on the cancellations other hosts ask of attempts running here, until `stopping`.
    pub(super) async fn follow_journal(self, stopping: CancellationToken) {
        loop {
            let asked = tokio::select! {
                asked = self.journal.cancel_requested() => asked,
                () = stopping.cancelled() => return,
            };
            for (job, reason) in asked {
                if self.cancel_here(job, reason.clone()) {
                    tracing::info!(%job, %reason, "job cancelled from another host");
                }
            }
        }
    }

    pub(super) fn running(&self) -> MutexGuard<'_, HashMap<JobId, Arc<Attempt>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn journal_unavailable(error: JournalError) -> HostError {
    HostError::Internal(format!("the journal: {error}"))
}
