//! The journal's roles: one small trait per capability (the queue, locks, the audit trail...), so
//! that each consumer names what it uses. Both backends implement every role, and the
//! conformance suite is their contract; [`Journal`] is all of them at once, what `open` returns.

use std::{collections::HashSet, sync::Arc, time::Duration};

use switchyard_plugin_api::CancelReason;

use super::{
    ActionFilter, ActionRecord, Appended, AttemptEnd, DeliveryRecord, GitHubPost, JobCounts,
    JobFilter, JobId, JobRecord, JobRow, JobState, JournalError, LockRecord, LostLease, NewAction,
    PostFilter, PostRecord, QueuedPage, RecentFilter, Started, Supersede, Visibility,
    deploys::{DeployRecordRow, DeploySuccessRow, StickyLockRow},
    heads::{HeadRecord, NewHead},
};
use crate::event::Delivery;

/// The queue: storing deliveries with their jobs, attempts from start to end, cancellation,
/// supersession and leases. What ingress and the workers use.
#[async_trait::async_trait]
pub trait Queue: Send + Sync {
    /// Stores a delivery and one queued job per plugin, durably, before returning. A delivery
    /// id seen before is [`Appended::Duplicate`] unless `rerun`, which adds new jobs to it.
    async fn append(
        &self,
        delivery: Arc<Delivery>,
        plugins: Vec<String>,
        rerun: bool,
    ) -> Result<Appended, JournalError>;

    /// Starts an attempt of a job that is `queued` with `attempts` attempts made: marks it
    /// running and returns this attempt's number (1 for the first). `None` when the job is not
    /// in that state: another hand-over of the same job started it first, or it ended.
    ///
    /// A journal may answer before the start is durable (SQLite answers once the change is
    /// made, and it commits with its batch): a start lost to a crash only means that the job,
    /// which had not ended, runs again, as any job running at a crash does. Its end is recorded
    /// after its start, so an end that is durable implies a start that is.
    async fn start_attempt(
        &self,
        job: JobId,
        attempts: u32,
    ) -> Result<Option<Started>, JournalError>;

    /// Records how attempt `attempt` of a running job ended, and frees its locks in the same
    /// transaction. [`JournalError::NotRunning`] when the job is not running as that attempt.
    async fn end_attempt(
        &self,
        job: JobId,
        attempt: u32,
        end: AttemptEnd,
    ) -> Result<(), JournalError>;

    /// Fails a job that is `queued` with `attempts` attempts made, without running it (its
    /// plugin is gone, or the host died during each attempt). Returns whether it did.
    async fn fail_unstarted(
        &self,
        job: JobId,
        attempts: u32,
        error: String,
    ) -> Result<bool, JournalError>;

    /// Hands back attempt `attempt` of `job`, which a graceful shutdown interrupted: the job is
    /// queued again at once, its locks freed, and the attempt recorded as an interruption
    /// (it does not count toward `max_attempts`), so the job runs again: on another host
    /// sharing the journal now, or on this one after its restart. Nothing happens when the job
    /// is not running as that attempt (already handed back, or its lease was lost).
    async fn hand_back(&self, job: JobId, attempt: u32) -> Result<(), JournalError>;

    /// Puts jobs left `running` (by a crash, or a shutdown past its grace period) back to
    /// `queued`, keeping their attempts, and returns how many. For start-up, before any job
    /// runs: afterwards every unfinished job is `queued`.
    async fn requeue_interrupted(&self) -> Result<usize, JournalError>;

    /// `queued` jobs with ids from `from` on, oldest first: at most `limit`, and no more than
    /// fit in `max_bytes` of payload (but at least one).
    async fn queued(
        &self,
        from: JobId,
        limit: usize,
        max_bytes: usize,
    ) -> Result<QueuedPage, JournalError>;

    /// Jobs `queued` or `running`.
    async fn unfinished_count(&self) -> Result<u64, JournalError>;

    /// Asks for job `job` to be cancelled for `reason`, and returns the state it was in (`None`
    /// when there is no such job). A queued or running job keeps the first reason asked for:
    /// a queued one is told as its next attempt starts (see [`Started::cancel`]), and a running
    /// one by the host that runs it (see [`Queue::cancel_requested`]). An ended job is left.
    async fn request_cancel(
        &self,
        job: JobId,
        reason: &CancelReason,
    ) -> Result<Option<JobState>, JournalError>;

    /// Completes with cancellations asked for of attempts this host started, by another host.
    /// A journal only one host writes never completes it (the asking host cancels its own
    /// attempts). The same job may come again: cancelling twice keeps the first reason.
    async fn cancel_requested(&self) -> Vec<(JobId, CancelReason)> {
        std::future::pending().await
    }

    /// Completes with attempts this host started whose leases it could not renew in time (its
    /// connection to the journal failed): by `until` another host may take them, so they must
    /// be stopped before then. The journal no longer renews them. A journal only one host
    /// writes never completes it.
    async fn leases_lost(&self) -> Vec<LostLease> {
        std::future::pending().await
    }

    /// Records job `job`, working on `sha`, as the latest of `line`, unless a job with a larger
    /// id already is. The job it replaces is asked to cancel (as by [`Queue::request_cancel`])
    /// in the same transaction, with [`CancelReason::Superseded`].
    async fn supersede(&self, line: &str, job: JobId, sha: &str)
    -> Result<Supersede, JournalError>;

    /// The latest job of `line` and the sha it works on, as [`Queue::supersede`] recorded it.
    async fn latest_of_line(&self, line: &str) -> Result<Option<(JobId, String)>, JournalError>;

    /// Completes when queued jobs may have appeared that this host was not handed: another
    /// host stored a delivery, or a dead host's leases expired and its jobs were queued again.
    /// It answers the lowest job id that may be new (`JobId(0)` when it cannot say), so the
    /// workers read from there, not the whole queue. A journal only one host writes never
    /// completes it. Wake-ups may be spurious or coalesced; the workers' periodic sweep stays
    /// the fallback.
    async fn queue_changed(&self) -> JobId {
        std::future::pending::<JobId>().await
    }

    /// How often the workers sweep the journal for queued jobs nobody handed them.
    fn sweep_interval(&self) -> Duration {
        Duration::from_secs(30)
    }
}

/// Reading deliveries and jobs back: the dashboard, the operator commands and the log links.
#[async_trait::async_trait]
pub trait Reads: Send + Sync {
    /// One job's record.
    async fn job(&self, job: JobId) -> Result<JobRecord, JournalError>;

    /// All jobs of one delivery.
    async fn jobs_of(&self, delivery: &str) -> Result<Vec<JobRecord>, JournalError>;

    /// The stored delivery with this id, payload included.
    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, JournalError>;

    /// The latest deliveries, newest first, with their jobs.
    async fn recent(&self, filter: RecentFilter) -> Result<Vec<DeliveryRecord>, JournalError>;

    /// Jobs, newest (largest id) first, at most `filter.limit`, with their deliveries' facts:
    /// the dashboard's jobs list and job page.
    async fn jobs(&self, filter: JobFilter) -> Result<Vec<JobRow>, JournalError>;

    /// How many jobs (of the repositories `visibility` shows) are in each state, and how many
    /// failed at or after `since` (RFC 3339).
    async fn job_counts(
        &self,
        since: &str,
        visibility: Visibility,
    ) -> Result<JobCounts, JournalError>;

    /// The private repositories the journal knows (as their newest delivery said), most
    /// recently active first, at most `limit`: those whose readers the dashboard asks GitHub.
    async fn private_repositories(&self, limit: usize) -> Result<Vec<String>, JournalError>;
}

/// Named locks held by job attempts.
#[async_trait::async_trait]
pub trait LockStore: Send + Sync {
    /// Takes the lock `name` for attempt `attempt` of `job` if it is free or already that
    /// attempt's. Returns whether it holds it. Locks are released when the attempt ends (see
    /// `end_attempt`), when its job is given up, and at start for attempts the host died in.
    async fn try_lock(&self, name: &str, job: JobId, attempt: u32) -> Result<bool, JournalError>;

    /// Frees the lock `name` if `job` holds it (a person released it from the dashboard, its
    /// holder stuck). Returns whether it did.
    async fn release_lock(&self, name: &str, job: JobId) -> Result<bool, JournalError>;

    /// Every lock held now, by name.
    async fn locks(&self) -> Result<Vec<LockRecord>, JournalError>;
}

/// The audit trail of dashboard actions.
#[async_trait::async_trait]
pub trait AuditTrail: Send + Sync {
    /// Records a dashboard action in the audit trail, durably, and returns its id.
    async fn record_action(&self, action: NewAction) -> Result<i64, JournalError>;

    /// Actions of the audit trail, newest first, at most `filter.limit`.
    async fn actions(&self, filter: ActionFilter) -> Result<Vec<ActionRecord>, JournalError>;
}

/// What jobs posted to GitHub.
#[async_trait::async_trait]
pub trait PostLog: Send + Sync {
    /// Records what a job posted to GitHub.
    async fn record_post(&self, post: GitHubPost) -> Result<(), JournalError>;

    /// Posts to GitHub, newest first, at most `filter.limit`.
    async fn posts(&self, filter: PostFilter) -> Result<Vec<PostRecord>, JournalError>;
}

/// Dashboard sign-outs, shared by every host.
#[async_trait::async_trait]
pub trait Sessions: Send + Sync {
    /// Ends every dashboard session of `name` begun at or before `at` (Unix milliseconds): a
    /// sign-out, everywhere. Only moves forward.
    async fn end_sessions(&self, name: &str, at: u64) -> Result<(), JournalError>;

    /// When `name`'s sessions were last ended (Unix milliseconds): a session begun at or before
    /// it is over.
    async fn sessions_ended(&self, name: &str) -> Result<Option<u64>, JournalError>;
}

/// What catch-up has dealt with: the deliveries held, and how far each hook's rounds got.
#[async_trait::async_trait]
pub trait CatchUpMarks: Send + Sync {
    /// Which of `ids` (delivery GUIDs) the journal holds: what catch-up must not redeliver.
    async fn held_deliveries(&self, ids: Vec<String>) -> Result<HashSet<String>, JournalError>;

    /// How far catch-up got through `source`'s deliveries (a hook: `app/hook`,
    /// `repos/OWNER/REPO/hooks/ID`, `orgs/ORG/hooks/ID`): the largest GitHub delivery id it
    /// has dealt with, or `None` before its first round.
    async fn catch_up_mark(&self, source: &str) -> Result<Option<i64>, JournalError>;

    /// Moves `source`'s mark to `to` if it is still `from`, durably, and returns whether it did:
    /// false means another host (or `switchyard catch-up`) moved it first, and owns that round.
    async fn move_catch_up_mark(
        &self,
        source: &str,
        from: Option<i64>,
        to: i64,
    ) -> Result<bool, JournalError>;
}

/// Nonces of signed admin calls, each accepted once.
#[async_trait::async_trait]
pub trait Nonces: Send + Sync {
    /// Records the nonce of a signed admin call, to be remembered until `until` (seconds since
    /// the epoch); forgets those expired by `now`. Returns false when it was seen before.
    async fn claim_nonce(&self, nonce: &str, until: u64, now: u64) -> Result<bool, JournalError>;
}

/// Secrets every host sharing the journal uses alike.
#[async_trait::async_trait]
pub trait HostKeys: Send + Sync {
    /// The host's secret `name`: 32 random bytes made on first use and kept, so every restart
    /// (and every host sharing the journal) uses the same one.
    async fn host_key(&self, name: &str) -> Result<Vec<u8>, JournalError>;
}

/// Job logs kept in the journal (PostgreSQL) rather than in files, and the job ids log
/// files still name.
#[async_trait::async_trait]
pub trait LogStore: Send + Sync {
    /// Whether job logs live in the journal (shared by every host) rather than in files on
    /// this host. When false, the `*_log` methods are not called.
    fn keeps_logs(&self) -> bool {
        false
    }

    /// Appends a chunk to job `job`'s log, in one statement whatever the log's length, unless
    /// the log already holds `limit` bytes. Returns the log's length after it, or `None` when it
    /// was at its limit and nothing was added.
    async fn append_log(
        &self,
        job: JobId,
        text: Vec<u8>,
        limit: u64,
    ) -> Result<Option<u64>, JournalError> {
        let _ = (job, text, limit);
        Err(JournalError::Unavailable)
    }

    /// Bytes in job `job`'s log.
    async fn log_len(&self, job: JobId) -> Result<u64, JournalError> {
        let _ = job;
        Err(JournalError::Unavailable)
    }

    /// The chunks of job `job`'s log holding bytes `from..to`, in order: the one `from` is in
    /// (or the last, past the end), and those starting before `to`.
    async fn log_chunks(
        &self,
        job: JobId,
        from: u64,
        to: u64,
    ) -> Result<Vec<LogChunk>, JournalError> {
        let _ = (job, from, to);
        Err(JournalError::Unavailable)
    }

    /// The chunk of job `job`'s log holding its `newline`th newline (1-based), or its last
    /// chunk when it has fewer; `None` for an empty log.
    async fn log_chunk_with_newline(
        &self,
        job: JobId,
        newline: u64,
    ) -> Result<Option<LogChunk>, JournalError> {
        let _ = (job, newline);
        Err(JournalError::Unavailable)
    }

    /// Up to `max` chunks of job `job`'s log from chunk `from` (0 for the first) on, in order.
    async fn read_log(
        &self,
        job: JobId,
        from: u64,
        max: usize,
    ) -> Result<Vec<Vec<u8>>, JournalError> {
        let _ = (job, from, max);
        Err(JournalError::Unavailable)
    }

    /// Makes sure no job is given an id up to `job`: ids of jobs the journal no longer knows of
    /// but something else still names (a log file left by a journal restored from a backup).
    async fn skip_job_ids_through(&self, job: JobId) -> Result<(), JournalError>;
}

/// A chunk of a job log kept in the journal, with where it stands in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// The offset of its first byte in the log.
    pub start: u64,
    /// Newlines in the log before it.
    pub newlines_before: u64,
    /// When it was written, in Unix milliseconds; `None` for chunks written before times were
    /// kept.
    pub written_ms: Option<u64>,
    pub data: Vec<u8>,
}

/// Retention: deleting what is older than `[store] keep_days`.
#[async_trait::async_trait]
pub trait Pruning: Send + Sync {
    /// Deletes up to `limit` finished jobs that ended before `ended_before` (RFC 3339), with any
    /// lock rows left behind and their commit statuses and check runs (their deployments stay:
    /// they say what is deployed), and returns their ids: their log files are the caller's.
    async fn prune_jobs(
        &self,
        ended_before: &str,
        limit: usize,
    ) -> Result<Vec<JobId>, JournalError>;

    /// Deletes up to `limit` deliveries received before `received_before` (RFC 3339) that have
    /// no jobs left, and returns how many.
    async fn prune_deliveries(
        &self,
        received_before: &str,
        limit: usize,
    ) -> Result<usize, JournalError>;
}

/// Readiness: whether the journal takes writes.
#[async_trait::async_trait]
pub trait Health: Send + Sync {
    /// Proves the journal takes writes as a delivery needs them (for `/readyz`): space in its
    /// storage, and a committed write through the writer.
    async fn ping(&self) -> Result<(), JournalError>;
}

/// The heads of pull requests from forks: seen arriving, or approved by `/ok-to-test`.
#[async_trait::async_trait]
pub trait Approvals: Send + Sync {
    /// Records a head, durably. Returns whether it is the pull request's first record.
    async fn record_head(&self, head: NewHead) -> Result<bool, JournalError>;

    /// The pull request's records, oldest first: the newest [`HEADS_READ`](super::HEADS_READ) of them.
    async fn heads(&self, repository: &str, number: u64) -> Result<Vec<HeadRecord>, JournalError>;
}

/// The deployer's sticky locks and the deployments this host created (see `journal::deploys`).
#[async_trait::async_trait]
pub trait DeployRecords: Send + Sync {
    /// Takes `lock` if its environment is free, atomically (across hosts on PostgreSQL), and
    /// returns the lock that now holds: `lock` itself, or the one held before.
    async fn take_sticky_lock(&self, lock: StickyLockRow) -> Result<StickyLockRow, JournalError>;

    /// Releases the environment's sticky lock, returning the lock it held, if any.
    async fn release_sticky_lock(
        &self,
        repository: &str,
        environment: &str,
    ) -> Result<Option<StickyLockRow>, JournalError>;

    /// The sticky locks held, of one repository or (`None`) of all, by repository and
    /// environment.
    async fn sticky_locks(
        &self,
        repository: Option<&str>,
    ) -> Result<Vec<StickyLockRow>, JournalError>;

    /// Records a deployment this host created (a second record of one id is ignored).
    async fn record_deployment(&self, record: DeployRecordRow) -> Result<(), JournalError>;

    /// The record of deployment `id` of `repository`, if this host created it.
    async fn deployment_record(
        &self,
        repository: &str,
        id: u64,
    ) -> Result<Option<DeployRecordRow>, JournalError>;

    /// Claims the automatic deploy of `sha` to `environment`, atomically (across hosts on
    /// PostgreSQL): whether this call claimed it (`false`: claimed before).
    async fn claim_deploy(
        &self,
        repository: &str,
        environment: &str,
        sha: &str,
    ) -> Result<bool, JournalError>;

    /// Records a deploy that succeeded.
    async fn record_deploy_success(&self, success: DeploySuccessRow) -> Result<(), JournalError>;

    /// The successes of `repository` (of one environment, or all), newest first, at most
    /// `limit` (up to [`SUCCESSES_READ`](super::SUCCESSES_READ)).
    async fn deploy_successes(
        &self,
        repository: &str,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeploySuccessRow>, JournalError>;

    /// Gives a claim back (GitHub refused the deployment: not green yet).
    async fn release_deploy_claim(
        &self,
        repository: &str,
        environment: &str,
        sha: &str,
    ) -> Result<(), JournalError>;
}

/// Durable storage of deliveries and jobs: every role at once. Implemented for whatever
/// implements them all; a consumer that needs fewer takes the role it uses (an
/// `Arc<dyn Journal>` converts to an `Arc<dyn LockStore>`, say).
pub trait Journal:
    Queue
    + Reads
    + LockStore
    + AuditTrail
    + PostLog
    + Sessions
    + CatchUpMarks
    + Nonces
    + HostKeys
    + LogStore
    + Pruning
    + Health
    + Approvals
    + DeployRecords
{
}

impl<T> Journal for T where
    T: Queue
        + Reads
        + LockStore
        + AuditTrail
        + PostLog
        + Sessions
        + CatchUpMarks
        + Nonces
        + HostKeys
        + LogStore
        + Pruning
        + Health
        + Approvals
        + DeployRecords
        + ?Sized
{
}
