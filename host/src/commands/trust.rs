//! Whether a person may give a command: their permission on the repository, read from GitHub's
//! answer to `GET /repos/{owner}/{repo}/collaborators/{username}/permission`, against what the
//! command needs. Pure: the call, its retries and its cache are the caller's.
//!
//! That answer's `permission` field holds only `admin`, `write`, `read` or `none`: a maintainer
//! shows as `write` and a triager as `read` there. `role_name` names the role (`maintain`,
//! `triage`, or an organization's custom role), and `user.permissions` holds a flag per base
//! level. A custom role is built on a base role and GitHub sets the flags of that base, so the
//! level read is the highest of the three: never more than GitHub grants, and a maintainer is
//! `maintain`, not `write`.

use serde_json::Value;
use switchyard_plugin_api::{CommandSpec, Role};

/// The person's level in GitHub's answer, `None` for no permission (an outsider, or GitHub's
/// 404 for a user it does not know).
pub(crate) fn level(answer: &Value) -> Option<Role> {
    let by_name = |name: &str| match name {
        "admin" => Some(Role::Admin),
        "maintain" => Some(Role::Maintain),
        "write" | "push" => Some(Role::Write),
        "triage" => Some(Role::Triage),
        "read" | "pull" => Some(Role::Read),
        _ => None,
    };
    let flags = &answer["user"]["permissions"];
    let by_flag = [
        ("admin", Role::Admin),
        ("maintain", Role::Maintain),
        ("push", Role::Write),
        ("triage", Role::Triage),
        ("pull", Role::Read),
    ]
    .into_iter()
    .find(|(flag, _)| flags[flag].as_bool() == Some(true))
    .map(|(_, role)| role);
    [
        answer["permission"].as_str().and_then(by_name),
        answer["role_name"].as_str().and_then(by_name),
        by_flag,
    ]
    .into_iter()
    .flatten()
    .max()
}

/// Why a command is let through, or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The person holds the permission it needs.
    Permitted,
    /// The command lets the pull request's author give it, and they did.
    Author,
    /// Too little permission: refused in the thread, and no plugin hears of it.
    Refused,
}

impl Verdict {
    pub(crate) fn accepted(self) -> bool {
        self != Self::Refused
    }

    /// As the logs and the journal say it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Permitted => "permitted",
            Self::Author => "permitted as the author",
            Self::Refused => "refused",
        }
    }
}

/// Whether someone with `permission`, the thread's author or not, may give `command`.
pub(crate) fn verdict(command: &CommandSpec, permission: Option<Role>, author: bool) -> Verdict {
    if permission.is_some_and(|have| have >= command.permission) {
        Verdict::Permitted
    } else if command.or_author && author {
        Verdict::Author
    } else {
        Verdict::Refused
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// GitHub's answer for each built-in role, as documented and as GitHub sends it.
    fn answer(permission: &str, role_name: &str, flags: [bool; 5]) -> Value {
        let [pull, triage, push, maintain, admin] = flags;
        json!({
            "permission": permission,
            "role_name": role_name,
            "user": {"login": "mona", "id": 1, "permissions": {
                "pull": pull, "triage": triage, "push": push, "maintain": maintain, "admin": admin
            }}
        })
    }

    #[test]
    fn every_level_is_read_from_role_and_flags_not_only_permission() {
        let cases = [
            (answer("admin", "admin", [true; 5]), Some(Role::Admin)),
            (
                answer("write", "maintain", [true, true, true, true, false]),
                Some(Role::Maintain),
            ),
            (
                answer("write", "write", [true, true, true, false, false]),
                Some(Role::Write),
            ),
            (
                answer("read", "triage", [true, true, false, false, false]),
                Some(Role::Triage),
            ),
            (
                answer("read", "read", [true, false, false, false, false]),
                Some(Role::Read),
            ),
            (answer("none", "", [false; 5]), None),
            // A custom role built on `write`: its name says nothing, its flags say write.
            (
                answer("write", "release-manager", [true, true, true, false, false]),
                Some(Role::Write),
            ),
            // Built on `maintain`, as GitHub reports it.
            (
                answer("write", "deployer", [true, true, true, true, false]),
                Some(Role::Maintain),
            ),
            // An answer with flags alone, or none at all.
            (
                json!({"user": {"permissions": {"pull": true, "push": false}}}),
                Some(Role::Read),
            ),
            (json!({}), None),
        ];
        for (answer, expected) in cases {
            assert_eq!(level(&answer), expected, "{answer}");
        }
    }

    #[test]
    fn a_maintainer_passes_maintain_and_a_writer_does_not() {
        let lock = CommandSpec::new("lock", "Holds an environment").needs(Role::Maintain);
        let maintainer = level(&answer(
            "write",
            "maintain",
            [true, true, true, true, false],
        ));
        let writer = level(&answer("write", "write", [true, true, true, false, false]));
        assert_eq!(verdict(&lock, maintainer, false), Verdict::Permitted);
        assert_eq!(verdict(&lock, writer, false), Verdict::Refused);
        // Every level against every requirement: at or above passes, below is refused.
        for need in Role::ALL {
            let spec = CommandSpec::new("x", "x").needs(need);
            for have in Role::ALL {
                assert_eq!(verdict(&spec, Some(have), false).accepted(), have >= need);
            }
            assert_eq!(verdict(&spec, None, false), Verdict::Refused);
        }
    }

    #[test]
    fn the_author_passes_only_where_the_command_says_so() {
        let retest = CommandSpec::new("retest", "again").or_author();
        let test = CommandSpec::new("test", "again");
        assert_eq!(verdict(&retest, None, true), Verdict::Author);
        assert_eq!(verdict(&retest, Some(Role::Read), false), Verdict::Refused);
        assert_eq!(verdict(&test, Some(Role::Read), true), Verdict::Refused);
        // A writer who is also the author is let through on their permission.
        assert_eq!(
            verdict(&retest, Some(Role::Write), true),
            Verdict::Permitted
        );
    }
}
