//! The deployer's sticky locks and the deployments this host created (see `journal::deploys`).

use rusqlite::{OptionalExtension, Row, params};

use super::SqliteJournal;
use crate::event::now_rfc3339;
use crate::journal::{
    DeployRecordRow, DeployRecords, DeploySuccessRow, JournalError, SUCCESSES_READ, StickyLockRow,
};

const LOCK_COLUMNS: &str = "repository, environment, owner, owner_login, reason, at";
const RECORD_COLUMNS: &str = "repository, deployment_id, environment, sha, requested_by, \
                              requested_login, forced, is_rollback, at";

fn lock_row(row: &Row<'_>) -> rusqlite::Result<StickyLockRow> {
    Ok(StickyLockRow {
        repository: row.get(0)?,
        environment: row.get(1)?,
        owner: row.get(2)?,
        owner_login: row.get(3)?,
        reason: row.get(4)?,
        at: row.get(5)?,
    })
}

fn record_row(row: &Row<'_>) -> rusqlite::Result<DeployRecordRow> {
    Ok(DeployRecordRow {
        repository: row.get(0)?,
        deployment_id: row.get::<_, i64>(1)? as u64,
        environment: row.get(2)?,
        sha: row.get(3)?,
        requested_by: row.get(4)?,
        requested_login: row.get(5)?,
        forced: row.get::<_, i64>(6)? != 0,
        rollback: row.get::<_, i64>(7)? != 0,
        at: row.get(8)?,
    })
}

#[async_trait::async_trait]
impl DeployRecords for SqliteJournal {
    async fn take_sticky_lock(&self, lock: StickyLockRow) -> Result<StickyLockRow, JournalError> {
        self.write(move |conn| {
            conn.prepare_cached(&format!(
                "INSERT INTO sticky_locks ({LOCK_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (repository, environment) DO NOTHING"
            ))?
            .execute(params![
                lock.repository,
                lock.environment,
                lock.owner,
                lock.owner_login,
                lock.reason,
                lock.at
            ])?;
            conn.prepare_cached(&format!(
                "SELECT {LOCK_COLUMNS} FROM sticky_locks WHERE repository = ?1 AND environment = ?2"
            ))?
            .query_row(params![lock.repository, lock.environment], lock_row)
            .map_err(Into::into)
        })
        .await
    }

    async fn release_sticky_lock(
        &self,
        repository: &str,
        environment: &str,
    ) -> Result<Option<StickyLockRow>, JournalError> {
        let (repository, environment) = (repository.to_owned(), environment.to_owned());
        self.write(move |conn| {
            conn.prepare_cached(&format!(
                "DELETE FROM sticky_locks WHERE repository = ?1 AND environment = ?2
                 RETURNING {LOCK_COLUMNS}"
            ))?
            .query_row(params![repository, environment], lock_row)
            .optional()
            .map_err(Into::into)
        })
        .await
    }

    async fn sticky_locks(
        &self,
        repository: Option<&str>,
    ) -> Result<Vec<StickyLockRow>, JournalError> {
        let repository = repository.map(str::to_owned);
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {LOCK_COLUMNS} FROM sticky_locks
                 WHERE ?1 IS NULL OR repository = ?1 ORDER BY repository, environment"
            ))?
            .query_map(params![repository], lock_row)?
            .collect::<Result<_, _>>()
            .map_err(Into::into)
        })
        .await
    }

    async fn record_deployment(&self, record: DeployRecordRow) -> Result<(), JournalError> {
        self.write(move |conn| {
            conn.prepare_cached(&format!(
                "INSERT INTO deploy_records ({RECORD_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (repository, deployment_id) DO NOTHING"
            ))?
            .execute(params![
                record.repository,
                record.deployment_id as i64,
                record.environment,
                record.sha,
                record.requested_by,
                record.requested_login,
                i64::from(record.forced),
                i64::from(record.rollback),
                record.at
            ])?;
            Ok(())
        })
        .await
    }

    async fn deployment_record(
        &self,
        repository: &str,
        id: u64,
    ) -> Result<Option<DeployRecordRow>, JournalError> {
        let repository = repository.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM deploy_records
                 WHERE repository = ?1 AND deployment_id = ?2"
            ))?
            .query_row(params![repository, id as i64], record_row)
            .optional()
            .map_err(Into::into)
        })
        .await
    }

    async fn claim_deploy(
        &self,
        repository: &str,
        environment: &str,
        sha: &str,
    ) -> Result<bool, JournalError> {
        let key = (
            repository.to_owned(),
            environment.to_owned(),
            sha.to_owned(),
        );
        self.write(move |conn| {
            let claimed = conn
                .prepare_cached(
                    "INSERT INTO deploy_claims (repository, environment, sha, at)
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                )?
                .execute(params![key.0, key.1, key.2, now_rfc3339()])?;
            Ok(claimed == 1)
        })
        .await
    }

    async fn release_deploy_claim(
        &self,
        repository: &str,
        environment: &str,
        sha: &str,
    ) -> Result<(), JournalError> {
        let key = (
            repository.to_owned(),
            environment.to_owned(),
            sha.to_owned(),
        );
        self.write(move |conn| {
            conn.prepare_cached(
                "DELETE FROM deploy_claims WHERE repository = ?1 AND environment = ?2 AND sha = ?3",
            )?
            .execute(params![key.0, key.1, key.2])?;
            Ok(())
        })
        .await
    }

    async fn record_deploy_success(&self, success: DeploySuccessRow) -> Result<(), JournalError> {
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO deploy_successes
                     (repository, environment, deployment_id, sha, deployed_for, pull_request, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                success.repository,
                success.environment,
                success.deployment_id as i64,
                success.sha,
                success.deployed_for,
                success.pull_request.map(|n| n as i64),
                success.at
            ])?;
            Ok(())
        })
        .await
    }

    async fn deploy_successes(
        &self,
        repository: &str,
        environment: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeploySuccessRow>, JournalError> {
        let repository = repository.to_owned();
        let environment = environment.map(str::to_owned);
        let limit = limit.min(SUCCESSES_READ) as i64;
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT repository, environment, deployment_id, sha, deployed_for, pull_request, at
                 FROM deploy_successes
                 WHERE repository = ?1 AND (?2 IS NULL OR environment = ?2)
                 ORDER BY id DESC LIMIT ?3",
            )?
            .query_map(params![repository, environment, limit], |row| {
                Ok(DeploySuccessRow {
                    repository: row.get(0)?,
                    environment: row.get(1)?,
                    deployment_id: row.get::<_, i64>(2)? as u64,
                    sha: row.get(3)?,
                    deployed_for: row.get(4)?,
                    pull_request: row.get::<_, Option<i64>>(5)?.map(|n| n as u64),
                    at: row.get(6)?,
                })
            })?
            .collect::<Result<_, _>>()
            .map_err(Into::into)
        })
        .await
    }
}
