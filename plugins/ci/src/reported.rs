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
