//! Workers: run each job with bounded concurrency, the plugin's timeout and bounded retries,
//! and record every attempt in the journal. A job is only ever handed here after its delivery
//! was committed, so a crash at any point leaves it queued or running, and it runs again on the
//! next start.

use std::{sync::Arc, time::Duration};

use switchyard_plugin_api::{
    JobInfo, Outcome, PluginError,
    abi::panic_message,
    wire::{CallHead, encode_call},
};
use tokio::sync::Semaphore;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    journal::{AttemptEnd, JobId, Journal, PendingJob},
    metrics::Metrics,
    plugins::{JobServices, LoadedPlugin, Plugins, ServiceDeps},
};

/// What the workers need from the rest of the host.
pub struct WorkerDeps {
    pub journal: Arc<dyn Journal>,
    pub plugins: Arc<Plugins>,
    /// Job logs, GitHub, checkouts and locks, shared by every job's host services.
    pub services: Arc<ServiceDeps>,
    /// Base of job log URLs.
    pub public_url: String,
    pub metrics: Arc<Metrics>,
    pub concurrency: usize,
    pub retry_backoff: Duration,
}

/// The job runner. Cheap to clone.
#[derive(Clone)]
pub struct Workers {
    inner: Arc<Inner>,
}

struct Inner {
    deps: WorkerDeps,
    permits: Semaphore,
    tasks: TaskTracker,
    stopping: CancellationToken,
}

impl Workers {
    pub fn new(deps: WorkerDeps) -> Self {
        Self {
            inner: Arc::new(Inner {
                permits: Semaphore::new(deps.concurrency),
                deps,
                tasks: TaskTracker::new(),
                stopping: CancellationToken::new(),
            }),
        }
    }

    /// Runs a job as soon as a worker is free. After shutdown began, the job stays queued in
    /// the journal for the next start.
    pub fn dispatch(&self, job: PendingJob) {
        if self.inner.stopping.is_cancelled() {
            return;
        }
        let inner = Arc::clone(&self.inner);
        self.inner.tasks.spawn(async move { inner.run(job).await });
    }

    /// Stops starting jobs and waits up to `grace` for running ones. Returns whether all ended.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.inner.stopping.cancel();
        self.inner.tasks.close();
        tokio::time::timeout(grace, self.inner.tasks.wait())
            .await
            .is_ok()
    }

    /// Jobs waiting for a worker or running.
    pub fn in_flight(&self) -> usize {
        self.inner.tasks.len()
    }
}

impl Inner {
    async fn run(self: &Arc<Self>, job: PendingJob) {
        let permit = tokio::select! {
            permit = self.permits.acquire() => permit,
            () = self.stopping.cancelled() => return,
        };
        let Ok(_permit) = permit else { return };
        let Some(plugin) = self.deps.plugins.current().get(&job.plugin).cloned() else {
            let error = format!(
                "plugin {:?} is no longer loaded (removed or disabled in the config)",
                job.plugin
            );
            self.record(&job, AttemptEnd::Failed { error }).await;
            return;
        };
        if job.attempts >= plugin.entry.max_attempts {
            // Only a job whose attempts all ended with the host stopping (a crash, or a
            // shutdown past its grace period) gets here: do not let it loop forever.
            let error = format!(
                "gave up after {} attempts: the host stopped during each",
                job.attempts
            );
            self.record(&job, AttemptEnd::Failed { error }).await;
            return;
        }
        let attempt = match self.deps.journal.start_attempt(job.id).await {
            Ok(attempt) => attempt,
            Err(error) => {
                tracing::error!(job = %job.id, %error, "cannot record job start; it stays queued");
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
            delivery: delivery.id.as_str(),
            event: delivery.kind.as_str(),
            action: delivery.facts.action.as_deref(),
            repository: delivery.facts.repository.as_deref(),
            received_at: &delivery.received_at,
        };
        let call = encode_call(&head, &delivery.payload);
        let services = Arc::new(JobServices {
            job: job.id,
            deps: Arc::clone(&self.deps.services),
            runtime: tokio::runtime::Handle::current(),
        });
        let running = Arc::clone(plugin);
        let task = tokio::spawn(async move { running.handle(&call, services).await });
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
        let inner = Arc::clone(self);
        self.tasks.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(delay) => Box::pin(inner.run(job)).await,
                // Left queued in the journal: the next start runs it.
                () = inner.stopping.cancelled() => {}
            }
        });
    }

    async fn record(&self, job: &PendingJob, end: AttemptEnd) {
        if let Err(error) = self.deps.journal.end_attempt(job.id, end).await {
            tracing::error!(job = %job.id, %error, "cannot record job outcome; it will run again on restart");
        }
    }

    fn log_url(&self, job: JobId) -> String {
        format!("{}/jobs/{job}/log", self.deps.public_url)
    }
}
