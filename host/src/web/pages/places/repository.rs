//! A repository's page: its recent pull requests and branches, each with the states of the
//! jobs of its newest commit, its deploys, and its jobs page by page.

use askama::Template;
use axum::{
    Extension,
    extract::{Path, Query, State},
    response::Response,
};

use super::super::super::message::{journal_failed, not_found};
use super::super::super::{Viewer, WebState};
use super::super::badge::{Badge, badge};
use super::super::{
    layout::{Head, PAGE_BYTES, filters, head, page, reserve},
    params::{Params, next_page, param},
    visible::masked,
};
use super::{JobLine, commit_link, job_line, pull_request_link, repository_link, short};
use crate::journal::{JobFilter, JobId, JobRow};

/// The newest jobs of a repository its pull requests and branches are found in.
const SCANNED: usize = 300;
/// Pull requests, branches and deploys shown, each.
const SHOWN: usize = 20;

/// A pull request or a branch with the jobs of its newest commit.
struct LineView {
    label: String,
    link: Option<String>,
    sha: String,
    commit_link: Option<String>,
    at: String,
    /// Each plugin's newest job on that commit: (plugin, its badge, job).
    jobs: Vec<(String, Badge, JobId)>,
}

#[derive(Template)]
#[template(path = "repository.html")]
struct RepositoryPage {
    head: Head,
    repository: String,
    pulls: Vec<LineView>,
    branches: Vec<LineView>,
    deploys: Vec<JobLine>,
    jobs: Vec<JobLine>,
    next_page: Option<String>,
}

/// Groups `rows` (newest first) by `key`, newest group first, each with the jobs of its newest
/// commit (or delivery, when the payload named no commit).
fn lines<K: PartialEq>(
    rows: &[JobRow],
    key: impl Fn(&JobRow) -> Option<K>,
    view: impl Fn(&JobRow) -> (String, Option<String>),
) -> Vec<LineView> {
    let mut seen: Vec<K> = Vec::new();
    let mut lines = Vec::new();
    for row in rows {
        let Some(k) = key(row) else { continue };
        if seen.contains(&k) {
            continue;
        }
        let newest = |other: &JobRow| match (&row.place.head_sha, &other.place.head_sha) {
            (Some(sha), Some(other)) => sha == other,
            _ => row.job.delivery == other.job.delivery,
        };
        let mut jobs: Vec<(String, Badge, JobId)> = Vec::new();
        for other in rows
            .iter()
            .filter(|o| key(o).as_ref() == Some(&k) && newest(o))
        {
            if !jobs.iter().any(|(plugin, ..)| *plugin == other.job.plugin) {
                jobs.push((
                    other.job.plugin.clone(),
                    badge(other.job.state, other.job.verdict),
                    other.job.id,
                ));
            }
        }
        let repository = row.repository.as_deref().unwrap_or_default();
        let sha = row.place.head_sha.as_deref().unwrap_or_default();
        let (label, link) = view(row);
        lines.push(LineView {
            label,
            link,
            sha: short(sha).to_owned(),
            commit_link: (!sha.is_empty()).then(|| commit_link(repository, sha)),
            at: row.created_at.clone(),
            jobs,
        });
        seen.push(k);
        if lines.len() == SHOWN {
            break;
        }
    }
    lines
}

/// `GET /dashboard/repositories/{owner}/{name}?before=JOB`.
pub(in crate::web) async fn show(
    State(state): State<WebState>,
    Extension(viewer): Extension<Viewer>,
    Path((owner, name)): Path<(String, String)>,
    Query(params): Params,
) -> Response {
    let reserved = match reserve(&state, PAGE_BYTES).await {
        Ok(reserved) => reserved,
        Err(busy) => return busy,
    };
    let repository = format!("{owner}/{name}");
    let of_repository = JobFilter {
        repository: Some(repository.clone()),
        visibility: viewer.visibility.clone(),
        ..JobFilter::default()
    };
    let recent = match state
        .journal
        .jobs(JobFilter {
            limit: SCANNED,
            ..of_repository.clone()
        })
        .await
    {
        Ok(rows) => rows,
        Err(error) => return journal_failed(error),
    };
    // Hidden or unknown alike: nothing to show.
    if recent.is_empty() {
        return not_found().await;
    }
    let pulls = lines(
        &recent,
        |row| row.place.pull_request,
        |row| {
            let number = row.place.pull_request.unwrap_or_default();
            let branch = row.place.git_ref.as_deref().unwrap_or_default();
            (
                masked(&state, &format!("#{number} {branch}")),
                Some(pull_request_link(&repository, number)),
            )
        },
    );
    let branches = lines(
        &recent,
        // Builds of a branch; its deploys have their own table.
        |row| match row.place.pull_request {
            None if !row.event.starts_with("deployment") => row.place.git_ref.clone(),
            _ => None,
        },
        |row| {
            let branch = row.place.git_ref.as_deref().unwrap_or_default();
            (masked(&state, branch), None)
        },
    );
    let deploys = match state
        .journal
        .jobs(JobFilter {
            limit: SHOWN,
            event: Some("deployment".to_owned()),
            ..of_repository.clone()
        })
        .await
    {
        Ok(rows) => rows.iter().map(|row| job_line(&state, row)).collect(),
        Err(error) => return journal_failed(error),
    };
    let size = state.dashboard.page_size;
    let before = param(&params, "before").and_then(|b| b.parse().ok());
    let mut rows = match state
        .journal
        .jobs(JobFilter {
            limit: size + 1,
            before: before.map(JobId),
            ..of_repository
        })
        .await
    {
        Ok(rows) => rows,
        Err(error) => return journal_failed(error),
    };
    let link = repository_link(&repository);
    let next_page = next_page(&mut rows, size, &link, &[], |row| row.job.id.to_string());
    let head = match head(&state, &viewer, format!("Repository {repository}")).await {
        Ok(head) => head,
        Err(response) => return response,
    };
    page(
        reserved,
        &RepositoryPage {
            head,
            repository,
            pulls,
            branches,
            deploys,
            jobs: rows.iter().map(|row| job_line(&state, row)).collect(),
            next_page,
        },
    )
}
