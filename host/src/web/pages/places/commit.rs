//! A commit's page: every job the deliveries about it caused (builds of its pushes and pull
//! requests, its deploys), newest first, page by page.

use askama::Template;
use axum::{
    Extension,
    extract::{Path, Query, State},
    response::Response,
};

use super::super::super::message::not_found;
use super::super::super::{Viewer, WebState};
use super::super::{
    layout::{Head, PAGE_BYTES, filters, head, page, reserve},
    params::Params,
};
use super::{JobLine, commit_link, job_line, place_jobs, repository_link, sha_prefix, short};
use crate::journal::JobFilter;

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
    let link = commit_link(&repository, &sha);
    let filter = JobFilter {
        repository: Some(repository.clone()),
        sha_prefix: Some(sha.clone()),
        ..JobFilter::default()
    };
    let (rows, next_page) = match place_jobs(&state, &viewer, &params, filter, &link).await {
        Ok(page) => page,
        Err(response) => return response,
    };
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
