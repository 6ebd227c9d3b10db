//! The deployer's comment commands: `/deploy ENV [BRANCH] [--force]`, `/lock ENV REASON...`,
//! `/unlock ENV` and `/where`. The host has checked the commenter holds `write` (`read` for
//! `/where`); each environment's own permissions are checked here, from the permission the host
//! handed over, and again where the deploy runs (see `rules`).

use serde_json::json;
use switchyard_plugin_api::{
    AUTO, Command, DeployRecord, NewDeployment, PersonRef, Role, StickyLock, fit_description,
    prelude::*,
};

use crate::{
    environments::{Environment, Environments, On, is_environment_name},
    green,
};

pub const DEPLOY: &str = "deploy";
pub const LOCK: &str = "lock";
pub const UNLOCK: &str = "unlock";
pub const WHERE: &str = "where";
pub const ROLLBACK: &str = "rollback";

/// The longest lock reason kept.
const MAX_REASON: usize = 200;

/// What the deployer declares it takes.
pub fn specs() -> Vec<CommandSpec> {
    vec![
        CommandSpec::new(
            DEPLOY,
            "Deploys the pull request's head, or BRANCH's, to ENVIRONMENT",
        )
        .usage("/deploy ENVIRONMENT [BRANCH] [--force]")
        .on(Applies::Both),
        CommandSpec::new(
            LOCK,
            "Holds ENVIRONMENT for you until /unlock: others' deploys are refused",
        )
        .usage("/lock ENVIRONMENT REASON...")
        .on(Applies::Both),
        CommandSpec::new(
            UNLOCK,
            "Releases ENVIRONMENT's lock (yours, or anyone's with its force permission)",
        )
        .usage("/unlock ENVIRONMENT")
        .on(Applies::Both),
        CommandSpec::new(
            ROLLBACK,
            "Deploys ENVIRONMENT's last successful sha before the current one, and locks it for you",
        )
        .usage("/rollback ENVIRONMENT")
        .on(Applies::Both),
        CommandSpec::new(
            WHERE,
            "Lists what is deployed where, how each environment deploys, and its lock",
        )
        .needs(Role::Read)
        .on(Applies::Both),
    ]
}

/// The person who gave `command`.
pub fn author(command: &Command) -> PersonRef {
    PersonRef {
        id: command.author.id,
        login: command.author.login.clone(),
    }
}

/// Runs `command`; a refusal is answered in the thread and ends the job as skipped.
pub async fn run(
    environments: &Environments,
    event: &Event,
    command: &Command,
    host: &Host,
) -> Result<Outcome, PluginError> {
    let repo = event
        .repository
        .clone()
        .ok_or_else(|| PluginError::fatal("the comment names no repository"))?;
    let answer = match command.name.as_str() {
        WHERE => where_(environments, &repo, host).await?,
        name => {
            let Some(environment) = command.args.first() else {
                return refuse(
                    host,
                    &format!(
                        "@{} which environment? {}",
                        command.author.login,
                        usage(name)
                    ),
                )
                .await;
            };
            let Some(env) = environments.get(environment) else {
                return refuse(host, &unknown(command, environment, environments)).await;
            };
            let default_branch = event.payload()["repository"]["default_branch"]
                .as_str()
                .unwrap_or("main")
                .to_owned();
            let asked = Asked {
                repo: &repo,
                env,
                command,
                host,
                default_branch,
            };
            match name {
                LOCK => asked.lock().await?,
                UNLOCK => asked.unlock().await?,
                DEPLOY => asked.deploy().await?,
                ROLLBACK => asked.rollback().await?,
                other => Err(format!("the deployer takes no /{other}")),
            }
        }
    };
    match answer {
        Ok(text) => {
            host.reply(&text).await?;
            Ok(Outcome::Finished {
                verdict: Verdict::Passed,
                summary: first_line(&text),
            })
        }
        Err(text) => refuse(host, &text).await,
    }
}

async fn refuse(host: &Host, text: &str) -> Result<Outcome, PluginError> {
    host.reply(text).await?;
    Ok(Outcome::Skipped(first_line(text)))
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

fn usage(name: &str) -> &'static str {
    match name {
        DEPLOY => "`/deploy ENVIRONMENT [BRANCH] [--force]`",
        LOCK => "`/lock ENVIRONMENT REASON...`",
        ROLLBACK => "`/rollback ENVIRONMENT`",
        _ => "`/unlock ENVIRONMENT`",
    }
}

fn unknown(command: &Command, environment: &str, environments: &Environments) -> String {
    let known: Vec<String> = environments.names().map(|n| format!("`{n}`")).collect();
    let name = if is_environment_name(environment) {
        format!("`{environment}`")
    } else {
        "that".to_owned()
    };
    format!(
        "@{} {name} is not an environment here; these are: {}.",
        command.author.login,
        known.join(", ")
    )
}

/// A command about one environment.
struct Asked<'a> {
    repo: &'a str,
    env: &'a Environment,
    command: &'a Command,
    host: &'a Host,
    /// The repository's default branch, as the comment's payload names it.
    default_branch: String,
}

type Answer = Result<String, String>;

impl Asked<'_> {
    fn login(&self) -> &str {
        &self.command.author.login
    }

    /// Whether the author holds `role` (the host handed over their permission).
    fn holds(&self, role: Role) -> bool {
        self.command.author.permission.is_some_and(|p| p >= role)
    }

    fn lacks(&self, role: Role, what: &str) -> String {
        let has = self
            .command
            .author
            .permission
            .map_or("none".to_owned(), |p| p.to_string());
        format!(
            "@{} {what} `{}` needs `{role}`; you have `{has}`.",
            self.login(),
            self.env.name
        )
    }

    /// The environment's least permission to deploy it by command.
    fn deploy_role(&self) -> Role {
        self.env.deploy.unwrap_or(Role::Write)
    }

    async fn held(&self) -> Result<Option<StickyLock>, PluginError> {
        let locks = self.host.sticky_locks(self.repo).await?;
        Ok(locks.into_iter().find(|l| l.environment == self.env.name))
    }

    async fn lock(&self) -> Result<Answer, PluginError> {
        if !self.holds(self.deploy_role()) {
            return Ok(Err(self.lacks(self.deploy_role(), "locking")));
        }
        let reason: String = self.command.args[1..]
            .join(" ")
            .chars()
            .take(MAX_REASON)
            .collect();
        if reason.trim().is_empty() {
            return Ok(Err(format!("@{} say why: {}", self.login(), usage(LOCK))));
        }
        let me = author(self.command);
        let held = self
            .host
            .sticky_lock(self.repo, &self.env.name, &me, &reason)
            .await?;
        if held.owner != me.key() {
            return Ok(Err(held_by(&held, self.login())));
        }
        Ok(Ok(format!(
            "🔒 `{}` is locked by @{} since {}: {}\nOthers' deploys and automatic deploys are refused until `/unlock {}`.",
            self.env.name, held.owner_login, held.at, held.reason, self.env.name
        )))
    }

    async fn unlock(&self) -> Result<Answer, PluginError> {
        let Some(held) = self.held().await? else {
            return Ok(Err(format!(
                "@{} `{}` is not locked.",
                self.login(),
                self.env.name
            )));
        };
        let mine = held.owner == author(self.command).key();
        if !mine && !self.holds(self.env.force) {
            return Ok(Err(format!(
                "{}\nUnlocking someone else's lock needs `{}`.",
                held_by(&held, self.login()),
                self.env.force
            )));
        }
        if !self.holds(self.deploy_role()) {
            return Ok(Err(self.lacks(self.deploy_role(), "unlocking")));
        }
        let by = format!("github:{} ({})", self.command.author.id, self.login());
        self.host
            .sticky_unlock(self.repo, &self.env.name, &by)
            .await?;
        let mut answer = format!(
            "🔓 `{}` is unlocked (it was locked by @{} since {}: {}).",
            self.env.name, held.owner_login, held.at, held.reason
        );
        // Green deploys dropped meanwhile: the default branch's latest green head deploys once.
        if self.env.on == On::Green {
            if let Some(head) = green::head_of(self.host, self.repo, &self.default_branch).await? {
                let note = green::deploy(self.host, self.repo, self.env, &head).await?;
                answer.push_str(&format!("\n{note}."));
            }
        }
        Ok(Ok(answer))
    }

    async fn deploy(&self) -> Result<Answer, PluginError> {
        let args = &self.command.args[1..];
        let force = args.iter().any(|a| a == "--force");
        let branch = args.iter().find(|a| !a.starts_with("--"));
        if let Some(flag) = args.iter().find(|a| a.starts_with("--") && *a != "--force") {
            return Ok(Err(format!(
                "@{} unknown flag `{}`: {}",
                self.login(),
                flag.replace('`', ""),
                usage(DEPLOY)
            )));
        }
        if !self.holds(self.deploy_role()) {
            return Ok(Err(self.lacks(self.deploy_role(), "deploying to")));
        }
        if force && !self.holds(self.env.force) {
            return Ok(Err(self.lacks(self.env.force, "`--force` for")));
        }
        if let Some(held) = self.held().await? {
            if held.owner != author(self.command).key() {
                return Ok(Err(held_by(&held, self.login())));
            }
        }
        let (git_ref, sha, pull_request) = match (branch, &self.command.pull_request) {
            (Some(branch), _) => {
                if !branch
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"./-_".contains(&b))
                {
                    return Ok(Err(format!("@{} that is not a branch name.", self.login())));
                }
                (branch.clone(), None, None)
            }
            (None, Some(facts)) => {
                if facts.fork {
                    return Ok(Err(format!(
                        "@{} a fork's head is never deployed: merge it, or push it to a branch here and `/deploy {} BRANCH`.",
                        self.login(),
                        self.env.name
                    )));
                }
                if !self.env.pull_requests {
                    return Ok(Err(format!(
                        "@{} `{}` takes branch heads only: `/deploy {} BRANCH`.",
                        self.login(),
                        self.env.name,
                        self.env.name
                    )));
                }
                if !force {
                    if let Some(behind) = self.behind_base(&facts.head_sha).await? {
                        return Ok(Err(behind));
                    }
                }
                (
                    facts.head_sha.clone(),
                    Some(facts.head_sha.clone()),
                    Some(self.command.number),
                )
            }
            (None, None) => {
                return Ok(Err(format!(
                    "@{} name the branch: `/deploy {} BRANCH`.",
                    self.login(),
                    self.env.name
                )));
            }
        };
        let me = author(self.command);
        let deployment = NewDeployment {
            git_ref: git_ref.clone(),
            task: Some("deploy".to_owned()),
            auto_merge: Some(false),
            // `--force` skips the required checks: recorded as forced.
            required_contexts: Some(if force {
                Vec::new()
            } else {
                self.env.required_contexts.clone()
            }),
            payload: Some(json!({
                "environment": self.env.name,
                "deploy_user": me.login,
                "pull_request": pull_request,
                "requested_by": me.key(),
                "forced": force,
            })),
            environment: Some(self.env.name.clone()),
            description: Some(fit_description(&format!(
                "Deploying {} to {} for {}{}",
                short_sha(&git_ref),
                self.env.name,
                me.login,
                if force { " (forced)" } else { "" }
            ))),
            ..NewDeployment::default()
        };
        let created = match self.host.create_deployment(self.repo, &deployment).await {
            Ok(created) => created,
            Err(HostError::GitHub {
                status: 409,
                message,
            }) => {
                return Ok(Err(format!(
                    "@{} `{}` was not deployed: its required checks are not green ({}). `/deploy {} --force` skips them (needs `{}`).",
                    self.login(),
                    git_ref,
                    message.replace('`', ""),
                    self.env.name,
                    self.env.force
                )));
            }
            Err(error) => return Err(error.into()),
        };
        let id = created.body["id"].as_u64().unwrap_or_default();
        let record = DeployRecord {
            repository: self.repo.to_owned(),
            deployment_id: id,
            environment: self.env.name.clone(),
            sha: created.body["sha"]
                .as_str()
                .map(str::to_owned)
                .or(sha)
                .unwrap_or(git_ref.clone()),
            requested_by: me.key(),
            requested_login: me.login.clone(),
            forced: force,
            rollback: false,
            at: String::new(),
        };
        self.host.record_deployment(&record).await?;
        Ok(Ok(format!(
            "🚀 Deploying `{}` to `{}` for @{} (deployment {id}){}.",
            short_sha(&git_ref),
            self.env.name,
            me.login,
            if force { ", forced" } else { "" }
        )))
    }
}

impl Asked<'_> {
    /// `/rollback ENV`: the environment's last successful sha before the current one, deployed
    /// again as a rollback, with a sticky lock so the next automatic deploy does not undo it.
    async fn rollback(&self) -> Result<Answer, PluginError> {
        if !self.holds(self.deploy_role()) {
            return Ok(Err(self.lacks(self.deploy_role(), "rolling back")));
        }
        let me = author(self.command);
        let name = &self.env.name;
        let successes = self
            .host
            .deploy_successes(self.repo, Some(name), 100)
            .await?;
        let Some(current) = successes.first() else {
            return Ok(Err(format!(
                "@{} nothing was deployed to `{name}` yet.",
                me.login
            )));
        };
        let Some(target) = successes.iter().find(|s| s.sha != current.sha) else {
            return Ok(Err(format!(
                "@{} `{name}` has no successful deploy before {} to roll back to.",
                me.login,
                short_sha(&current.sha)
            )));
        };
        let reason = format!(
            "rolled back by {} from {} to {}",
            me.login,
            short_sha(&current.sha),
            short_sha(&target.sha)
        );
        let held = self.host.sticky_lock(self.repo, name, &me, &reason).await?;
        if held.owner != me.key() {
            return Ok(Err(held_by(&held, &me.login)));
        }
        let deployment = NewDeployment {
            git_ref: target.sha.clone(),
            task: Some("deploy".to_owned()),
            auto_merge: Some(false),
            // It was deployed before: its checks were green then.
            required_contexts: Some(Vec::new()),
            payload: Some(json!({
                "environment": name,
                "deploy_user": me.login,
                "requested_by": me.key(),
                "rollback": true,
                "rolled_back_from": current.sha,
            })),
            environment: Some(name.clone()),
            description: Some(fit_description(&format!(
                "Rolling back {name} to {} for {}",
                short_sha(&target.sha),
                me.login
            ))),
            ..NewDeployment::default()
        };
        let created = self.host.create_deployment(self.repo, &deployment).await?;
        let id = created.body["id"].as_u64().unwrap_or_default();
        self.host
            .record_deployment(&DeployRecord {
                repository: self.repo.to_owned(),
                deployment_id: id,
                environment: name.clone(),
                sha: target.sha.clone(),
                requested_by: me.key(),
                requested_login: me.login.clone(),
                forced: false,
                rollback: true,
                at: String::new(),
            })
            .await?;
        Ok(Ok(format!(
            "⏪ Rolling back `{name}` from {} to {} (deployed {} for {}) as deployment {id}, for @{}.\n🔒 `{name}` is locked by @{}: {}. `/unlock {name}` lets deploys through again.",
            short_sha(&current.sha),
            short_sha(&target.sha),
            target.at,
            target.deployed_for,
            me.login,
            held.owner_login,
            held.reason
        )))
    }

    /// Why the pull request's head may not be deployed because it is behind its base (deploying
    /// it would take others' merged work off the environment), as branch-deploy's
    /// `update_branch` refuses it.
    async fn behind_base(&self, head: &str) -> Result<Option<String>, PluginError> {
        let pull = self
            .host
            .github(
                "GET",
                &format!("/repos/{}/pulls/{}", self.repo, self.command.number),
                None,
            )
            .await?;
        let Some(base) = pull.body["base"]["ref"].as_str() else {
            return Ok(None);
        };
        let path = format!("/repos/{}/compare/{base}...{head}", self.repo);
        let compared = self.host.github("GET", &path, None).await?;
        let behind = compared.body["behind_by"].as_u64().unwrap_or(0);
        Ok((behind > 0).then(|| {
            format!(
                "@{} the head {} is {behind} commit{} behind `{}`: deploying it would remove others' merged work from `{}`. Merge or rebase it, or `/deploy {} --force` (needs `{}`).",
                self.login(),
                short_sha(head),
                if behind == 1 { "" } else { "s" },
                base.replace('`', ""),
                self.env.name,
                self.env.name,
                self.env.force
            )
        }))
    }
}

/// Who holds a lock and why, to the person refused.
pub fn held_by(lock: &StickyLock, login: &str) -> String {
    format!(
        "@{login} `{}` is locked by @{} since {}: {}",
        lock.environment, lock.owner_login, lock.at, lock.reason
    )
}

async fn where_(
    environments: &Environments,
    repo: &str,
    host: &Host,
) -> Result<Answer, PluginError> {
    let locks = host.sticky_locks(repo).await?;
    let successes = host.deploy_successes(repo, None, 200).await?;
    let mut text =
        String::from("| Environment | Deployed | Deploys | Lock |\n| --- | --- | --- | --- |\n");
    for name in environments.names() {
        let env = environments.get(name).expect("listed");
        let on = match env.on {
            crate::environments::On::Merge => "on merge",
            crate::environments::On::Green => "when the default branch is green",
            crate::environments::On::Manual => "by /deploy",
        };
        let lock = locks
            .iter()
            .find(|l| l.environment == name)
            .map_or("–".to_owned(), |l| {
                format!(
                    "🔒 @{} since {}: {}",
                    l.owner_login,
                    l.at,
                    l.reason.replace('|', "/")
                )
            });
        let deployed =
            successes
                .iter()
                .find(|s| s.environment == name)
                .map_or("–".to_owned(), |s| {
                    let pull = s
                        .pull_request
                        .map(|n| format!(" (#{n})"))
                        .unwrap_or_default();
                    format!(
                        "{}{pull} for {} at {}",
                        short_sha(&s.sha),
                        s.deployed_for,
                        s.at
                    )
                });
        text.push_str(&format!("| `{name}` | {deployed} | {on} | {lock} |\n"));
    }
    Ok(Ok(text))
}

/// Whether a record says an automatic deploy.
pub fn is_auto(record: &DeployRecord) -> bool {
    record.requested_by == AUTO
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_declared_well_formed() {
        let specs = specs();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, [DEPLOY, LOCK, UNLOCK, ROLLBACK, WHERE]);
        for spec in &specs {
            assert_eq!(spec.check(), Ok(()), "{spec:?}");
            let needs = if spec.name == WHERE {
                Role::Read
            } else {
                Role::Write
            };
            assert_eq!(spec.permission, needs, "{spec:?}");
        }
    }
}
