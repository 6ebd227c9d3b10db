//! The pages of a place in the code: a repository (its pull requests, branches, deploys and
//! jobs), a pull request and a commit (every job they caused, newest first, builds and deploys
//! together), and the search that leads to them. Every read carries the viewer's visibility, so
//! a repository they may not see answers as one that does not exist.

pub(in crate::web) mod commit;
pub(in crate::web) mod pull_request;
pub(in crate::web) mod repository;
pub(in crate::web) mod search;

use std::collections::HashMap;

use axum::response::Response;

use super::super::message::{journal_failed, not_found};
use super::super::{Viewer, WebState};
use super::badge::{Badge, badge};
use super::jobs::short;
use super::layout::job_duration;
pub(super) use super::links::{commit_link, pull_request_link, repository_link};
use super::params::{next_page, param};
use super::visible::masked;
use crate::journal::{JobFilter, JobId, JobRow};

/// Lowercase hex digits, at least `min` of them and at most a sha's: what a sha prefix is.
fn sha_prefix(text: &str, min: usize) -> Option<String> {
    let text = text.trim().to_ascii_lowercase();
    let hex = text.bytes().all(|b| b.is_ascii_hexdigit());
    (hex && (min..=64).contains(&text.len())).then_some(text)
}

/// One page of the jobs of the place `filter` names (`?before=JOB` pages on), newest first, as
/// `viewer` may see them, and the link to the next page (`link` with its `before`). A place
/// with no job the viewer may see answers as a page that does not exist.
async fn place_jobs(
    state: &WebState,
    viewer: &Viewer,
    params: &HashMap<String, String>,
    filter: JobFilter,
    link: &str,
) -> Result<(Vec<JobRow>, Option<String>), Response> {
    let size = state.dashboard.page_size;
    let before = param(params, "before").and_then(|b| b.parse().ok());
    let filter = JobFilter {
        limit: size + 1,
        visibility: viewer.visibility.clone(),
        before: before.map(JobId),
        ..filter
    };
    let mut rows = state.journal.jobs(filter).await.map_err(journal_failed)?;
    if rows.is_empty() && before.is_none() {
        return Err(not_found().await);
    }
    let next = next_page(&mut rows, size, link, &[], |row| row.job.id.to_string());
    Ok((rows, next))
}

/// A job as the repository, pull request and commit pages list it.
pub(super) struct JobLine {
    id: JobId,
    plugin: String,
    event: String,
    /// Its verdict, or its state while it has none.
    badge: Badge,
    /// The short sha, and its commit page.
    sha: String,
    commit_link: Option<String>,
    pull_request: Option<i64>,
    pull_request_link: Option<String>,
    git_ref: String,
    created_at: String,
    duration: String,
    error: String,
}

fn job_line(state: &WebState, row: &JobRow) -> JobLine {
    let repository = row.repository.as_deref().unwrap_or_default();
    let sha = row.place.head_sha.as_deref().unwrap_or_default();
    JobLine {
        id: row.job.id,
        plugin: row.job.plugin.clone(),
        event: match &row.action {
            Some(action) => format!("{}.{action}", row.event),
            None => row.event.clone(),
        },
        badge: badge(row.job.state, row.job.verdict),
        sha: short(sha).to_owned(),
        commit_link: (!sha.is_empty()).then(|| commit_link(repository, sha)),
        pull_request: row.place.pull_request,
        pull_request_link: row
            .place
            .pull_request
            .map(|number| pull_request_link(repository, number)),
        git_ref: masked(state, row.place.git_ref.as_deref().unwrap_or_default()),
        created_at: row.created_at.clone(),
        duration: job_duration(row.started_at.as_deref(), row.finished_at.as_deref()),
        error: masked(state, row.job.error.as_deref().unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha_prefixes_are_hex_digits() {
        let cases = [
            ("ABC1234", Some("abc1234")),
            (" abc1234 ", Some("abc1234")),
            ("abc", None),
            ("abc123g", None),
            ("abc%", None),
        ];
        for (text, prefix) in cases {
            assert_eq!(sha_prefix(text, 4).as_deref(), prefix, "{text}");
        }
    }
}
