//! Workers: a pool of `[workers] concurrency` tasks runs jobs under the plugin's timeout with
//! bounded retries, and records every attempt in the journal.
//!
//! An attempt ends one way, whatever ended it (the plugin returned, its timeout, a shutdown,
//! a person): the plugin is told it is cancelled and given `cancel_grace` to post a final
//! status (see `attempt`); then its services close, its commands die, its workspace goes, and
//! its end is recorded with its locks freed in the same transaction, retried until the journal
//! takes it. A retry is recorded with the time it may start, which the journal enforces.
//!
//! The journal is the queue, and memory holds a bounded window of it. A job handed over after
//! its delivery was committed waits in memory while the payloads waiting there (compressed: see
//! `parked`) fit in `[workers] memory_queue_mib`; past that it is left in the journal only
//! ("spilled"), and the workers read spilled jobs back, oldest first, as memory frees up. Jobs
//! left by a crash are read back the same way. Starting an attempt is a compare-and-set in the journal, so a job
//! handed over twice (kept in memory and also read back) still runs once.
//!
//! The parts: `queue` (the memory window and hand-over), `read_back` (spilled jobs read back
//! from the journal), `run` (starting an attempt and calling the plugin), `finish` (what an
//! attempt's end comes to, and recording it), `shutdown` (the graceful stop).

mod attempt;
mod cancellations;
mod finish;
mod parked;
mod queue;
mod read_back;
mod run;
mod shutdown;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use switchyard_plugin_api::CancelReason;
use tokio::sync::Notify;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use attempt::Attempt;
pub use cancellations::Cancellations;
use queue::Queue;

use crate::{
    job_log::LogLinks,
    journal::{self, JobId, JobState, JournalError},
    ops::metrics::Metrics,
    plugins::{Plugins, ServiceDeps},
};

/// Pause before reading a job back again after the journal failed to read or start it, and
/// the first pause before recording an attempt's end again after the journal refused it.
const READ_BACK_RETRY: Duration = Duration::from_secs(1);

/// What the workers need from the rest of the host.
pub struct WorkerDeps {
    pub journal: Arc<dyn journal::Queue>,
    pub plugins: Arc<Plugins>,
    /// Job logs, GitHub, checkouts and locks, shared by every job's host services.
    pub services: Arc<ServiceDeps>,
    /// Links to job logs, handed to plugins.
    pub links: LogLinks,
    pub metrics: Arc<Metrics>,
    pub concurrency: usize,
    /// Payload bytes that queued jobs may hold in memory.
    pub memory_queue_bytes: usize,
    pub retry_backoff: Duration,
    /// How long a cancelled plugin has to post a final status and return.
    pub cancel_grace: Duration,
    /// Graceful shutdowns a job may be interrupted by before it is given up.
    pub max_interruptions: u32,
}

/// The job runner. Cheap to clone.
#[derive(Clone)]
pub struct Workers {
    inner: Arc<Inner>,
}

struct Inner {
    deps: WorkerDeps,
    queue: Mutex<Queue>,
    /// Wakes idle workers: a job was queued or read back.
    wake: Notify,
    jobs_running: AtomicUsize,
    tasks: TaskTracker,
    stopping: CancellationToken,
    /// Set once the shutdown is over: until then cancellations and lost leases the journal
    /// reports still reach running attempts.
    stopped: CancellationToken,
}

impl Workers {
    /// Starts the worker pool. Jobs already in the journal are not read until [`Self::recover`].
    pub fn new(deps: WorkerDeps) -> Self {
        let workers = Self {
            inner: Arc::new(Inner {
                queue: Mutex::new(Queue::default()),
                wake: Notify::new(),
                jobs_running: AtomicUsize::new(0),
                tasks: TaskTracker::new(),
                stopping: CancellationToken::new(),
                stopped: CancellationToken::new(),
                deps,
            }),
        };
        for _ in 0..workers.inner.deps.concurrency {
            let inner = Arc::clone(&workers.inner);
            workers.inner.tasks.spawn(async move { inner.work().await });
        }
        let inner = Arc::clone(&workers.inner);
        workers
            .inner
            .tasks
            .spawn(async move { inner.sweep().await });
        // Not tracked: it runs through the shutdown's grace, which waits for the tracked tasks.
        let cancellations = workers.inner.cancellations().clone();
        tokio::spawn(cancellations.follow_journal(workers.inner.stopped.clone()));
        workers
    }

    /// Cancels job `job` for `reason`, on whichever host runs it (see [`Cancellations`]), and
    /// returns the state it was in; `None` when there is no such job.
    pub async fn request_cancel(
        &self,
        job: JobId,
        reason: CancelReason,
    ) -> Result<Option<JobState>, JournalError> {
        self.inner.cancellations().request(job, reason).await
    }

    /// Jobs running now.
    pub fn jobs_running(&self) -> usize {
        self.inner.jobs_running.load(Ordering::Relaxed)
    }
}

impl Inner {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cancellations(&self) -> &Cancellations {
        &self.deps.services.cancellations
    }

    fn attempts(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Arc<Attempt>>> {
        self.cancellations().attempts()
    }

    fn running_attempts(&self) -> Vec<Arc<Attempt>> {
        self.attempts().values().cloned().collect()
    }
}
