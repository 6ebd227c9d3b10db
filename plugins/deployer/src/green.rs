//! `on = "green"`: a `status` or `check_suite` success for the default branch's current head
//! deploys each green environment once, as Heaven's auto-deploy did. GitHub decides what green
//! means: the deployment is created with the environment's required contexts and GitHub
//! refuses it (409) until they pass. The journal claims (environment, sha) before the create
//! call, gives the claim back on a 409 and keeps it once created, so several contexts turning
//! green together (on several hosts) deploy once.

use serde_json::json;
use switchyard_plugin_api::{AUTO, DeployRecord, NewDeployment, fit_description, prelude::*};

use crate::environments::{Environment, Environments, On};

/// The success a `status` or `check_suite` event reports: `(sha, branch it names)`, or why it
/// deploys nothing.
pub fn success(event: &Event) -> Result<(String, Option<String>), String> {
    let payload = event.payload();
    match event.name.as_str() {
        "status" => {
            if payload["state"] != "success" {
                return Err(format!(
                    "a {} status deploys nothing",
                    text(&payload["state"])
                ));
            }
            Ok((text(&payload["sha"]), None))
        }
        "check_suite" => {
            let suite = &payload["check_suite"];
            if event.action.as_deref() != Some("completed") || suite["conclusion"] != "success" {
                return Err("only a check suite completed with success deploys".to_owned());
            }
            Ok((text(&suite["head_sha"]), Some(text(&suite["head_branch"]))))
        }
        other => Err(format!("{other} events are not green events")),
    }
}

fn text(value: &serde_json::Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// The default branch's head now, from GitHub (`None`: no such branch).
pub async fn head_of(host: &Host, repo: &str, branch: &str) -> Result<Option<String>, PluginError> {
    let path = format!("/repos/{repo}/branches/{branch}");
    match host.github("GET", &path, None).await {
        Ok(answer) => Ok(answer.body["commit"]["sha"].as_str().map(str::to_owned)),
        Err(HostError::GitHub { status: 404, .. }) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// A green event: each green environment deploys the default branch's head, if it is `sha`.
pub async fn on_green(
    environments: &Environments,
    event: &Event,
    host: &Host,
) -> Result<Outcome, PluginError> {
    let (sha, branch) = match success(event) {
        Ok(found) => found,
        Err(reason) => return Ok(Outcome::Skipped(reason)),
    };
    let payload = event.payload();
    let repo = text(&payload["repository"]["full_name"]);
    let default = text(&payload["repository"]["default_branch"]);
    if default.is_empty() || branch.as_ref().is_some_and(|b| *b != default) {
        return Ok(Outcome::Skipped(format!(
            "{} is not on the default branch",
            short_sha(&sha)
        )));
    }
    let head = head_of(host, &repo, &default).await?;
    if head.as_deref() != Some(sha.as_str()) {
        return Ok(Outcome::Skipped(format!(
            "{} is no longer the head of {default}: nothing deployed",
            short_sha(&sha)
        )));
    }
    let mut notes = Vec::new();
    for env in environments.on(On::Green) {
        notes.push(deploy(host, &repo, env, &sha).await?);
    }
    if notes.is_empty() {
        return Ok(Outcome::Skipped(
            "no environment deploys on green".to_owned(),
        ));
    }
    let note = notes.join("; ");
    host.log(format!("switchyard: {note}")).await;
    Ok(Outcome::Finished {
        verdict: Verdict::Passed,
        summary: note,
    })
}

/// Deploys `sha` to `env` once, automatically: what came of it, in words.
pub async fn deploy(
    host: &Host,
    repo: &str,
    env: &Environment,
    sha: &str,
) -> Result<String, PluginError> {
    let short = short_sha(sha);
    let name = &env.name;
    let locks = host.sticky_locks(repo).await?;
    if let Some(lock) = locks.iter().find(|l| l.environment == *name) {
        return Ok(format!(
            "the deploy of {short} to {name} on green was dropped: {name} is locked by {} since {}: {} (its unlock deploys the latest green head)",
            lock.owner_login, lock.at, lock.reason
        ));
    }
    if !host.claim_deploy(repo, name, sha).await? {
        return Ok(format!("{short} was already deployed to {name} on green"));
    }
    let deployment = NewDeployment {
        git_ref: sha.to_owned(),
        task: Some("deploy".to_owned()),
        auto_merge: Some(false),
        required_contexts: env.green_contexts.clone(),
        payload: Some(json!({"environment": name, "deploy_user": "switchyard", "on": "green"})),
        environment: Some(name.clone()),
        description: Some(fit_description(&format!(
            "Deploying {short} to {name}: the default branch is green"
        ))),
        ..NewDeployment::default()
    };
    let created = match host.create_deployment(repo, &deployment).await {
        Ok(created) => created,
        Err(HostError::GitHub { status: 409, .. }) => {
            host.release_deploy_claim(repo, name, sha).await?;
            return Ok(format!(
                "{short} is not green for {name} yet (GitHub refused the deployment): a later event tries again"
            ));
        }
        Err(error) => {
            // Not created (GitHub failing): give the claim back so the retry may create it.
            host.release_deploy_claim(repo, name, sha).await?;
            return Err(error.into());
        }
    };
    let id = created.body["id"].as_u64().unwrap_or_default();
    host.record_deployment(&DeployRecord {
        repository: repo.to_owned(),
        deployment_id: id,
        environment: name.clone(),
        sha: sha.to_owned(),
        requested_by: AUTO.to_owned(),
        requested_login: "switchyard".to_owned(),
        forced: false,
        rollback: false,
        at: String::new(),
    })
    .await?;
    Ok(format!(
        "created deployment {id} of {short} to {name} on green"
    ))
}
