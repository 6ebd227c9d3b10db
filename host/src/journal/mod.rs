//! The journal: every accepted delivery and every job, durable before ingress answers. The only
//! module that writes SQL. It sits behind the [`Journal`] trait, with two backends: SQLite (one
//! host) and PostgreSQL (any number of hosts sharing one queue, claiming jobs with
//! `FOR UPDATE SKIP LOCKED` under leases). Nothing outside this module knows which one runs:
//! [`open`] picks it from `[store] backend`.

#[cfg(test)]
pub(crate) mod conformance;
mod postgres;
mod roles;
mod sqlite;

use std::{fmt, sync::Arc};

pub use postgres::{
    PostgresJournal, PostgresSettings, mask_url, migrate_only, schema_version, tls_config,
};
pub use roles::{
    AuditTrail, CatchUpMarks, Health, HostKeys, Journal, LockStore, LogStore, Nonces, PostLog,
    Pruning, Queue, Reads, Sessions,
};
pub use sqlite::{SqliteJournal, backup, unix_millis};

/// Every role, imported unnamed, for code that calls them on a concrete journal (the tests):
/// `use switchyard::journal::prelude::*;`.
pub mod prelude {
    pub use super::roles::{
        AuditTrail as _, CatchUpMarks as _, Health as _, HostKeys as _, LockStore as _,
        LogStore as _, Nonces as _, PostLog as _, Pruning as _, Queue as _, Reads as _,
        Sessions as _,
    };
}

use switchyard_plugin_api::CancelReason;

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
    fn fresh(count: usize) -> Result<Vec<Self>, JournalError> {
        let mut bytes = vec![0u8; count * Self::BYTES];
        getrandom::fill(&mut bytes).map_err(|error| JournalError::Random(error.to_string()))?;
        Ok(bytes
            .chunks_exact(Self::BYTES)
            .map(|salt| Self(salt.try_into().ok()))
            .collect())
    }

    /// The salt as stored: a column of `BYTES` bytes, or NULL.
    fn from_stored(stored: Option<Vec<u8>>) -> Self {
        Self(stored.and_then(|bytes| bytes.try_into().ok()))
    }

    fn stored(&self) -> Option<&[u8]> {
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

    fn parse(s: &str) -> Option<Self> {
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

/// An attempt [`Queue::start_attempt`] started.
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

/// An attempt whose lease this host lost (see [`Queue::leases_lost`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LostLease {
    pub job: JobId,
    pub attempt: u32,
    /// When the lease may expire in the database, by this host's clock: from then on another
    /// host may run the job again.
    pub until: std::time::Instant,
}

/// What [`Queue::supersede`] did.
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

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptEnd {
    Succeeded {
        note: Option<String>,
    },
    Failed {
        error: String,
    },
    /// Failed, to be tried again: the job goes back to `queued`, not to start before
    /// `not_before` (Unix milliseconds).
    WillRetry {
        error: String,
        not_before: u64,
    },
}

/// What an ended attempt leaves in its job's row, whichever the backend.
pub(crate) struct EndedColumns {
    pub state: JobState,
    pub error: Option<String>,
    pub note: Option<String>,
    /// When it may run again (Unix milliseconds), when it goes back to the queue.
    pub not_before: Option<i64>,
    /// When it finished (RFC 3339); none when it goes back to the queue.
    pub finished_at: Option<String>,
}

impl AttemptEnd {
    /// The job's columns once this attempt ended.
    pub(crate) fn columns(self) -> EndedColumns {
        let (state, error, note, not_before) = match self {
            AttemptEnd::Succeeded { note } => (JobState::Succeeded, None, note, None),
            AttemptEnd::Failed { error } => (JobState::Failed, Some(error), None, None),
            AttemptEnd::WillRetry { error, not_before } => {
                (JobState::Queued, Some(error), None, Some(not_before as i64))
            }
        };
        let finished_at = (state != JobState::Queued).then(now_rfc3339);
        EndedColumns {
            state,
            error,
            note,
            not_before,
            finished_at,
        }
    }
}

/// A job as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: JobId,
    pub delivery: String,
    pub plugin: String,
    pub state: JobState,
    pub attempts: u32,
    pub error: Option<String>,
    pub note: Option<String>,
    pub link_salt: LinkSalt,
}

/// Whom a dashboard query answers: everything for a signed-in person (or the operator's
/// commands), and for a visitor of a `public-read` dashboard only what belongs to
/// repositories whose newest delivery said `"private": false`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Visibility {
    #[default]
    All,
    Public,
}

impl Visibility {
    /// Whether the query keeps only public repositories' rows (bound as its SQL parameter).
    pub(crate) fn public_only(self) -> bool {
        self == Self::Public
    }
}

/// The one visibility filter, shared by both backends' dashboard queries: the repository
/// `column` names is known, and the newest delivery of it said it is public. A repository made
/// private hides its older deliveries too; one never seen with `private` set stays hidden.
pub(crate) fn public_repository(column: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM repositories visible WHERE visible.name = {column} AND visible.private = FALSE)"
    )
}

/// Which deliveries `recent` lists.
#[derive(Debug, Clone, Default)]
pub struct RecentFilter {
    pub limit: usize,
    /// Only the delivery with this id.
    pub id: Option<String>,
    pub visibility: Visibility,
    /// Only this event.
    pub event: Option<String>,
    /// Only deliveries with at least one failed job.
    pub failed: bool,
    /// Only deliveries of this repository (`owner/name`, exactly).
    pub repository: Option<String>,
    /// Only deliveries stored before the one with this [`DeliveryRecord::seq`]: the next page.
    pub before: Option<i64>,
}

/// A delivery as `switchyard deliveries` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The journal's order of arrival: larger is later. A cursor for paging.
    pub seq: i64,
    pub id: String,
    pub sender: Option<String>,
    pub event: String,
    pub action: Option<String>,
    pub repository: Option<String>,
    pub received_at: String,
    pub jobs: Vec<JobRecord>,
}

/// Which jobs [`Reads::jobs`] lists; every `Some` narrows it.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub limit: usize,
    /// Only jobs of deliveries of repositories it shows.
    pub visibility: Visibility,
    /// Only this job.
    pub id: Option<JobId>,
    pub state: Option<JobState>,
    pub plugin: Option<String>,
    /// Only jobs of deliveries of this repository (`owner/name`, exactly).
    pub repository: Option<String>,
    /// Only jobs with smaller ids: the next page.
    pub before: Option<JobId>,
}

/// A job with what the dashboard shows beside it: its delivery's facts and its times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub job: JobRecord,
    pub event: String,
    pub action: Option<String>,
    pub repository: Option<String>,
    pub sender: Option<String>,
    /// RFC 3339: queued (the delivery's arrival), first attempt started, ended.
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// Jobs per state, for the dashboard's header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub queued: u64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Failed jobs that ended at or after the `since` asked for.
    pub failed_since: u64,
}

impl JobCounts {
    /// Counts `count` jobs in `state` (as stored); a state this build does not know is left out.
    pub(crate) fn tally(&mut self, state: &str, count: u64) {
        match JobState::parse(state) {
            Some(JobState::Queued) => self.queued = count,
            Some(JobState::Running) => self.running = count,
            Some(JobState::Succeeded) => self.succeeded = count,
            Some(JobState::Failed) => self.failed = count,
            None => {}
        }
    }
}

/// A lock held, as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRecord {
    pub name: String,
    pub job: JobId,
    pub attempt: u32,
    pub acquired_at: String,
}

/// A dashboard action to record in the audit trail: who did what to which delivery, job or
/// lock, and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewAction {
    /// The signed-in name (the token's name).
    pub actor: String,
    /// `replay`, `cancel` or `release`.
    pub action: String,
    pub delivery: Option<String>,
    pub job: Option<JobId>,
    pub lock: Option<String>,
    /// What came of it, in words (the new jobs, "cancelled", why nothing was done).
    pub outcome: String,
}

/// An action of the audit trail, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRecord {
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    pub actor: String,
    pub action: String,
    pub delivery: Option<String>,
    pub job: Option<JobId>,
    pub lock: Option<String>,
    pub outcome: String,
}

/// Which actions [`AuditTrail::actions`] lists, newest first; every `Some` narrows it.
#[derive(Debug, Clone, Default)]
pub struct ActionFilter {
    pub limit: usize,
    /// Only actions on jobs (or, without a job, deliveries) of repositories it shows.
    pub visibility: Visibility,
    pub id: Option<i64>,
    pub delivery: Option<String>,
    pub job: Option<JobId>,
    pub action: Option<String>,
}

/// What a job posted to GitHub through the host: a commit status, a check run, a deployment or
/// a deployment status, for the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitHubPost {
    pub job: JobId,
    /// `status`, `check_run`, `deployment` or `deployment_status`.
    pub kind: String,
    /// `owner/name`.
    pub repository: String,
    /// The commit. A deployment status names only its deployment: the journal fills in the sha
    /// and environment of that deployment when a job posted it.
    pub sha: Option<String>,
    pub environment: Option<String>,
    /// GitHub's id of the deployment.
    pub deployment: Option<i64>,
    pub state: Option<String>,
    /// A status's context, a check run's name.
    pub context: Option<String>,
    /// GitHub's page of it, else the link it carries (target, details or log URL).
    pub url: Option<String>,
}

/// A [`GitHubPost`] as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostRecord {
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    pub post: GitHubPost,
}

/// Which posts [`PostLog::posts`] lists, newest first.
#[derive(Debug, Clone, Default)]
pub struct PostFilter {
    pub limit: usize,
    /// Only posts to repositories it shows.
    pub visibility: Visibility,
    /// Only this job's.
    pub job: Option<JobId>,
    /// Only deployments and deployment statuses.
    pub deployments: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    #[error("cannot open the journal at {path}: {message}")]
    Open { path: String, message: String },
    #[error("journal database error: {0}")]
    Database(Arc<rusqlite::Error>),
    /// PostgreSQL refused or failed a statement (the message never holds the connection URL).
    #[error("journal database error: {0}")]
    Postgres(String),
    /// PostgreSQL cannot be reached now: no connection could be had within the pool's wait.
    #[error("the journal database is unreachable: {0}")]
    Unreachable(String),
    /// The database's schema is newer than this build knows, or not there at all.
    #[error("{0}")]
    Schema(String),
    /// The writer thread dropped the write: it is gone, or could not begin a transaction
    /// (the reason is in the log).
    #[error("the journal writer is unavailable (see the log)")]
    Unavailable,
    #[error("no job {0} in the journal")]
    NoSuchJob(JobId),
    #[error("job {job} is not running as attempt {attempt}")]
    NotRunning { job: JobId, attempt: u32 },
    #[error("the system's random number generator failed: {0}")]
    Random(String),
    #[error("the journal's folder takes no writes: {0}")]
    Storage(String),
}

impl JournalError {
    /// Whether the journal is out of reach for now (answer 503 and let the sender retry) rather
    /// than refusing this particular write.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable | Self::Unreachable(_))
    }
}

impl From<rusqlite::Error> for JournalError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Database(Arc::new(error))
    }
}

/// How a host reaches its journal: `[store]` resolved, secrets read.
pub enum StoreTarget {
    Sqlite(std::path::PathBuf),
    Postgres(PostgresSettings),
}

/// Opens (migrating if needed) the journal `target` names.
pub async fn open(target: StoreTarget) -> Result<Arc<dyn Journal>, JournalError> {
    Ok(match target {
        StoreTarget::Sqlite(path) => Arc::new(SqliteJournal::open(&path)?),
        StoreTarget::Postgres(settings) => Arc::new(PostgresJournal::open(settings).await?),
    })
}
