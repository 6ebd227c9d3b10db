//! Workers: a pool of `[workers] concurrency` tasks runs jobs under the plugin's timeout with
//! bounded retries, and records every attempt in the journal.
//!
//! The journal is the queue, and memory holds a bounded window of it. A job handed over after
//! its delivery was committed waits in memory while the payloads waiting there fit in
//! `[workers] memory_queue_mib`; past that it is left in the journal only ("spilled"), and the
//! workers read spilled jobs back, oldest first, as memory frees up. Jobs left by a crash are
//! read back the same way. Starting an attempt is a compare-and-set in the journal, so a job
//! handed over twice (kept in memory and also read back) still runs once.

use std::{
    collections::{HashSet, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use switchyard_plugin_api::{JobInfo, Outcome, PluginError, abi::panic_message, wire::CallHead};
use tokio::sync::Notify;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    job_log::LogLinks,
    journal::{AttemptEnd, JobId, Journal, PendingJob},
    metrics::Metrics,
    plugins::{JobServices, LoadedPlugin, Plugins, ServiceDeps},
};

/// Most jobs read back from the journal at once.
const READ_BACK_LIMIT: usize = 1024;

/// Pause before reading a job back again after the journal failed to read or start it.
const READ_BACK_RETRY: Duration = Duration::from_secs(1);

/// What the workers need from the rest of the host.
pub struct WorkerDeps {
    pub journal: Arc<dyn Journal>,
    pub plugins: Arc<Plugins>,
    /// Job logs, GitHub, checkouts and locks, shared by every job's host services.
    pub services: Arc<ServiceDeps>,
    /// Base of job log URLs.
    /// Links to job logs, handed to plugins.
    pub links: LogLinks,
    pub metrics: Arc<Metrics>,
    pub concurrency: usize,
    /// Payload bytes that queued jobs may hold in memory.
    pub memory_queue_bytes: usize,
    pub retry_backoff: Duration,
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
    running: AtomicUsize,
    tasks: TaskTracker,
    stopping: CancellationToken,
}

/// Jobs waiting for a worker.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<PendingJob>,
    /// Payload bytes of `jobs`.
    bytes: usize,
    /// Set from the first job left in the journal only until a read-back finds none left, so
    /// that no later job overtakes a spilled one.
    spilling: bool,
    /// The lowest id spilled since the last read-back began.
    spilled_from: Option<JobId>,
    reading_back: bool,
    /// Jobs waiting out a retry delay; a read-back leaves them to their timer.
    retrying: HashSet<JobId>,
}

impl Queue {
    fn push(&mut self, job: PendingJob) {
        self.bytes += job.delivery.payload.len();
        self.jobs.push_back(job);
    }

    fn pop(&mut self) -> Option<PendingJob> {
        let job = self.jobs.pop_front()?;
        self.bytes -= job.delivery.payload.len();
        Some(job)
    }

    fn spill(&mut self, job: JobId) {
        self.spilling = true;
        self.spilled_from = Some(self.spilled_from.map_or(job, |from| from.min(job)));
    }
}

impl Workers {
    /// Starts the worker pool. Jobs already in the journal are not read until [`Self::recover`].
    pub fn new(deps: WorkerDeps) -> Self {
        let workers = Self {
            inner: Arc::new(Inner {
                queue: Mutex::new(Queue::default()),
                wake: Notify::new(),
                running: AtomicUsize::new(0),
                tasks: TaskTracker::new(),
                stopping: CancellationToken::new(),
                deps,
            }),
        };
        for _ in 0..workers.inner.deps.concurrency {
            let inner = Arc::clone(&workers.inner);
            workers.inner.tasks.spawn(async move { inner.work().await });
        }
        workers
    }

    /// Hands over a job whose delivery is committed. After shutdown began, the job stays
    /// queued in the journal for the next start.
    pub fn dispatch(&self, job: PendingJob) {
        if self.inner.stopping.is_cancelled() {
            return;
        }
        let mut queue = self.inner.queue();
        let fits = queue.bytes + job.delivery.payload.len() <= self.inner.deps.memory_queue_bytes;
        if queue.spilling || !(fits || queue.jobs.is_empty()) {
            queue.spill(job.id);
        } else {
            queue.push(job);
        }
        drop(queue);
        self.inner.wake.notify_one();
    }

    /// Runs every job the journal holds queued: those a crash or shutdown left behind.
    pub fn recover(&self) {
        self.inner.queue().spill(JobId(0));
        self.inner.wake.notify_one();
    }

    /// Stops starting jobs and waits up to `grace` for running ones. Returns whether all ended.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.inner.stopping.cancel();
        self.inner.tasks.close();
        tokio::time::timeout(grace, self.inner.tasks.wait())
            .await
            .is_ok()
    }

    /// Jobs running now.
    pub fn running(&self) -> usize {
        self.inner.running.load(Ordering::Relaxed)
    }
}

impl Inner {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One worker: take the next job and run it, until shutdown.
    async fn work(self: Arc<Self>) {
        while let Some(job) = self.next_job().await {
            self.running.fetch_add(1, Ordering::Relaxed);
            self.run(job).await;
            self.running.fetch_sub(1, Ordering::Relaxed);
        }
    }

    async fn next_job(self: &Arc<Self>) -> Option<PendingJob> {
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
            if job.is_some() {
                return job;
            }
            tokio::select! {
                () = woken => {}
                () = self.stopping.cancelled() => return None,
            }
        }
    }

    /// Starts reading spilled jobs back once at most half the memory budget is in use.
    fn read_back_if_room(self: &Arc<Self>, queue: &mut Queue) {
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
                tracing::error!(%error, "cannot read queued jobs from the journal; trying again");
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
        for job in page.jobs {
            if !queue.retrying.contains(&job.id) {
                queue.push(job);
            }
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

    async fn run(self: &Arc<Self>, job: PendingJob) {
        let Some(plugin) = self.deps.plugins.current().get(&job.plugin).cloned() else {
            let error = format!(
                "plugin {:?} is no longer loaded (removed or disabled in the config)",
                job.plugin
            );
            self.fail_unstarted(&job, error).await;
            return;
        };
        if job.attempts >= plugin.entry.max_attempts {
            // Only a job whose attempts all ended with the host stopping (a crash, or a
            // shutdown past its grace period) gets here: do not let it loop forever.
            let error = format!(
                "gave up after {} attempts: the host stopped during each",
                job.attempts
            );
            self.fail_unstarted(&job, error).await;
            return;
        }
        let attempt = match self.deps.journal.start_attempt(job.id, job.attempts).await {
            Ok(Some(attempt)) => attempt,
            Ok(None) => {
                tracing::debug!(job = %job.id, "job already started by another hand-over");
                return;
            }
            Err(error) => {
                tracing::error!(job = %job.id, %error, "cannot record job start; it stays queued");
                self.spill_after_pause(job.id);
                return;
            }
        };
        let started = std::time::Instant::now();
        let result = self.call(&plugin, &job, attempt).await;
        let end = match result {
            Ok(Outcome::Done) => AttemptEnd::Succeeded { note: None },
            Ok(Outcome::Skipped(reason)) => AttemptEnd::Succeeded {
                note: Some(format!("skipped: {reason}")),
            },
            Err(error) if error.retryable && attempt < plugin.entry.max_attempts => {
                AttemptEnd::WillRetry {
                    error: error.message,
                }
            }
            Err(error) => AttemptEnd::Failed {
                error: error.message,
            },
        };
        let outcome = match &end {
            AttemptEnd::Succeeded { note: None } => "succeeded",
            AttemptEnd::Succeeded { note: Some(_) } => "skipped",
            AttemptEnd::Failed { .. } => "failed",
            AttemptEnd::WillRetry { .. } => "retried",
        };
        let metrics = &self.deps.metrics;
        metrics
            .jobs
            .with_label_values(&[&job.plugin, outcome])
            .inc();
        let labels = [job.plugin.as_str()];
        let histogram = metrics.job_duration.with_label_values(&labels);
        histogram.observe(started.elapsed().as_secs_f64());
        tracing::info!(
            delivery = %job.delivery.id,
            job = %job.id,
            plugin = %job.plugin,
            attempt,
            elapsed_ms = started.elapsed().as_millis() as u64,
            outcome = ?end,
            "job attempt ended"
        );
        // The worker is free as soon as the plugin returned: recording the end is the host's
        // bookkeeping, and waiting for its commit would idle the worker for a batch.
        let inner = Arc::clone(self);
        self.tasks
            .spawn(async move { inner.finish(job, attempt, end).await });
    }

    /// Records an attempt's end, frees what it held, and schedules its retry.
    async fn finish(self: Arc<Self>, job: PendingJob, attempt: u32, end: AttemptEnd) {
        if let AttemptEnd::Failed { error } | AttemptEnd::WillRetry { error } = &end {
            let line = format!("switchyard: attempt {attempt} failed: {error}\n");
            let _ = self
                .deps
                .services
                .logs
                .append(job.id, line.as_bytes())
                .await;
        }
        let retry = matches!(end, AttemptEnd::WillRetry { .. });
        self.record(&job, end).await;
        // The attempt's locks went with its record; its workspace goes now (the log stays).
        self.deps.services.locks.released();
        self.deps.services.checkouts.clean(job.id).await;
        if retry {
            self.retry_later(
                PendingJob {
                    attempts: attempt,
                    ..job
                },
                attempt,
            );
        }
    }

    /// Calls the plugin under its timeout. The call runs in its own task so that even a host
    /// side panic (an FFI future reporting a panic) fails only this job.
    async fn call(
        &self,
        plugin: &Arc<LoadedPlugin>,
        job: &PendingJob,
        attempt: u32,
    ) -> Result<Outcome, PluginError> {
        let delivery = &job.delivery;
        let head = CallHead {
            job: JobInfo {
                id: job.id.0,
                attempt,
                log_url: self.log_url(job.id),
            },
            delivery: delivery.id.as_str().to_owned(),
            event: delivery.kind.as_str().to_owned(),
            action: delivery.facts.action.clone(),
            repository: delivery.facts.repository.clone(),
            sender: delivery.facts.sender.clone(),
            received_at: delivery.received_at.clone(),
        };
        let head = serde_json::to_vec(&head).expect("a call head always serializes");
        let payload = delivery.payload.clone();
        let services = Arc::new(JobServices {
            job: job.id,
            deps: Arc::clone(&self.deps.services),
            runtime: tokio::runtime::Handle::current(),
        });
        let running = Arc::clone(plugin);
        let task = tokio::spawn(async move { running.handle(&head, &payload, services).await });
        let abort = task.abort_handle();
        match tokio::time::timeout(plugin.entry.timeout(), task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) if join.is_panic() => Err(PluginError::fatal(format!(
                "plugin panicked: {}",
                panic_message(&*join.into_panic())
            ))),
            Ok(Err(_)) => Err(PluginError::fatal("job was cancelled")),
            Err(_) => {
                // Dropping the call's future aborts the plugin's task and kills its commands.
                abort.abort();
                Err(PluginError::fatal(format!(
                    "timed out after {} s (plugins.timeout_secs)",
                    plugin.entry.timeout_secs
                )))
            }
        }
    }

    fn retry_later(self: &Arc<Self>, job: PendingJob, attempt: u32) {
        let delay = self.deps.retry_backoff * 2u32.saturating_pow(attempt.saturating_sub(1));
        self.queue().retrying.insert(job.id);
        let inner = Arc::clone(self);
        self.tasks.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(delay) => {
                    let mut queue = inner.queue();
                    queue.retrying.remove(&job.id);
                    queue.push(job);
                    drop(queue);
                    inner.wake.notify_one();
                }
                // Left queued in the journal: the next start runs it.
                () = inner.stopping.cancelled() => {}
            }
        });
    }

    /// Leaves a job to a later read-back. The journal just failed to start it: reading it
    /// back at once would retry in a tight loop for as long as the journal keeps failing.
    fn spill_after_pause(self: &Arc<Self>, job: JobId) {
        let inner = Arc::clone(self);
        self.tasks.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(READ_BACK_RETRY) => {
                    inner.queue().spill(job);
                    inner.wake.notify_one();
                }
                // Left queued in the journal: the next start runs it.
                () = inner.stopping.cancelled() => {}
            }
        });
    }

    async fn fail_unstarted(&self, job: &PendingJob, error: String) {
        match self
            .deps
            .journal
            .fail_unstarted(job.id, job.attempts, error.clone())
            .await
        {
            Ok(true) => {
                tracing::warn!(job = %job.id, plugin = %job.plugin, "job failed unstarted: {error}")
            }
            Ok(false) => {}
            Err(error) => {
                tracing::error!(job = %job.id, %error, "cannot record job outcome; it will run again on restart")
            }
        }
    }

    async fn record(&self, job: &PendingJob, end: AttemptEnd) {
        if let Err(error) = self.deps.journal.end_attempt(job.id, end).await {
            tracing::error!(job = %job.id, %error, "cannot record job outcome; it will run again on restart");
        }
    }

    fn log_url(&self, job: JobId) -> String {
        self.deps.links.url(job)
    }
}
