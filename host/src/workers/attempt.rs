//! One attempt of a job, as the workers and the job's host services share it. Cancelling tells
//! the plugin why (`Host::cancelled`) and starts its grace; ending closes the attempt's services
//! for good: a task that outlived the attempt can take no lock, run no command, write no log
//! line, and what its services were doing when it ended is dropped (commands killed).

use std::sync::{Arc, OnceLock};

use switchyard_plugin_api::CancelReason;
use tokio_util::sync::CancellationToken;

use crate::journal::JobId;

pub struct Attempt {
    pub job: JobId,
    /// 1 for the first.
    pub number: u32,
    /// Earlier attempts of the job a graceful shutdown interrupted and handed back.
    pub interruptions: u32,
    /// Whether the job gets another attempt should this one die with its host (its lease
    /// lost): fewer than `max_attempts` counted so far, this one included.
    pub attempts_left: bool,
    reason: OnceLock<CancelReason>,
    cancel: CancellationToken,
    /// Ends the cancel grace early: the host needs the time (its shutdown's bookkeeping, a
    /// lease about to expire).
    grace_over: CancellationToken,
    ended: CancellationToken,
}

impl Attempt {
    pub fn new(job: JobId, number: u32) -> Arc<Self> {
        Self::of(job, number, 0, true)
    }

    /// Attempt `number` of `job`, after `interruptions` handed back, with `attempts_left`
    /// should it die with its host.
    pub fn of(job: JobId, number: u32, interruptions: u32, attempts_left: bool) -> Arc<Self> {
        Arc::new(Self {
            job,
            number,
            interruptions,
            attempts_left,
            reason: OnceLock::new(),
            cancel: CancellationToken::new(),
            grace_over: CancellationToken::new(),
            ended: CancellationToken::new(),
        })
    }

    /// Ends the cancel grace now (or at once if the attempt is cancelled later): its commands
    /// die and its future is dropped.
    pub fn end_grace(&self) {
        self.grace_over.cancel();
    }

    /// Completes once the grace is ended early.
    pub async fn grace_ended(&self) {
        self.grace_over.cancelled().await;
    }

    /// Asks the plugin to stop, for `reason`. The first reason given is the one it sees.
    pub fn cancel(&self, reason: CancelReason) {
        let _ = self.reason.set(reason);
        self.cancel.cancel();
    }

    pub fn cancel_reason(&self) -> Option<&CancelReason> {
        self.reason.get()
    }

    /// Completes once the attempt is cancelled, with the reason.
    pub async fn cancelled(&self) -> CancelReason {
        self.cancel.cancelled().await;
        self.reason
            .get()
            .cloned()
            .expect("the reason is set before the token is cancelled")
    }

    /// Closes the attempt's services: the attempt is over, whatever is recorded of it.
    pub fn end(&self) {
        self.ended.cancel();
    }

    pub fn has_ended(&self) -> bool {
        self.ended.is_cancelled()
    }

    /// Completes once the attempt has ended.
    pub async fn ended(&self) {
        self.ended.cancelled().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_reason_is_kept_and_ending_is_seen() {
        let attempt = Attempt::new(JobId(1), 1);
        assert!(attempt.cancel_reason().is_none());
        attempt.cancel(CancelReason::Timeout { secs: 5 });
        attempt.cancel(CancelReason::Shutdown);
        assert_eq!(attempt.cancelled().await, CancelReason::Timeout { secs: 5 });
        assert!(!attempt.has_ended());
        attempt.end();
        attempt.ended().await;
        assert!(attempt.has_ended());
    }
}
