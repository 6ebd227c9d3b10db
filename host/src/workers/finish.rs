//! Finishing an attempt: what its result comes to (succeeded, a retry, failed; handed back
//! after a shutdown; let go with a lost lease), its workspace removed, and its end recorded
//! in the journal (which frees its locks), tried again for as long as the journal refuses it.

use std::{sync::Arc, time::Duration};

use switchyard_plugin_api::{CancelReason, Outcome, PluginError, Verdict};

use super::{Attempt, Inner, READ_BACK_RETRY};
use crate::journal::{AttemptEnd, JobId, JournalError, PendingJob, unix_millis};

/// Longest pause between tries to record an attempt's end the journal refused (a full disk).
const RECORD_RETRY_MAX: Duration = Duration::from_secs(30);

impl Inner {
    /// Turns an attempt's result into its end, counts and logs it, and leaves recording it to
    /// a task of its own. `started` is when the plugin was called.
    pub(super) async fn ended(
        self: &Arc<Self>,
        job: PendingJob,
        attempt: &Attempt,
        result: Result<Outcome, PluginError>,
        started: std::time::Instant,
    ) {
        let number = attempt.number;
        let counted = number.saturating_sub(job.interruptions);
        // Stopped on purpose (a person, a newer job, too many shutdowns): not to try again.
        let stopped = matches!(
            attempt.cancel_reason(),
            Some(
                CancelReason::User { .. }
                    | CancelReason::Superseded { .. }
                    | CancelReason::ShutdownGivenUp { .. }
            )
        );
        let end = match result {
            Ok(outcome) => {
                let verdict = outcome.verdict();
                let note = match outcome {
                    Outcome::Done => None,
                    Outcome::Skipped(reason) => Some(format!("skipped: {reason}")),
                    Outcome::Finished { summary, .. } if summary.is_empty() => None,
                    Outcome::Finished { summary, .. } => Some(summary),
                };
                AttemptEnd::Succeeded { note, verdict }
            }
            Err(error) if attempt.cancel_reason() == Some(&CancelReason::Shutdown) => {
                self.hand_back(&job, number, &error).await;
                return;
            }
            Err(error) => {
                if let Some(reason @ CancelReason::LeaseLost { .. }) = attempt.cancel_reason() {
                    self.lease_lost(&job, number, reason, &error).await;
                    return;
                }
                if error.retryable && !stopped && attempt.attempts_left {
                    let backoff = self.deps.retry_backoff * 2u32.saturating_pow(counted - 1);
                    AttemptEnd::WillRetry {
                        error: error.message,
                        not_before: unix_millis() + backoff.as_millis() as u64,
                    }
                } else {
                    AttemptEnd::Failed {
                        error: error.message,
                        verdict: failed_verdict(attempt.cancel_reason()),
                    }
                }
            }
        };
        // Plain words and fields, for the log; the metrics count verdicts beside outcomes.
        let (outcome, error, note) = match &end {
            AttemptEnd::Succeeded { note: None, .. } => ("succeeded", None, None),
            AttemptEnd::Succeeded {
                note: Some(note),
                verdict: Verdict::Skipped,
            } => ("skipped", None, Some(note.as_str())),
            AttemptEnd::Succeeded {
                note: Some(note), ..
            } => ("succeeded", None, Some(note.as_str())),
            AttemptEnd::Failed { error, .. } => ("failed", Some(error.as_str()), None),
            AttemptEnd::WillRetry { error, .. } => ("retried", Some(error.as_str()), None),
        };
        let verdict = match &end {
            AttemptEnd::Succeeded { verdict, .. } | AttemptEnd::Failed { verdict, .. } => {
                Some(*verdict)
            }
            AttemptEnd::WillRetry { .. } => None,
        };
        let metrics = &self.deps.metrics;
        metrics
            .jobs
            .with_label_values(&[&job.plugin, outcome])
            .inc();
        let labels = [job.plugin.as_str()];
        let histogram = metrics.job_duration.with_label_values(&labels);
        histogram.observe(started.elapsed().as_secs_f64());
        if let Some(verdict) = verdict {
            metrics
                .verdicts
                .with_label_values(&[&job.plugin, verdict.as_str()])
                .inc();
        }
        tracing::info!(
            delivery = %job.delivery.id,
            job = %job.id,
            plugin = %job.plugin,
            attempt = number,
            elapsed_ms = started.elapsed().as_millis() as u64,
            outcome = %outcome,
            verdict = verdict.map(Verdict::as_str),
            error,
            note,
            "job attempt ended"
        );
        // The worker is free as soon as the plugin returned: recording the end is the host's
        // bookkeeping, and waiting for its commit would idle the worker for a batch.
        let inner = Arc::clone(self);
        self.tasks
            .spawn(async move { inner.finish(job, number, end).await });
    }

    /// A job a graceful shutdown interrupted: handed back to the journal as interrupted, so it
    /// runs again (on another host now, or here after the restart), then its workspace goes.
    async fn hand_back(&self, job: &PendingJob, number: u32, error: &PluginError) {
        tracing::info!(job = %job.id, plugin = %job.plugin, error = error.to_string(), "job interrupted by the shutdown; it runs again after the restart");
        self.note(
            job.id,
            "interrupted by the shutdown; runs again after the restart",
        )
        .await;
        if let Err(error) = self.deps.journal.hand_back(job.id, number).await {
            tracing::warn!(job = %job.id, error = error.to_string(), "cannot hand the interrupted job back; it runs again after the restart, or once its lease expires");
        }
        self.let_go(job, "interrupted").await;
    }

    /// A job stopped because this host lost its lease: nothing is recorded (the journal cannot
    /// be reached, or another host has the job already); the lease expires and any host queues
    /// the job again, this attempt counted.
    async fn lease_lost(
        &self,
        job: &PendingJob,
        number: u32,
        reason: &CancelReason,
        error: &PluginError,
    ) {
        tracing::warn!(job = %job.id, plugin = %job.plugin, attempt = number, error = error.to_string(), reason = reason.to_string(), "job stopped");
        self.note(job.id, &format!("attempt {number} {reason}"))
            .await;
        self.let_go(job, "lease_lost").await;
    }

    /// Removes the workspace of a job whose end this host does not record (handed back, or
    /// its lease lost), and counts it under `outcome`.
    async fn let_go(&self, job: &PendingJob, outcome: &str) {
        self.deps.services.checkouts.clean(job.id).await;
        self.deps
            .metrics
            .jobs
            .with_label_values(&[&job.plugin, outcome])
            .inc();
    }

    /// Cleans up after an attempt, records its end (which frees its locks), and schedules its
    /// retry. The workspace goes first: a retry must not find the old one, nor have it removed
    /// under it.
    async fn finish(self: Arc<Self>, job: PendingJob, attempt: u32, end: AttemptEnd) {
        if let AttemptEnd::Failed { error, .. } | AttemptEnd::WillRetry { error, .. } = &end {
            self.note(job.id, &format!("attempt {attempt} failed: {error}"))
                .await;
        }
        self.deps.services.checkouts.clean(job.id).await;
        let retry_at = match &end {
            AttemptEnd::WillRetry { not_before, .. } => Some(*not_before),
            _ => None,
        };
        if !self.record(&job, attempt, end).await {
            return;
        }
        self.deps.services.locks.notify_released();
        if let Some(not_before) = retry_at {
            self.retry_at(
                PendingJob {
                    attempts: attempt,
                    ..job
                },
                not_before,
            );
        }
    }

    /// Records an attempt's end, trying again (with a growing pause) for as long as the journal
    /// refuses it, as on a full disk: the job is not left running until a restart. Returns
    /// whether it was recorded.
    async fn record(&self, job: &PendingJob, attempt: u32, end: AttemptEnd) -> bool {
        let mut pause = READ_BACK_RETRY;
        loop {
            match self
                .deps
                .journal
                .end_attempt(job.id, attempt, end.clone())
                .await
            {
                Ok(()) => return true,
                Err(error @ (JournalError::NotRunning { .. } | JournalError::NoSuchJob(_))) => {
                    tracing::warn!(job = %job.id, error = error.to_string(), "job's end not recorded: it is no longer this attempt's");
                    return false;
                }
                Err(error) => {
                    tracing::error!(job = %job.id, error = error.to_string(), retry_in_ms = pause.as_millis() as u64, "cannot record the job's end; trying again");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                // Still `running` in the journal: it runs again after the restart.
                () = self.stopping.cancelled() => return false,
            }
            pause = (pause * 2).min(RECORD_RETRY_MAX);
        }
    }

    /// Adds a line of the host's own to a job's log. A log that cannot be written is no reason
    /// to stop: the journal still records the job.
    async fn note(&self, job: JobId, text: &str) {
        let line = format!("switchyard: {text}\n");
        let _ = self.deps.services.logs.append(job, line.as_bytes()).await;
    }
}

/// The verdict of a job that ends without its plugin's word on it: what stopped it, when the
/// host did (its timeout, a person, a newer job), else an error of the plugin's.
fn failed_verdict(cancelled: Option<&CancelReason>) -> Verdict {
    match cancelled {
        Some(CancelReason::Timeout { .. }) => Verdict::TimedOut,
        Some(CancelReason::User { .. } | CancelReason::Superseded { .. }) => Verdict::Cancelled,
        _ => Verdict::Errored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_names_the_verdict_of_what_stopped_a_job() {
        // (why the attempt was cancelled, the verdict of its failure)
        let cases = [
            (None, Verdict::Errored),
            (Some(CancelReason::Timeout { secs: 5 }), Verdict::TimedOut),
            (
                Some(CancelReason::User { by: "ana".into() }),
                Verdict::Cancelled,
            ),
            (
                Some(CancelReason::Superseded { sha: "abc".into() }),
                Verdict::Cancelled,
            ),
            (
                Some(CancelReason::ShutdownGivenUp { interruptions: 3 }),
                Verdict::Errored,
            ),
        ];
        for (reason, verdict) in cases {
            assert_eq!(failed_verdict(reason.as_ref()), verdict, "{reason:?}");
        }
    }
}
