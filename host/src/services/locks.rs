//! Named locks for jobs (one deploy at a time per repository and environment). The journal
//! holds them, so they survive a restart and are released atomically with the attempt's end;
//! this module only adds the waiting.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::Notify;

use crate::journal::{JobId, JournalError, LockStore};

/// How often a waiter looks again even without a wake-up: covers a lock freed by another
/// process sharing the journal, or a wake-up missed for any reason.
const RECHECK: Duration = Duration::from_secs(1);

pub struct Locks {
    journal: Arc<dyn LockStore>,
    released: Notify,
    /// The attempts of this host waiting for a lock, for the dashboard.
    waiting: Mutex<Vec<Waiting>>,
}

/// A job's attempt waiting for a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub name: String,
    pub job: JobId,
    /// RFC 3339.
    pub since: String,
}

/// Takes a waiter off the list when its wait ends, however it ends (the lock taken, the
/// attempt cancelled and its future dropped).
struct WaitingGuard<'a> {
    locks: &'a Locks,
    job: JobId,
    name: String,
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.locks
            .waiting()
            .retain(|w| !(w.job == self.job && w.name == self.name));
    }
}

impl Locks {
    pub fn new(journal: Arc<dyn LockStore>) -> Self {
        Self {
            journal,
            released: Notify::new(),
            waiting: Mutex::default(),
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
        let mut listed = None;
        loop {
            // Registered before looking, so a release between the look and the wait still wakes us.
            let released = self.released.notified();
            if self.journal.try_lock(name, job, attempt).await? {
                return Ok(true);
            }
            if !wait {
                return Ok(false);
            }
            if listed.is_none() {
                self.waiting().push(Waiting {
                    name: name.to_owned(),
                    job,
                    since: crate::event::now_rfc3339(),
                });
                listed = Some(WaitingGuard {
                    locks: self,
                    job,
                    name: name.to_owned(),
                });
            }
            let _ = tokio::time::timeout(RECHECK, released).await;
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The attempts of this host waiting for a lock now, longest waiting first.
    pub fn waiting_now(&self) -> Vec<Waiting> {
        self.waiting().clone()
    }

    /// Wakes the waiters: a job's attempt ended, so its locks are free.
    pub fn notify_released(&self) {
        self.released.notify_waiters();
    }
}
