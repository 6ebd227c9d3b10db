//! Retention: finished jobs, their logs and their deliveries are kept `[store] keep_days`, then
//! pruned in the background, in small batches so the journal's writer (and ingress behind it)
//! never waits long. Delivery ids are kept at least [`MIN_DEDUPE_DAYS`] whatever `keep_days`
//! says: GitHub Enterprise lets users redeliver that far back, and a kept id is what makes a
//! redelivery a duplicate. Unfinished jobs, and deliveries with any job left, are never pruned.

use std::{sync::Arc, time::Duration};

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    job_log::JobLogs,
    journal::{JournalError, Pruning},
    ops::metrics::Metrics,
};

/// Days a delivery id is kept for dedupe, at the least.
pub const MIN_DEDUPE_DAYS: u32 = 7;

/// How often a pass runs (and once at start).
const PASS_INTERVAL: Duration = Duration::from_secs(3600);

/// Rows deleted per write: a few milliseconds of the writer's time.
const BATCH: usize = 500;

/// Pause between batches, so deliveries arriving meanwhile go first.
const BATCH_PAUSE: Duration = Duration::from_millis(20);

/// What one pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub jobs: usize,
    pub logs: usize,
    pub deliveries: usize,
}

/// Prunes what is older than the configured days.
pub struct Retention {
    pub journal: Arc<dyn Pruning>,
    pub logs: JobLogs,
    pub metrics: Arc<Metrics>,
    pub keep_days: u32,
}

impl Retention {
    /// Runs a pass now and then every hour, until the task is aborted.
    pub async fn run(self) {
        let mut every = tokio::time::interval(PASS_INTERVAL);
        loop {
            every.tick().await;
            match self.pass(OffsetDateTime::now_utc()).await {
                Ok(pruned) => tracing::info!(
                    jobs = pruned.jobs,
                    logs = pruned.logs,
                    deliveries = pruned.deliveries,
                    keep_days = self.keep_days,
                    "retention pass done"
                ),
                // The next pass tries again; nothing is half-deleted (each batch is one write).
                Err(error) => tracing::warn!(error = error.to_string(), "retention pass failed"),
            }
        }
    }

    /// Prunes jobs ended and deliveries received before their cut-offs, as seen at `now`.
    pub async fn pass(&self, now: OffsetDateTime) -> Result<Pruned, JournalError> {
        let cutoff = |days: u32| {
            (now - time::Duration::days(i64::from(days)))
                .format(&Rfc3339)
                .expect("formatting a UTC time cannot fail")
        };
        let jobs_before = cutoff(self.keep_days);
        let deliveries_before = cutoff(self.keep_days.max(MIN_DEDUPE_DAYS));
        let mut pruned = Pruned::default();
        loop {
            let jobs = self.journal.prune_jobs(&jobs_before, BATCH).await?;
            if jobs.is_empty() {
                break;
            }
            pruned.jobs += jobs.len();
            for job in jobs {
                if self.logs.remove(job).await {
                    pruned.logs += 1;
                }
            }
            tokio::time::sleep(BATCH_PAUSE).await;
        }
        loop {
            let deliveries = self
                .journal
                .prune_deliveries(&deliveries_before, BATCH)
                .await?;
            if deliveries == 0 {
                break;
            }
            pruned.deliveries += deliveries;
            tokio::time::sleep(BATCH_PAUSE).await;
        }
        let counted = [
            ("jobs", pruned.jobs),
            ("logs", pruned.logs),
            ("deliveries", pruned.deliveries),
        ];
        for (kind, count) in counted {
            self.metrics
                .pruned
                .with_label_values(&[kind])
                .inc_by(count as u64);
        }
        Ok(pruned)
    }
}
