//! Search from the header: a commit by sha (or a prefix of it), a pull request by number
//! (`#12`, `12` or `owner/name#12`), a repository by `owner/name`, a delivery by id. One match
//! opens its page; several are listed; none answers as a page that does not exist, whether
//! nothing matched or what matched is hidden from the viewer.

use askama::Template;
use axum::{
    Extension,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};

use super::super::super::message::journal_failed;
use super::super::super::{Viewer, WebState};
use super::super::{
    layout::{Head, PAGE_BYTES, head, page, reserve},
    params::{Params, param},
};
use super::{commit_link, pull_request_link, repository_link, sha_prefix, short};
use crate::journal::{JobFilter, JournalError, RecentFilter};

/// Jobs read to find the commits or pull requests a query matches.
const SCANNED: usize = 200;
/// Matches listed at most.
const LISTED: usize = 50;

/// A page a query matched.
struct Hit {
    what: &'static str,
    label: String,
    link: String,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    head: Head,
    query: String,
    hits: Vec<Hit>,
}

/// What a query may name.
#[derive(Debug, PartialEq, Eq)]
struct Asked<'a> {
    repository: Option<&'a str>,
    pull_request: Option<i64>,
    sha: Option<String>,
    delivery: Option<&'a str>,
}

/// Reads a query: each thing it could name (a query of digits may be a pull request's number
/// and a sha prefix both).
fn parse(q: &str) -> Asked<'_> {
    let number = |text: &str| {
        (!text.is_empty() && text.len() <= 9 && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse::<i64>().ok())
            .flatten()
    };
    if let Some((repository, n)) = q.split_once('#') {
        let repository = repository.trim();
        return Asked {
            repository: (!repository.is_empty()).then_some(repository),
            pull_request: number(n.trim()),
            sha: None,
            delivery: None,
        };
    }
    let is_repository = q.split('/').count() == 2 && !q.contains(char::is_whitespace);
    Asked {
        repository: is_repository.then_some(q),
        pull_request: number(q).filter(|_| q.len() <= 6),
        sha: sha_prefix(q, 4),
        delivery: (!is_repository && q.len() <= 100).then_some(q),
    }
}

async fn hits(state: &WebState, viewer: &Viewer, q: &Asked<'_>) -> Result<Vec<Hit>, JournalError> {
    let mut hits: Vec<Hit> = Vec::new();
    let visible = JobFilter {
        limit: SCANNED,
        visibility: viewer.visibility.clone(),
        ..JobFilter::default()
    };
    let mut add = |hit: Hit| {
        if hits.len() < LISTED && !hits.iter().any(|h| h.link == hit.link) {
            hits.push(hit);
        }
    };
    if let Some(number) = q.pull_request {
        let filter = JobFilter {
            pull_request: Some(number),
            repository: q.repository.map(str::to_owned),
            ..visible.clone()
        };
        for row in state.journal.jobs(filter).await? {
            let repository = row.repository.unwrap_or_default();
            add(Hit {
                what: "pull request",
                label: format!("{repository}#{number}"),
                link: pull_request_link(&repository, number),
            });
        }
    } else if let Some(repository) = q.repository {
        let filter = JobFilter {
            limit: 1,
            repository: Some(repository.to_owned()),
            ..visible.clone()
        };
        if !state.journal.jobs(filter).await?.is_empty() {
            add(Hit {
                what: "repository",
                label: repository.to_owned(),
                link: repository_link(repository),
            });
        }
    }
    if let Some(sha) = &q.sha {
        let filter = JobFilter {
            sha_prefix: Some(sha.clone()),
            ..visible.clone()
        };
        for row in state.journal.jobs(filter).await? {
            let repository = row.repository.unwrap_or_default();
            let sha = row.place.head_sha.unwrap_or_default();
            add(Hit {
                what: "commit",
                label: format!("{repository}@{}", short(&sha)),
                link: commit_link(&repository, &sha),
            });
        }
    }
    if let Some(id) = q.delivery {
        let filter = RecentFilter {
            limit: 1,
            id: Some(id.to_owned()),
            visibility: viewer.visibility.clone(),
            ..RecentFilter::default()
        };
        for delivery in state.journal.recent(filter).await? {
            add(Hit {
                what: "delivery",
                label: format!(
                    "{} {} on {}",
                    delivery.id,
                    delivery.event,
                    delivery.repository.unwrap_or_default()
                ),
                link: format!(
                    "/dashboard/deliveries/{}",
                    form_urlencoded::byte_serialize(delivery.id.as_bytes()).collect::<String>()
                ),
            });
        }
    }
    Ok(hits)
}

/// `GET /dashboard/search?q=`.
pub(in crate::web) async fn search(
    State(state): State<WebState>,
    Extension(viewer): Extension<Viewer>,
    axum::extract::Query(params): Params,
) -> Response {
    let reserved = match reserve(&state, PAGE_BYTES).await {
        Ok(reserved) => reserved,
        Err(busy) => return busy,
    };
    let query = param(&params, "q").unwrap_or_default();
    let hits = if query.is_empty() {
        Vec::new()
    } else {
        match hits(&state, &viewer, &parse(query)).await {
            Ok(hits) => hits,
            Err(error) => return journal_failed(error),
        }
    };
    if let [hit] = hits.as_slice() {
        return Redirect::to(&hit.link).into_response();
    }
    let head = match head(&state, &viewer, "Search".to_owned()).await {
        Ok(head) => head,
        Err(response) => return response,
    };
    let nothing = !query.is_empty() && hits.is_empty();
    let mut response = page(
        reserved,
        &SearchPage {
            head,
            query: query.to_owned(),
            hits,
        },
    );
    if nothing {
        *response.status_mut() = StatusCode::NOT_FOUND;
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_name_what_they_could() {
        let cases = [
            (
                "octo/app#12",
                Asked {
                    repository: Some("octo/app"),
                    pull_request: Some(12),
                    sha: None,
                    delivery: None,
                },
            ),
            (
                "#12",
                Asked {
                    repository: None,
                    pull_request: Some(12),
                    sha: None,
                    delivery: None,
                },
            ),
            (
                "12",
                Asked {
                    repository: None,
                    pull_request: Some(12),
                    sha: None,
                    delivery: Some("12"),
                },
            ),
            (
                "1234",
                Asked {
                    repository: None,
                    pull_request: Some(1234),
                    sha: Some("1234".into()),
                    delivery: Some("1234"),
                },
            ),
            (
                "1234567",
                Asked {
                    repository: None,
                    pull_request: None,
                    sha: Some("1234567".into()),
                    delivery: Some("1234567"),
                },
            ),
            (
                "octo/app",
                Asked {
                    repository: Some("octo/app"),
                    pull_request: None,
                    sha: None,
                    delivery: None,
                },
            ),
            (
                "ABCDEF12",
                Asked {
                    repository: None,
                    pull_request: None,
                    sha: Some("abcdef12".into()),
                    delivery: Some("ABCDEF12"),
                },
            ),
            (
                "d-1-2",
                Asked {
                    repository: None,
                    pull_request: None,
                    sha: None,
                    delivery: Some("d-1-2"),
                },
            ),
        ];
        for (q, expected) in cases {
            assert_eq!(parse(q), expected, "{q}");
        }
    }
}
