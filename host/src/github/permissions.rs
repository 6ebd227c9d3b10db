//! Naming what a refused call lacked. GitHub answers a call outside an installation token's
//! permissions or repositories with 403 "Resource not accessible by integration", and names the
//! permissions the endpoint accepts in `X-Accepted-GitHub-Permissions` (`statuses=write`;
//! alternatives separated by `;`, all of one alternative needed, separated by `,`). For an
//! answer without it, a table of the endpoints Switchyard's plugins call stands in.

use reqwest::header::HeaderMap;
use switchyard_plugin_api::{Access, Permissions};

use super::Caller;

/// GitHub's message for a call its token may not make.
pub const NOT_ACCESSIBLE: &str = "Resource not accessible by integration";

/// The permissions an endpoint accepts: any one of the alternatives, each needing all of its
/// permissions.
pub fn accepted(headers: &HeaderMap, method: &str, path: &str) -> Vec<Permissions> {
    let header = headers
        .get("x-accepted-github-permissions")
        .and_then(|v| v.to_str().ok());
    match header {
        Some(header) => parse_accepted(header),
        None => known_endpoint(method, path).into_iter().collect(),
    }
}

fn parse_accepted(header: &str) -> Vec<Permissions> {
    header
        .split(';')
        .filter_map(|alternative| {
            let mut permissions = Permissions::none();
            for item in alternative.split(',') {
                let (name, access) = item.trim().split_once('=')?;
                let access: Access = access.trim().parse().ok()?;
                let name = name.trim();
                let valid = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !valid {
                    return None;
                }
                permissions = permissions.with(name, access);
            }
            (!permissions.is_empty()).then_some(permissions)
        })
        .collect()
}

/// What GitHub's REST docs list under "Permissions required for fine-grained tokens" for the
/// endpoints the shipped plugins call.
fn known_endpoint(method: &str, path: &str) -> Option<Permissions> {
    let segments: Vec<&str> = path
        .split('?')
        .next()
        .unwrap_or_default()
        .trim_start_matches('/')
        .split('/')
        .collect();
    let write = !method.eq_ignore_ascii_case("GET") && !method.eq_ignore_ascii_case("HEAD");
    let access = if write { Access::Write } else { Access::Read };
    let name = match segments.as_slice() {
        ["repos", _, _, "statuses", ..] | ["repos", _, _, "commits", _, "status" | "statuses"] => {
            "statuses"
        }
        ["repos", _, _, "deployments", ..] => "deployments",
        ["repos", _, _, "check-runs" | "check-suites", ..] => "checks",
        [
            "repos",
            _,
            _,
            "contents" | "git" | "commits" | "branches",
            ..,
        ] => "contents",
        ["repos", _, _, "issues", ..] => "issues",
        ["repos", _, _, "pulls", ..] => "pull_requests",
        _ => return None,
    };
    Some(Permissions::none().with(name, access))
}

/// The message for a 403 "Resource not accessible by integration": which permission the
/// plugin's token lacked, or that the call was outside the repository its token covers.
pub fn refusal(caller: &Caller, method: &str, path: &str, headers: &HeaderMap) -> String {
    let accepted = accepted(headers, method, path);
    let plugin = &caller.plugin;
    let wanted = || {
        accepted
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" or ")
    };
    match &caller.permissions {
        Some(held) => {
            let lacking: Vec<String> = match accepted.iter().find(|a| a.within(held)) {
                Some(_) => Vec::new(),
                None => accepted.iter().map(|a| a.beyond(held).join(", ")).collect(),
            };
            if accepted.is_empty() {
                format!(
                    "{NOT_ACCESSIBLE}: the plugin {plugin:?} may lack a permission this call needs (its token has: {held}{}); declare it in the plugin, or allow it in the entry's `permissions` in config.toml",
                    covering(caller)
                )
            } else if lacking.is_empty() {
                format!(
                    "{NOT_ACCESSIBLE}: {method} {path} is outside what the plugin {plugin:?}'s token covers{} (it has: {held})",
                    covering(caller)
                )
            } else {
                format!(
                    "{NOT_ACCESSIBLE}: the plugin {plugin:?} lacks the permission {} (its token has: {held}); declare it in the plugin, or allow it in the entry's `permissions` in config.toml",
                    lacking.join(" or ")
                )
            }
        }
        None if accepted.is_empty() => format!(
            "{NOT_ACCESSIBLE}: the plugin {plugin:?} declares no permissions, so its token has the App installation's: the installation may lack the permission this call needs{}",
            covering(caller)
        ),
        None => format!(
            "{NOT_ACCESSIBLE}: the plugin {plugin:?} declares no permissions, so its token has the App installation's, which lack {} (or the call is outside{}); grant it in the App's settings and accept it on the installation",
            wanted(),
            covering(caller)
        ),
    }
}

fn covering(caller: &Caller) -> String {
    match &caller.repository {
        Some(repo) => format!(" the repository {repo}, the only one the token covers"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(permissions: Option<Permissions>) -> Caller {
        Caller::new(
            "notify".into(),
            permissions,
            Some("octo/app".into()),
            Default::default(),
        )
    }

    fn headers(accepted: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-accepted-github-permissions", accepted.parse().unwrap());
        headers
    }

    #[test]
    fn the_header_is_read_with_its_alternatives() {
        let read = parse_accepted("pull_requests=write; issues=write, contents=read");
        let shown: Vec<String> = read.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["pull_requests: write", "contents: read, issues: write"]
        );
        assert!(parse_accepted("nonsense").is_empty());
    }

    #[test]
    fn the_message_names_the_permission_and_the_plugin() {
        let path = "/repos/octo/app/statuses/abc";
        let none = refusal(
            &caller(Some(Permissions::none())),
            "POST",
            path,
            &headers("statuses=write"),
        );
        assert!(
            none.contains(
                "the plugin \"notify\" lacks the permission statuses: write (its token has: none)"
            ),
            "{none}"
        );
        // Without the header, the table knows the endpoint.
        let deployer = Permissions::none().write("deployments").read("contents");
        let check_run = refusal(
            &caller(Some(deployer.clone())),
            "POST",
            "/repos/octo/app/check-runs",
            &HeaderMap::new(),
        );
        assert!(
            check_run.contains("lacks the permission checks: write (its token has: contents: read, deployments: write)"),
            "{check_run}"
        );
        let elsewhere = refusal(
            &caller(Some(deployer)),
            "POST",
            "/repos/octo/other/deployments",
            &headers("deployments=write"),
        );
        assert!(
            elsewhere.contains(
                "is outside what the plugin \"notify\"'s token covers the repository octo/app"
            ),
            "{elsewhere}"
        );
        let undeclared = refusal(&caller(None), "POST", path, &headers("statuses=write"));
        assert!(
            undeclared.contains("declares no permissions"),
            "{undeclared}"
        );
        assert!(undeclared.contains("lack statuses: write"), "{undeclared}");
    }
}
