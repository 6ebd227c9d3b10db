//! The queue's vocabulary, shared by both backends: job ids and states, a job to run, the page of
//! queued jobs and how it is built, and what starting and ending an attempt says.

use std::{fmt, sync::Arc};

use switchyard_plugin_api::{CancelReason, Verdict};

use super::JournalError;
use crate::event::{Delivery, now_rfc3339};

/// A job's id: one plugin's work on one delivery.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The random salt a job's log link is signed with beside its id (see `job_log::link`): made
/// with the job and stored with it, so that a link opens that job's log alone, even in a journal
/// restored from a backup, which could give the job's id again. `None` for jobs stored before
/// salts were, whose links are signed with their id alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkSalt(pub Option<[u8; LinkSalt::BYTES]>);

impl LinkSalt {
    pub const BYTES: usize = 16;

    /// `count` fresh salts, from the operating system's random source.
    pub(super) fn fresh(count: usize) -> Result<Vec<Self>, JournalError> {
        let mut bytes = vec![0u8; count * Self::BYTES];
        getrandom::fill(&mut bytes).map_err(|error| JournalError::Random(error.to_string()))?;
        Ok(bytes
            .chunks_exact(Self::BYTES)
            .map(|salt| Self(salt.try_into().ok()))
            .collect())
    }

    /// The salt as stored: a column of `BYTES` bytes, or NULL.
    pub(super) fn from_stored(stored: Option<Vec<u8>>) -> Self {
        Self(stored.and_then(|bytes| bytes.try_into().ok()))
    }

    pub(super) fn stored(&self) -> Option<&[u8]> {
        self.0.as_ref().map(|salt| &salt[..])
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub(super) fn parse(s: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|state| state.as_str() == s)
    }
}

/// A job ready to run, with its delivery.
#[derive(Debug, Clone)]
pub struct PendingJob {
    pub id: JobId,
    pub plugin: String,
    /// Attempts already made, those a graceful shutdown handed back included.
    pub attempts: u32,
    /// Of `attempts`, those a graceful shutdown interrupted and handed back: they do not count
    /// toward `max_attempts`, only toward `[workers] max_interruptions`.
    pub interruptions: u32,
    pub delivery: Arc<Delivery>,
    pub link_salt: LinkSalt,
}

impl PendingJob {
    /// Attempts that count toward `max_attempts`: those that ended, or that the host died in.
    pub fn counted_attempts(&self) -> u32 {
        self.attempts.saturating_sub(self.interruptions)
    }
}

/// A page of queued jobs read back from the journal.
#[derive(Debug, Default)]
pub struct QueuedPage {
    pub jobs: Vec<PendingJob>,
    /// Where the next page starts, when this one stopped at its limit or byte budget.
    pub next: Option<JobId>,
}

/// Fills a [`QueuedPage`] from rows in job order, for both backends: a delivery's jobs share
/// one copy of it, and the page stops at its payload byte budget (holding at least one job) or
/// its row limit.
pub(crate) struct PageBuilder {
    page: QueuedPage,
    deliveries: std::collections::HashMap<String, Arc<Delivery>>,
    bytes: usize,
    max_bytes: usize,
}

impl PageBuilder {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            page: QueuedPage::default(),
            deliveries: std::collections::HashMap::new(),
            bytes: 0,
            max_bytes,
        }
    }

    /// The delivery `id`, loaded by `load` the first time a row names it.
    pub(crate) fn delivery(
        &mut self,
        id: String,
        load: impl FnOnce() -> Result<Delivery, JournalError>,
    ) -> Result<Arc<Delivery>, JournalError> {
        if let Some(delivery) = self.deliveries.get(&id) {
            return Ok(Arc::clone(delivery));
        }
        let delivery = Arc::new(load()?);
        self.deliveries.insert(id, Arc::clone(&delivery));
        Ok(delivery)
    }

    /// Adds `job`, or returns false once it would take the page past its byte budget: the page
    /// then ends, and the next one starts at `job`.
    pub(crate) fn push(&mut self, job: PendingJob) -> bool {
        self.bytes += job.delivery.payload.len();
        if self.bytes > self.max_bytes && !self.page.jobs.is_empty() {
            self.page.next = Some(job.id);
            return false;
        }
        self.page.jobs.push(job);
        true
    }

    /// The page; when it holds `limit` jobs, the next one starts after its last.
    pub(crate) fn finish(mut self, limit: usize) -> QueuedPage {
        if self.page.next.is_none() && self.page.jobs.len() == limit {
            self.page.next = self.page.jobs.last().map(|job| JobId(job.id.0 + 1));
        }
        self.page
    }
}

/// An attempt [`Queue::start_attempt`](super::Queue::start_attempt) started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// Its number: 1 for the first.
    pub number: u32,
    /// A cancellation asked for while the job was queued: the attempt starts cancelled, so the
    /// plugin is told at once and can post its final status.
    pub cancel: Option<CancelReason>,
}

/// A stored cancellation reason; one this host cannot read (written by a newer one) still
/// cancels, as a person's.
pub(crate) fn cancel_reason(stored: Option<String>) -> Option<CancelReason> {
    let stored = stored?;
    Some(
        serde_json::from_str(&stored).unwrap_or_else(|_| CancelReason::User {
            by: "another host".to_owned(),
        }),
    )
}

/// An attempt numbered `number` started, with no cancellation asked for.
#[cfg(test)]
pub(crate) fn started(number: u32) -> Option<Started> {
    Some(Started {
        number,
        cancel: None,
    })
}

/// An attempt whose lease this host lost (see [`Queue::leases_lost`](super::Queue::leases_lost)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LostLease {
    pub job: JobId,
    pub attempt: u32,
    /// When the lease may expire in the database, by this host's clock: from then on another
    /// host may run the job again.
    pub until: std::time::Instant,
}

/// What [`Queue::supersede`](super::Queue::supersede) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Supersede {
    /// The job is the latest of its line; `replaced` is the older job asked to cancel (one
    /// still queued or running).
    Latest { replaced: Option<JobId> },
    /// A job with a larger id is the latest, working on `newer_sha`.
    Stale { newer_sha: String },
}

/// What appending a delivery did.
#[derive(Debug)]
pub enum Appended {
    /// Stored (or, for a rerun redelivery, stored before) with these new jobs.
    New(Vec<PendingJob>),
    /// The id was seen before and redeliveries are ignored: nothing new.
    Duplicate,
}

/// How an attempt ended. A job's end carries its verdict (see [`Verdict`]); a retry has
/// none yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptEnd {
    /// The plugin returned: the job ran to its end, whatever its verdict.
    Succeeded {
        note: Option<String>,
        verdict: Verdict,
    },
    /// The plugin failed, or the host stopped it: the job failed to run to its end.
    Failed { error: String, verdict: Verdict },
    /// Failed, to be tried again: the job goes back to `queued`, not to start before
    /// `not_before` (Unix milliseconds).
    WillRetry { error: String, not_before: u64 },
}

/// What an ended attempt leaves in its job's row, whichever the backend.
pub(crate) struct EndedColumns {
    pub state: JobState,
    pub error: Option<String>,
    pub note: Option<String>,
    /// Its verdict, stored by name; none when it goes back to the queue.
    pub verdict: Option<&'static str>,
    /// When it may run again (Unix milliseconds), when it goes back to the queue.
    pub not_before: Option<i64>,
    /// When it finished (RFC 3339); none when it goes back to the queue.
    pub finished_at: Option<String>,
}

impl AttemptEnd {
    /// The job's columns once this attempt ended.
    pub(crate) fn columns(self) -> EndedColumns {
        let (state, error, note, verdict, not_before) = match self {
            AttemptEnd::Succeeded { note, verdict } => {
                (JobState::Succeeded, None, note, Some(verdict), None)
            }
            AttemptEnd::Failed { error, verdict } => {
                (JobState::Failed, Some(error), None, Some(verdict), None)
            }
            AttemptEnd::WillRetry { error, not_before } => (
                JobState::Queued,
                Some(error),
                None,
                None,
                Some(not_before as i64),
            ),
        };
        let finished_at = (state != JobState::Queued).then(now_rfc3339);
        EndedColumns {
            state,
            error,
            note,
            verdict: verdict.map(Verdict::as_str),
            not_before,
            finished_at,
        }
    }
}
