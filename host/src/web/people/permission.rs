//! What a person signed in with GitHub may do: their permission on the repository an action
//! touches, asked with the host's own identity (`repos/get-collaborator-permission-level`, the
//! comment commands' call and reading of its answer, `commands::trust`) and kept at most 60 s
//! (the commands' `PermissionCache`), so an action is checked against a lookup no older.

use switchyard_plugin_api::{Permissions, Role};

use super::{GitHubSignIn, Person};
use crate::{
    commands::{PermissionCache, trust},
    github::{Caller, GitHub, comments::collaborator_permission},
};

/// The name the dashboard's own calls go by in token caches and errors.
const DASHBOARD_CALLER: &str = "switchyard (dashboard)";

/// Why an action was refused to a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotPermitted(pub String);

/// The caller of a lookup about `repository`: as a GitHub App, a token of the repository's
/// installation narrowed to `metadata: read`, which the permission call needs.
fn caller(repository: &str) -> Caller {
    Caller::new(
        DASHBOARD_CALLER.to_owned(),
        Some(Permissions::none().read("metadata")),
        Some(repository.to_owned()),
        bytes::Bytes::new(),
    )
}

/// `person`'s level on `repository`, from `cache` (at most its age) or GitHub; `None` for
/// none (GitHub's 404: no access, or no such repository for the host's identity).
pub(in crate::web) async fn level(
    github: &dyn GitHub,
    cache: &PermissionCache,
    person: &Person,
    repository: &str,
) -> Result<Option<Role>, String> {
    if let Some(level) = cache.get(repository, person.id) {
        return Ok(level);
    }
    let lookup = cache.lookup(repository, person.id);
    let _asking = lookup.lock().await;
    // Another request may have asked while this one waited.
    if let Some(level) = cache.get(repository, person.id) {
        return Ok(level);
    }
    let answer = collaborator_permission(github, &caller(repository), repository, &person.login)
        .await
        .map_err(|error| error.to_string())?;
    let level = answer.as_ref().and_then(trust::level);
    cache.put(repository, person.id, level);
    Ok(level)
}

impl GitHubSignIn {
    /// Whether `person` may take an action needing `needs` on `repository` (`None`: an event
    /// of no repository, which only `admins` may act on). Admins may do anything.
    pub(in crate::web) async fn may(
        &self,
        github: &dyn GitHub,
        person: &Person,
        repository: Option<&str>,
        needs: Role,
    ) -> Result<(), NotPermitted> {
        if self.is_admin(person) {
            return Ok(());
        }
        let Some(repository) = repository else {
            return Err(NotPermitted(format!(
                "{} is not one of the dashboard's admins, who alone act on events of no repository",
                person.actor()
            )));
        };
        let level = level(github, &self.actions, person, repository)
            .await
            .map_err(|error| {
                NotPermitted(format!(
                    "GitHub could not say what {} may do on {repository}: {error}",
                    person.actor()
                ))
            })?;
        match level.is_some_and(|have| have >= needs) {
            true => Ok(()),
            false => Err(NotPermitted(format!(
                "needs the {needs} permission on {repository}; {} has {}",
                person.actor(),
                level.map_or("none", Role::as_str)
            ))),
        }
    }
}
