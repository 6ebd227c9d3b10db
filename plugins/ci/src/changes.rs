//! The files a pull request changes, for the checks' `paths`: GitHub's `pulls/list-files`,
//! paged 100 at a time up to the 3,000 files GitHub lists at most.

use switchyard_plugin_api::prelude::*;

use crate::target::Target;

const PER_PAGE: usize = 100;
/// GitHub lists at most 3,000 files of a pull request.
const MAX_PAGES: usize = 30;

/// The changed files of `target`'s pull request; `None` for a commit without one, or when
/// GitHub could not say (then every check runs: skipping one wrongly could let a pull request
/// merge unchecked).
pub async fn changed_files(host: &Host, target: &Target) -> Option<Vec<String>> {
    let number = target.pull_request?;
    let repo = &target.repository.full_name;
    let mut files = Vec::new();
    for page in 1..=MAX_PAGES {
        let path = format!("/repos/{repo}/pulls/{number}/files?per_page={PER_PAGE}&page={page}");
        let answer = match host.github("GET", &path, None).await {
            Ok(answer) if answer.status == 200 => answer,
            Ok(answer) => {
                host.log(format!(
                    "switchyard: GitHub answered {} for the pull request's files: every check runs",
                    answer.status
                ))
                .await;
                return None;
            }
            Err(error) => {
                host.log(format!(
                    "switchyard: cannot list the pull request's files ({error}): every check runs"
                ))
                .await;
                return None;
            }
        };
        let entries = answer.body.as_array().cloned().unwrap_or_default();
        let count = entries.len();
        for entry in entries {
            for key in ["filename", "previous_filename"] {
                if let Some(name) = entry[key].as_str() {
                    files.push(name.to_owned());
                }
            }
        }
        if count < PER_PAGE {
            return Some(files);
        }
    }
    // Past GitHub's listing: some changed files are unknown, so no check may be skipped.
    host.log("switchyard: the pull request changes more files than GitHub lists: every check runs")
        .await;
    None
}
