//! `[workers]`: how many jobs run at once, how failed ones are retried, and how much of the
//! queue is held in memory.

use serde::Deserialize;

use super::{Invalid, at_least_one};

/// `[workers]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkersConfig {
    /// Jobs that may run at once, across all plugins.
    pub concurrency: usize,
    /// First delay before retrying a job that failed retryably; doubles each attempt.
    pub retry_backoff_ms: u64,
    /// Payload MiB that queued jobs may hold in memory; more wait in the journal only.
    pub memory_queue_mib: usize,
    /// Seconds a cancelled job (its timeout, a shutdown, a person) has to post a final status
    /// and return before its commands are killed and its future dropped.
    pub cancel_grace_secs: u64,
    /// Times a job may be interrupted by a graceful shutdown (and handed back to run again)
    /// before it is given up: restarts every few minutes must not keep a long job alive forever.
    /// Such interruptions do not count toward a plugin's `max_attempts`.
    pub max_interruptions: u32,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            concurrency: 16,
            retry_backoff_ms: 2_000,
            memory_queue_mib: 4,
            cancel_grace_secs: 10,
            max_interruptions: 10,
        }
    }
}

impl WorkersConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        at_least_one(&[
            ("workers.concurrency", self.concurrency as u64),
            (
                "workers.max_interruptions",
                u64::from(self.max_interruptions),
            ),
        ])
    }
}
