//! `switchyard-deployer`: deploys through GitHub Deployments, as Heaven did. A merged pull
//! request or a person's `/deploy` becomes a deployment; the `deployment` event GitHub then
//! sends (or one anybody else created) runs the deploy command, one at a time per repository
//! and environment, with deployment statuses along the way, once the environment's rules hold
//! (`rules`): its sticky lock and the permission of the person behind the deployment.

mod commands;
mod environments;
mod green;
mod merge;
mod rules;

use std::{collections::BTreeMap, path::PathBuf};

use serde::Deserialize;
use switchyard_plugin_api::{
    AUTO, DeployRecord, DeploySuccess,
    payload::{Deployment, DeploymentEvent, DeploymentStatusEvent, PullRequestEvent},
    prelude::*,
};

use crate::{
    environments::{Defaults, Environment, EnvironmentTable, Environments, On},
    merge::{MergeRules, deployment_for},
};

/// `[plugins.settings]` of a `deployer` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The deploy command, run by `sh -c` in a checkout of the deployment's sha.
    command: String,
    /// Environment that merged pull requests deploy to; default `production` when no
    /// `environment_settings` are given.
    #[serde(default)]
    environment: Option<String>,
    /// Per-environment settings (see `environments`).
    #[serde(default)]
    environment_settings: BTreeMap<String, EnvironmentTable>,
    /// Environments whose deployments this plugin runs; default `[environment]`.
    #[serde(default)]
    environments: Vec<String>,
    /// Base branches whose merges deploy; default the repository's default branch.
    #[serde(default)]
    branches: Vec<String>,
    /// Status contexts GitHub must see green before it creates the deployment.
    #[serde(default)]
    required_contexts: Vec<String>,
    /// Where the deployed environment can be seen, given with `success`.
    #[serde(default)]
    environment_url: Option<String>,
    #[serde(default = "default_timeout_secs")]
    timeout_secs: u64,
    #[serde(default)]
    clone_url: Option<String>,
    #[serde(default = "default_checkout")]
    checkout: bool,
    #[serde(default)]
    workdir: Option<PathBuf>,
}

fn default_timeout_secs() -> u64 {
    3600
}
fn default_checkout() -> bool {
    true
}

struct Deployer {
    settings: Settings,
    environments: Environments,
    source: Source,
}

impl Deployer {
    fn new(config: &PluginConfig) -> Result<Self, PluginError> {
        let mut settings: Settings = config.settings()?;
        if settings.command.trim().is_empty() {
            return Err(PluginError::fatal("settings.command is empty"));
        }
        if settings.environment.is_none() && settings.environment_settings.is_empty() {
            settings.environment = Some("production".to_owned());
        }
        let defaults = Defaults {
            command: &settings.command,
            url: settings.environment_url.as_deref(),
            required_contexts: &settings.required_contexts,
            on_merge: settings.environment.as_deref(),
            environments: &settings.environments,
        };
        let environments = Environments::new(&settings.environment_settings, &defaults)
            .map_err(PluginError::fatal)?;
        let source = Source::from_settings(
            config,
            settings.clone_url.take(),
            settings.checkout,
            settings.workdir.take(),
        )?;
        Ok(Self {
            settings,
            environments,
            source,
        })
    }
}

#[async_trait]
impl Plugin for Deployer {
    fn subscriptions(&self) -> Vec<Subscription> {
        let mut wanted = vec![
            Subscription::action("pull_request", "closed"),
            Subscription::event("deployment"),
            Subscription::event("deployment_status"),
        ];
        // Green events only when an environment deploys on green: every status would be a job.
        if self.environments.on(On::Green).next().is_some() {
            wanted.push(Subscription::event("status"));
            wanted.push(Subscription::action("check_suite", "completed"));
        }
        wanted
    }

    fn commands(&self) -> Vec<CommandSpec> {
        commands::specs()
    }

    /// Creates deployments and their statuses; checks the code out to deploy it; answers its
    /// commands in the thread.
    fn permissions(&self) -> Option<Permissions> {
        Some(
            Permissions::none()
                .write("deployments")
                .read("contents")
                .read("pull_requests")
                .write("issues"),
        )
    }

    async fn handle(&self, event: &Event, host: &Host) -> Result<Outcome, PluginError> {
        if let Some(command) = &event.command {
            return commands::run(&self.environments, event, command, host).await;
        }
        match event.name.as_str() {
            "pull_request" => self.on_merge(&event.parse()?, host).await,
            "deployment" => self.deploy(&event.parse()?, event, host).await,
            "deployment_status" => record(&event.parse()?, host).await,
            "status" | "check_suite" => green::on_green(&self.environments, event, host).await,
            other => Ok(Outcome::Skipped(format!("{other} events deploy nothing"))),
        }
    }
}

impl Deployer {
    /// A merged pull request: ask GitHub for a deployment of each environment deployed on
    /// merge. GitHub answers each with a `deployment` event, which does the deploying. An
    /// environment under a sticky lock is left out, with a note in the log.
    async fn on_merge(
        &self,
        event: &PullRequestEvent,
        host: &Host,
    ) -> Result<Outcome, PluginError> {
        let repo = &event.repository.full_name;
        let mut created_any = false;
        let mut notes = Vec::new();
        for env in self.environments.on(On::Merge) {
            let rules = MergeRules {
                environment: &env.name,
                branches: &self.settings.branches,
                required_contexts: &env.required_contexts,
            };
            let deployment = match deployment_for(event, &rules) {
                Ok(deployment) => deployment,
                Err(reason) => return Ok(Outcome::Skipped(reason)),
            };
            let locks = host.sticky_locks(repo).await?;
            if let Some(lock) = locks.iter().find(|l| l.environment == env.name) {
                let note = format!(
                    "the deploy of {} to {} on merge was dropped: {} is locked by {} since {}: {}",
                    short_sha(&deployment.git_ref),
                    env.name,
                    env.name,
                    lock.owner_login,
                    lock.at,
                    lock.reason
                );
                host.log(format!("switchyard: {note}")).await;
                notes.push(note);
                continue;
            }
            let created = host.create_deployment(repo, &deployment).await?;
            let id = created.body["id"].as_u64().unwrap_or_default();
            host.record_deployment(&DeployRecord {
                repository: repo.clone(),
                deployment_id: id,
                environment: env.name.clone(),
                sha: deployment.git_ref.clone(),
                requested_by: AUTO.to_owned(),
                requested_login: event.pull_request.user.login.clone(),
                forced: false,
                rollback: false,
                at: String::new(),
            })
            .await?;
            host.log(format!(
                "switchyard: created deployment {id} of {} to {} for pull request #{}",
                deployment.git_ref, env.name, event.number
            ))
            .await;
            created_any = true;
        }
        match (created_any, notes.is_empty()) {
            (false, false) => Ok(Outcome::Skipped(notes.join("; "))),
            (false, true) => Ok(Outcome::Skipped(
                "no environment deploys on merge".to_owned(),
            )),
            _ => Ok(Outcome::Done),
        }
    }

    /// A deployment: wait for the environment's lock, check out, run the command, report.
    async fn deploy(
        &self,
        event: &DeploymentEvent,
        raw: &Event,
        host: &Host,
    ) -> Result<Outcome, PluginError> {
        let deployment = &event.deployment;
        let environment = &deployment.environment;
        let Some(env) = self.environments.get(environment) else {
            return Ok(Outcome::Skipped(format!(
                "environment {environment} is not in settings.environments or environment_settings"
            )));
        };
        let report = Reporter {
            host,
            repo: &event.repository.full_name,
            deployment,
            log_url: &raw.job.log_url,
        };
        let short = short_sha(&deployment.sha);
        tokio::select! {
            ended = self.deploy_locked(event, env, &report, host) => ended,
            // Told by the host (the job's timeout, a shutdown, a person): say so on GitHub
            // within the cancel grace. A shutdown's deploy runs again after the restart.
            reason = host.cancelled() => {
                if reason == CancelReason::Shutdown {
                    let description = format!("Deploy of {short} interrupted; runs again after the restart");
                    report.status(DeploymentState::Queued, &description).await?;
                } else if reason.runs_again() {
                    let description = format!("Deploy of {short} {reason}");
                    report.status(DeploymentState::Queued, &description).await?;
                } else {
                    let description = format!("Deploy of {short} {reason}");
                    report.status(DeploymentState::Error, &description).await?;
                }
                Err(PluginError::fatal(reason.to_string()))
            }
        }
    }

    /// Waits for the environment's lock, then checks out, runs the command and reports.
    async fn deploy_locked(
        &self,
        event: &DeploymentEvent,
        env: &Environment,
        report: &Reporter<'_>,
        host: &Host,
    ) -> Result<Outcome, PluginError> {
        let deployment = &event.deployment;
        let environment = &deployment.environment;
        // Heaven's lock: one deploy at a time per repository and environment.
        let lock = format!("deploy:{}:{environment}", event.repository.full_name);
        if !host.try_lock(&lock).await? {
            let waiting = format!("Waiting for the running deploy to {environment} to finish");
            report.status(DeploymentState::Queued, &waiting).await?;
            host.lock(&lock).await?;
        }
        let short = short_sha(&deployment.sha);
        // The rules hold where the deploy runs, whoever created the deployment and however it
        // got here (a command, a replay, GitHub's API).
        if let Err(reason) = rules::check(event, env, host).await? {
            let description = format!("Deploy of {short} to {environment} refused: {reason}");
            report
                .status(DeploymentState::Failure, &description)
                .await?;
            return Ok(Outcome::failed(description));
        }
        report
            .status(
                DeploymentState::InProgress,
                &format!("Deploying {short} to {environment}"),
            )
            .await?;
        let ran = match self
            .source
            .prepare(host, &event.repository, &deployment.sha)
            .await
        {
            Ok(dir) => host.run(&self.command(event, env, dir)).await,
            Err(error) => Err(error),
        };
        match ran {
            Ok(output) if output.success() => {
                let took = output.seconds();
                let mut status = report.body(
                    DeploymentState::Success,
                    &format!("Deployed {short} to {environment} in {took} s"),
                );
                status.environment_url = env.url.clone();
                let payload = deployment.payload_object();
                let success = DeploySuccess {
                    repository: event.repository.full_name.clone(),
                    environment: environment.clone(),
                    deployment_id: deployment.id,
                    sha: deployment.sha.clone(),
                    deployed_for: deploy_user(event),
                    pull_request: payload["pull_request"].as_u64(),
                    at: String::new(),
                };
                // Recorded before GitHub hears of it: whoever sees `success` finds it here.
                host.record_deploy_success(&success).await?;
                report.post(status).await?;
                Ok(Outcome::Finished {
                    verdict: Verdict::Passed,
                    summary: format!("deployed {short} to {environment} in {took} s"),
                })
            }
            Ok(output) if !output.timed_out => {
                let (how, took) = (output.ending(), output.seconds());
                let description = format!("Deploy of {short} failed: {how} after {took} s");
                report
                    .status(DeploymentState::Failure, &description)
                    .await?;
                Ok(Outcome::failed(description))
            }
            Ok(_) => {
                let description = format!(
                    "Deploy of {short} timed out after {} s",
                    self.settings.timeout_secs
                );
                report.status(DeploymentState::Error, &description).await?;
                Ok(Outcome::Finished {
                    verdict: Verdict::TimedOut,
                    summary: description,
                })
            }
            Err(error) => {
                let description = format!("Deploy of {short} errored: {error}");
                report.status(DeploymentState::Error, &description).await?;
                Err(PluginError::fatal(description))
            }
        }
    }

    fn command(&self, event: &DeploymentEvent, env: &Environment, dir: PathBuf) -> RunRequest {
        let deployment = &event.deployment;
        let payload = deployment.payload_object();
        let deploy_user = deploy_user(event);
        RunRequest::shell(&env.command)
            .cwd(dir)
            .timeout_secs(self.settings.timeout_secs)
            .env("SWITCHYARD_DEPLOYMENT_ID", deployment.id.to_string())
            .env("SWITCHYARD_ENVIRONMENT", &deployment.environment)
            .env("SWITCHYARD_SHA", &deployment.sha)
            .env("SWITCHYARD_REF", &deployment.git_ref)
            .env("SWITCHYARD_REPO", &event.repository.full_name)
            .env(
                "SWITCHYARD_TASK",
                deployment.task.as_deref().unwrap_or("deploy"),
            )
            .env("SWITCHYARD_DEPLOY_USER", &deploy_user)
            .env("SWITCHYARD_PAYLOAD", payload.to_string())
    }
}

/// Who a deploy is for: the payload's `deploy_user` (the pull request's author for deploys on
/// merge, the person for a command), else whoever created the deployment.
fn deploy_user(event: &DeploymentEvent) -> String {
    let deployment = &event.deployment;
    let payload = deployment.payload_object();
    payload["deploy_user"]
        .as_str()
        .or(deployment.creator.as_ref().map(|c| c.login.as_str()))
        .or(event.sender.as_ref().map(|s| s.login.as_str()))
        .unwrap_or_default()
        .to_owned()
}

/// Posts one deployment's statuses, each linking to the live deploy log.
struct Reporter<'a> {
    host: &'a Host,
    repo: &'a str,
    deployment: &'a Deployment,
    log_url: &'a str,
}

impl Reporter<'_> {
    fn body(&self, state: DeploymentState, description: &str) -> NewDeploymentStatus {
        let mut status = NewDeploymentStatus::new(state, description);
        status.log_url = Some(self.log_url.to_owned());
        status
    }

    async fn status(&self, state: DeploymentState, description: &str) -> Result<(), PluginError> {
        self.post(self.body(state, description)).await
    }

    async fn post(&self, status: NewDeploymentStatus) -> Result<(), PluginError> {
        let description = status.description.as_deref().unwrap_or_default();
        self.host.log(format!("switchyard: {description}")).await;
        self.host
            .create_deployment_status(self.repo, self.deployment.id, &status)
            .await?;
        Ok(())
    }
}

/// `deployment_status` events are only recorded (the guide's `update_deployment_status`).
async fn record(event: &DeploymentStatusEvent, host: &Host) -> Result<Outcome, PluginError> {
    let status = &event.deployment_status;
    host.log(format!(
        "switchyard: deployment {} of {} to {} is {}{}",
        event.deployment.id,
        short_sha(&event.deployment.sha),
        event.deployment.environment,
        status.state,
        status
            .description
            .as_deref()
            .map(|d| format!(": {d}"))
            .unwrap_or_default()
    ))
    .await;
    Ok(Outcome::Done)
}

declare_plugin!(Deployer, Deployer::new);
