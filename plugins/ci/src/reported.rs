//! What this runner last reported for a commit, read back from GitHub: which of its checks went
//! wrong (failed, errored, timed out, cancelled or not run), so `/retest` builds only those.
//! GitHub holds the one record of each check's outcome; the journal holds the build's.

use std::collections::HashSet;

use switchyard_plugin_api::{GitHubApp, prelude::*};

use crate::{report::Kind, target::Target};

/// Pages of 100 read at most: more than any bounded set of checks reports.
const MAX_PAGES: usize = 10;

/// The names of `target`'s checks whose latest report went wrong; `None` when GitHub could not
/// say (then `/retest` builds every check).
pub async fn went_wrong(
    host: &Host,
    target: &Target,
    kind: Kind,
    app: Option<&GitHubApp>,
) -> Option<HashSet<String>> {
    let repo = &target.repository.full_name;
    let sha = &target.sha;
    let mut seen = HashSet::new();
    let mut bad = HashSet::new();
    for page in 1..=MAX_PAGES {
        let (path, list) = match kind {
            Kind::Statuses => (
                format!("/repos/{repo}/commits/{sha}/statuses?per_page=100&page={page}"),
                None,
            ),
            Kind::Checks => (
                format!("/repos/{repo}/commits/{sha}/check-runs?per_page=100&page={page}"),
                Some("check_runs"),
            ),
        };
        let answer = match host.github("GET", &path, None).await {
            Ok(answer) if answer.status == 200 => answer,
            _ => {
                host.log("switchyard: cannot read the head's checks back from GitHub: /retest builds them all")
                    .await;
                return None;
            }
        };
        let entries = match list {
            Some(key) => answer.body[key].as_array().cloned().unwrap_or_default(),
            None => answer.body.as_array().cloned().unwrap_or_default(),
        };
        let count = entries.len();
        // Newest first: the first report of a name is its latest.
        for entry in entries {
            let (name, wrong) = match kind {
                Kind::Statuses => (
                    entry["context"].as_str(),
                    matches!(entry["state"].as_str(), Some("failure" | "error")),
                ),
                Kind::Checks => {
                    if !app.is_some_and(|app| app.is(&entry["app"])) {
                        continue;
                    }
                    let conclusion = entry["conclusion"].as_str();
                    let wrong = matches!(
                        conclusion,
                        Some("failure" | "timed_out" | "cancelled" | "action_required")
                    );
                    (entry["name"].as_str(), wrong)
                }
            };
            let Some(name) = name else { continue };
            if seen.insert(name.to_owned()) && wrong {
                bad.insert(name.to_owned());
            }
        }
        if count < 100 {
            return Some(bad);
        }
    }
    Some(bad)
}

/// A fork's head that waited for `/ok-to-test` said so under the entry's `context`; once
/// approved, its checks come from its `.switchyard.toml` under their own names, so the waiting
/// report is closed here rather than left pending for ever. Best effort: a failure is logged.
pub async fn close_waiting(
    host: &Host,
    target: &Target,
    kind: Kind,
    app: Option<&GitHubApp>,
    context: &str,
    build: i64,
) {
    let repo = &target.repository.full_name;
    let sha = &target.sha;
    let said = format!("Build #{build}: the checks of .switchyard.toml run instead");
    let closed = match kind {
        Kind::Statuses => {
            let path = format!("/repos/{repo}/commits/{sha}/statuses?per_page=100");
            let Ok(answer) = host.github("GET", &path, None).await else {
                return;
            };
            let latest = answer.body.as_array().and_then(|statuses| {
                statuses
                    .iter()
                    .find(|s| s["context"].as_str() == Some(context))
            });
            let waiting = latest.is_some_and(|s| {
                s["state"] == "pending"
                    && s["description"]
                        .as_str()
                        .is_some_and(|d| d.contains("/ok-to-test"))
            });
            if !waiting {
                return;
            }
            let status = CommitStatus::new(StatusState::Success, context, &said);
            host.create_status(repo, sha, &status).await.map(drop)
        }
        Kind::Checks => {
            let path = format!("/repos/{repo}/commits/{sha}/check-runs?per_page=100");
            let Ok(answer) = host.github("GET", &path, None).await else {
                return;
            };
            let runs = answer.body["check_runs"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let open = runs.iter().find(|run| {
                run["name"].as_str() == Some(context)
                    && run["status"] != "completed"
                    && app.is_some_and(|app| app.is(&run["app"]))
            });
            let Some(id) = open.and_then(|run| run["id"].as_u64()) else {
                return;
            };
            let body = serde_json::json!({
                "status": "completed",
                "conclusion": "neutral",
                "output": {"title": said, "summary": said},
            });
            let path = format!("/repos/{repo}/check-runs/{id}");
            host.github("PATCH", &path, Some(body)).await.map(drop)
        }
    };
    if let Err(error) = closed {
        host.log(format!(
            "switchyard: cannot close the waiting {context}: {error}"
        ))
        .await;
    }
}
