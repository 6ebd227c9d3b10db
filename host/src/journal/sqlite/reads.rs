//! Reading deliveries and jobs back, for the dashboard and the operator commands.

use rusqlite::{OptionalExtension, params};

use super::{SEQ_OF_ID, SqliteJournal};
use crate::event::Delivery;
use crate::journal::rows::{
    FAILED_JOB, JOB_COLUMNS, delivery_record, delivery_with_headers, job_record, job_row,
};
use crate::journal::{
    DeliveryRecord, JobCounts, JobFilter, JobId, JobRecord, JobRow, JobState, JournalError, Reads,
    RecentFilter, VerdictFilter, Visibility,
};

#[async_trait::async_trait]
impl Reads for SqliteJournal {
    async fn job(&self, job: JobId) -> Result<JobRecord, JournalError> {
        self.read(move |conn| {
            conn.query_row(&format!("{JOB_COLUMNS} WHERE j.id = ?1"), [job.0], |row| {
                job_record(row)
            })
            .optional()?
            .ok_or(JournalError::NoSuchJob(job))
        })
        .await
    }

    async fn jobs_of(&self, delivery: &str) -> Result<Vec<JobRecord>, JournalError> {
        let delivery = delivery.to_owned();
        self.read(move |conn| {
            let mut statement = conn.prepare(&format!(
                "{JOB_COLUMNS} WHERE d.seq = {SEQ_OF_ID} ORDER BY j.id"
            ))?;
            let jobs = statement
                .query_map([delivery], |row| job_record(row))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(jobs)
        })
        .await
    }

    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, JournalError> {
        let id = id.to_owned();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    &format!(
                        "SELECT id, event, action, repository, received_at, payload, sender,
                                headers
                         FROM deliveries WHERE seq = {SEQ_OF_ID}"
                    ),
                    [&id],
                    |row| delivery_with_headers(row, 0),
                )
                .optional()?)
        })
        .await
    }

    async fn recent(&self, filter: RecentFilter) -> Result<Vec<DeliveryRecord>, JournalError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT d.seq, d.id, d.event, d.action, d.repository, d.received_at, d.sender
                 FROM deliveries d
                 WHERE (?1 IS NULL OR d.event = ?1)
                   AND (?2 = 0 OR EXISTS (SELECT 1 FROM jobs j WHERE j.delivery = d.seq AND {failed}))
                   AND (?4 IS NULL OR d.repository = ?4)
                   AND (?5 IS NULL OR d.seq < ?5)
                   AND (?6 IS NULL OR d.seq = {seq_of_id})
                   AND (?7 = 0 OR {public})
                 ORDER BY d.seq DESC LIMIT ?3",
                seq_of_id = SEQ_OF_ID.replace("?1", "?6"),
                public = filter.visibility.condition("d.repository"),
                failed = FAILED_JOB,
            ))?;
            let rows = statement.query_map(
                params![
                    filter.event,
                    filter.failed,
                    filter.limit as i64,
                    filter.repository,
                    filter.before,
                    filter.id,
                    filter.visibility.public_only(),
                ],
                |row| delivery_record(row),
            )?;
            let mut deliveries = rows.collect::<Result<Vec<_>, _>>()?;
            let mut jobs = conn.prepare_cached(&format!("{JOB_COLUMNS} WHERE j.delivery = ?1 ORDER BY j.id"))?;
            for delivery in &mut deliveries {
                delivery.jobs = jobs
                    .query_map([delivery.seq], |row| job_record(row))?
                    .collect::<Result<Vec<_>, _>>()?;
            }
            Ok(deliveries)
        })
        .await
    }

    async fn jobs(&self, filter: JobFilter) -> Result<Vec<JobRow>, JournalError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&jobs_query(&filter))?;
            let rows = statement.query_map(
                params![
                    filter.id.map(|id| id.0),
                    filter.state.map(JobState::as_str),
                    filter.plugin,
                    filter.repository,
                    filter.before.map(|id| id.0),
                    filter.limit as i64,
                    filter.visibility.public_only(),
                    filter.verdict.map(VerdictFilter::as_str),
                    filter.event,
                    filter.pull_request,
                    filter.sha_prefix,
                    filter.git_ref,
                ],
                |row| job_row(row),
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn private_repositories(&self, limit: usize) -> Result<Vec<String>, JournalError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT name FROM repositories WHERE private != 0 ORDER BY seq DESC LIMIT ?1",
            )?;
            let names = statement
                .query_map([limit as i64], |row| row.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(names)
        })
        .await
    }

    async fn job_counts(
        &self,
        since: &str,
        visibility: Visibility,
    ) -> Result<JobCounts, JournalError> {
        let since = since.to_owned();
        self.read(move |conn| {
            let mut counts = JobCounts::default();
            // Everything, as before, without a join; a visitor's counts join the filter.
            let (from, public) = match &visibility {
                Visibility::All => ("jobs j".to_owned(), "1".to_owned()),
                Visibility::Public | Visibility::Readable(_) => (
                    "jobs j JOIN deliveries d ON d.seq = j.delivery".to_owned(),
                    visibility.condition("d.repository"),
                ),
            };
            let mut statement = conn.prepare_cached(&format!(
                "SELECT j.state, COUNT(*) FROM {from} WHERE {public} GROUP BY j.state"
            ))?;
            let rows = statement.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (state, count) = row?;
                counts.tally(&state, count as u64);
            }
            (counts.bad, counts.failed_since) = conn
                .prepare_cached(&format!(
                    "SELECT COUNT(*), COUNT(CASE WHEN j.finished_at >= ?1 THEN 1 END)
                     FROM {from} WHERE {FAILED_JOB} AND {public}"
                ))?
                .query_row([since], |row| {
                    Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64))
                })?;
            Ok(counts)
        })
        .await
    }
}

/// The jobs query for `filter`. A place asked for (a repository, a pull request, a sha prefix,
/// a branch) is a bare condition, which the deliveries' indexes serve; one not asked for is
/// bound as NULL. (`?n IS NULL OR ...` would keep SQLite, which plans before the values are
/// bound, from using an index for it.)
pub(super) fn jobs_query(filter: &JobFilter) -> String {
    let place = |asked: bool, n: u8, condition: &str| {
        if asked {
            format!("AND {condition}")
        } else {
            format!("AND ?{n} IS NULL")
        }
    };
    format!(
        "{JOB_COLUMNS}
         WHERE (?1 IS NULL OR j.id = ?1)
           AND (?2 IS NULL OR j.state = ?2)
           AND (?3 IS NULL OR j.plugin = ?3)
           {repository}
           AND (?5 IS NULL OR j.id < ?5)
           AND (?7 = 0 OR {public})
           AND (?8 IS NULL OR (?8 = 'failed' AND {FAILED_JOB}) OR j.verdict = ?8)
           AND (?9 IS NULL OR d.event = ?9)
           {pull_request}
           {sha}
           {git_ref}
         ORDER BY j.id DESC LIMIT ?6",
        repository = place(filter.repository.is_some(), 4, "d.repository = ?4"),
        pull_request = place(filter.pull_request.is_some(), 10, "d.pull_request = ?10"),
        // Lowercase hex sorts below `g`: the prefix's range.
        sha = place(
            filter.sha_prefix.is_some(),
            11,
            "d.head_sha >= ?11 AND d.head_sha < ?11 || 'g'"
        ),
        git_ref = place(filter.git_ref.is_some(), 12, "d.git_ref = ?12"),
        public = filter.visibility.condition("d.repository"),
    )
}
