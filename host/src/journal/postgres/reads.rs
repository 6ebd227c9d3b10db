//! Reading deliveries and jobs back, for the dashboard and the operator commands.

use super::PostgresJournal;
use crate::event::Delivery;
use crate::journal::rows::{
    FAILED_JOB, JOB_COLUMNS, delivery_record, delivery_with_headers, job_record, job_row,
};
use crate::journal::{
    DeliveryRecord, JobCounts, JobFilter, JobId, JobRecord, JobRow, JobState, JournalError, Reads,
    RecentFilter, VerdictFilter, Visibility,
};

#[async_trait::async_trait]
impl Reads for PostgresJournal {
    async fn job(&self, job: JobId) -> Result<JobRecord, JournalError> {
        let rows = self
            .query(&format!("{JOB_COLUMNS} WHERE j.id = $1"), &[&job.0])
            .await?;
        rows.first()
            .map(job_record)
            .transpose()?
            .ok_or(JournalError::NoSuchJob(job))
    }

    async fn jobs_of(&self, delivery: &str) -> Result<Vec<JobRecord>, JournalError> {
        let rows = self
            .query(
                &format!("{JOB_COLUMNS} WHERE d.id = $1 ORDER BY j.id"),
                &[&delivery],
            )
            .await?;
        rows.iter().map(job_record).collect()
    }

    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, JournalError> {
        let rows = self
            .query(
                "SELECT id, event, action, repository, received_at, payload, sender, headers
                 FROM deliveries WHERE id = $1",
                &[&id],
            )
            .await?;
        rows.first()
            .map(|row| delivery_with_headers(row, 0))
            .transpose()
    }

    async fn recent(&self, filter: RecentFilter) -> Result<Vec<DeliveryRecord>, JournalError> {
        let rows = self
            .query(
                &format!(
                    "SELECT d.seq, d.id, d.event, d.action, d.repository, d.received_at, d.sender
                 FROM deliveries d
                 WHERE ($1::text IS NULL OR d.event = $1)
                   AND (NOT $2 OR EXISTS (SELECT 1 FROM jobs j WHERE j.delivery = d.seq AND {failed}))
                   AND ($4::text IS NULL OR d.repository = $4)
                   AND ($5::bigint IS NULL OR d.seq < $5)
                   AND ($6::text IS NULL OR d.id = $6)
                   AND (NOT $7 OR {public})
                 ORDER BY d.seq DESC LIMIT $3",
                    public = filter.visibility.condition("d.repository"),
                    failed = FAILED_JOB,
                ),
                &[
                    &filter.event,
                    &filter.failed,
                    &(filter.limit as i64),
                    &filter.repository,
                    &filter.before,
                    &filter.id,
                    &filter.visibility.public_only(),
                ],
            )
            .await?;
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut delivery = delivery_record(row)?;
            delivery.jobs = self.jobs_of(&delivery.id).await?;
            deliveries.push(delivery);
        }
        Ok(deliveries)
    }

    async fn jobs(&self, filter: JobFilter) -> Result<Vec<JobRow>, JournalError> {
        let state = filter.state.map(JobState::as_str);
        let rows = self
            .query(
                &jobs_query(&filter),
                &[
                    &filter.id.map(|id| id.0),
                    &state,
                    &filter.plugin,
                    &filter.repository,
                    &filter.before.map(|id| id.0),
                    &(filter.limit as i64),
                    &filter.visibility.public_only(),
                    &filter.verdict.map(VerdictFilter::as_str),
                    &filter.event,
                    &filter.pull_request,
                    &filter.sha_prefix,
                    &filter.git_ref,
                ],
            )
            .await?;
        rows.iter().map(job_row).collect()
    }

    async fn private_repositories(&self, limit: usize) -> Result<Vec<String>, JournalError> {
        let rows = self
            .query(
                "SELECT name FROM repositories WHERE private ORDER BY seq DESC LIMIT $1",
                &[&(limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn job_counts(
        &self,
        since: &str,
        visibility: Visibility,
    ) -> Result<JobCounts, JournalError> {
        // Everything, as before, without a join; a visitor's counts join the filter.
        let (from, public) = match &visibility {
            Visibility::All => ("jobs j".to_owned(), "TRUE".to_owned()),
            Visibility::Public | Visibility::Readable(_) => (
                "jobs j JOIN deliveries d ON d.seq = j.delivery".to_owned(),
                visibility.condition("d.repository"),
            ),
        };
        let rows = self
            .query(
                &format!("SELECT j.state, COUNT(*) FROM {from} WHERE {public} GROUP BY j.state"),
                &[],
            )
            .await?;
        let mut counts = JobCounts::default();
        for row in rows {
            counts.tally(row.get(0), row.get::<_, i64>(1) as u64);
        }
        let failed = self
            .query(
                &format!(
                    "SELECT COUNT(*), COUNT(CASE WHEN j.finished_at >= $1 THEN 1 END)
                     FROM {from} WHERE {FAILED_JOB} AND {public}"
                ),
                &[&since],
            )
            .await?;
        counts.bad = failed[0].get::<_, i64>(0) as u64;
        counts.failed_since = failed[0].get::<_, i64>(1) as u64;
        Ok(counts)
    }
}

/// The jobs query for `filter`. A place asked for (a repository, a pull request, a sha prefix,
/// a branch) is a bare condition, which the deliveries' indexes serve in every plan, the
/// generic one of a cached statement too; one not asked for is bound as NULL.
fn jobs_query(filter: &JobFilter) -> String {
    let place = |asked: bool, n: u8, cast: &str, condition: &str| {
        if asked {
            format!("AND {condition}")
        } else {
            format!("AND ${n}::{cast} IS NULL")
        }
    };
    format!(
        "{JOB_COLUMNS}
         WHERE ($1::bigint IS NULL OR j.id = $1)
           AND ($2::text IS NULL OR j.state = $2)
           AND ($3::text IS NULL OR j.plugin = $3)
           {repository}
           AND ($5::bigint IS NULL OR j.id < $5)
           AND (NOT $7 OR {public})
           AND ($8::text IS NULL OR ($8 = 'failed' AND {FAILED_JOB}) OR j.verdict = $8)
           AND ($9::text IS NULL OR d.event = $9)
           {pull_request}
           {sha}
           {git_ref}
         ORDER BY j.id DESC LIMIT $6",
        repository = place(filter.repository.is_some(), 4, "text", "d.repository = $4"),
        pull_request = place(
            filter.pull_request.is_some(),
            10,
            "bigint",
            "d.pull_request = $10"
        ),
        // In bytes' order, as the index is: lowercase hex sorts below `g`.
        sha = place(
            filter.sha_prefix.is_some(),
            11,
            "text",
            "d.head_sha COLLATE \"C\" >= $11::text AND d.head_sha COLLATE \"C\" < $11::text || 'g'"
        ),
        git_ref = place(filter.git_ref.is_some(), 12, "text", "d.git_ref = $12"),
        public = filter.visibility.condition("d.repository"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The jobs query by place uses the deliveries' indexes whenever the planner may: sequential
    /// scans are turned off, so a plan without the index means the query cannot use it.
    #[tokio::test]
    async fn reads_by_place_can_use_the_deliveries_indexes() {
        let Some(server) = switchyard_testkit::TestPostgres::get() else {
            return;
        };
        let journal = crate::journal::conformance::host(&server.database(), 30_000).await;
        let of = |repository: bool, pull_request: bool, sha: bool| JobFilter {
            limit: 10,
            repository: repository.then(|| "octo/app".to_owned()),
            pull_request: pull_request.then_some(7),
            sha_prefix: sha.then(|| "abc1".to_owned()),
            ..JobFilter::default()
        };
        let cases = [
            (of(true, false, false), "deliveries_by_repository"),
            (of(true, true, false), "deliveries_by_pull_request"),
            (of(false, true, false), "deliveries_by_pull_request"),
            (of(false, false, true), "deliveries_by_sha"),
        ];
        let client = journal.client().await.unwrap();
        client
            .batch_execute("SET enable_seqscan = off")
            .await
            .unwrap();
        for (filter, index) in cases {
            let query = format!("EXPLAIN {}", jobs_query(&filter));
            let none_text: Option<String> = None;
            let none_id: Option<i64> = None;
            let rows = client
                .query(
                    &query,
                    &[
                        &none_id,
                        &none_text,
                        &none_text,
                        &filter.repository,
                        &none_id,
                        &10i64,
                        &false,
                        &none_text,
                        &none_text,
                        &filter.pull_request,
                        &filter.sha_prefix,
                        &none_text,
                    ],
                )
                .await
                .unwrap();
            let plan: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
            assert!(
                plan.iter().any(|step| step.contains(index)),
                "{index}: {plan:#?}"
            );
        }
    }
}
