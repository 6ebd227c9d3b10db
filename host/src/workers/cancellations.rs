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
    time::{Duration, Instant},
};

use switchyard_plugin_api::{CancelAnswer, CancelReason, HostError, LineLatest, Superseding};
use tokio_util::sync::CancellationToken;

use super::Attempt;
use crate::journal::{JobId, JobState, Journal, JournalError, LostLease, Supersede};

/// How long a cancel asked of a running job no attempt here had registered is kept for one
/// that registers: far longer than the moment between a start and its registration.
const EARLY_CANCEL_KEPT: Duration = Duration::from_secs(60);

/// How long before a lost lease may expire the attempt's grace ends: its commands are dead
/// before another host could start the job.
const LEASE_MARGIN: Duration = Duration::from_millis(500);

/// The attempts running on this host, and the way to cancel any job. Cheap to clone.
#[derive(Clone)]
pub struct Cancellations {
    journal: Arc<dyn Journal>,
    attempts: Arc<Mutex<HashMap<JobId, Arc<Attempt>>>>,
    /// Cancels asked of jobs the journal has as running while no attempt of theirs ran here:
    /// one may be between its start (which read no cancel) and [`Self::register`], and is told
    /// when it registers. (One running on another host hears of it from the journal.) Locked
    /// only under `attempts`.
    early: Arc<Mutex<Vec<(JobId, CancelReason, Instant)>>>,
}

impl Cancellations {
    pub fn new(journal: Arc<dyn Journal>) -> Self {
        Self {
            journal,
            attempts: Arc::default(),
            early: Arc::default(),
        }
    }

    /// Records that `attempt` runs here, cancelling it at once if that was asked while it
    /// was starting.
    pub(super) fn register(&self, attempt: Arc<Attempt>) {
        let mut attempts = self.attempts();
        let mut early = self.early.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = early.iter().position(|(job, ..)| *job == attempt.job) {
            let (_, reason, _) = early.swap_remove(at);
            attempt.cancel(reason);
        }
        attempts.insert(attempt.job, attempt);
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
        let starting = state == Some(JobState::Running);
        self.cancel_here_or_as_it_registers(job, reason, starting);
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
                    let reason = CancelReason::Superseded { sha };
                    self.cancel_here_or_as_it_registers(older, reason, true);
                }
                Ok(Superseding::Latest)
            }
        }
    }

    /// The latest job of `plugin`'s `line`, with its state and recorded verdict.
    pub async fn latest_of_line(
        &self,
        plugin: &str,
        line: &str,
    ) -> Result<Option<LineLatest>, HostError> {
        let line = format!("{plugin}\n{line}");
        let latest = self.journal.latest_of_line(&line).await;
        let Some((job, sha)) = latest.map_err(journal_unavailable)? else {
            return Ok(None);
        };
        let record = self.journal.job(job).await.map_err(journal_unavailable)?;
        Ok(Some(LineLatest {
            job: job.0,
            sha,
            running: matches!(record.state, JobState::Queued | JobState::Running),
            verdict: record.verdict,
        }))
    }

    /// Cancels `job`'s attempt if it runs on this host. Returns whether it did.
    pub fn cancel_here(&self, job: JobId, reason: CancelReason) -> bool {
        self.cancel_here_or_as_it_registers(job, reason, false)
    }

    /// Cancels `job`'s attempt if it runs on this host; if none does and `starting` (the
    /// journal has the job running), keeps the reason for an attempt that registers soon.
    fn cancel_here_or_as_it_registers(
        &self,
        job: JobId,
        reason: CancelReason,
        starting: bool,
    ) -> bool {
        let attempts = self.attempts();
        if let Some(attempt) = attempts.get(&job) {
            attempt.cancel(reason);
            return true;
        }
        if starting {
            let mut early = self.early.lock().unwrap_or_else(|p| p.into_inner());
            early.retain(|(.., asked)| asked.elapsed() < EARLY_CANCEL_KEPT);
            early.push((job, reason, Instant::now()));
        }
        false
    }

    /// Passes on the cancellations other hosts ask of attempts running here, and stops those
    /// whose leases this host lost, until `stopped` (the end of the shutdown's grace).
    pub(super) async fn follow_journal(self, stopped: CancellationToken) {
        loop {
            tokio::select! {
                asked = self.journal.cancel_requested() => {
                    for (job, reason) in asked {
                        if self.cancel_here(job, reason.clone()) {
                            tracing::info!(%job, reason = reason.to_string(), "job cancelled from another host");
                        }
                    }
                }
                lost = self.journal.leases_lost() => {
                    for lease in lost {
                        self.lease_lost(lease);
                    }
                }
                () = stopped.cancelled() => return,
            }
        }
    }

    /// Stops the attempt whose lease was lost: the plugin is told, and its grace ends (its
    /// commands killed) a little before another host may take the job.
    fn lease_lost(&self, lease: LostLease) {
        let attempt = self.attempts().get(&lease.job).cloned();
        let Some(attempt) = attempt.filter(|attempt| attempt.number == lease.attempt) else {
            return;
        };
        attempt.cancel(CancelReason::LeaseLost {
            runs_again: attempt.attempts_left,
        });
        let grace_until = lease.until.checked_sub(LEASE_MARGIN).unwrap_or(lease.until);
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep_until(grace_until.into()) => attempt.end_grace(),
                () = attempt.ended() => {}
            }
        });
    }

    pub(super) fn attempts(&self) -> MutexGuard<'_, HashMap<JobId, Arc<Attempt>>> {
        self.attempts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn journal_unavailable(error: JournalError) -> HostError {
    HostError::Internal(format!("the journal: {error}"))
}

#[cfg(test)]
mod tests {
    use switchyard_plugin_api::CancelReason;

    use super::*;
    use crate::journal::{
        Appended, SqliteJournal,
        conformance::{delivery, plugins},
    };

    #[tokio::test]
    async fn a_cancel_asked_between_a_start_and_its_registration_reaches_the_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let journal: Arc<dyn Journal> =
            Arc::new(SqliteJournal::open(&dir.path().join("j.db")).unwrap());
        let Appended::New(jobs) = journal
            .append(delivery("d-1"), plugins(&["a", "b"]), false)
            .await
            .unwrap()
        else {
            panic!("new delivery");
        };
        let cancellations = Cancellations::new(Arc::clone(&journal));
        for job in &jobs {
            // Started: the start read no cancel, and the attempt is not registered yet.
            let started = journal.start_attempt(job.id, 0).await.unwrap().unwrap();
            assert_eq!(started.cancel, None);
        }
        let (asked, other) = (jobs[0].id, jobs[1].id);
        let reason = CancelReason::User { by: "mona".into() };
        let state = cancellations.request(asked, reason.clone()).await.unwrap();
        assert_eq!(state, Some(JobState::Running));

        let attempt = Attempt::new(asked, 1);
        cancellations.register(Arc::clone(&attempt));
        assert_eq!(attempt.cancel_reason(), Some(&reason));
        // Told once, to that job only.
        let untouched = Attempt::new(other, 1);
        cancellations.register(Arc::clone(&untouched));
        assert_eq!(untouched.cancel_reason(), None);
        assert!(cancellations.early.lock().unwrap().is_empty());
    }
}
