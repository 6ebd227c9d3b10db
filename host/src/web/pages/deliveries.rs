//! The deliveries: the list with its filters, one delivery's page (headers, payload, jobs,
//! the replay form), and its payload as a download.

use askama::Template;
use axum::{
    Extension,
    extract::{Path, Query, State},
    http::header,
    response::{IntoResponse, Response},
};

use super::super::message::{journal_failed, not_found};
use super::super::{Viewer, WebState, actions};
use super::badge::job_badge;
use super::{
    layout::{Head, PAGE_BYTES, PAYLOAD_READ, filters, head, page, reserve},
    params::{Params, next_page, param},
    trail::trail,
    visible::{masked, visible_delivery},
};
use crate::journal::{ActionFilter, ActionRecord, DeliveryRecord, JobRecord, RecentFilter};

#[derive(Template)]
#[template(path = "deliveries.html")]
struct DeliveriesPage {
    head: Head,
    rows: Vec<DeliveryRecord>,
    filter_event: String,
    filter_repository: String,
    filter_failed: bool,
    next_page: Option<String>,
}

/// `GET /dashboard/deliveries?event=&repository=&failed=1&before=SEQ`.
pub(in crate::web) async fn list(
    State(state): State<WebState>,
    Extension(viewer): Extension<Viewer>,
    Query(params): Params,
) -> Response {
    let reserved = match reserve(&state, PAGE_BYTES).await {
        Ok(reserved) => reserved,
        Err(busy) => return busy,
    };
    let event = param(&params, "event");
    let repository = param(&params, "repository");
    let failed = param(&params, "failed").is_some();
    let before = param(&params, "before").and_then(|b| b.parse().ok());
    let size = state.dashboard.page_size;
    let filter = RecentFilter {
        limit: size + 1,
        event: event.map(str::to_owned),
        failed,
        repository: repository.map(str::to_owned),
        before,
        visibility: viewer.visibility.clone(),
        id: None,
    };
    let mut rows = match state.journal.recent(filter).await {
        Ok(rows) => rows,
        Err(error) => return journal_failed(error),
    };
    let filters = [
        ("event", event),
        ("repository", repository),
        ("failed", failed.then_some("1")),
    ];
    let next_page = next_page(&mut rows, size, "/dashboard/deliveries", &filters, |row| {
        row.seq.to_string()
    });
    for row in &mut rows {
        row.sender = row.sender.as_deref().map(|s| masked(&state, s));
    }
    let head = match head(&state, &viewer, "Deliveries".to_owned()).await {
        Ok(head) => head,
        Err(response) => return response,
    };
    page(
        reserved,
        &DeliveriesPage {
            head,
            rows,
            filter_event: event.unwrap_or_default().to_owned(),
            filter_repository: repository.unwrap_or_default().to_owned(),
            filter_failed: failed,
            next_page,
        },
    )
}

#[derive(Template)]
#[template(path = "delivery.html")]
struct DeliveryPage {
    head: Head,
    id: String,
    /// The loaded plugins, which a replay may be limited to.
    plugins: Vec<String>,
    notice: Option<ActionRecord>,
    actions: Vec<ActionRecord>,
    event: String,
    repository: String,
    sender: String,
    received_at: String,
    jobs: Vec<JobRecord>,
    headers: Vec<(String, String)>,
    payload: String,
    /// The environment a replay deploys to, which the person types to confirm it.
    deploys_to: Option<String>,
    /// Bytes of the whole payload.
    payload_size: usize,
    /// Only the payload's start is shown.
    payload_cut: bool,
    /// The whole payload, as a download.
    payload_link: String,
}

/// `GET /dashboard/deliveries/{id}`: headers as received, the payload pretty-printed (its
/// first `payload_shown_kib` as received when it is longer, with the whole as a download),
/// jobs.
pub(in crate::web) async fn one(
    State(state): State<WebState>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    let shown = state.dashboard.limits.payload_shown;
    // Escaped, a shown byte is at most 6 in the page (`&quot;`), and pretty-printing a payload
    // short enough to be shown whole builds a tree of it.
    let page_bytes = PAGE_BYTES + 8 * shown;
    let mut reserved = match reserve(&state, PAYLOAD_READ + page_bytes).await {
        Ok(reserved) => reserved,
        Err(busy) => return busy,
    };
    let delivery = match visible_delivery(&state, &viewer, &id).await {
        Ok(Some(delivery)) => delivery,
        Ok(None) => return not_found().await,
        Err(error) => return journal_failed(error),
    };
    let jobs = match state.journal.jobs_of(&id).await {
        Ok(jobs) => jobs,
        Err(error) => return journal_failed(error),
    };
    let deploys_to = match actions::deploys_to(&state, &delivery).await {
        Ok(environment) => environment.map(|env| masked(&state, &env)),
        Err(error) => return journal_failed(error),
    };
    let payload_size = delivery.payload.len();
    let (payload, payload_cut) = shown_payload(&state, &delivery.payload, shown);
    let headers = delivery
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), masked(&state, value)))
        .collect();
    let event = match &delivery.facts.action {
        Some(action) => format!("{}.{action}", delivery.kind),
        None => delivery.kind.to_string(),
    };
    let repository = delivery.facts.repository.unwrap_or_default();
    let sender = masked(&state, &delivery.facts.sender.unwrap_or_default());
    let received_at = delivery.received_at;
    drop(delivery.payload);
    reserved.shrink(page_bytes);
    let filter = ActionFilter {
        delivery: Some(id.clone()),
        ..ActionFilter::default()
    };
    let (notice, actions) = match trail(&state, &viewer, &params, filter).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let head = match head(&state, &viewer, format!("Delivery {id}")).await {
        Ok(head) => head,
        Err(response) => return response,
    };
    let plugins = state
        .plugins
        .current()
        .iter()
        .map(|plugin| plugin.name().to_owned())
        .collect();
    page(
        reserved,
        &DeliveryPage {
            head,
            payload_link: format!(
                "/dashboard/deliveries/{}/payload",
                form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
            ),
            id,
            plugins,
            notice,
            actions,
            event,
            repository,
            sender,
            received_at,
            jobs,
            headers,
            payload_cut,
            payload_size,
            payload,
            deploys_to,
        },
    )
}

/// The payload as its page shows it, masked: pretty-printed when it is at most `shown` bytes,
/// else its first `shown` bytes as received; and whether that is only a part of it.
fn shown_payload(state: &WebState, payload: &[u8], shown: usize) -> (String, bool) {
    let text = if payload.len() <= shown {
        let text = match serde_json::from_slice::<serde_json::Value>(payload) {
            Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_default(),
            Err(_) => String::from_utf8_lossy(payload).into_owned(),
        };
        masked(state, &text)
    } else {
        // Masked with room for the longest secret past the cut, so none straddling it shows.
        let head = &payload[..payload.len().min(shown + state.logs.longest_secret())];
        masked(state, &String::from_utf8_lossy(head))
    };
    let part = cut(&text, shown);
    let whole = part.len() == text.len() && payload.len() <= shown;
    (part.to_owned(), !whole)
}

/// `text`'s first `at` bytes at most, ending on a character.
fn cut(text: &str, at: usize) -> &str {
    if text.len() <= at {
        return text;
    }
    let mut end = at;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `GET /dashboard/deliveries/{id}/payload`: the whole payload as received, secrets masked, as
/// a download; within the budget like a page, so a client that does not read it holds its
/// place there until the write timeout drops it.
pub(in crate::web) async fn payload(
    State(state): State<WebState>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
) -> Response {
    let mut reserved = match reserve(&state, PAYLOAD_READ).await {
        Ok(reserved) => reserved,
        Err(busy) => return busy,
    };
    let delivery = match visible_delivery(&state, &viewer, &id).await {
        Ok(Some(delivery)) => delivery,
        Ok(None) => return not_found().await,
        Err(error) => return journal_failed(error),
    };
    let masked = state.logs.mask(&delivery.payload);
    drop(delivery);
    reserved.shrink(masked.len());
    let name: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(64)
        .collect();
    let disposition = format!("attachment; filename=\"delivery-{name}.json\"");
    (
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_LENGTH, masked.len().to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        reserved.body(masked.into()),
    )
        .into_response()
}
