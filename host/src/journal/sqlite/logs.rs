//! Job logs.

use super::SqliteJournal;
use crate::journal::{JobId, JournalError, LogStore};

#[async_trait::async_trait]
impl LogStore for SqliteJournal {
    async fn skip_job_ids_through(&self, job: JobId) -> Result<(), JournalError> {
        // AUTOINCREMENT gives ids above `sqlite_sequence`'s count, which the migration that
        // made ids monotonic left a row in.
        self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'jobs' AND seq < ?1",
            )?
            .execute([job.0])?;
            Ok(())
        })
        .await
    }
}
