//! Job logs.

use super::PostgresJournal;
use crate::journal::{JobId, JournalError, LogStore};

#[async_trait::async_trait]
impl LogStore for PostgresJournal {
    fn keeps_logs(&self) -> bool {
        true
    }

    async fn append_log(&self, job: JobId, text: Vec<u8>) -> Result<(), JournalError> {
        // Chunks are numbered without gaps: two appends that pick the same number collide on
        // the key, and the loser, which waited for the winner's commit, takes the next. So a
        // reader never sees chunk n+1 before chunk n.
        for _ in 0..100 {
            let inserted = self
                .execute(
                    "INSERT INTO job_logs (job, n, data)
                     SELECT $1, coalesce(max(n) + 1, 0), $2 FROM job_logs WHERE job = $1
                     ON CONFLICT (job, n) DO NOTHING",
                    &[&job.0, &text],
                )
                .await?;
            if inserted == 1 {
                return Ok(());
            }
        }
        Err(JournalError::Postgres(format!(
            "job {job}'s log is being written too often at once"
        )))
    }

    async fn log_len(&self, job: JobId) -> Result<u64, JournalError> {
        let rows = self
            .query(
                "SELECT coalesce(sum(octet_length(data)), 0)::bigint FROM job_logs WHERE job = $1",
                &[&job.0],
            )
            .await?;
        Ok(rows[0].get::<_, i64>(0) as u64)
    }

    async fn read_log(
        &self,
        job: JobId,
        from: u64,
        max: usize,
    ) -> Result<Vec<Vec<u8>>, JournalError> {
        let rows = self
            .query(
                "SELECT n, data FROM job_logs WHERE job = $1 AND n >= $2 ORDER BY n LIMIT $3",
                &[&job.0, &(from as i64), &(max as i64)],
            )
            .await?;
        // Stop at a gap (none is expected): the reader asks again from there.
        let mut chunks = Vec::with_capacity(rows.len());
        for (expected, row) in (from as i64..).zip(&rows) {
            if row.get::<_, i64>(0) != expected {
                break;
            }
            chunks.push(row.get(1));
        }
        Ok(chunks)
    }

    async fn skip_job_ids_through(&self, job: JobId) -> Result<(), JournalError> {
        // Only ever raised: the last id given is `last_value`, or one below it before the first.
        self.execute(
            "SELECT setval('jobs_id_seq', $1) FROM jobs_id_seq
             WHERE $1 > CASE WHEN is_called THEN last_value ELSE last_value - 1 END",
            &[&job.0],
        )
        .await?;
        Ok(())
    }
}
