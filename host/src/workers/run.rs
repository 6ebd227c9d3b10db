//! Running an attempt: a worker takes the next job, starts its attempt in the journal (a
//! compare-and-set, so a job handed over twice runs once), and calls the plugin under its
//! timeout and the attempt's cancellation.

use std::sync::{Arc, atomic::Ordering};

use switchyard_plugin_api::{
    CancelReason, JobInfo, Outcome, PluginError, Verdict, abi::panic_message, wire::CallHead,
};

use super::{Attempt, Inner};
use crate::{
    commands::Admission,
    github::Caller,
    journal::PendingJob,
    plugins::{JobServices, LoadedPlugin},
};

impl Inner {
    /// One worker: take the next job and run it, until shutdown.
    pub(super) async fn work(self: Arc<Self>) {
        while let Some(job) = self.next_job().await {
            self.jobs_running.fetch_add(1, Ordering::Relaxed);
            self.run(job).await;
            self.jobs_running.fetch_sub(1, Ordering::Relaxed);
        }
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
                tracing::error!(job = %job.id, error = error.to_string(), "cannot record job start; it stays queued");
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
        self.ended(job, &attempt, result, started).await;
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
            command: None,
        };
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
        let handler = Arc::clone(plugin);
        let commands = Arc::clone(&self.deps.services.commands);
        // `/help` lists what every entry the repository reaches takes.
        let everyone: Vec<_> = self
            .deps
            .plugins
            .current()
            .iter()
            .filter(|p| p.interest.covers(&delivery.facts))
            .flat_map(|p| p.commands.iter().cloned())
            .collect();
        let delivery = Arc::clone(&job.delivery);
        let job_id = job.id;
        // The commands gate runs inside the call, under its timeout and cancellation, and on
        // every attempt: a command is checked again whenever it runs.
        let mut task = tokio::spawn(async move {
            let admission = commands.admit(job_id, &handler.commands, &everyone, &delivery);
            let commands = match admission.await? {
                Admission::Event => vec![None],
                Admission::Commands(commands) => commands.into_iter().map(Some).collect(),
                Admission::Nothing(why) => return Ok(Outcome::Skipped(why)),
            };
            let mut outcome = Outcome::Done;
            for command in commands {
                let head = CallHead {
                    command,
                    ..head.clone()
                };
                let head = serde_json::to_vec(&head).expect("a call head always serializes");
                outcome = handler
                    .handle(&head, &payload, Arc::clone(&services))
                    .await?;
            }
            Ok(outcome)
        });
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

    async fn fail_unstarted(&self, job: &PendingJob, error: String) {
        match self
            .deps
            .journal
            .fail_unstarted(job.id, job.attempts, error.clone())
            .await
        {
            Ok(true) => {
                self.deps
                    .metrics
                    .verdicts
                    .with_label_values(&[&job.plugin, Verdict::Errored.as_str()])
                    .inc();
                tracing::warn!(job = %job.id, plugin = %job.plugin, error, "job failed unstarted")
            }
            Ok(false) => {}
            Err(error) => {
                tracing::error!(job = %job.id, error = error.to_string(), "cannot record job outcome; it will run again on restart")
            }
        }
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
