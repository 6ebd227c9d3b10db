//! Jobs left in the journal only (spilled past the memory window, left by a crash, or due
//! after a restart) read back into the memory window, oldest first, as it frees up.

use std::{sync::Arc, time::Duration};

use super::{Inner, READ_BACK_RETRY, parked::Parked, queue::Queue};
use crate::journal::JobId;

/// Most jobs read back from the journal at once.
const READ_BACK_LIMIT: usize = 1024;

/// How often the journal is swept for queued jobs no worker holds: a retry due after a
/// restart, or a job whose hand-over was lost.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

impl Inner {
    /// Every so often, reads back queued jobs that nothing holds in memory: a retry that came
    /// due after a restart, or a job whose hand-over was lost. A job read back twice still
    /// starts once (the journal's compare-and-set).
    /// With a journal that several hosts share, also whenever it says queued jobs may have
    /// appeared (another host stored a delivery, or a dead host's jobs were queued again).
    pub(super) async fn sweep(self: Arc<Self>) {
        let interval = self.deps.journal.sweep_interval().min(SWEEP_INTERVAL);
        loop {
            let from = tokio::select! {
                () = tokio::time::sleep(interval) => JobId(0),
                from = self.deps.journal.queue_changed() => from,
                () = self.stopping.cancelled() => return,
            };
            self.queue().spill(from);
            self.wake.notify_one();
        }
    }

    /// Starts reading spilled jobs back once at most half the memory budget is in use.
    pub(super) fn read_back_if_room(self: &Arc<Self>, queue: &mut Queue) {
        let room = queue.bytes <= self.deps.memory_queue_bytes / 2;
        let Some(from) = queue.spilled_from.filter(|_| room && !queue.reading_back) else {
            return;
        };
        queue.reading_back = true;
        queue.spilled_from = None;
        let budget = self.deps.memory_queue_bytes.saturating_sub(queue.bytes);
        let inner = Arc::clone(self);
        self.tasks
            .spawn(async move { inner.read_back(from, budget).await });
    }

    async fn read_back(&self, from: JobId, budget: usize) {
        let page = self
            .deps
            .journal
            .queued(from, READ_BACK_LIMIT, budget)
            .await;
        let page = match page {
            Ok(page) => page,
            Err(error) => {
                tracing::error!(
                    error = error.to_string(),
                    "cannot read queued jobs from the journal; trying again"
                );
                tokio::time::sleep(READ_BACK_RETRY).await;
                let mut queue = self.queue();
                queue.spill(from);
                queue.reading_back = false;
                drop(queue);
                self.wake.notify_one();
                return;
            }
        };
        let mut queue = self.queue();
        queue.reading_back = false;
        // Jobs waiting out a retry's backoff are not read: the journal keeps them until due.
        for job in page.jobs {
            queue.push(Parked::plain(job));
        }
        match page.next {
            Some(next) => queue.spill(next),
            // Caught up, unless a job was spilled while reading.
            None if queue.spilled_from.is_none() => queue.spilling = false,
            None => {}
        }
        drop(queue);
        // Busy workers find the jobs when they next look; only idle ones need waking.
        self.wake.notify_waiters();
    }
}
