//! The deployments page's sticky locks (the deployer's `/lock`, see docs/plugins.md): who holds
//! each environment, why and since when, and the **Unlock** action, apart from the **Release**
//! of a deploy-time lock. Unlocking frees the environment for others' deploys; it cancels
//! nothing. Like the other actions it needs a sign-in and the form token, takes the
//! environment's name typed to confirm, and goes to the audit trail. A person signed in with
//! GitHub sees the locks of the repositories they can read, and unlocks their own, or another's
//! with `maintain` (the deployer's default `force` permission; an environment that names
//! another is unlocked by `/unlock`).

use axum::{extract::State, response::Response};
use serde::Deserialize;

use super::super::{
    Viewer, WebState,
    actions::{permitted, recorded},
    message,
    signed_form::{CarriesToken, SignedForm},
};
use crate::journal::{JobFilter, JournalError, NewAction, StickyLockRow, Visibility};
use switchyard_plugin_api::Role;

/// What a person needs to unlock another's lock from the dashboard.
const UNLOCK_OTHERS_NEEDS: Role = Role::Maintain;

/// A sticky lock as the page shows it.
pub(in crate::web) struct StickyLockView {
    pub repository: String,
    pub environment: String,
    pub owner: String,
    pub reason: String,
    pub at: String,
}

/// The sticky locks a viewer sees: every one with a named token, those of the repositories a
/// person signed in with GitHub can read, none to a visitor (a lock's reason is people's words
/// about a repository that may be private).
pub(in crate::web) async fn sticky_lock_views(
    state: &WebState,
    viewer: &Viewer,
) -> Result<Vec<StickyLockView>, JournalError> {
    if viewer.visibility == Visibility::Public {
        return Ok(Vec::new());
    }
    let mut views = Vec::new();
    for lock in state.journal.sticky_locks(None).await? {
        // The one visibility filter decides, through the repository's jobs.
        if viewer.visibility != Visibility::All {
            let of_repository = JobFilter {
                repository: Some(lock.repository.clone()),
                visibility: viewer.visibility.clone(),
                limit: 1,
                ..JobFilter::default()
            };
            if state.journal.jobs(of_repository).await?.is_empty() {
                continue;
            }
        }
        views.push(view(lock));
    }
    Ok(views)
}

fn view(lock: StickyLockRow) -> StickyLockView {
    StickyLockView {
        repository: lock.repository,
        environment: lock.environment,
        owner: format!("{} ({})", lock.owner, lock.owner_login),
        reason: lock.reason,
        at: lock.at,
    }
}

#[derive(Deserialize)]
pub struct UnlockForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    repository: String,
    #[serde(default)]
    environment: String,
    /// The environment's name as the person typed it, to confirm.
    #[serde(default)]
    confirm: String,
}

impl CarriesToken for UnlockForm {
    fn form_token(&self) -> &str {
        &self.csrf
    }
}

/// `POST /dashboard/locks/unlock`: after the environment's name is typed to confirm, releases
/// its sticky lock. Named tokens are operators (as for a replay): the unlock is theirs.
pub async fn unlock(
    State(state): State<WebState>,
    SignedForm {
        actor,
        form,
        person,
        ..
    }: SignedForm<UnlockForm>,
) -> Response {
    let (repository, environment) = (form.repository.trim(), form.environment.trim());
    let page = "/dashboard/deployments";
    let mut action = NewAction {
        actor,
        action: "unlock".to_owned(),
        lock: Some(format!("sticky:{repository}:{environment}")),
        ..NewAction::default()
    };
    if form.confirm.trim() != environment {
        action.outcome =
            "not unlocked: the name typed to confirm was not the environment's".to_owned();
        return recorded(&state, action, page).await;
    }
    if let Some(person) = &person {
        let locks = match state.journal.sticky_locks(None).await {
            Ok(locks) => locks,
            Err(error) => return message::journal_failed(error),
        };
        let own = locks.iter().any(|lock| {
            lock.repository == repository
                && lock.environment == environment
                && lock.owner == person.session_key()
        });
        if !own {
            let needs = UNLOCK_OTHERS_NEEDS;
            if let Err(outcome) = permitted(&state, Some(person), Some(repository), needs).await {
                action.outcome = format!("not unlocked: {outcome}");
                return recorded(&state, action, page).await;
            }
        }
    }
    action.outcome = match state
        .journal
        .release_sticky_lock(repository, environment)
        .await
    {
        Ok(Some(lock)) => format!(
            "unlocked (held by {} ({}) since {}: {})",
            lock.owner, lock.owner_login, lock.at, lock.reason
        ),
        Ok(None) => "not unlocked: it was not locked".to_owned(),
        Err(error) => return message::journal_failed(error),
    };
    recorded(&state, action, page).await
}
