//! Comment commands: what a plugin declares it takes (`/retest`, `/deploy staging`), and the typed
//! command it is handed. The host parses comments, checks the commenter's permission and
//! acknowledges the command before any plugin hears of it (see docs/commands.md).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// The longest command name the host accepts, without its `/`.
pub const MAX_COMMAND_NAME: usize = 32;

/// A person's permission on a repository, as GitHub's repository roles order them:
/// `read < triage < write < maintain < admin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Read,
    Triage,
    Write,
    Maintain,
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Self::Read,
        Self::Triage,
        Self::Write,
        Self::Maintain,
        Self::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Triage => "triage",
            Self::Write => "write",
            Self::Maintain => "maintain",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "invalid permission {s:?}: expected \"read\", \"triage\", \"write\", \"maintain\" or \"admin\""
                )
            })
    }
}

/// Where a command may be given: in pull requests' threads, issues' threads, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Applies {
    PullRequests,
    Issues,
    Both,
}

impl Applies {
    /// Whether a command given in this thread (a pull request's or an issue's) applies.
    pub fn to(self, pull_request: bool) -> bool {
        match self {
            Self::Both => true,
            Self::PullRequests => pull_request,
            Self::Issues => !pull_request,
        }
    }
}

/// A command a plugin takes, as returned by [`crate::Plugin::commands`].
///
/// ```
/// use switchyard_plugin_api::{CommandSpec, Role};
///
/// let retest = CommandSpec::new("retest", "Builds the head again if its last build failed")
///     .needs(Role::Write)
///     .or_author();
/// assert_eq!(retest.usage, "/retest");
/// assert!(retest.check().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandSpec {
    /// The word after `/`: lowercase letters, digits, `-` and `_`, starting with a letter, at
    /// most [`MAX_COMMAND_NAME`] characters. `help` is the host's own.
    pub name: String,
    /// One line, shown by `/help`.
    pub summary: String,
    /// How it is written, shown by `/help` and answered to a command with bad arguments:
    /// `/deploy ENVIRONMENT [BRANCH]`.
    pub usage: String,
    /// The least repository permission a person needs to give it. A config entry may raise it
    /// (`commands = { retest = "maintain" }`), never lower it.
    pub permission: Role,
    /// Whether the pull request's (or issue's) author may give it whatever their permission.
    #[serde(default)]
    pub or_author: bool,
    /// With `or_author`: the author only once the pull request is trusted (it is not from a
    /// fork, or its current head was approved by `/ok-to-test`), as `/retest` asks. Evaluated
    /// by the host like the rest; absent from plugins built before it (read as `false`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub author_needs_trust: bool,
    /// Where it may be given.
    pub applies_to: Applies,
}

impl CommandSpec {
    /// A command taken in pull requests, by people with `write`, written as `/name`.
    pub fn new(name: &str, summary: &str) -> Self {
        Self {
            name: name.to_owned(),
            summary: summary.to_owned(),
            usage: format!("/{name}"),
            permission: Role::Write,
            or_author: false,
            author_needs_trust: false,
            applies_to: Applies::PullRequests,
        }
    }

    /// Sets how it is written, `/name` and its arguments.
    pub fn usage(mut self, usage: &str) -> Self {
        self.usage = usage.to_owned();
        self
    }

    /// Sets the least permission it needs (default `write`).
    pub fn needs(mut self, permission: Role) -> Self {
        self.permission = permission;
        self
    }

    /// Lets the pull request's author give it too, whatever their permission.
    pub fn or_author(mut self) -> Self {
        self.or_author = true;
        self
    }

    /// Lets the pull request's author give it too, once the pull request is trusted: it is not
    /// from a fork, or its current head was approved (see docs/commands.md). The host checks.
    pub fn or_trusted_author(mut self) -> Self {
        self.or_author = true;
        self.author_needs_trust = true;
        self
    }

    /// Sets where it may be given (default pull requests).
    pub fn on(mut self, applies_to: Applies) -> Self {
        self.applies_to = applies_to;
        self
    }

    /// Why this declaration cannot be taken, if it cannot: the host refuses to load a plugin
    /// whose declaration fails this.
    pub fn check(&self) -> Result<(), String> {
        if !is_command_name(&self.name) {
            return Err(format!(
                "command name {:?}: use lowercase letters, digits, `-` and `_`, starting with a letter, at most {MAX_COMMAND_NAME} characters",
                self.name
            ));
        }
        if self.name == "help" {
            return Err("command name \"help\" is the host's own".to_owned());
        }
        if self.summary.contains('\n') || self.usage.contains('\n') {
            return Err(format!(
                "command {:?}: summary and usage are one line each",
                self.name
            ));
        }
        Ok(())
    }
}

/// Whether `name` is a command name: lowercase letters, digits, `-` and `_`, starting with a
/// letter, at most [`MAX_COMMAND_NAME`] characters.
pub fn is_command_name(name: &str) -> bool {
    name.len() <= MAX_COMMAND_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Who gave a command: GitHub's numeric id (logins can be renamed and reused), their login,
/// and their permission on the repository when the host checked it (`None`: no permission).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub id: u64,
    pub login: String,
    pub permission: Option<Role>,
}

/// A pull request's facts, fetched once by the host (`issue_comment` carries none of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestFacts {
    pub head_sha: String,
    /// `owner/repo` the head branch lives in.
    pub head_repository: String,
    /// `owner/repo` the pull request is made to.
    pub base_repository: String,
    /// Whether the head lives in another repository than the base.
    pub fork: bool,
    /// The head's branch name; empty from hosts built before it was carried.
    #[serde(default)]
    pub head_ref: String,
}

/// A command the host accepted for this job: see [`crate::Event::command`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// Its name, without the `/`.
    pub name: String,
    /// Its arguments, quotes removed: `/deploy "staging eu"` has one.
    pub args: Vec<String>,
    pub author: Person,
    /// The issue's or pull request's number.
    pub number: u64,
    pub comment_id: u64,
    pub comment_url: String,
    /// `Some` when the comment is on a pull request.
    pub pull_request: Option<PullRequestFacts>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_as_github_grants_them() {
        for pair in Role::ALL.windows(2) {
            assert!(pair[0] < pair[1], "{} < {}", pair[0], pair[1]);
        }
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("owner".parse::<Role>().is_err());
    }

    #[test]
    fn declarations_are_checked() {
        // (name, summary, usage, fine)
        let cases = [
            ("retest", "one line", "/retest", true),
            ("ok-to-test", "one line", "/ok-to-test [SHA]", true),
            ("deploy_2", "one line", "/deploy_2", true),
            ("help", "one line", "/help", false),
            ("Retest", "one line", "/Retest", false),
            ("2fa", "one line", "/2fa", false),
            ("", "one line", "/", false),
            ("re test", "one line", "/re test", false),
            (&"a".repeat(33), "one line", "/a", false),
            ("retest", "two\nlines", "/retest", false),
            ("retest", "one line", "/retest\nNAME", false),
        ];
        for (name, summary, usage, fine) in cases {
            let spec = CommandSpec::new(name, summary).usage(usage);
            assert_eq!(spec.check().is_ok(), fine, "{spec:?}");
        }
    }

    #[test]
    fn applies_says_which_threads() {
        assert!(Applies::PullRequests.to(true) && !Applies::PullRequests.to(false));
        assert!(!Applies::Issues.to(true) && Applies::Issues.to(false));
        assert!(Applies::Both.to(true) && Applies::Both.to(false));
    }
}
