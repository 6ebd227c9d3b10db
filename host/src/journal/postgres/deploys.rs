//! The deployer's sticky locks and the deployments this host created (see `journal::deploys`).

use tokio_postgres::Row;

use super::PostgresJournal;
use crate::event::now_rfc3339;
use crate::journal::{
    DeployRecordRow, DeployRecords, DeploySuccessRow, JournalError, SUCCESSES_READ, StickyLockRow,
};

const LOCK_COLUMNS: &str = "repository, environment, owner, owner_login, reason, at";
const RECORD_COLUMNS: &str = "repository, deployment_id, environment, sha, requested_by, \
                              requested_login, forced, is_rollback, at";

fn lock_row(row: &Row) -> StickyLockRow {
    StickyLockRow {
        repository: row.get(0),
        environment: row.get(1),
        owner: row.get(2),
        owner_login: row.get(3),
        reason: row.get(4),
        at: row.get(5),
    }
}

fn record_row(row: &Row) -> DeployRecordRow {
    DeployRecordRow {
        repository: row.get(0),
        deployment_id: row.get::<_, i64>(1) as u64,
        environment: row.get(2),
        sha: row.get(3),
        requested_by: row.get(4),
        requested_login: row.get(5),
        forced: row.get::<_, i64>(6) != 0,
        rollback: row.get::<_, i64>(7) != 0,
        at: row.get(8),
    }
}

#[async_trait::async_trait]
impl DeployRecords for PostgresJournal {
    async fn take_sticky_lock(&self, lock: StickyLockRow) -> Result<StickyLockRow, JournalError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The primary key makes two hosts' inserts one winner; the loser reads the winner's row.
        tx.execute(
            &format!(
                "INSERT INTO sticky_locks ({LOCK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (repository, environment) DO NOTHING"
            ),
            &[
                &lock.repository,
                &lock.environment,
                &lock.owner,
                &lock.owner_login,
                &lock.reason,
                &lock.at,
            ],
        )
        .await?;
        let row = tx
            .query_one(
                &format!(
                    "SELECT {LOCK_COLUMNS} FROM sticky_locks
                     WHERE repository = $1 AND environment = $2"
                ),
                &[&lock.repository, &lock.environment],
            )
            .await?;
        tx.commit().await?;
        Ok(lock_row(&row))
    }

    async fn release_sticky_lock(
        &self,
        repository: &str,
        environment: &str,
    ) -> Result<Option<StickyLockRow>, JournalError> {
        let rows = self
            .query(
                &format!(
                    "DELETE FROM sticky_locks WHERE repository = $1 AND environment = $2
                     RETURNING {LOCK_COLUMNS}"
                ),
                &[&repository, &environment],
            )
            .await?;
        Ok(rows.first().map(lock_row))
    }

    async fn sticky_locks(
        &self,
        repository: Option<&str>,
    ) -> Result<Vec<StickyLockRow>, JournalError> {
        let rows = self
            .query(
                &format!(
                    "SELECT {LOCK_COLUMNS} FROM sticky_locks
                     WHERE $1::TEXT IS NULL OR repository = $1 ORDER BY repository, environment"
                ),
                &[&repository],
            )
            .await?;
        Ok(rows.iter().map(lock_row).collect())
    }

    async fn record_deployment(&self, record: DeployRecordRow) -> Result<(), JournalError> {
        self.query(
            &format!(
                "INSERT INTO deploy_records ({RECORD_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT (repository, deployment_id) DO NOTHING"
            ),
            &[
                &record.repository,
                &(record.deployment_id as i64),
                &record.environment,
                &record.sha,
                &record.requested_by,
                &record.requested_login,
                &i64::from(record.forced),
                &i64::from(record.rollback),
                &record.at,
            ],
        )
        .await?;
        Ok(())
    }

    async fn deployment_record(
        &self,
        repository: &str,
        id: u64,
    ) -> Result<Option<DeployRecordRow>, JournalError> {
        let rows = self
            .query(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM deploy_records
                     WHERE repository = $1 AND deployment_id = $2"
                ),
                &[&repository, &(id as i64)],
            )
            .await?;
        Ok(rows.first().map(record_row))
    }

    async fn claim_deploy(
        &self,
        repository: &str,
        environment: &str,
        sha: &str,
    ) -> Result<bool, JournalError> {
        // The primary key makes one of two hosts' inserts the claim.
        let claimed = self
            .execute(
                "INSERT INTO deploy_claims (repository, environment, sha, at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                &[&repository, &environment, &sha, &now_rfc3339()],
            )
            .await?;
        Ok(claimed == 1)
    }

    async fn release_deploy_claim(
        &self,
        repository: &str,
        environment: &str,
        sha: &str,
    ) -> Result<(), JournalError> {
        self.execute(
            "DELETE FROM deploy_claims WHERE repository = $1 AND environment = $2 AND sha = $3",
            &[&repository, &environment, &sha],
        )
        .await?;
        Ok(())
    }

    async fn record_deploy_success(&self, success: DeploySuccessRow) -> Result<(), JournalError> {
        self.execute(
            "INSERT INTO deploy_successes
                 (repository, environment, deployment_id, sha, deployed_for, pull_request, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &success.repository,
                &success.environment,
                &(success.deployment_id as i64),
                &success.sha,
                &success.deployed_for,
                &success.pull_request.map(|n| n as i64),
                &success.at,
            ],
        )
        .await?;
        Ok(())
    }

    async fn deploy_successes(
        &self,
        repository: &str,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeploySuccessRow>, JournalError> {
        let limit = limit.min(SUCCESSES_READ) as i64;
        let rows = self
            .query(
                "SELECT repository, environment, deployment_id, sha, deployed_for, pull_request, at
                 FROM deploy_successes
                 WHERE repository = $1 AND ($2::TEXT IS NULL OR environment = $2)
                 ORDER BY id DESC LIMIT $3",
                &[&repository, &environment, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| DeploySuccessRow {
                repository: row.get(0),
                environment: row.get(1),
                deployment_id: row.get::<_, i64>(2) as u64,
                sha: row.get(3),
                deployed_for: row.get(4),
                pull_request: row.get::<_, Option<i64>>(5).map(|n| n as u64),
                at: row.get(6),
            })
            .collect())
    }
}
