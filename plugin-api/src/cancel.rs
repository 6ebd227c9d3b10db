//! Cancellation: how a plugin learns that the host is stopping its job, and why. One mechanism
//! for every reason (the job's timeout, the host shutting down, a person pressing Cancel): the
//! host tells the plugin through [`crate::Host::cancelled`], gives it `[workers]
//! cancel_grace_secs` to post a final status and return, and only then kills its commands and
//! drops its future.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why the host is cancelling a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CancelReason {
    /// The job ran past its entry's `timeout_secs` (the host's cut-off for the whole job).
    Timeout { secs: u64 },
    /// The host is stopping. The job was not recorded as ended: it runs again after the
    /// restart, so a plugin should say so rather than report a failure.
    Shutdown,
    /// Someone cancelled it.
    User { by: String },
    /// A newer job of the same line (see [`crate::Host::supersede`]) replaced it: a push to the
    /// same pull request, say. `sha` is what the newer job works on.
    Superseded { sha: String },
    /// The host is stopping, and the job was interrupted by shutdowns `interruptions` times
    /// (the host's `[workers] max_interruptions`): it is failed, not run again.
    ShutdownGivenUp { interruptions: u32 },
    /// This host lost touch with the journal several hosts share, and with it the job's lease:
    /// another host may run it, so this one stops it now. It runs again on another host
    /// unless this was its last attempt (`runs_again`).
    LeaseLost { runs_again: bool },
}

impl CancelReason {
    /// Whether the job runs again after this (a shutdown): report it as interrupted, not failed.
    pub fn runs_again(&self) -> bool {
        match self {
            Self::Shutdown => true,
            Self::LeaseLost { runs_again } => *runs_again,
            _ => false,
        }
    }
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout { secs } => write!(f, "timed out after {secs} s (the job's timeout)"),
            Self::Shutdown => {
                f.write_str("interrupted by a host shutdown; runs again after the restart")
            }
            Self::User { by } => write!(f, "cancelled by {by}"),
            Self::Superseded { sha } => {
                write!(f, "superseded by {}", sha.get(..7).unwrap_or(sha))
            }
            Self::ShutdownGivenUp { interruptions } => write!(
                f,
                "interrupted by host shutdowns {interruptions} times; given up, not run again"
            ),
            Self::LeaseLost { runs_again: true } => f.write_str(
                "stopped: this host lost its lease on the job; runs again on another host",
            ),
            Self::LeaseLost { runs_again: false } => f.write_str(
                "stopped: this host lost its lease on the job, on its last attempt; not run again",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_well_and_round_trip() {
        // (reason, text, JSON)
        let cases = [
            (
                CancelReason::Timeout { secs: 60 },
                "timed out after 60 s (the job's timeout)",
                r#"{"reason":"timeout","secs":60}"#,
            ),
            (
                CancelReason::Shutdown,
                "interrupted by a host shutdown; runs again after the restart",
                r#"{"reason":"shutdown"}"#,
            ),
            (
                CancelReason::User { by: "mona".into() },
                "cancelled by mona",
                r#"{"reason":"user","by":"mona"}"#,
            ),
            (
                CancelReason::Superseded {
                    sha: "8b1d0c6f0e2a".into(),
                },
                "superseded by 8b1d0c6",
                r#"{"reason":"superseded","sha":"8b1d0c6f0e2a"}"#,
            ),
            (
                CancelReason::ShutdownGivenUp { interruptions: 10 },
                "interrupted by host shutdowns 10 times; given up, not run again",
                r#"{"reason":"shutdown_given_up","interruptions":10}"#,
            ),
            (
                CancelReason::LeaseLost { runs_again: true },
                "stopped: this host lost its lease on the job; runs again on another host",
                r#"{"reason":"lease_lost","runs_again":true}"#,
            ),
        ];
        for (reason, text, json) in cases {
            assert_eq!(reason.to_string(), text);
            assert_eq!(serde_json::to_string(&reason).unwrap(), json);
            assert_eq!(serde_json::from_str::<CancelReason>(json).unwrap(), reason);
        }
        assert!(CancelReason::Shutdown.runs_again());
        assert!(!CancelReason::Timeout { secs: 1 }.runs_again());
        assert!(!CancelReason::ShutdownGivenUp { interruptions: 3 }.runs_again());
        assert!(CancelReason::LeaseLost { runs_again: true }.runs_again());
        assert!(!CancelReason::LeaseLost { runs_again: false }.runs_again());
    }
}
