//! The rules a deploy checks where it runs, after any wait for the deploy-time lock: the
//! environment's sticky lock, and the permission of the person behind the deployment. That
//! person is whoever asked for it when this host created it (the journal's record, keyed by
//! deployment id, never a marker in the payload), or else the deployment's creator on GitHub.
//! An automatic deploy (on merge, on green) has no person: only the lock stops it.

use std::time::Duration;

use switchyard_plugin_api::{DeployRecord, PersonRef, payload::DeploymentEvent, prelude::*};

use crate::{commands::is_auto, environments::Environment};

/// How long a deploy looks for the record of a deployment its payload says this deployer asked
/// for: GitHub's `deployment` event can arrive before the asking job recorded the id.
const RECORD_WAIT: Duration = Duration::from_secs(5);

/// `Ok(Ok(()))` when the deploy may run, `Ok(Err(reason))` when it must not.
pub async fn check(
    event: &DeploymentEvent,
    env: &Environment,
    host: &Host,
) -> Result<Result<(), String>, PluginError> {
    let repo = &event.repository.full_name;
    let deployment = &event.deployment;
    let record = recorded(event, host).await?;
    let behind = match &record {
        Some(record) if is_auto(record) => None,
        Some(record) => Some((person_of(record), record.forced)),
        None => match &deployment.creator {
            Some(creator) => match creator.id {
                Some(id) => Some((
                    PersonRef {
                        id,
                        login: creator.login.clone(),
                    },
                    false,
                )),
                None => return Ok(Err("its creator's id is unknown".to_owned())),
            },
            None => return Ok(Err("it names no creator".to_owned())),
        },
    };
    let locks = host.sticky_locks(repo).await?;
    if let Some(lock) = locks.iter().find(|l| l.environment == env.name) {
        let owner = behind.as_ref().is_some_and(|(p, _)| p.key() == lock.owner);
        if !owner {
            return Ok(Err(format!(
                "{} is locked by {} since {}: {}",
                env.name, lock.owner_login, lock.at, lock.reason
            )));
        }
    }
    // An environment without a table runs as it did before tables: its lock only.
    let (Some(deploy), Some((person, forced))) = (env.deploy, behind) else {
        return Ok(Ok(()));
    };
    let needs = if forced { env.force } else { deploy };
    let has = host.permission_of(repo, &person).await?;
    if has.is_none_or(|has| has < needs) {
        let has = has.map_or("none".to_owned(), |r| r.to_string());
        return Ok(Err(format!(
            "{} has {has} on {repo}; deploying to {}{} needs {needs}",
            person.login,
            env.name,
            if forced { " with --force" } else { "" }
        )));
    }
    Ok(Ok(()))
}

fn person_of(record: &DeployRecord) -> PersonRef {
    let id = record
        .requested_by
        .strip_prefix("github:")
        .and_then(|id| id.parse().ok())
        .unwrap_or_default();
    PersonRef {
        id,
        login: record.requested_login.clone(),
    }
}

/// The journal's record of the deployment, waiting briefly when its payload says a person asked
/// this deployer for it (the record is written right after GitHub answers the create).
async fn recorded(
    event: &DeploymentEvent,
    host: &Host,
) -> Result<Option<DeployRecord>, PluginError> {
    let repo = &event.repository.full_name;
    let id = event.deployment.id;
    let asked_here = event.deployment.payload_object()["requested_by"].is_string();
    let deadline = tokio::time::Instant::now() + RECORD_WAIT;
    loop {
        if let Some(record) = host.deployment_record(repo, id).await? {
            return Ok(Some(record));
        }
        if !asked_here || tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
