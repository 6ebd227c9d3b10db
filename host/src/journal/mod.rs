//! The journal: every accepted delivery and every job, durable before ingress answers. The only
//! module that writes SQL. It sits behind small role traits ([`Queue`], [`LockStore`],
//! [`Reads`]...; [`Journal`] is all of them), with two backends: SQLite (one host) and
//! PostgreSQL (any number of hosts sharing one queue, claiming jobs with
//! `FOR UPDATE SKIP LOCKED` under leases). Nothing outside this module knows which one runs:
//! [`open`] picks it from `[store] backend`. `jobs` and `records` hold the types both backends
//! share, and what they compute alike.

#[cfg(test)]
pub(crate) mod conformance;
mod deploys;
mod heads;
mod jobs;
mod place;
mod postgres;
mod records;
mod roles;
mod rows;
mod sqlite;

use std::sync::Arc;

pub use deploys::{DeployRecordRow, DeploySuccessRow, SUCCESSES_READ, StickyLockRow};
pub use heads::{HEADS_READ, HeadRecord, NewHead};
#[cfg(test)]
pub(crate) use jobs::started;
pub use jobs::{
    Appended, AttemptEnd, JobId, JobState, LinkSalt, LostLease, PendingJob, QueuedPage, Started,
    Supersede,
};
pub(crate) use jobs::{EndedColumns, PageBuilder, cancel_reason};
pub use place::Place;
pub use postgres::{
    PostgresJournal, PostgresSettings, mask_url, migrate_only, schema_version, tls_config,
};
pub use records::{
    ActionFilter, ActionRecord, DeliveryRecord, GitHubPost, JobCounts, JobFilter, JobRecord,
    JobRow, LockRecord, NewAction, PostFilter, PostRecord, RecentFilter, VerdictFilter, Visibility,
};
pub use roles::{
    Approvals, AuditTrail, CatchUpMarks, DeployRecords, Health, HostKeys, Journal, LockStore,
    LogChunk, LogStore, Nonces, PostLog, Pruning, Queue, Reads, Sessions,
};
pub use sqlite::{SqliteJournal, backup, unix_millis};

/// Every role, imported unnamed, for code that calls them on a concrete journal (the tests):
/// `use switchyard::journal::prelude::*;`.
pub mod prelude {
    pub use super::roles::{
        Approvals as _, AuditTrail as _, CatchUpMarks as _, DeployRecords as _, Health as _,
        HostKeys as _, LockStore as _, LogStore as _, Nonces as _, PostLog as _, Pruning as _,
        Queue as _, Reads as _, Sessions as _,
    };
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
