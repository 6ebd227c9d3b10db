//! The heads of pull requests from forks, seen and approved (see `journal::heads`).

use rusqlite::params;

use super::SqliteJournal;
use crate::event::now_rfc3339;
use crate::journal::{Approvals, HEADS_READ, HeadRecord, JobId, JournalError, NewHead};

#[async_trait::async_trait]
impl Approvals for SqliteJournal {
    async fn record_head(&self, head: NewHead) -> Result<bool, JournalError> {
        self.write(move |conn| {
            let earlier: i64 = conn
                .prepare_cached(
                    "SELECT count(*) FROM pull_request_heads WHERE repository = ?1 AND number = ?2",
                )?
                .query_row(params![head.repository, head.number as i64], |row| {
                    row.get(0)
                })?;
            conn.prepare_cached(
                "INSERT INTO pull_request_heads (repository, number, sha, job, approved_by, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                head.repository,
                head.number as i64,
                head.sha,
                head.job.0,
                head.approved_by,
                now_rfc3339()
            ])?;
            Ok(earlier == 0)
        })
        .await
    }

    async fn heads(&self, repository: &str, number: u64) -> Result<Vec<HeadRecord>, JournalError> {
        let repository = repository.to_owned();
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT sha, job, approved_by, at FROM pull_request_heads
                 WHERE repository = ?1 AND number = ?2 ORDER BY id DESC LIMIT ?3",
            )?;
            let mut heads = statement
                .query_map(params![repository, number as i64, HEADS_READ], |row| {
                    Ok(HeadRecord {
                        sha: row.get(0)?,
                        job: JobId(row.get(1)?),
                        approved_by: row.get(2)?,
                        at: row.get(3)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            heads.reverse();
            Ok(heads)
        })
        .await
    }
}
