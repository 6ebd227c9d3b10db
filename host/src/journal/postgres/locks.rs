//! Named locks held by job attempts.

use super::PostgresJournal;
use crate::event::now_rfc3339;
use crate::journal::{JobId, JournalError, LockRecord, LockStore};

#[async_trait::async_trait]
impl LockStore for PostgresJournal {
    async fn try_lock(&self, name: &str, job: JobId, attempt: u32) -> Result<bool, JournalError> {
        // Taken when free, or when its holder is no longer a live attempt (ended, or its lease
        // expired: its host is dead).
        let rows = self
            .query(
                "INSERT INTO locks AS l (name, job, attempt, acquired_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE
                     SET job = excluded.job, attempt = excluded.attempt,
                         acquired_at = excluded.acquired_at
                     WHERE NOT EXISTS (
                         SELECT 1 FROM jobs j
                         WHERE j.id = l.job AND j.attempts = l.attempt AND j.state = 'running'
                           AND j.lease_until > now()
                     )
                 RETURNING job, attempt",
                &[&name, &job.0, &(attempt as i32), &now_rfc3339()],
            )
            .await?;
        if let Some(row) = rows.first() {
            return Ok((row.get::<_, i64>(0), row.get::<_, i32>(1)) == (job.0, attempt as i32));
        }
        let holder = self
            .query("SELECT job, attempt FROM locks WHERE name = $1", &[&name])
            .await?;
        Ok(holder.first().is_some_and(|row| {
            (row.get::<_, i64>(0), row.get::<_, i32>(1)) == (job.0, attempt as i32)
        }))
    }

    async fn release_lock(&self, name: &str, job: JobId) -> Result<bool, JournalError> {
        let freed = self
            .execute(
                "DELETE FROM locks WHERE name = $1 AND job = $2",
                &[&name, &job.0],
            )
            .await?;
        Ok(freed == 1)
    }

    async fn locks(&self) -> Result<Vec<LockRecord>, JournalError> {
        let rows = self
            .query(
                "SELECT name, job, attempt, acquired_at FROM locks ORDER BY name",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| LockRecord {
                name: row.get(0),
                job: JobId(row.get(1)),
                attempt: row.get::<_, i32>(2) as u32,
                acquired_at: row.get(3),
            })
            .collect())
    }
}
