//! The dashboard's actions: replay a delivery, cancel a job, release a lock. Each is a POST of
//! a plain form. It needs a sign-in whatever `access` says (the guard refuses it otherwise),
//! and passes two CSRF checks (see `signed_form`): the request comes from the dashboard's own
//! origin, and the form carries the session's token.
//! Whatever it did, or why it did nothing, is recorded in the journal's audit trail with the
//! signed-in name, and the answer leads back to the page the form was on, which shows it.

use std::time::{Duration, Instant};

use axum::{
    Extension,
    extract::{Path, State},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;
use switchyard_plugin_api::{Access, CancelReason, Role};

use super::{
    Viewer, WebState, message,
    pages::visible::visible_delivery,
    people::Person,
    signed_form::{CarriesToken, SignedForm},
};
use crate::{
    event::Delivery,
    journal::{Appended, JobId, JobRecord, JobState, JournalError, NewAction, PostFilter},
    plugins::interest,
};

/// The permission each action needs of a person signed in with GitHub on the repository it
/// touches (named tokens may do everything).
const REPLAY_NEEDS: Role = Role::Write;
const CANCEL_NEEDS: Role = Role::Write;
const RELEASE_NEEDS: Role = Role::Write;

/// Whether whoever posted `person`'s form may take an action needing `needs` on `repository`:
/// a named token may; a person when GitHub says so now (see `people::permission`). `Err` is the
/// outcome to record.
pub(super) async fn permitted(
    state: &WebState,
    person: Option<&Person>,
    repository: Option<&str>,
    needs: Role,
) -> Result<(), String> {
    let Some(person) = person else {
        return Ok(());
    };
    let Some(sign_in) = &state.dashboard.github_sign_in else {
        return Err("not done: signing in with GitHub is no longer configured".to_owned());
    };
    sign_in
        .may(&*state.github, person, repository, needs)
        .await
        .map_err(|refused| format!("refused: {}", refused.0))
}

/// Records `action` and leads back to `page`, which shows it.
pub(super) async fn recorded(state: &WebState, action: NewAction, page: &str) -> Response {
    tracing::info!(
        actor = %action.actor,
        action = %action.action,
        delivery = action.delivery.as_deref(),
        job = action.job.map(|job| job.0),
        lock = action.lock.as_deref(),
        outcome = action.outcome.as_str(),
        "dashboard action"
    );
    match state.journal.record_action(action).await {
        Ok(id) => {
            let separator = if page.contains('?') { '&' } else { '?' };
            Redirect::to(&format!("{page}{separator}action={id}")).into_response()
        }
        Err(error) => message::journal_failed(error),
    }
}

#[derive(Deserialize)]
pub struct ReplayForm {
    #[serde(default)]
    csrf: String,
    /// Only this plugin; blank: every plugin the delivery routes to now.
    #[serde(default)]
    plugin: String,
    /// The environment's name as the person typed it, for a delivery that deploys.
    #[serde(default)]
    confirm: String,
}

impl CarriesToken for ReplayForm {
    fn form_token(&self) -> &str {
        &self.csrf
    }
}

/// What a person types to replay `delivery`, if a replay deploys: a `deployment` event's
/// environment, the one a job of the delivery created a deployment for (a merge the deployer
/// turned into one), or the repository's name when a plugin it routes to may create
/// deployments but none was recorded. Asked as releasing a lock is.
pub(super) async fn deploys_to(
    state: &WebState,
    delivery: &Delivery,
) -> Result<Option<String>, JournalError> {
    if delivery.kind.as_str() == "deployment" {
        // Only the one field is read: the payload may be large, and no tree of it is built.
        #[derive(serde::Deserialize)]
        struct Payload {
            deployment: Deployment,
        }
        #[derive(serde::Deserialize)]
        struct Deployment {
            environment: String,
        }
        let environment = serde_json::from_slice::<Payload>(&delivery.payload)
            .ok()
            .map(|payload| payload.deployment.environment);
        // A deployment without a readable environment still deploys: its kind is the name.
        return Ok(Some(environment.unwrap_or_else(|| "deployment".to_owned())));
    }
    for job in state.journal.jobs_of(delivery.id.as_str()).await? {
        let filter = PostFilter {
            // Deployments and their statuses, newest first: the deployment may be behind
            // statuses posted after it.
            limit: 100,
            job: Some(job.id),
            deployments: true,
            ..PostFilter::default()
        };
        let posted = state.journal.posts(filter).await?;
        if let Some(environment) = posted
            .into_iter()
            .filter(|record| record.post.kind == "deployment")
            .find_map(|record| record.post.environment)
        {
            return Ok(Some(environment));
        }
    }
    // Nothing deployed yet (its deploying job failed, was cancelled or never ran): whether a
    // replay deploys is then whether a plugin it routes to may create deployments, and the
    // name to type is the repository's.
    let plugins = state.plugins.current();
    let deploys = interest::route(&plugins, delivery).iter().any(|name| {
        plugins.get(name).is_some_and(|plugin| {
            plugin
                .declared
                .as_ref()
                .is_some_and(|declared| declared.allows("deployments", Access::Write))
        })
    });
    Ok(deploys.then(|| {
        delivery
            .facts
            .repository
            .clone()
            .unwrap_or_else(|| "deployment".to_owned())
    }))
}

/// `POST /dashboard/deliveries/{id}/replay`: the delivery again, as new jobs, to every plugin
/// it routes to now or to one (as `switchyard replay` does).
pub async fn replay(
    State(state): State<WebState>,
    Path(id): Path<String>,
    Extension(viewer): Extension<Viewer>,
    SignedForm {
        actor,
        form,
        person,
        ..
    }: SignedForm<ReplayForm>,
) -> Response {
    // A delivery the person cannot see is as absent as an unknown one.
    let delivery = match visible_delivery(&state, &viewer, &id).await {
        Ok(Some(delivery)) => delivery,
        Ok(None) => return message::not_found().await,
        Err(error) => return message::journal_failed(error),
    };
    let page = format!(
        "/dashboard/deliveries/{}",
        form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    );
    let repository = delivery.facts.repository.as_deref();
    if let Err(outcome) = permitted(&state, person.as_ref(), repository, REPLAY_NEEDS).await {
        let action = NewAction {
            actor,
            action: "replay".to_owned(),
            delivery: Some(id),
            outcome,
            ..NewAction::default()
        };
        return recorded(&state, action, &page).await;
    }
    let environment = match deploys_to(&state, &delivery).await {
        Ok(environment) => environment,
        Err(error) => return message::journal_failed(error),
    };
    if let Some(environment) = environment.filter(|env| form.confirm.trim() != env) {
        let action = NewAction {
            actor,
            action: "replay".to_owned(),
            delivery: Some(id),
            outcome: format!(
                "not replayed: it deploys, and what was typed to confirm was not {environment}"
            ),
            ..NewAction::default()
        };
        return recorded(&state, action, &page).await;
    }
    let plugin = Some(form.plugin.trim()).filter(|p| !p.is_empty());
    let plugins = state.plugins.current();
    let outcome = match interest::replay_targets(&plugins, &delivery, plugin) {
        Err(problem) => format!("not replayed: {problem}"),
        Ok(targets) if targets.is_empty() => {
            "not replayed: no loaded plugin takes this delivery now".to_owned()
        }
        Ok(targets) => {
            let dispatched = state
                .dispatcher
                .commit_and_dispatch(std::sync::Arc::new(delivery), targets, true)
                .await;
            match dispatched {
                Ok(Appended::New(jobs)) => {
                    let listed: Vec<String> = jobs
                        .iter()
                        .map(|job| format!("#{} ({})", job.id, job.plugin))
                        .collect();
                    format!("replayed as new jobs {}", listed.join(", "))
                }
                Ok(Appended::Duplicate) => "not replayed".to_owned(),
                Err(error) => return message::journal_failed(error),
            }
        }
    };
    let action = NewAction {
        actor,
        action: "replay".to_owned(),
        delivery: Some(id),
        outcome,
        ..NewAction::default()
    };
    recorded(&state, action, &page).await
}

#[derive(Deserialize)]
pub struct CancelForm {
    #[serde(default)]
    csrf: String,
}

impl CarriesToken for CancelForm {
    fn form_token(&self) -> &str {
        &self.csrf
    }
}

/// `POST /dashboard/jobs/{id}/cancel`: the plugin is told "cancelled by NAME", posts its final
/// status, and its commands and locks go with its end.
pub async fn cancel(
    State(state): State<WebState>,
    Path(id): Path<String>,
    SignedForm { actor, person, .. }: SignedForm<CancelForm>,
) -> Response {
    let Ok(job) = id.parse::<i64>().map(JobId) else {
        return message::not_found().await;
    };
    let record = match state.journal.job(job).await {
        Ok(record) => record,
        Err(JournalError::NoSuchJob(_)) => return message::not_found().await,
        Err(error) => return message::journal_failed(error),
    };
    let repository = match repository_of(&state, job).await {
        Ok(repository) => repository,
        Err(error) => return message::journal_failed(error),
    };
    let allowed = permitted(&state, person.as_ref(), repository.as_deref(), CANCEL_NEEDS).await;
    let outcome = match allowed {
        Err(outcome) => outcome,
        Ok(()) => match cancel_job(&state, &record, &actor).await {
            Ok(outcome) => outcome,
            Err(error) => return message::journal_failed(error),
        },
    };
    let action = NewAction {
        actor,
        action: "cancel".to_owned(),
        delivery: Some(record.delivery),
        job: Some(job),
        outcome,
        ..NewAction::default()
    };
    recorded(&state, action, &format!("/dashboard/jobs/{job}")).await
}

/// The repository of job `job`'s delivery, if it names one.
async fn repository_of(state: &WebState, job: JobId) -> Result<Option<String>, JournalError> {
    let filter = crate::journal::JobFilter {
        limit: 1,
        id: Some(job),
        ..crate::journal::JobFilter::default()
    };
    let row = state.journal.jobs(filter).await?.into_iter().next();
    Ok(row.and_then(|row| row.repository))
}

/// Cancels the job `record` shows for `by`, on whichever host runs it, and says what came of
/// it. A running job's plugin is told why and given its cancel grace; a queued one starts
/// cancelled, so its plugin is told too and posts its final status.
async fn cancel_job(web: &WebState, record: &JobRecord, by: &str) -> Result<String, JournalError> {
    let reason = CancelReason::User { by: by.to_owned() };
    let state = web
        .workers
        .request_cancel(record.id, reason.clone())
        .await?;
    Ok(match state {
        Some(JobState::Running) => format!("cancelling: the plugin was told \"{reason}\""),
        Some(JobState::Queued) => {
            format!("cancelling: the plugin is told \"{reason}\" as the job starts")
        }
        Some(state) => format!("not cancelled: the job had already {}", state.as_str()),
        None => "not cancelled: no such job".to_owned(),
    })
}

#[derive(Deserialize)]
pub struct ReleaseForm {
    #[serde(default)]
    csrf: String,
    /// The lock.
    #[serde(default)]
    name: String,
    /// The holder the page showed: a lock that changed hands since is not released.
    #[serde(default)]
    job: Option<i64>,
    /// The lock's name as the person typed it, to confirm.
    #[serde(default)]
    confirm: String,
}

impl CarriesToken for ReleaseForm {
    fn form_token(&self) -> &str {
        &self.csrf
    }
}

/// How long a release waits past the cancel grace for the holder's end to be recorded.
const RELEASE_SLACK: Duration = Duration::from_secs(5);

/// `POST /dashboard/locks/release`: after the lock's name is typed to confirm, its holder's
/// job is cancelled, and once it ended (or its cancel grace passed: a stuck holder) the lock
/// is freed and the jobs waiting for it woken.
pub async fn release_lock(
    State(state): State<WebState>,
    SignedForm {
        actor,
        form,
        person,
        ..
    }: SignedForm<ReleaseForm>,
) -> Response {
    let name = form.name.trim().to_owned();
    let page = "/dashboard/deployments";
    let mut action = NewAction {
        actor: actor.clone(),
        action: "release".to_owned(),
        lock: Some(name.clone()),
        ..NewAction::default()
    };
    if form.confirm.trim() != name {
        action.outcome = "not released: the name typed to confirm was not the lock's".to_owned();
        return recorded(&state, action, page).await;
    }
    let locks = match state.journal.locks().await {
        Ok(locks) => locks,
        Err(error) => return message::journal_failed(error),
    };
    let Some(held) = locks.into_iter().find(|lock| lock.name == name) else {
        action.outcome = "not released: it was not held".to_owned();
        return recorded(&state, action, page).await;
    };
    let holder = held.job;
    action.job = Some(holder);
    if form.job.is_some_and(|job| job != holder.0) {
        action.outcome =
            format!("not released: it changed hands since the page was shown (now job #{holder})");
        return recorded(&state, action, page).await;
    }
    let repository = match repository_of(&state, holder).await {
        Ok(repository) => repository,
        Err(error) => return message::journal_failed(error),
    };
    let allowed = permitted(
        &state,
        person.as_ref(),
        repository.as_deref(),
        RELEASE_NEEDS,
    )
    .await;
    let outcome = match allowed {
        Err(outcome) => outcome,
        Ok(()) => match release(&state, &name, holder, &actor).await {
            Ok(outcome) => outcome,
            Err(error) => return message::journal_failed(error),
        },
    };
    action.outcome = outcome;
    if let Ok(record) = state.journal.job(holder).await {
        action.delivery = Some(record.delivery);
    }
    recorded(&state, action, page).await
}

/// Cancels the holder of `name`, waits for its end within its cancel grace, then frees the lock
/// if the holder still has it.
async fn release(
    state: &WebState,
    name: &str,
    holder: JobId,
    by: &str,
) -> Result<String, JournalError> {
    let record = state.journal.job(holder).await?;
    let cancelled = cancel_job(state, &record, by).await?;
    let deadline = Instant::now() + state.dashboard.cancel_grace + RELEASE_SLACK;
    loop {
        let record = state.journal.job(holder).await?;
        let running = matches!(record.state, JobState::Running);
        if !running || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Freed here, or already with the holder's end.
    state.journal.release_lock(name, holder).await?;
    state.locks.notify_released();
    Ok(format!("released; holder job #{holder} {cancelled}"))
}
