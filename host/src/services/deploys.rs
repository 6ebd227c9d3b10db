//! The deployer's records (`Host::sticky_lock`, `Host::record_deployment`...): sticky locks of
//! environments and the deployments a plugin created, in the journal so they hold across
//! restarts and hosts; taking and releasing a sticky lock also goes to the audit trail, shown on
//! the dashboard. A person's permission is read through the commands service's cache.

use std::sync::Arc;

use switchyard_plugin_api::{DeployRecord, DeployRequest, DeploySuccess, HostError, StickyLock};

use crate::{
    commands::CommandService,
    event::now_rfc3339,
    github::{Caller, comments},
    journal::{DeployRecordRow, DeploySuccessRow, JobId, Journal, NewAction, StickyLockRow},
};

/// Serves the deployer's requests on behalf of jobs.
pub struct Deploys {
    journal: Arc<dyn Journal>,
    commands: Arc<CommandService>,
}

impl Deploys {
    pub fn new(journal: Arc<dyn Journal>, commands: Arc<CommandService>) -> Self {
        Self { journal, commands }
    }

    /// Answers `request` for `job`, as JSON of the type its variant names.
    pub async fn serve(
        &self,
        job: JobId,
        caller: &Caller,
        request: DeployRequest,
    ) -> Result<serde_json::Value, HostError> {
        match request {
            DeployRequest::Lock { lock } => {
                let asked = row_of(lock, now_rfc3339());
                let held = self
                    .journal
                    .take_sticky_lock(asked.clone())
                    .await
                    .map_err(|e| internal(&e))?;
                let outcome = if held == asked {
                    "locked"
                } else {
                    "held by another"
                };
                let by = format!("{} ({})", asked.owner, asked.owner_login);
                self.audit(job, by, &asked, &format!("lock: {}", asked.reason), outcome)
                    .await;
                to_json(lock_of(held))
            }
            DeployRequest::Unlock {
                repository,
                environment,
                by,
            } => {
                let released = self
                    .journal
                    .release_sticky_lock(&repository, &environment)
                    .await
                    .map_err(|e| internal(&e))?;
                if let Some(lock) = &released {
                    let held = format!("unlock (held by {} since {})", lock.owner, lock.at);
                    self.audit(job, by, lock, &held, "unlocked").await;
                }
                to_json(released.map(lock_of))
            }
            DeployRequest::Locks { repository } => {
                let locks = self
                    .journal
                    .sticky_locks(Some(&repository))
                    .await
                    .map_err(|e| internal(&e))?;
                to_json(locks.into_iter().map(lock_of).collect::<Vec<_>>())
            }
            DeployRequest::Record { record } => {
                let row = DeployRecordRow {
                    repository: record.repository,
                    deployment_id: record.deployment_id,
                    environment: record.environment,
                    sha: record.sha,
                    requested_by: record.requested_by,
                    requested_login: record.requested_login,
                    forced: record.forced,
                    rollback: record.rollback,
                    at: now_rfc3339(),
                };
                self.journal
                    .record_deployment(row)
                    .await
                    .map_err(|e| internal(&e))?;
                to_json(())
            }
            DeployRequest::Recorded {
                repository,
                deployment_id,
            } => {
                let row = self
                    .journal
                    .deployment_record(&repository, deployment_id)
                    .await
                    .map_err(|e| internal(&e))?;
                to_json(row.map(|row| DeployRecord {
                    repository: row.repository,
                    deployment_id: row.deployment_id,
                    environment: row.environment,
                    sha: row.sha,
                    requested_by: row.requested_by,
                    requested_login: row.requested_login,
                    forced: row.forced,
                    rollback: row.rollback,
                    at: row.at,
                }))
            }
            DeployRequest::Claim {
                repository,
                environment,
                sha,
            } => to_json(
                self.journal
                    .claim_deploy(&repository, &environment, &sha)
                    .await
                    .map_err(|e| internal(&e))?,
            ),
            DeployRequest::Unclaim {
                repository,
                environment,
                sha,
            } => {
                self.journal
                    .release_deploy_claim(&repository, &environment, &sha)
                    .await
                    .map_err(|e| internal(&e))?;
                to_json(())
            }
            DeployRequest::Succeeded { success } => {
                let row = DeploySuccessRow {
                    repository: success.repository,
                    environment: success.environment,
                    deployment_id: success.deployment_id,
                    sha: success.sha,
                    deployed_for: success.deployed_for,
                    pull_request: success.pull_request,
                    at: now_rfc3339(),
                };
                self.journal
                    .record_deploy_success(row)
                    .await
                    .map_err(|e| internal(&e))?;
                to_json(())
            }
            DeployRequest::Successes {
                repository,
                environment,
                limit,
            } => {
                let rows = self
                    .journal
                    .deploy_successes(&repository, environment.as_deref(), limit)
                    .await
                    .map_err(|e| internal(&e))?;
                let successes: Vec<DeploySuccess> = rows
                    .into_iter()
                    .map(|row| DeploySuccess {
                        repository: row.repository,
                        environment: row.environment,
                        deployment_id: row.deployment_id,
                        sha: row.sha,
                        deployed_for: row.deployed_for,
                        pull_request: row.pull_request,
                        at: row.at,
                    })
                    .collect();
                to_json(successes)
            }
            DeployRequest::Permission { repository, person } => {
                // Asked as the host, as the commands' gate asks, and only of the job's own
                // repository.
                if caller.repository.as_deref() != Some(repository.as_str()) {
                    return Err(HostError::InvalidRequest(format!(
                        "a permission on {repository}, not this job's repository"
                    )));
                }
                let host = comments::host_caller(&repository, caller.payload().clone());
                let level = self
                    .commands
                    .permission_of(&host, &repository, person.id, &person.login)
                    .await?;
                to_json(level)
            }
        }
    }

    async fn audit(
        &self,
        job: JobId,
        actor: String,
        lock: &StickyLockRow,
        what: &str,
        outcome: &str,
    ) {
        let action = NewAction {
            actor,
            action: format!("{what} on {} {}", lock.repository, lock.environment),
            delivery: None,
            job: Some(job),
            lock: Some(format!("sticky:{}:{}", lock.repository, lock.environment)),
            outcome: outcome.to_owned(),
        };
        if let Err(error) = self.journal.record_action(action).await {
            tracing::warn!(%job, error = error.to_string(), "cannot record a sticky lock in the audit trail");
        }
    }
}

fn row_of(lock: StickyLock, at: String) -> StickyLockRow {
    StickyLockRow {
        repository: lock.repository,
        environment: lock.environment,
        owner: lock.owner,
        owner_login: lock.owner_login,
        reason: lock.reason,
        at,
    }
}

fn lock_of(row: StickyLockRow) -> StickyLock {
    StickyLock {
        repository: row.repository,
        environment: row.environment,
        owner: row.owner,
        owner_login: row.owner_login,
        reason: row.reason,
        at: row.at,
    }
}

fn internal(error: &dyn std::fmt::Display) -> HostError {
    HostError::Internal(format!("the journal: {error}"))
}

fn to_json<T: serde::Serialize>(value: T) -> Result<serde_json::Value, HostError> {
    serde_json::to_value(value).map_err(|e| internal(&e))
}
