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

mod attempt;
mod cancellations;
mod parked;

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use switchyard_plugin_api::{
    CancelReason, JobInfo, Outcome, PluginError, abi::panic_message, wire::CallHead,
};
use tokio::sync::Notify;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use attempt::Attempt;
pub use cancellations::Cancellations;
use parked::Parked;

use crate::{
    github::Caller,
    job_log::LogLinks,
    journal::{AttemptEnd, JobId, JobState, Journal, JournalError, PendingJob, unix_millis},
    metrics::Metrics,
    plugins::{JobServices, LoadedPlugin, Plugins, ServiceDeps},
};

/// Most jobs read back from the journal at once.
const READ_BACK_LIMIT: usize = 1024;

/// Pause before reading a job back again after the journal failed to read or start it.
const READ_BACK_RETRY: Duration = Duration::from_secs(1);

/// How often the journal is swept for queued jobs no worker holds: a retry due after a
/// restart, or a job whose hand-over was lost.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Longest pause between tries to record an attempt's end the journal refused (a full disk).
const RECORD_RETRY_MAX: Duration = Duration::from_secs(30);

/// Most of the shutdown grace kept for the host's own bookkeeping once plugins' graces are
/// over: handing interrupted jobs back, their log notes, their workspaces. Half the grace when
/// that is less.
const BOOKKEEPING: Duration = Duration::from_secs(3);

/// Longest wait for each hand-back the workers could not do themselves within the grace.
const LATE_HAND_BACK: Duration = Duration::from_secs(2);

/// What the workers need from the rest of the host.
pub struct WorkerDeps {
    pub journal: Arc<dyn Journal>,
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
    running: AtomicUsize,
    tasks: TaskTracker,
    stopping: CancellationToken,
    /// Set once the shutdown is over: until then cancellations and lost leases the journal
    /// reports still reach running attempts.
    stopped: CancellationToken,
}

/// Jobs waiting for a worker.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Parked>,
    /// Payload bytes of `jobs`, as they hold them (compressed, mostly).
    bytes: usize,
    /// Set from the first job left in the journal only until a read-back finds none left, so
    /// that no later job overtakes a spilled one.
    spilling: bool,
    /// The lowest id spilled since the last read-back began.
    spilled_from: Option<JobId>,
    reading_back: bool,
}

impl Queue {
    fn push(&mut self, job: Parked) {
        self.bytes += job.bytes();
        self.jobs.push_back(job);
    }

    fn pop(&mut self) -> Option<Parked> {
        let job = self.jobs.pop_front()?;
        self.bytes -= job.bytes();
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

    /// Stops starting jobs at once and gives running ones `grace` to finish. Those still
    /// running when only their cancel grace (and the host's bookkeeping) is left are cancelled
    /// (reason: shutdown), so they can say on GitHub that they will run again; they are handed
    /// back to the journal as interrupted, not failed, and run again (after the restart, or on
    /// another host now). A job interrupted `max_interruptions` times is told it is given up,
    /// and failed. Plugins' graces end early enough for the hand-backs to happen within
    /// `grace`, whatever the plugins do. Returns whether every job ended within the grace.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        let inner = &self.inner;
        inner.stopping.cancel();
        inner.tasks.close();
        let begun = tokio::time::Instant::now();
        let plugins_until = begun + grace - BOOKKEEPING.min(grace / 2);
        let cancel_at = plugins_until
            .checked_sub(inner.deps.cancel_grace)
            .unwrap_or(begun)
            .max(begun);
        let ended = inner.within(cancel_at).await
            || {
                for attempt in inner.running_attempts() {
                    attempt.cancel(inner.shutdown_reason(&attempt));
                }
                inner.within(plugins_until).await
            }
            || {
                for attempt in inner.running_attempts() {
                    attempt.end_grace();
                }
                inner.within(begun + grace).await
            };
        if !ended {
            // A worker still busy past the grace (the journal slow to answer): its job is
            // handed back from here, so that it is not left `running` until a lease expires.
            for attempt in inner.running_attempts() {
                let handing = inner.deps.journal.hand_back(attempt.job, attempt.number);
                if let Ok(Err(error)) = tokio::time::timeout(LATE_HAND_BACK, handing).await {
                    tracing::warn!(job = %attempt.job, %error, "cannot hand the interrupted job back");
                }
            }
        }
        inner.stopped.cancel();
        ended
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
    pub fn running(&self) -> usize {
        self.inner.running.load(Ordering::Relaxed)
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
        self.cancellations().running()
    }

    fn running_attempts(&self) -> Vec<Arc<Attempt>> {
        self.attempts().values().cloned().collect()
    }

    /// Whether every tracked task ended by `deadline`.
    async fn within(&self, deadline: tokio::time::Instant) -> bool {
        tokio::time::timeout_at(deadline, self.tasks.wait())
            .await
            .is_ok()
    }

    /// What a shutdown tells `attempt`: it runs again, unless this is the interruption that
    /// reaches `max_interruptions`.
    fn shutdown_reason(&self, attempt: &Attempt) -> CancelReason {
        let interruptions = attempt.interruptions + 1;
        match interruptions >= self.deps.max_interruptions {
            true => CancelReason::ShutdownGivenUp { interruptions },
            false => CancelReason::Shutdown,
        }
    }

    /// Every so often, reads back queued jobs that nothing holds in memory: a retry that came
    /// due after a restart, or a job whose hand-over was lost. A job read back twice still
    /// starts once (the journal's compare-and-set).
    /// With a journal that several hosts share, also whenever it says queued jobs may have
    /// appeared (another host stored a delivery, or a dead host's jobs were queued again).
    async fn sweep(self: Arc<Self>) {
        let interval = self.deps.journal.sweep_interval().min(SWEEP_INTERVAL);
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = self.deps.journal.queue_changed() => {}
                () = self.stopping.cancelled() => return,
            }
            self.queue().spill(JobId(0));
            self.wake.notify_one();
        }
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
            if let Some(job) = job {
                return Some(job.take());
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

    async fn run(self: &Arc<Self>, job: PendingJob) {
        // Shutdown began while this job waited for a worker: it stays queued for the restart.
        if self.stopping.is_cancelled() {
            return;
        }
        let Some(plugin) = self.deps.plugins.current().get(&job.plugin).cloned() else {
            let error = format!(
                "plugin {:?} is no longer loaded (removed or disabled in the config)",
                job.plugin
            );
            self.fail_unstarted(&job, error).await;
            return;
        };
        let max_interruptions = self.deps.max_interruptions;
        if job.interruptions >= max_interruptions {
            // The shutdown that reached the ceiling failed the job itself; only a lowered
            // ceiling gets here.
            let error = format!(
                "interrupted by host shutdowns {} times; given up ([workers] max_interruptions = {max_interruptions})",
                job.interruptions
            );
            self.fail_unstarted(&job, error).await;
            return;
        }
        if job.counted_attempts() >= plugin.entry.max_attempts {
            // Only a job whose attempts all ended with the host dying (a crash, a lost lease)
            // gets here: do not let it loop forever.
            let error = format!(
                "gave up after {} attempts: the host stopped during each",
                job.counted_attempts()
            );
            self.fail_unstarted(&job, error).await;
            return;
        }
        // Running here already: the journal's start may not be committed yet (see
        // `Journal::start_attempt`), and a failed commit would leave the job `queued` there.
        if self.attempts().contains_key(&job.id) {
            return;
        }
        let started = match self.deps.journal.start_attempt(job.id, job.attempts).await {
            Ok(Some(started)) => started,
            Ok(None) => {
                tracing::debug!(job = %job.id, "job already started, or not due yet");
                return;
            }
            Err(error) => {
                tracing::error!(job = %job.id, %error, "cannot record job start; it stays queued");
                self.spill_after_pause(job.id);
                return;
            }
        };
        let number = started.number;
        let counted = number.saturating_sub(job.interruptions);
        let attempts_left = counted < plugin.entry.max_attempts;
        let attempt = Attempt::of(job.id, number, job.interruptions, attempts_left);
        // Cancelled while it was queued: the plugin is told at once, and posts its final word.
        if let Some(reason) = started.cancel {
            attempt.cancel(reason);
        }
        self.cancellations().register(Arc::clone(&attempt));
        let started = std::time::Instant::now();
        let result = self.call(&plugin, &job, &attempt).await;
        // Over: its services close and whatever they were doing stops, before anything else.
        attempt.end();
        self.attempts().remove(&job.id);
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
            Ok(Outcome::Done) => AttemptEnd::Succeeded { note: None },
            Ok(Outcome::Skipped(reason)) => AttemptEnd::Succeeded {
                note: Some(format!("skipped: {reason}")),
            },
            Err(error) if attempt.cancel_reason() == Some(&CancelReason::Shutdown) => {
                self.hand_back(&job, number, &error).await;
                return;
            }
            Err(error) => {
                if let Some(reason @ CancelReason::LeaseLost { .. }) = attempt.cancel_reason() {
                    self.lease_lost(&job, number, reason, &error).await;
                    return;
                }
                if error.retryable && !stopped && attempts_left {
                    let backoff = self.deps.retry_backoff * 2u32.saturating_pow(counted - 1);
                    AttemptEnd::WillRetry {
                        error: error.message,
                        not_before: unix_millis() + backoff.as_millis() as u64,
                    }
                } else {
                    AttemptEnd::Failed {
                        error: error.message,
                    }
                }
            }
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
            attempt = number,
            elapsed_ms = started.elapsed().as_millis() as u64,
            outcome = ?end,
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
        tracing::info!(job = %job.id, plugin = %job.plugin, %error, "job interrupted by the shutdown; it runs again after the restart");
        self.note(
            job.id,
            "interrupted by the shutdown; runs again after the restart",
        )
        .await;
        if let Err(error) = self.deps.journal.hand_back(job.id, number).await {
            tracing::warn!(job = %job.id, %error, "cannot hand the interrupted job back; it runs again after the restart, or once its lease expires");
        }
        self.deps.services.checkouts.clean(job.id).await;
        self.deps
            .metrics
            .jobs
            .with_label_values(&[&job.plugin, "interrupted"])
            .inc();
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
        tracing::warn!(job = %job.id, plugin = %job.plugin, attempt = number, %error, "job stopped: {reason}");
        self.note(job.id, &format!("attempt {number} {reason}"))
            .await;
        self.deps.services.checkouts.clean(job.id).await;
        self.deps
            .metrics
            .jobs
            .with_label_values(&[&job.plugin, "lease_lost"])
            .inc();
    }

    /// Cleans up after an attempt, records its end (which frees its locks), and schedules its
    /// retry. The workspace goes first: a retry must not find the old one, nor have it removed
    /// under it.
    async fn finish(self: Arc<Self>, job: PendingJob, attempt: u32, end: AttemptEnd) {
        if let AttemptEnd::Failed { error } | AttemptEnd::WillRetry { error, .. } = &end {
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
        self.deps.services.locks.released();
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

    /// Calls the plugin. When its timeout passes, or the attempt is cancelled from elsewhere
    /// (a shutdown, a person), the plugin is told why and given the cancel grace to return;
    /// past it, its future is dropped, which stops it and kills its commands. The call runs
    /// in a task of its own, so even a host-side panic fails only this job.
    async fn call(
        &self,
        plugin: &Arc<LoadedPlugin>,
        job: &PendingJob,
        attempt: &Arc<Attempt>,
    ) -> Result<Outcome, PluginError> {
        let delivery = &job.delivery;
        let head = CallHead {
            job: JobInfo {
                id: job.id.0,
                attempt: attempt.number,
                log_url: self.deps.links.url(job.id, job.link_salt),
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
            attempt: Arc::clone(attempt),
            caller: Caller::new(
                plugin.name().to_owned(),
                plugin.permissions.clone(),
                delivery.facts.repository.clone(),
                delivery.payload.clone(),
            ),
            allowance: Arc::clone(&plugin.allowance),
            deps: Arc::clone(&self.deps.services),
            runtime: tokio::runtime::Handle::current(),
        });
        let running = Arc::clone(plugin);
        let mut task = tokio::spawn(async move { running.handle(&head, &payload, services).await });
        let timeout = plugin.entry.timeout_secs;
        tokio::select! {
            joined = &mut task => return joined_result(joined),
            () = tokio::time::sleep(plugin.entry.timeout()) => {
                attempt.cancel(CancelReason::Timeout { secs: timeout });
            }
            _ = attempt.cancelled() => {}
        }
        let reason = attempt
            .cancel_reason()
            .cloned()
            .expect("cancelled before the grace");
        let grace = self.deps.cancel_grace;
        // Cut short when the host needs the time (see `Attempt::end_grace`).
        let finished = tokio::select! {
            joined = tokio::time::timeout(grace, &mut task) => joined.map_err(|_| false),
            () = attempt.grace_ended() => Err(true),
        };
        match finished {
            // It finished its work anyway: that stands.
            Ok(Ok(Ok(outcome))) => Ok(outcome),
            Ok(joined) => Err(PluginError::fatal(match joined_result(joined) {
                // The plugin said why already (the CI runner returns the reason itself).
                Err(error) if error.message.contains(&reason.to_string()) => error.message,
                Err(error) => format!("{reason}: {}", error.message),
                Ok(_) => reason.to_string(),
            })),
            Err(cut_short) => {
                task.abort();
                let grace = match cut_short {
                    true => "the time the host had left".to_owned(),
                    false => format!("the {} s cancel grace", grace.as_secs()),
                };
                Err(PluginError::fatal(format!(
                    "{reason}; it did not stop within {grace}"
                )))
            }
        }
    }

    /// Hands a retry to the workers once it is due (the journal would not start it before).
    fn retry_at(self: &Arc<Self>, job: PendingJob, not_before: u64) {
        let delay = Duration::from_millis(not_before.saturating_sub(unix_millis()));
        self.later(delay, move |queue| queue.push(Parked::plain(job)));
    }

    /// Leaves a job to a later read-back. The journal just failed to start it: reading it
    /// back at once would retry in a tight loop for as long as the journal keeps failing.
    fn spill_after_pause(self: &Arc<Self>, job: JobId) {
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
                    tracing::warn!(job = %job.id, %error, "job's end not recorded: it is no longer this attempt's");
                    return false;
                }
                Err(error) => {
                    tracing::error!(job = %job.id, %error, retry_in_ms = pause.as_millis() as u64, "cannot record the job's end; trying again");
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

/// A call task's result: a panic on the host's side of the call fails the job with its message.
fn joined_result(
    joined: Result<Result<Outcome, PluginError>, tokio::task::JoinError>,
) -> Result<Outcome, PluginError> {
    match joined {
        Ok(result) => result,
        Err(join) if join.is_panic() => Err(PluginError::fatal(format!(
            "plugin panicked: {}",
            panic_message(&*join.into_panic())
        ))),
        Err(_) => Err(PluginError::fatal("job was cancelled")),
    }
}
