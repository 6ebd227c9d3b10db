//! Named locks for jobs (one deploy at a time per repository and environment). The journal
//! holds them, so they survive a restart and are released atomically with the attempt's end;
//! this module only adds the waiting.

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;

use crate::journal::{JobId, Journal, JournalError};

/// How often a waiter looks again even without a wake-up: covers a lock freed by another
/// process sharing the journal, or a wake-up missed for any reason.
const RECHECK: Duration = Duration::from_secs(1);

pub struct Locks {
    journal: Arc<dyn Journal>,
    released: Notify,
}

impl Locks {
    pub fn new(journal: Arc<dyn Journal>) -> Self {
        Self {
            journal,
            released: Notify::new(),
        }
    }

    /// Takes `name` for attempt `attempt` of `job`, waiting for it when `wait` is true.
    /// Returns whether the attempt holds it.
    pub async fn acquire(
        &self,
        name: &str,
        job: JobId,
        attempt: u32,
        wait: bool,
    ) -> Result<bool, JournalError> {
        loop {
            // Registered before looking, so a release between the look and the wait still wakes us.
            let released = self.released.notified();
            if self.journal.try_lock(name, job, attempt).await? {
                return Ok(true);
            }
            if !wait {
                return Ok(false);
            }
            let _ = tokio::time::timeout(RECHECK, released).await;
        }
    }

    /// Wakes the waiters: a job's attempt ended, so its locks are free.
    pub fn released(&self) {
        self.released.notify_waiters();
    }
}
