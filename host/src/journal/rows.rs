//! Rows turned into records, written once for both backends: a backend reads typed columns from
//! its own row API through [`Columns`], and the mappings here say which column is what.

use bytes::Bytes;

use super::{
    ActionRecord, DeliveryRecord, GitHubPost, JobId, JobRecord, JobRow, JobState, JournalError,
    LinkSalt, PageBuilder, PendingJob, Place, PostRecord,
};
use crate::event::{Delivery, DeliveryId, EventKind, PayloadFacts};
use switchyard_plugin_api::Verdict;

/// A value both backends read from a column alike.
pub(crate) trait Column:
    rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a>
{
}

impl<T> Column for T where T: rusqlite::types::FromSql + for<'a> tokio_postgres::types::FromSql<'a> {}

/// One row of a query, read by position through the backend's own row API.
pub(crate) trait Columns {
    /// What a failed read is on this backend (SQLite's is what its row callbacks return).
    type Error;

    fn get<T: Column>(&self, column: usize) -> Result<T, Self::Error>;

    /// Hands a binary column to `read` without copying it.
    fn blob<R>(&self, column: usize, read: impl FnOnce(&[u8]) -> R) -> Result<R, Self::Error>;

    /// A value the row holds that this build cannot make sense of.
    fn invalid(&self, column: usize, message: String) -> Self::Error;
}

/// The SQL twin of [`JobRecord::is_failed`], over `jobs j`: a verdict failed, errored or
/// timed out, or no verdict and the job failed to run (recorded before verdicts were).
pub(crate) const FAILED_JOB: &str = "(j.verdict IN ('failed', 'errored', 'timed_out')
     OR (j.verdict IS NULL AND j.state = 'failed'))";

/// A job's record (columns 0..=6, 14 and 15, read by [`job_record`]), then its delivery's facts,
/// its times and its place (7..=13 and 16..=18, read by [`job_row`]).
pub(crate) const JOB_COLUMNS: &str =
    "SELECT j.id, d.id, j.plugin, j.state, j.attempts, j.error, j.note,
            d.event, d.action, d.repository, d.sender, j.created_at, j.started_at, j.finished_at,
            j.link_salt, j.verdict, d.pull_request, d.head_sha, d.git_ref
     FROM jobs j JOIN deliveries d ON d.seq = j.delivery";

/// A job's record from a row of [`JOB_COLUMNS`].
pub(crate) fn job_record<R: Columns>(row: &R) -> Result<JobRecord, R::Error> {
    let state: String = row.get(3)?;
    Ok(JobRecord {
        id: JobId(row.get(0)?),
        delivery: row.get(1)?,
        plugin: row.get(2)?,
        state: JobState::parse(&state)
            .ok_or_else(|| row.invalid(3, format!("job has an unknown state {state:?}")))?,
        attempts: row.get::<i32>(4)? as u32,
        error: row.get(5)?,
        note: row.get(6)?,
        link_salt: LinkSalt::from_stored(row.get(14)?),
        verdict: match row.get::<Option<String>>(15)? {
            Some(name) => {
                Some(Verdict::parse(&name).ok_or_else(|| {
                    row.invalid(15, format!("job has an unknown verdict {name:?}"))
                })?)
            }
            None => None,
        },
    })
}

/// A job with its delivery's facts and its times, from a row of [`JOB_COLUMNS`].
pub(crate) fn job_row<R: Columns>(row: &R) -> Result<JobRow, R::Error> {
    Ok(JobRow {
        job: job_record(row)?,
        event: row.get(7)?,
        action: row.get(8)?,
        repository: row.get(9)?,
        sender: row.get(10)?,
        created_at: row.get(11)?,
        started_at: row.get(12)?,
        finished_at: row.get(13)?,
        place: Place {
            pull_request: row.get(16)?,
            head_sha: row.get(17)?,
            git_ref: row.get(18)?,
        },
    })
}

/// Rebuilds a delivery from columns `at..at + 7`: id, event, action, repository, received_at,
/// payload (LZ4), sender. Its headers are left empty (see [`delivery_with_headers`]).
pub(crate) fn stored_delivery<R: Columns>(row: &R, at: usize) -> Result<Delivery, R::Error> {
    let id: String = row.get(at)?;
    let event: String = row.get(at + 1)?;
    let corrupt = |column: usize, what: &str| {
        row.invalid(column, format!("delivery {id} has an invalid {what}"))
    };
    let parsed_id = DeliveryId::parse(&id).ok_or_else(|| corrupt(at, "id"))?;
    let kind = EventKind::parse(&event).ok_or_else(|| corrupt(at + 1, "event"))?;
    let payload = row
        .blob(at + 5, lz4_flex::decompress_size_prepended)?
        .map_err(|_| corrupt(at + 5, "payload"))?;
    Ok(Delivery {
        id: parsed_id,
        kind,
        facts: PayloadFacts {
            action: row.get(at + 2)?,
            repository: row.get(at + 3)?,
            sender: row.get(at + 6)?,
            private: None,
        },
        received_at: row.get(at + 4)?,
        headers: Vec::new(),
        payload: Bytes::from(payload),
    })
}

/// [`stored_delivery`] with its headers (JSON, column `at + 7`); headers that do not parse are
/// left out, as a replay needs only the payload.
pub(crate) fn delivery_with_headers<R: Columns>(row: &R, at: usize) -> Result<Delivery, R::Error> {
    let mut delivery = stored_delivery(row, at)?;
    let headers: Option<String> = row.get(at + 7)?;
    delivery.headers = headers
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    Ok(delivery)
}

/// A queued job from a row of the queued-jobs query: job id, plugin, attempts, the delivery's
/// columns (3..=9, loaded once per page), interruptions and link salt.
pub(crate) fn pending_job<R: Columns>(
    page: &mut PageBuilder,
    row: &R,
) -> Result<PendingJob, JournalError>
where
    JournalError: From<R::Error>,
{
    let delivery = page.delivery(row.get(3)?, || Ok(stored_delivery(row, 3)?))?;
    Ok(PendingJob {
        id: JobId(row.get(0)?),
        plugin: row.get(1)?,
        attempts: row.get::<i32>(2)? as u32,
        interruptions: row.get::<i32>(10)? as u32,
        delivery,
        link_salt: LinkSalt::from_stored(row.get(11)?),
    })
}

/// A delivery without its jobs, from columns seq, id, event, action, repository, received_at,
/// sender.
pub(crate) fn delivery_record<R: Columns>(row: &R) -> Result<DeliveryRecord, R::Error> {
    Ok(DeliveryRecord {
        seq: row.get(0)?,
        sender: row.get(6)?,
        id: row.get(1)?,
        event: row.get(2)?,
        action: row.get(3)?,
        repository: row.get(4)?,
        received_at: row.get(5)?,
        jobs: Vec::new(),
    })
}

/// An action of the audit trail, from columns id, at, actor, action, delivery, job, lock,
/// outcome.
pub(crate) fn action_record<R: Columns>(row: &R) -> Result<ActionRecord, R::Error> {
    Ok(ActionRecord {
        id: row.get(0)?,
        at: row.get(1)?,
        actor: row.get(2)?,
        action: row.get(3)?,
        delivery: row.get(4)?,
        job: row.get::<Option<i64>>(5)?.map(JobId),
        lock: row.get(6)?,
        outcome: row.get(7)?,
    })
}

/// A GitHub post, from columns id, at, job, kind, repository, sha, environment, deployment,
/// state, context, url.
pub(crate) fn post_record<R: Columns>(row: &R) -> Result<PostRecord, R::Error> {
    Ok(PostRecord {
        id: row.get(0)?,
        at: row.get(1)?,
        post: GitHubPost {
            job: JobId(row.get(2)?),
            kind: row.get(3)?,
            repository: row.get(4)?,
            sha: row.get(5)?,
            environment: row.get(6)?,
            deployment: row.get(7)?,
            state: row.get(8)?,
            context: row.get(9)?,
            url: row.get(10)?,
        },
    })
}
