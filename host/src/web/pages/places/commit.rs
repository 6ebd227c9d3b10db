//! A commit's page: every job the deliveries about it caused (builds of its pushes and pull
//! requests, its deploys), newest first, page by page.

use askama::Template;
use axum::{
    Extension,
    extract::{Path, Query, State},
    response::Response,
};

use super::super::super::message::{journal_failed, not_found};
use super::super::super::{Viewer, WebState};
use super::super::{
    layout::{Head, PAGE_BYTES, filters, head, page, reserve},
    params::{Params, next_page, param},
};
use super::{JobLine, commit_link, job_line, repository_link, sha_prefix, short};
use crate::journal::{JobFilter, JobId};

#[derive(Template)]
#[template(path = "commit.html")]
struct CommitPage {
    head: Head,
    repository: String,
    repository_link: String,
    sha: String,
    jobs: Vec<JobLine>,
    next_page: Option<String>,
}

/// `GET /dashboard/repositories/{owner}/{name}/commits/{sha}?before=JOB`: `sha` whole, or a
/// prefix of at least 7 digits.
pub(in crate::web) async fn show(
    State(state): State<WebState>,
    Extension(viewer): Extension<Viewer>,
    Path((owner, name, sha)): Path<(String, String, String)>,
    Query(params): Params,
) -> Response {
    let Some(sha) = sha_prefix(&sha, 7) else {
        return not_found().await;
    };
    let reserved = match reserve(&state, PAGE_BYTES).await {
        Ok(reserved) => reserved,
        Err(busy) => return busy,
    };
    let repository = format!("{owner}/{name}");
    let size = state.dashboard.page_size;
    let before = param(&params, "before").and_then(|b| b.parse().ok());
    let filter = JobFilter {
        limit: size + 1,
        visibility: viewer.visibility,
        repository: Some(repository.clone()),
        sha_prefix: Some(sha.clone()),
        before: before.map(JobId),
        ..JobFilter::default()
    };
    let mut rows = match state.journal.jobs(filter).await {
        Ok(rows) => rows,
        Err(error) => return journal_failed(error),
    };
    if rows.is_empty() && before.is_none() {
        return not_found().await;
    }
    let link = commit_link(&repository, &sha);
    let next_page = next_page(&mut rows, size, &link, &[], |row| row.job.id.to_string());
    let title = format!("Commit {} of {repository}", short(&sha));
    let head = match head(&state, &viewer, title).await {
        Ok(head) => head,
        Err(response) => return response,
    };
    page(
        reserved,
        &CommitPage {
            head,
            repository_link: repository_link(&repository),
            repository,
            sha,
            jobs: rows.iter().map(|row| job_line(&state, row)).collect(),
            next_page,
        },
    )
}
