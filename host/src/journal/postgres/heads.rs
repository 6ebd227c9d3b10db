//! The heads of pull requests from forks, seen and approved (see `journal::heads`).

use super::PostgresJournal;
use crate::event::now_rfc3339;
use crate::journal::{Approvals, HEADS_READ, HeadRecord, JobId, JournalError, NewHead};

#[async_trait::async_trait]
impl Approvals for PostgresJournal {
    async fn record_head(&self, head: NewHead) -> Result<bool, JournalError> {
        let number = head.number as i64;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let earlier: i64 = tx
            .query_one(
                "SELECT count(*) FROM pull_request_heads WHERE repository = $1 AND number = $2",
                &[&head.repository, &number],
            )
            .await?
            .get(0);
        tx.execute(
            "INSERT INTO pull_request_heads (repository, number, sha, job, approved_by, at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &head.repository,
                &number,
                &head.sha,
                &head.job.0,
                &head.approved_by,
                &now_rfc3339(),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(earlier == 0)
    }

    async fn heads(&self, repository: &str, number: u64) -> Result<Vec<HeadRecord>, JournalError> {
        let rows = self
            .query(
                "SELECT sha, job, approved_by, at FROM pull_request_heads
                 WHERE repository = $1 AND number = $2 ORDER BY id DESC LIMIT $3",
                &[&repository, &(number as i64), &i64::from(HEADS_READ)],
            )
            .await?;
        let mut heads: Vec<HeadRecord> = rows
            .iter()
            .map(|row| HeadRecord {
                sha: row.get(0),
                job: JobId(row.get(1)),
                approved_by: row.get(2),
                at: row.get(3),
            })
            .collect();
        heads.reverse();
        Ok(heads)
    }
}
