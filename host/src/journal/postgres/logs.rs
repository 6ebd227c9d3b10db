//! Job logs: numbered chunks, each knowing its place in the log (offset, newlines before it)
//! and its time, so that appending and reading a window cost the same at any length.

use super::PostgresJournal;
use crate::journal::{JobId, JournalError, LogChunk, LogStore};

#[async_trait::async_trait]
impl LogStore for PostgresJournal {
    fn keeps_logs(&self) -> bool {
        true
    }

    async fn append_log(
        &self,
        job: JobId,
        text: Vec<u8>,
        limit: u64,
    ) -> Result<Option<u64>, JournalError> {
        // Chunks are numbered without gaps: two appends that pick the same number collide on
        // the key, and the loser, which waited for the winner's commit, takes the next. So a
        // reader never sees chunk n+1 before chunk n. The last chunk is found by the key and
        // the new one placed after it by a trigger, so the log's length costs nothing.
        let limit = limit.min(i64::MAX as u64) as i64;
        let written = crate::journal::unix_millis() as i64;
        for _ in 0..100 {
            let rows = self
                .query(
                    "WITH last AS (
                         SELECT n, start + octet_length(data) AS length FROM job_logs
                         WHERE job = $1 ORDER BY n DESC LIMIT 1
                     ), added AS (
                         INSERT INTO job_logs (job, n, data, written_ms)
                         SELECT $1, coalesce((SELECT n + 1 FROM last), 0), $2, $3
                         WHERE coalesce((SELECT length FROM last), 0) < $4
                         ON CONFLICT (job, n) DO NOTHING
                         RETURNING start + octet_length(data) AS length
                     )
                     SELECT (SELECT length FROM added), coalesce((SELECT length FROM last), 0)",
                    &[&job.0, &text, &written, &limit],
                )
                .await?;
            let (added, before): (Option<i64>, i64) = (rows[0].get(0), rows[0].get(1));
            match added {
                Some(length) => return Ok(Some(length as u64)),
                None if before >= limit => return Ok(None),
                None => {}
            }
        }
        Err(JournalError::Postgres(format!(
            "job {job}'s log is being written too often at once"
        )))
    }

    async fn log_len(&self, job: JobId) -> Result<u64, JournalError> {
        let rows = self
            .query(
                "SELECT start + octet_length(data) FROM job_logs
                 WHERE job = $1 ORDER BY n DESC LIMIT 1",
                &[&job.0],
            )
            .await?;
        Ok(rows.first().map_or(0, |row| row.get::<_, i64>(0) as u64))
    }

    async fn log_chunks(
        &self,
        job: JobId,
        from: u64,
        to: u64,
    ) -> Result<Vec<LogChunk>, JournalError> {
        let rows = self
            .query(
                "SELECT start, line, written_ms, data FROM job_logs
                 WHERE job = $1
                   AND start < greatest($3::bigint, $2::bigint + 1)
                   AND start >= coalesce(
                       (SELECT max(start) FROM job_logs WHERE job = $1 AND start <= $2), 0)
                 ORDER BY n",
                &[&job.0, &(from as i64), &(to as i64)],
            )
            .await?;
        Ok(rows.iter().map(log_chunk).collect())
    }

    async fn log_chunk_with_newline(
        &self,
        job: JobId,
        newline: u64,
    ) -> Result<Option<LogChunk>, JournalError> {
        // The last chunk with fewer newlines before it: line and n grow together.
        let rows = self
            .query(
                "SELECT start, line, written_ms, data FROM job_logs
                 WHERE job = $1 AND line < greatest($2::bigint, 1)
                 ORDER BY line DESC, n DESC LIMIT 1",
                &[&job.0, &(newline as i64)],
            )
            .await?;
        Ok(rows.first().map(log_chunk))
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

fn log_chunk(row: &tokio_postgres::Row) -> LogChunk {
    LogChunk {
        start: row.get::<_, i64>(0) as u64,
        newlines_before: row.get::<_, i64>(1) as u64,
        written_ms: row.get::<_, Option<i64>>(2).map(|ms| ms as u64),
        data: row.get(3),
    }
}
