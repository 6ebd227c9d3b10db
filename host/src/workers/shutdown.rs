//! The graceful stop: no job starts once it begins, running ones get the grace, those still
//! running near its end are cancelled and handed back to the journal as interrupted.

use std::time::Duration;

use switchyard_plugin_api::CancelReason;

use super::{Attempt, Inner, Workers};

/// Most of the shutdown grace kept for the host's own bookkeeping once plugins' graces are
/// over: handing interrupted jobs back, their log notes, their workspaces. Half the grace when
/// that is less.
const BOOKKEEPING: Duration = Duration::from_secs(3);

/// Longest wait for each hand-back the workers could not do themselves within the grace.
const LATE_HAND_BACK: Duration = Duration::from_secs(2);

impl Workers {
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
                    tracing::warn!(job = %attempt.job, error = error.to_string(), "cannot hand the interrupted job back");
                }
            }
        }
        inner.stopped.cancel();
        ended
    }
}

impl Inner {
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
}
