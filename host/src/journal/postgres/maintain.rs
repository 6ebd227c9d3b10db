//! Upkeep: pruning by age, and the readiness check.

use super::PostgresJournal;
use crate::journal::{Health, JobId, JournalError, Pruning};

#[async_trait::async_trait]
impl Pruning for PostgresJournal {
    async fn prune_jobs(
        &self,
        ended_before: &str,
        limit: usize,
    ) -> Result<Vec<JobId>, JournalError> {
        let rows = self
            .query(
                "WITH doomed AS (
                     SELECT id FROM jobs
                     WHERE state IN ('succeeded', 'failed') AND finished_at < $1
                     ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
                 ), unlocked AS (
                     DELETE FROM locks WHERE job IN (SELECT id FROM doomed)
                 ), logs AS (
                     DELETE FROM job_logs WHERE job IN (SELECT id FROM doomed)
                 ), lines AS (
                     DELETE FROM superseding WHERE job IN (SELECT id FROM doomed)
                 ), posts AS (
                     DELETE FROM github_posts
                     WHERE job IN (SELECT id FROM doomed) AND kind IN ('status', 'check_run')
                 )
                 DELETE FROM jobs WHERE id IN (SELECT id FROM doomed) RETURNING id",
                &[&ended_before, &(limit as i64)],
            )
            .await?;
        let mut pruned: Vec<JobId> = rows.iter().map(|row| JobId(row.get(0))).collect();
        pruned.sort();
        Ok(pruned)
    }

    async fn prune_deliveries(
        &self,
        received_before: &str,
        limit: usize,
    ) -> Result<usize, JournalError> {
        let deleted = self
            .execute(
                "WITH doomed AS (
                     SELECT seq FROM deliveries d
                     WHERE d.received_at < $1
                       AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.delivery = d.seq)
                     ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED
                 )
                 DELETE FROM deliveries WHERE seq IN (SELECT seq FROM doomed)
                   AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.delivery = deliveries.seq)",
                &[&received_before, &(limit as i64)],
            )
            .await?;
        Ok(deleted as usize)
    }
}

#[async_trait::async_trait]
impl Health for PostgresJournal {
    async fn ping(&self) -> Result<(), JournalError> {
        // A committed write, as a delivery needs.
        self.execute(
            "INSERT INTO host_keys (name, value) VALUES ('readiness-probe', convert_to(clock_timestamp()::text, 'UTF8'))
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            &[],
        )
        .await
        .map(drop)
    }
}
