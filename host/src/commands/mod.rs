//! Comment commands (`/retest`, `/deploy staging`), the host's service for every plugin: which
//! commands the loaded plugins take (`declared`), the comment a delivery carries (`comment`),
//! reading commands out of it (`parse`), which entries take them (`takes`), and each job's gate
//! before its plugin is called (`gate`): the commenter's permission read from GitHub's answer
//! (`trust`), within this host's cache and reply budget (`budget`). A comment reaches a plugin
//! only through here: the host, never the plugin, decides whether its author may give it.
//!
//! It sits on a comment's path between ingress and the workers, and imports neither (nor the
//! plugins, which call it).

mod budget;
mod comment;
mod declared;
mod gate;
pub(crate) mod parse;
pub(crate) mod trust;

use switchyard_plugin_api::{CommandSpec, GitHubResponse, HostError};

use crate::github::{Caller, GitHub, comments};

pub(crate) use budget::PermissionCache;
pub(crate) use comment::Comment;
pub(crate) use declared::effective;
pub(crate) use gate::Admission;
pub use gate::CommandService;

/// The host's own command: the commands taken here, with their usage and permission.
pub(crate) const HELP: &str = "help";

/// Whether a plugin entry taking `specs` takes one of the commands in `comment`, or `/help`
/// (which every entry taking a command in the thread answers, once between them).
pub(crate) fn takes(specs: &[CommandSpec], comment: &Comment) -> bool {
    let any_here = specs.iter().any(|s| s.applies_to.to(comment.pull_request));
    let applies = |name: &str| {
        (name == HELP && any_here)
            || specs
                .iter()
                .any(|s| s.name == name && s.applies_to.to(comment.pull_request))
    };
    !comment.commands(applies).commands.is_empty()
}

/// `/help`'s answer: each command taken in the thread, once, with its usage, the permission it
/// needs and its summary, in name order.
pub(crate) fn help_text(login: &str, everyone: &[CommandSpec], pull_request: bool) -> String {
    let mut rows: Vec<String> = everyone
        .iter()
        .filter(|s| s.applies_to.to(pull_request))
        .map(|s| {
            let author = if s.or_author { " or the author" } else { "" };
            format!(
                "| `{}` | `{}`{author} | {} |",
                s.usage.replace('|', "\\|"),
                s.permission,
                s.summary.replace('|', "\\|")
            )
        })
        .collect();
    rows.sort();
    rows.dedup();
    format!(
        "@{login} the commands taken here:\n\n| Command | Needs | What it does |\n| --- | --- | --- |\n{}",
        rows.join("\n")
    )
}

/// GitHub's reaction names.
const REACTIONS: [&str; 8] = [
    "+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes",
];

/// `Host::reply`: a plugin's reply in the thread of its job's comment, under its own token.
pub(crate) async fn reply_for_plugin(
    github: &dyn GitHub,
    caller: &Caller,
    body: &str,
) -> Result<GitHubResponse, HostError> {
    let comment = job_comment(caller)?;
    let call = comments::reply_call(&comment.repository, comment.number, body);
    github.send(call, caller).await
}

/// `Host::react`: a plugin's reaction to its job's comment, under its own token.
pub(crate) async fn react_for_plugin(
    github: &dyn GitHub,
    caller: &Caller,
    content: &str,
) -> Result<GitHubResponse, HostError> {
    if !REACTIONS.contains(&content) {
        return Err(HostError::InvalidRequest(format!(
            "not a GitHub reaction: {content:?} (use one of {})",
            REACTIONS.join(", ")
        )));
    }
    let comment = job_comment(caller)?;
    let call = comments::react_call(&comment.repository, comment.id, content);
    github.send(call, caller).await
}

/// The comment of the job `caller` calls for.
fn job_comment(caller: &Caller) -> Result<Comment, HostError> {
    Comment::from_payload("issue_comment", Some("created"), caller.payload()).ok_or_else(|| {
        HostError::InvalidRequest(
            "this job runs no comment command: there is no thread to answer in".to_owned(),
        )
    })
}

#[cfg(test)]
mod tests {
    use switchyard_plugin_api::{Applies, Role};

    use super::*;

    #[test]
    fn help_lists_each_command_of_the_thread_once() {
        let everyone = [
            CommandSpec::new("retest", "Builds again").or_author(),
            CommandSpec::new("retest", "Builds again").or_author(),
            CommandSpec::new("deploy", "Deploys | fast")
                .usage("/deploy ENV")
                .needs(Role::Maintain),
            CommandSpec::new("triage", "Labels").on(Applies::Issues),
        ];
        let text = help_text("mona", &everyone, true);
        assert_eq!(
            text,
            "@mona the commands taken here:\n\n| Command | Needs | What it does |\n| --- | --- | --- |\n\
             | `/deploy ENV` | `maintain` | Deploys \\| fast |\n\
             | `/retest` | `write` or the author | Builds again |"
        );
        assert!(help_text("mona", &everyone, false).contains("/triage"));
    }
}
