//! A pull request's page: every job its deliveries caused, newest first, page by page.

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
    visible::masked,
};
use super::{JobLine, job_line, place_jobs, pull_request_link, repository_link};
use crate::journal::JobFilter;

#[derive(Template)]
#[template(path = "pull_request.html")]
struct PullRequestPage {
    head: Head,
    repository: String,
    repository_link: String,
    number: i64,
    branch: String,
    jobs: Vec<JobLine>,
    next_page: Option<String>,
}

/// `GET /dashboard/repositories/{owner}/{name}/pulls/{number}?before=JOB`.
pub(in crate::web) async fn show(
    State(state): State<WebState>,
    Extension(viewer): Extension<Viewer>,
    Path((owner, name, number)): Path<(String, String, String)>,
    Query(params): Params,
) -> Response {
    let Ok(number) = number.parse::<i64>() else {
        return not_found().await;
    };
    let reserved = match reserve(&state, PAGE_BYTES).await {
        Ok(reserved) => reserved,
        Err(busy) => return busy,
    };
    let repository = format!("{owner}/{name}");
    let link = pull_request_link(&repository, number);
    let filter = JobFilter {
        repository: Some(repository.clone()),
        pull_request: Some(number),
        ..JobFilter::default()
    };
    let (rows, next_page) = match place_jobs(&state, &viewer, &params, filter, &link).await {
        Ok(page) => page,
        Err(response) => return response,
    };
    let branch = rows
        .first()
        .and_then(|row| row.place.git_ref.as_deref())
        .map(|branch| masked(&state, branch))
        .unwrap_or_default();
    let title = format!("Pull request #{number} of {repository}");
    let head = match head(&state, &viewer, title).await {
        Ok(head) => head,
        Err(response) => return response,
    };
    page(
        reserved,
        &PullRequestPage {
            head,
            repository_link: repository_link(&repository),
            repository,
            number,
            branch,
            jobs: rows.iter().map(|row| job_line(&state, row)).collect(),
            next_page,
        },
    )
}
