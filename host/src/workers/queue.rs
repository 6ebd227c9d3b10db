//! The memory window of the queue: jobs handed over after their delivery's commit wait here
//! while their payloads fit in `[workers] memory_queue_mib`, and are left to the journal
//! ("spilled") past it, to be read back (see `read_back`) in order.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use super::{Inner, READ_BACK_RETRY, Workers, parked::Parked};
use crate::journal::{JobId, PendingJob, unix_millis};

/// Jobs waiting for a worker.
#[derive(Default)]
pub(super) struct Queue {
    pub(super) jobs: VecDeque<Parked>,
    /// Payload bytes of `jobs`, as they hold them (compressed, mostly).
    pub(super) bytes: usize,
    /// Set from the first job left in the journal only until a read-back finds none left, so
    /// that no later job overtakes a spilled one.
    pub(super) spilling: bool,
    /// The lowest id spilled since the last read-back began.
    pub(super) spilled_from: Option<JobId>,
    pub(super) reading_back: bool,
}

impl Queue {
    pub(super) fn push(&mut self, job: Parked) {
        self.bytes += job.bytes();
        self.jobs.push_back(job);
    }

    pub(super) fn pop(&mut self) -> Option<Parked> {
        let job = self.jobs.pop_front()?;
        self.bytes -= job.bytes();
        Some(job)
    }

    pub(super) fn spill(&mut self, job: JobId) {
        self.spilling = true;
        self.spilled_from = Some(self.spilled_from.map_or(job, |from| from.min(job)));
    }
}

impl Workers {
    /// Hands over the jobs of a delivery that is committed. After shutdown began, they stay
    /// queued in the journal for the next start.
    pub fn dispatch(&self, jobs: Vec<PendingJob>) {
        if self.inner.stopping.is_cancelled() {
            return;
        }
        // Behind spilled jobs they are spilled too: no need to compress them for memory.
        {
            let mut queue = self.inner.queue();
            if let Some(first) = jobs.first().filter(|_| queue.spilling) {
                queue.spill(first.id);
                drop(queue);
                self.inner.wake.notify_one();
                return;
            }
        }
        let parked = Parked::all(jobs);
        let mut queue = self.inner.queue();
        for job in parked {
            let fits = queue.bytes + job.bytes() <= self.inner.deps.memory_queue_bytes;
            if queue.spilling || !(fits || queue.jobs.is_empty()) {
                queue.spill(job.id);
            } else {
                queue.push(job);
            }
            self.inner.wake.notify_one();
        }
    }

    /// Runs every job the journal holds queued: those a crash or shutdown left behind.
    pub fn recover(&self) {
        self.inner.queue().spill(JobId(0));
        self.inner.wake.notify_one();
    }
}

impl Inner {
    pub(super) async fn next_job(self: &Arc<Self>) -> Option<PendingJob> {
        loop {
            if self.stopping.is_cancelled() {
                return None;
            }
            // Registered before looking, so a job queued meanwhile still wakes this worker.
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let job = {
                let mut queue = self.queue();
                let job = queue.pop();
                self.read_back_if_room(&mut queue);
                job
            };
            if let Some(job) = job {
                return Some(job.take());
            }
            tokio::select! {
                () = woken => {}
                () = self.stopping.cancelled() => return None,
            }
        }
    }

    /// Hands a retry to the workers once it is due (the journal would not start it before).
    pub(super) fn retry_at(self: &Arc<Self>, job: PendingJob, not_before: u64) {
        let delay = Duration::from_millis(not_before.saturating_sub(unix_millis()));
        self.later(delay, move |queue| queue.push(Parked::plain(job)));
    }

    /// Leaves a job to a later read-back. The journal just failed to start it: reading it
    /// back at once would retry in a tight loop for as long as the journal keeps failing.
    pub(super) fn spill_after_pause(self: &Arc<Self>, job: JobId) {
        self.later(READ_BACK_RETRY, move |queue| queue.spill(job));
    }

    /// Does `action` to the queue after `delay` and wakes a worker, unless the host stops
    /// first: the job then stays queued in the journal, for the next start.
    fn later(self: &Arc<Self>, delay: Duration, action: impl FnOnce(&mut Queue) + Send + 'static) {
        let inner = Arc::clone(self);
        self.tasks.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(delay) => {
                    action(&mut inner.queue());
                    inner.wake.notify_one();
                }
                () = inner.stopping.cancelled() => {}
            }
        });
    }
}
