//! Named locks held by job attempts.

use rusqlite::params;

use super::SqliteJournal;
use crate::event::now_rfc3339;
use crate::journal::{JobId, JournalError, LockRecord, LockStore};

#[async_trait::async_trait]
impl LockStore for SqliteJournal {
    async fn try_lock(&self, name: &str, job: JobId, attempt: u32) -> Result<bool, JournalError> {
        let name = name.to_owned();
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO locks (name, job, attempt, acquired_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO NOTHING",
            )?
            .execute(params![name, job.0, attempt, now_rfc3339()])?;
            let holder: (i64, u32) = conn
                .prepare_cached("SELECT job, attempt FROM locks WHERE name = ?1")?
                .query_row(params![name], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(holder == (job.0, attempt))
        })
        .await
    }

    async fn release_lock(&self, name: &str, job: JobId) -> Result<bool, JournalError> {
        let name = name.to_owned();
        self.write(move |conn| {
            let freed = conn
                .prepare_cached("DELETE FROM locks WHERE name = ?1 AND job = ?2")?
                .execute(params![name, job.0])?;
            Ok(freed == 1)
        })
        .await
    }

    async fn locks(&self) -> Result<Vec<LockRecord>, JournalError> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT name, job, attempt, acquired_at FROM locks ORDER BY name",
            )?;
            let rows = statement.query_map([], |row| {
                Ok(LockRecord {
                    name: row.get(0)?,
                    job: JobId(row.get(1)?),
                    attempt: row.get(2)?,
                    acquired_at: row.get(3)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
