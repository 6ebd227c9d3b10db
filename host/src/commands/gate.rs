//! A command job's gate, run by the worker before the plugin is called, on every attempt (a
//! retry, a restart, a replay): the commenter's permission, asked of GitHub (or this host's
//! cache of at most 60 s), against each command the plugin takes; refusals answered in the
//! thread within the reply budget; an accepted command acknowledged with 👀 and handed to the
//! plugin typed. The plugin never sees a command its author may not give.

use std::sync::Arc;

use serde_json::Value;
use switchyard_plugin_api::{
    Command, CommandSpec, HostError, Person, PluginError, PullRequestFacts, Role,
};

use super::{
    HELP,
    budget::{PermissionCache, ReplyBudget},
    comment::Comment,
    help_text,
    parse::MAX_COMMANDS,
    trust,
};
use crate::{
    event::Delivery,
    github::{Caller, GitHub, comments},
    journal::{Approvals, AuditTrail, JobId, NewAction},
};

/// The service's state on this host, shared by every job.
pub struct CommandService {
    github: Arc<dyn GitHub>,
    /// Where every command's verdict is recorded, shown on its delivery's and job's pages.
    audit: Arc<dyn AuditTrail>,
    permissions: PermissionCache,
    replies: ReplyBudget,
    /// Heads approved by `/ok-to-test`: a fork's pull request whose head one is trusted.
    approvals: Option<Arc<dyn Approvals>>,
}

/// What a job runs, once its gate passed.
#[derive(Debug)]
pub(crate) enum Admission {
    /// Not a comment holding a command of this plugin: the plugin gets the event as it is.
    Event,
    /// These commands, each allowed and acknowledged, in the order written.
    Commands(Vec<Command>),
    /// Nothing to run, and why (recorded as the job's outcome).
    Nothing(String),
}

impl CommandService {
    pub fn new(github: Arc<dyn GitHub>, audit: Arc<dyn AuditTrail>) -> Self {
        Self {
            github,
            audit,
            permissions: PermissionCache::default(),
            replies: ReplyBudget::default(),
            approvals: None,
        }
    }

    /// Reads approvals from `approvals`, so the author of a fork's pull request whose head a
    /// maintainer approved is trusted (without it, only pull requests from the base repository
    /// are).
    pub fn with_approvals(mut self, approvals: Arc<dyn Approvals>) -> Self {
        self.approvals = Some(approvals);
        self
    }

    /// Checks the commands of `delivery`'s comment that `specs` (a plugin entry's) take.
    /// GitHub being unavailable fails the attempt retryably: no command runs unchecked.
    ///
    /// `everyone` is the commands of every entry the repository reaches, for `/help`.
    pub(crate) async fn admit(
        &self,
        job: JobId,
        specs: &[CommandSpec],
        everyone: &[CommandSpec],
        delivery: &Delivery,
    ) -> Result<Admission, PluginError> {
        let Some(comment) = Comment::of(delivery) else {
            return Ok(Admission::Event);
        };
        let spec = |name: &str| {
            specs
                .iter()
                .find(|s| s.name == name && s.applies_to.to(comment.pull_request))
        };
        let takes_any = specs.iter().any(|s| s.applies_to.to(comment.pull_request));
        let mut parsed =
            comment.commands(|name| spec(name).is_some() || (name == HELP && takes_any));
        if parsed.commands.is_empty() {
            return Ok(Admission::Event);
        }
        let caller = comments::host_caller(&comment.repository, delivery.payload.clone());
        let asked_help = parsed.commands.iter().any(|c| c.name == HELP);
        if asked_help && !comment.closed && !comment.locked {
            // Anyone may ask; the budget bounds what it costs, and answers it once between the
            // entries that all got the comment.
            let text = help_text(&comment.author_login, everyone, comment.pull_request);
            self.answer(&caller, &comment, HELP, &text).await;
            parsed.commands.retain(|c| c.name != HELP);
            if parsed.commands.is_empty() {
                return Ok(Admission::Nothing("answered /help".to_owned()));
            }
        }
        if comment.closed || comment.locked {
            let state = if comment.locked { "locked" } else { "closed" };
            tracing::info!(
                thread = %comment.thread(),
                person = %comment.person(),
                state,
                "comment commands on a closed or locked thread run nothing"
            );
            return Ok(Admission::Nothing(format!(
                "{} is {state}: its commands run nothing",
                comment.thread()
            )));
        }
        if parsed.ignored > 0 {
            let note = format!(
                "@{} only the first {MAX_COMMANDS} commands of a comment are read; {} more were ignored.",
                comment.author_login, parsed.ignored
            );
            self.answer(&caller, &comment, "(too many)", &note).await;
        }
        let level = self.level(&caller, &comment).await?;
        let is_author = comment.thread_author == Some(comment.author_id);
        // Fetched once, when first needed: for an author's command that needs a trusted pull
        // request, or for the commands accepted.
        let mut facts: Option<PullRequestFacts> = None;
        let mut accepted = Vec::new();
        for invocation in parsed.commands {
            let spec = spec(&invocation.name).expect("parsed only the plugin's commands");
            let permitted = level.is_some_and(|have| have >= spec.permission);
            let as_author = match (is_author, spec.author_needs_trust, permitted) {
                (true, true, false) if comment.pull_request => {
                    if facts.is_none() {
                        facts = Some(self.pull_request(&caller, &comment).await?);
                    }
                    let facts = facts.as_ref().expect("fetched just above");
                    self.trusted(&comment, facts).await?
                }
                (true, true, false) => false,
                _ => is_author,
            };
            let verdict = trust::verdict(spec, level, as_author);
            tracing::info!(
                command = %spec.name,
                person = %comment.person(),
                thread = %comment.thread(),
                permission = level.map_or("none", Role::as_str),
                needs = %spec.permission,
                verdict = verdict.as_str(),
                "comment command"
            );
            let have = level.map_or("none", Role::as_str);
            let outcome = match (&invocation.args, verdict.accepted()) {
                (_, false) => format!("refused: needs {}, has {have}", spec.permission),
                (Err(reason), true) => format!("{}; not run: {reason}", verdict.as_str()),
                (Ok(_), true) => format!("{} (has {have})", verdict.as_str()),
            };
            self.record(job, delivery, &comment, &spec.name, outcome)
                .await;
            if !verdict.accepted() {
                let text = refusal(spec, &comment, level);
                self.answer(&caller, &comment, &spec.name, &text).await;
                continue;
            }
            match invocation.args {
                Ok(args) => accepted.push((spec.name.clone(), args)),
                Err(reason) => {
                    let text = format!(
                        "@{} `/{}`: {reason}. Usage: `{}`",
                        comment.author_login, spec.name, spec.usage
                    );
                    self.answer(&caller, &comment, &spec.name, &text).await;
                }
            }
        }
        if accepted.is_empty() {
            return Ok(Admission::Nothing(format!(
                "no command of {} that {} may give",
                comment.thread(),
                comment.person()
            )));
        }
        if let Err(error) = comments::react(
            &*self.github,
            &caller,
            &comment.repository,
            comment.id,
            "eyes",
        )
        .await
        {
            tracing::warn!(thread = %comment.thread(), error = error.to_string(), "cannot react to a comment command");
        }
        let pull_request = match (comment.pull_request, facts) {
            (true, Some(facts)) => Some(facts),
            (true, None) => Some(self.pull_request(&caller, &comment).await?),
            (false, _) => None,
        };
        let commands = accepted
            .into_iter()
            .map(|(name, args)| Command {
                name,
                args,
                author: Person {
                    id: comment.author_id,
                    login: comment.author_login.clone(),
                    permission: level,
                },
                number: comment.number,
                comment_id: comment.id,
                comment_url: comment.url.clone(),
                pull_request: pull_request.clone(),
            })
            .collect();
        Ok(Admission::Commands(commands))
    }

    /// Records a command's verdict in the audit trail, the person by kind and numeric id with
    /// their login. A failure is logged: the verdict is in the host's log either way.
    async fn record(
        &self,
        job: JobId,
        delivery: &Delivery,
        comment: &Comment,
        command: &str,
        outcome: String,
    ) {
        let action = NewAction {
            actor: comment.person(),
            action: format!("/{command} on {}", comment.thread()),
            delivery: Some(delivery.id.as_str().to_owned()),
            job: Some(job),
            lock: None,
            outcome,
        };
        if let Err(error) = self.audit.record_action(action).await {
            tracing::warn!(%job, error = error.to_string(), "cannot record a comment command in the audit trail");
        }
    }

    /// Whether a pull request is trusted, so that its author may give the commands that let a
    /// trusted author (`/retest`): its head lives in the base repository, where pushing needs
    /// `write`, or a maintainer approved its current head with `/ok-to-test`.
    async fn trusted(
        &self,
        comment: &Comment,
        facts: &PullRequestFacts,
    ) -> Result<bool, PluginError> {
        if !facts.fork {
            return Ok(true);
        }
        let Some(approvals) = &self.approvals else {
            return Ok(false);
        };
        let heads = approvals
            .heads(&comment.repository, comment.number)
            .await
            .map_err(|e| PluginError::retryable(format!("the journal: {e}")))?;
        Ok(heads
            .iter()
            .any(|h| h.approved_by.is_some() && h.sha == facts.head_sha))
    }

    /// The commenter's level, from the cache or GitHub.
    async fn level(&self, caller: &Caller, comment: &Comment) -> Result<Option<Role>, PluginError> {
        self.permission_of(
            caller,
            &comment.repository,
            comment.author_id,
            &comment.author_login,
        )
        .await
        .map_err(PluginError::from)
    }

    /// The level of person `id` (`login`) on `repository`, from this 60 s cache or GitHub: the
    /// commands' gate and the deployer's checks where a deploy runs read it alike.
    pub(crate) async fn permission_of(
        &self,
        caller: &Caller,
        repository: &str,
        id: u64,
        login: &str,
    ) -> Result<Option<Role>, HostError> {
        if let Some(level) = self.permissions.get(repository, id) {
            return Ok(level);
        }
        let lookup = self.permissions.lookup(repository, id);
        let _asking = lookup.lock().await;
        // Another job may have asked while this one waited.
        if let Some(level) = self.permissions.get(repository, id) {
            return Ok(level);
        }
        let answer =
            comments::collaborator_permission(&*self.github, caller, repository, login).await?;
        let level = answer.as_ref().and_then(trust::level);
        self.permissions.put(repository, id, level);
        Ok(level)
    }

    async fn pull_request(
        &self,
        caller: &Caller,
        comment: &Comment,
    ) -> Result<PullRequestFacts, PluginError> {
        let pull =
            comments::pull_request(&*self.github, caller, &comment.repository, comment.number)
                .await?;
        pull_request_facts(&pull).ok_or_else(|| {
            PluginError::fatal(format!(
                "GitHub's answer about {} names no head sha or repositories",
                comment.thread()
            ))
        })
    }

    /// Replies in the thread, at most once per person, thread and command in 10 minutes; a
    /// reply that fails is logged, never retried (the command is refused either way).
    async fn answer(&self, caller: &Caller, comment: &Comment, command: &str, text: &str) {
        if !self
            .replies
            .take(comment.author_id, &comment.thread(), command)
        {
            tracing::info!(thread = %comment.thread(), person = %comment.person(), command, "reply withheld: one per person, thread and command in 10 minutes");
            return;
        }
        if let Err(error) = comments::reply(
            &*self.github,
            caller,
            &comment.repository,
            comment.number,
            text,
        )
        .await
        {
            tracing::warn!(thread = %comment.thread(), error = error.to_string(), "cannot reply to a comment command");
        }
    }
}

/// The refusal's text: the command, what it needs, what the person has.
fn refusal(spec: &CommandSpec, comment: &Comment, level: Option<Role>) -> String {
    let author = match (spec.or_author, spec.author_needs_trust) {
        (true, true) => " (or being its author, once the pull request is trusted)",
        (true, false) => " (or being its author)",
        (false, _) => "",
    };
    format!(
        "@{} `/{}` needs the `{}` permission on {}{author}; you have `{}`. Nothing was run.",
        comment.author_login,
        spec.name,
        spec.permission,
        comment.repository,
        level.map_or("none", Role::as_str),
    )
}

/// A pull request's head and base from GitHub's `pulls/get` answer.
fn pull_request_facts(pull: &Value) -> Option<PullRequestFacts> {
    let head_repository = pull["head"]["repo"]["full_name"].as_str();
    let base_repository = pull["base"]["repo"]["full_name"].as_str()?;
    Some(PullRequestFacts {
        head_sha: pull["head"]["sha"].as_str()?.to_owned(),
        // A head whose repository was deleted is a fork's, gone.
        head_repository: head_repository.unwrap_or_default().to_owned(),
        base_repository: base_repository.to_owned(),
        fork: head_repository.is_none_or(|head| !head.eq_ignore_ascii_case(base_repository)),
        head_ref: pull["head"]["ref"].as_str().unwrap_or_default().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_fork_is_a_head_in_another_repository() {
        let pull = |head: Value| json!({"head": {"sha": "abc", "repo": head}, "base": {"repo": {"full_name": "octo/app"}}});
        let facts = |head| pull_request_facts(&pull(head)).unwrap();
        assert!(!facts(json!({"full_name": "octo/app"})).fork);
        assert!(!facts(json!({"full_name": "Octo/App"})).fork);
        assert!(facts(json!({"full_name": "mona/app"})).fork);
        assert!(facts(Value::Null).fork);
        assert_eq!(facts(json!({"full_name": "mona/app"})).head_sha, "abc");
        assert_eq!(pull_request_facts(&json!({})), None);
    }
}
