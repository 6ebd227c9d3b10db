//! The dashboard's pages and the log follow stream.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use askama::Template;
use axum::{
    Extension, Form,
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{
        Html, IntoResponse, Redirect, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use serde::Deserialize;

use super::{Viewer, WebState, actions, auth, budget::Reserved, client, log_view};
use crate::ingress::MAX_BODY_BYTES;
use crate::job_log::NoPlace;
use crate::journal::{
    ActionFilter, ActionRecord, DeliveryRecord, JobCounts, JobFilter, JobId, JobRecord, JobRow,
    JobState, JournalError, PostFilter, RecentFilter, Visibility, unix_millis,
};

type Params = Query<HashMap<String, String>>;

/// The header every page has.
pub struct Head {
    pub title: String,
    pub user: Option<String>,
    /// The session's CSRF token, for the forms of the actions.
    pub form_token: String,
    pub counts: JobCounts,
}

pub(super) fn html(template: &impl Template) -> Response {
    match template.render() {
        Ok(page) => Html(page).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot render a dashboard page");
            internal_error()
        }
    }
}

/// A page rendered within its reservation, and sent with its size kept reserved until the
/// client has taken it (see `budget`).
fn page(reserved: Reserved, template: &impl Template) -> Response {
    match template.render() {
        Ok(page) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
                (header::CONTENT_LENGTH, page.len().to_string()),
            ],
            reserved.body(page.into()),
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot render a dashboard page");
            internal_error()
        }
    }
}

/// What a page may hold besides a log window or a payload: its rows, trail and header.
const PAGE_BYTES: usize = 2 << 20;

/// A payload read back from the journal: compressed and not, each at most GitHub's largest.
const PAYLOAD_READ: usize = 2 * MAX_BODY_BYTES;

/// Reserves `bytes` in the dashboard's budget.
async fn reserve(state: &WebState, bytes: usize) -> Result<Reserved, Response> {
    state.dashboard.budget.reserve(bytes).await
}

pub(super) fn message(status: StatusCode, title: &str, text: &str) -> Response {
    #[derive(Template)]
    #[template(path = "message.html")]
    struct Message<'a> {
        title: &'a str,
        message: &'a str,
    }
    let mut response = html(&Message {
        title,
        message: text,
    });
    *response.status_mut() = status;
    response
}

fn internal_error() -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

pub(super) fn journal_failed(error: JournalError) -> Response {
    tracing::error!(%error, "the dashboard cannot read the journal");
    message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal error",
        "The journal could not be read; see the host's log.",
    )
}

pub fn not_configured(hint: &str) -> Response {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Dashboard not configured",
        &format!("The dashboard is not configured: {hint}. Then restart switchyard."),
    )
}

pub async fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Not found", "No such page.")
}

pub(super) async fn head(
    state: &WebState,
    viewer: &Viewer,
    title: String,
) -> Result<Head, Response> {
    let hour_ago = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let since = hour_ago
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let counts = state
        .journal
        .job_counts(&since, viewer.visibility)
        .await
        .map_err(journal_failed)?;
    Ok(Head {
        title,
        user: viewer.name.clone(),
        form_token: viewer.form_token.clone().unwrap_or_default(),
        counts,
    })
}

/// A query parameter, blank counted as absent.
fn param<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn page_link(path: &str, params: &[(&str, Option<&str>)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    format!("{path}?{}", query.finish())
}

/// Masks secrets in text shown on a page, as job logs mask them.
fn masked(state: &WebState, text: &str) -> String {
    String::from_utf8_lossy(&state.logs.mask(text.as_bytes())).into_owned()
}

/// Actions of the audit trail shown on a page, at most this many.
const TRAIL: usize = 50;

/// The audit trail `filter` selects (newest first), and the action `?action=ID` names: the
/// result of the form that led here.
async fn trail(
    state: &WebState,
    viewer: &Viewer,
    params: &HashMap<String, String>,
    filter: ActionFilter,
) -> Result<(Option<ActionRecord>, Vec<ActionRecord>), Response> {
    let actions = state
        .journal
        .actions(ActionFilter {
            limit: TRAIL,
            visibility: viewer.visibility,
            ..filter
        })
        .await
        .map_err(journal_failed)?;
    let notice = match param(params, "action").and_then(|id| id.parse::<i64>().ok()) {
        Some(id) => {
            let one = ActionFilter {
                limit: 1,
                id: Some(id),
                visibility: viewer.visibility,
                ..ActionFilter::default()
            };
            let found = state.journal.actions(one).await.map_err(journal_failed)?;
            found.into_iter().next()
        }
        None => None,
    };
    let masked_action = |mut action: ActionRecord| {
        action.outcome = masked(state, &action.outcome);
        action.lock = action.lock.map(|lock| masked(state, &lock));
        action
    };
    Ok((
        notice.map(masked_action),
        actions.into_iter().map(masked_action).collect(),
    ))
}

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
pub async fn deliveries(
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
        visibility: viewer.visibility,
        id: None,
    };
    let mut rows = match state.journal.recent(filter).await {
        Ok(rows) => rows,
        Err(error) => return journal_failed(error),
    };
    let next_page = (rows.len() > size).then(|| {
        rows.truncate(size);
        let last = rows.last().map(|r| r.seq.to_string()).unwrap_or_default();
        page_link(
            "/dashboard/deliveries",
            &[
                ("event", event),
                ("repository", repository),
                ("failed", failed.then_some("1")),
                ("before", Some(&last)),
            ],
        )
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
pub async fn delivery(
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
pub async fn payload(
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

/// The delivery `id` with its payload, when `viewer` may see it: the visibility filter of the
/// deliveries list first, so a private repository's delivery is as absent as an unknown one.
pub(super) async fn visible_delivery(
    state: &WebState,
    viewer: &Viewer,
    id: &str,
) -> Result<Option<crate::event::Delivery>, JournalError> {
    if viewer.visibility != Visibility::All {
        let filter = RecentFilter {
            limit: 1,
            id: Some(id.to_owned()),
            visibility: viewer.visibility,
            ..RecentFilter::default()
        };
        if state.journal.recent(filter).await?.is_empty() {
            return Ok(None);
        }
    }
    state.journal.delivery(id).await
}

/// The job `id` with its delivery's facts, when `viewer` may see it.
async fn visible_job(
    state: &WebState,
    viewer: &Viewer,
    id: JobId,
) -> Result<Option<JobRow>, JournalError> {
    let filter = JobFilter {
        limit: 1,
        id: Some(id),
        visibility: viewer.visibility,
        ..JobFilter::default()
    };
    Ok(state.journal.jobs(filter).await?.into_iter().next())
}

/// A job as a row of the jobs list or the job page's facts.
struct JobView {
    id: JobId,
    plugin: String,
    repository: String,
    event: String,
    sender: String,
    state: &'static str,
    attempts: u32,
    created_at: String,
    started_at: String,
    duration: String,
}

fn job_view(state: &WebState, row: &JobRow) -> JobView {
    let parse = |t: &str| {
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
    };
    let duration = match (
        row.started_at.as_deref().and_then(parse),
        row.finished_at.as_deref().and_then(parse),
    ) {
        (Some(start), Some(end)) => {
            let millis = (end - start).whole_milliseconds().max(0);
            if millis < 10_000 {
                format!("{:.1} s", millis as f64 / 1000.0)
            } else {
                format!("{}m {:02}s", millis / 60_000, (millis / 1000) % 60)
            }
        }
        (Some(_), None) => "running".to_owned(),
        _ => String::new(),
    };
    JobView {
        id: row.job.id,
        plugin: row.job.plugin.clone(),
        repository: row.repository.clone().unwrap_or_default(),
        event: match &row.action {
            Some(action) => format!("{}.{action}", row.event),
            None => row.event.clone(),
        },
        sender: masked(state, row.sender.as_deref().unwrap_or_default()),
        state: row.job.state.as_str(),
        attempts: row.job.attempts,
        created_at: row.created_at.clone(),
        started_at: row.started_at.clone().unwrap_or_default(),
        duration,
    }
}

const STATES: [&str; 4] = ["queued", "running", "succeeded", "failed"];

#[derive(Template)]
#[template(path = "jobs.html")]
struct JobsPage {
    head: Head,
    rows: Vec<JobView>,
    states: [&'static str; 4],
    filter_state: &'static str,
    filter_plugin: String,
    filter_repository: String,
    next_page: Option<String>,
}

/// `GET /dashboard/jobs?state=&plugin=&repository=&before=ID`.
pub async fn jobs(
    State(state): State<WebState>,
    Extension(viewer): Extension<Viewer>,
    Query(params): Params,
) -> Response {
    let reserved = match reserve(&state, PAGE_BYTES).await {
        Ok(reserved) => reserved,
        Err(busy) => return busy,
    };
    let job_state = param(&params, "state")
        .and_then(|s| STATES.iter().position(|known| *known == s))
        .map(|i| {
            [
                JobState::Queued,
                JobState::Running,
                JobState::Succeeded,
                JobState::Failed,
            ][i]
        });
    let plugin = param(&params, "plugin");
    let repository = param(&params, "repository");
    let before = param(&params, "before").and_then(|b| b.parse().ok());
    let size = state.dashboard.page_size;
    let filter = JobFilter {
        limit: size + 1,
        visibility: viewer.visibility,
        id: None,
        state: job_state,
        plugin: plugin.map(str::to_owned),
        repository: repository.map(str::to_owned),
        before: before.map(JobId),
    };
    let mut rows = match state.journal.jobs(filter).await {
        Ok(rows) => rows,
        Err(error) => return journal_failed(error),
    };
    let next_page = (rows.len() > size).then(|| {
        rows.truncate(size);
        let last = rows
            .last()
            .map(|r| r.job.id.to_string())
            .unwrap_or_default();
        page_link(
            "/dashboard/jobs",
            &[
                ("state", job_state.map(JobState::as_str)),
                ("plugin", plugin),
                ("repository", repository),
                ("before", Some(&last)),
            ],
        )
    });
    let head = match head(&state, &viewer, "Jobs".to_owned()).await {
        Ok(head) => head,
        Err(response) => return response,
    };
    page(
        reserved,
        &JobsPage {
            head,
            rows: rows.iter().map(|row| job_view(&state, row)).collect(),
            states: STATES,
            filter_state: job_state.map_or("", JobState::as_str),
            filter_plugin: plugin.unwrap_or_default().to_owned(),
            filter_repository: repository.unwrap_or_default().to_owned(),
            next_page,
        },
    )
}

/// What a job posted to GitHub, as its page shows it.
struct PostView {
    kind: String,
    state: String,
    context: String,
    repository: String,
    sha: String,
    environment: String,
    at: String,
    /// Only http(s) links are links.
    url: Option<String>,
    /// The link's text: its path, shortened.
    url_label: String,
}

/// A link's text: the URL without its scheme and host, at most 32 characters.
fn link_label(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    let path = url[after_scheme..]
        .find('/')
        .map_or("/", |at| &url[after_scheme + at..]);
    match path.char_indices().nth(32) {
        Some((cut, _)) => format!("{}…", &path[..cut]),
        None => path.to_owned(),
    }
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    head: Head,
    id: JobId,
    posts: Vec<PostView>,
    /// Each line shows when it was written.
    timestamps: bool,
    toggle_timestamps: String,
    notice: Option<ActionRecord>,
    actions: Vec<ActionRecord>,
    /// Queued or running: it can be cancelled.
    cancellable: bool,
    row: JobView,
    delivery: String,
    subject: String,
    error: String,
    note: String,
    raw_log: String,
    raw_log_label: String,
    from: u64,
    to: u64,
    size: u64,
    next_line: u64,
    earlier: Option<String>,
    later: Option<String>,
    follow: bool,
    log_html: String,
}

/// The fields of a payload the job page's subject names. Read with serde rather than as a
/// `Value`: a 25 MB push would be a tree many times its size.
#[derive(Deserialize, Default)]
#[serde(default)]
struct SubjectFields {
    pull_request: Option<PullRequestFields>,
    deployment: Option<DeploymentFields>,
    after: Option<String>,
    #[serde(rename = "ref")]
    reference: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PullRequestFields {
    number: Option<u64>,
    title: Option<String>,
    head: Option<ShaField>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ShaField {
    sha: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DeploymentFields {
    sha: Option<String>,
    environment: Option<String>,
}

/// What a delivery was about: a pull request and its head sha, a pushed sha, a deployment.
fn subject(payload: &[u8]) -> String {
    let Ok(fields) = serde_json::from_slice::<SubjectFields>(payload) else {
        return String::new();
    };
    if let Some(pr) = fields.pull_request
        && let Some(number) = pr.number
    {
        let sha = pr.head.and_then(|head| head.sha).unwrap_or_default();
        let title = pr.title.unwrap_or_default();
        return format!("PR #{number} {title} at {}", short(&sha));
    }
    if let Some(deployment) = fields.deployment
        && let Some(sha) = deployment.sha
    {
        let environment = deployment.environment.unwrap_or_default();
        return format!("deployment of {} to {environment}", short(&sha));
    }
    if let Some(sha) = fields.after {
        let reference = fields.reference.unwrap_or_default();
        return format!("push of {} to {reference}", short(&sha));
    }
    String::new()
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// What reading and rendering a log window may hold at once: the bytes read, masked and
/// decoded, the HTML as it grows (doubling) and a line count's buffer.
fn window_bytes(cap: log_view::Cap) -> usize {
    3 * log_view::WINDOW as usize + 2 * cap.bytes + (1 << 20)
}

/// `GET /dashboard/jobs/{id}?start=BYTE|line=N|end=BYTE`: the job and a window of its log (at
/// most `log_window_lines` lines and `log_window_kib` of HTML): from a byte or a line on, or
/// the lines before a byte; the tail by default.
pub async fn job(
    State(state): State<WebState>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    Query(params): Params,
) -> Response {
    let Ok(id) = id.parse::<i64>().map(JobId) else {
        return not_found().await;
    };
    let cap = state.dashboard.limits.log;
    let page_bytes = PAGE_BYTES + window_bytes(cap);
    // The delivery's payload is read back for the page's subject line.
    let mut reserved = match reserve(&state, PAYLOAD_READ + page_bytes).await {
        Ok(reserved) => reserved,
        Err(busy) => return busy,
    };
    let row = match visible_job(&state, &viewer, id).await {
        Ok(Some(row)) => row,
        Ok(None) => return not_found().await,
        Err(error) => return journal_failed(error),
    };
    let subject = match state.journal.delivery(&row.job.delivery).await {
        Ok(delivery) => delivery.map(|d| subject(&d.payload)).unwrap_or_default(),
        Err(error) => return journal_failed(error),
    };
    reserved.shrink(page_bytes);
    let path = state.logs.path(id);
    let size = tokio::fs::metadata(&path).await.map_or(0, |m| m.len());
    let end = param(&params, "end").and_then(|e| e.parse::<u64>().ok());
    // The window: from a line asked for, from a byte asked for, or before a byte (the tail).
    let (start, window_end, tail) =
        if let Some(line) = param(&params, "line").and_then(|l| l.parse::<u64>().ok()) {
            let start = log_view::line_offset(&path, line.saturating_sub(20).max(1)).await;
            (start, None, false)
        } else if let Some(start) = param(&params, "start").and_then(|s| s.parse::<u64>().ok()) {
            (
                log_view::align_to_line(&path, start.min(size)).await,
                None,
                false,
            )
        } else {
            let end = end.map_or(size, |end| end.min(size));
            let start = log_view::align_to_line(&path, end.saturating_sub(log_view::WINDOW)).await;
            (start, Some(end), true)
        };
    let start = match start {
        Ok(start) => start,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(error) => {
            tracing::error!(job = %id, %error, "cannot read a job log");
            return internal_error();
        }
    };
    let window_end = window_end.unwrap_or(start + log_view::WINDOW).min(size);
    let mut start = start.min(window_end);
    let mut bytes = if size == 0 {
        Vec::new()
    } else {
        match log_view::read_range(&path, start, window_end).await {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(job = %id, %error, "cannot read a job log");
                return internal_error();
            }
        }
    };
    // Whole lines only, unless the window reaches the end of a finished log.
    let running = matches!(row.job.state, JobState::Queued | JobState::Running);
    let mut whole = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(at) if running || window_end < size => at + 1,
        None if running || window_end < size => 0,
        _ => bytes.len(),
    };
    if tail {
        // Lines before a byte: the last of them that fit.
        let skip = log_view::start_of_last_lines(&bytes[..whole], cap.lines);
        bytes.drain(..skip);
        whole -= skip;
        start += skip as u64;
    }
    let first_line = match log_view::count_lines(&path, start).await {
        Ok(lines) => lines + 1,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 1,
        Err(error) => {
            tracing::error!(job = %id, %error, "cannot read a job log");
            return internal_error();
        }
    };
    let masked_bytes = state.logs.mask(&bytes[..whole]);
    let timestamps = param(&params, "timestamps").is_some();
    let times = if timestamps {
        let file = state.logs.times_path(id);
        let times = log_view::chunk_times(&file, start, start + whole as u64);
        times.await.unwrap_or_else(|error| {
            tracing::warn!(job = %id, %error, "cannot read a job log's times");
            Vec::new()
        })
    } else {
        Vec::new()
    };
    let rendered = log_view::render(
        &masked_bytes,
        first_line,
        start,
        timestamps.then_some(times.as_slice()),
        cap,
    );
    drop(masked_bytes);
    // Masking keeps newlines, so the lines rendered end where as many end in the log.
    let shown = log_view::end_of_lines(&bytes[..whole], rendered.lines);
    let capped = shown < whole;
    drop(bytes);
    let to = start + shown as u64;
    let (log_html, next_line) = (rendered.html, rendered.next_line);
    let here = format!("/dashboard/jobs/{id}");
    let stamped = if timestamps { "&timestamps=1" } else { "" };
    let earlier = (start > 0).then(|| format!("{here}?end={start}{stamped}"));
    let later =
        (to < size && (window_end < size || capped)).then(|| format!("{here}?start={to}{stamped}"));
    // The same window with timestamps on or off.
    let toggle_timestamps = match timestamps {
        true => format!("{here}?start={start}"),
        false => format!("{here}?start={start}&timestamps=1"),
    };
    let follow = running && later.is_none();
    let raw_log = state.links.path(id, row.job.link_salt);
    // Those on its delivery too: the replay that made it, its siblings' cancels.
    let filter = ActionFilter {
        delivery: Some(row.job.delivery.clone()),
        ..ActionFilter::default()
    };
    let (notice, actions) = match trail(&state, &viewer, &params, filter).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let filter = PostFilter {
        limit: TRAIL,
        job: Some(id),
        visibility: viewer.visibility,
        ..PostFilter::default()
    };
    let posts = match state.journal.posts(filter).await {
        Ok(posts) => posts,
        Err(error) => return journal_failed(error),
    };
    let text = |value: Option<String>| masked(&state, &value.unwrap_or_default());
    let posts = posts
        .into_iter()
        .rev()
        .map(|record| {
            let post = record.post;
            let url = post
                .url
                .map(|url| masked(&state, &url))
                .filter(|url| url.starts_with("https://") || url.starts_with("http://"));
            PostView {
                url_label: url.as_deref().map(link_label).unwrap_or_default(),
                kind: post.kind.replace('_', " "),
                state: text(post.state),
                context: text(post.context),
                repository: masked(&state, &post.repository),
                sha: short(&text(post.sha)).to_owned(),
                environment: text(post.environment),
                at: record.at,
                url,
            }
        })
        .collect();
    let head = match head(&state, &viewer, format!("Job #{id}")).await {
        Ok(head) => head,
        Err(response) => return response,
    };
    page(
        reserved,
        &JobPage {
            head,
            id,
            posts,
            timestamps,
            toggle_timestamps,
            notice,
            actions,
            cancellable: running,
            row: job_view(&state, &row),
            delivery: row.job.delivery.clone(),
            subject: masked(&state, &subject),
            error: masked(&state, row.job.error.as_deref().unwrap_or_default()),
            note: masked(&state, row.job.note.as_deref().unwrap_or_default()),
            raw_log_label: format!("/jobs/{id}/log/…"),
            raw_log,
            from: start,
            to,
            size,
            next_line,
            earlier,
            later,
            follow,
            log_html,
        },
    )
}

/// How often a followed log is checked for new lines.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

/// Bytes of log read for one event at most.
const FOLLOW_CHUNK: u64 = 256 * 1024;

/// Bytes of HTML one event holds at most (with `log_window_kib`, if lower): an event handed
/// to the socket is the one part of a follower outside the budget.
const FOLLOW_EVENT_BYTES: usize = 256 * 1024;

/// `GET /dashboard/jobs/{id}/follow?offset=N`: Server-Sent Events, each `lines` event carrying
/// the HTML of whole lines appended after the offset (at most `log_window_lines` lines and
/// 256 KiB), with the offset after them as its id; a reconnecting browser sends that id back
/// (`Last-Event-ID`) and resumes there. An `end` event says the job is over and everything was
/// sent. Streams have places of their own (`max_followers`, `max_followers_per_client`), so
/// followers never take those of the log links GitHub shows.
pub async fn follow(
    State(state): State<WebState>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    Query(params): Params,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let Ok(id) = id.parse::<i64>().map(JobId) else {
        return not_found().await;
    };
    match visible_job(&state, &viewer, id).await {
        Ok(Some(_)) => {}
        Ok(None) => return not_found().await,
        Err(error) => return journal_failed(error),
    }
    let offset = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or_else(|| param(&params, "offset"))
        .and_then(|o| o.parse::<u64>().ok())
        .unwrap_or(0);
    let client = peer.map(|p| state.dashboard.proxies.client(p.0.0.ip(), &headers));
    let place = match state.dashboard.followers.admit(client) {
        Ok(place) => place,
        Err(refused) => {
            let text = match refused {
                NoPlace::Full => "too many job logs are being followed at once; retry shortly",
                NoPlace::ClientFull => {
                    "too many job logs are being followed from your address; close one first"
                }
            };
            let mut busy = (StatusCode::SERVICE_UNAVAILABLE, text).into_response();
            busy.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return busy;
        }
    };
    let cap = state.dashboard.limits.log;
    let cap = log_view::Cap {
        lines: cap.lines,
        bytes: cap.bytes.min(FOLLOW_EVENT_BYTES),
    };
    let path = state.logs.path(id);
    let (offset, line) = {
        // Finding the line number reads the log up to the offset.
        let _reserved = match reserve(&state, 1 << 20).await {
            Ok(reserved) => reserved,
            Err(busy) => return busy,
        };
        let size = tokio::fs::metadata(&path).await.map_or(0, |m| m.len());
        let offset = log_view::align_to_line(&path, offset.min(size))
            .await
            .unwrap_or_default();
        let line = log_view::count_lines(&path, offset).await.unwrap_or(0) + 1;
        (offset, line)
    };
    let times = param(&params, "timestamps").map(|_| state.logs.times_path(id));
    let follower = Follower {
        times,
        state,
        job: id,
        path,
        offset,
        line,
        cap,
        done: false,
        _place: place,
    };
    let stream = futures_util::stream::unfold(follower, Follower::next);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

struct Follower {
    state: WebState,
    job: JobId,
    path: std::path::PathBuf,
    /// The log's times file, when lines are sent with their timestamps.
    times: Option<std::path::PathBuf>,
    offset: u64,
    /// The number of the line at `offset`.
    line: u64,
    /// What one event renders at most.
    cap: log_view::Cap,
    done: bool,
    _place: crate::job_log::Place,
}

impl Follower {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        if self.done {
            return None;
        }
        loop {
            // Whether the job had ended before reading, so nothing written before its end is
            // missed.
            let ended = match self.state.journal.job(self.job).await {
                Ok(record) => matches!(record.state, JobState::Succeeded | JobState::Failed),
                Err(_) => true,
            };
            let size = tokio::fs::metadata(&self.path).await.map_or(0, |m| m.len());
            if size > self.offset {
                // Reading and rendering within the budget; when it has no room, later.
                let reserved = reserve(&self.state, 3 * FOLLOW_CHUNK as usize + 2 * self.cap.bytes);
                if let Ok(_reserved) = reserved.await
                    && let Some(event) = self.event(size, ended).await
                {
                    return Some((Ok(event), self));
                }
            }
            if ended && size <= self.offset {
                self.done = true;
                let event = Event::default()
                    .event("end")
                    .id(self.offset.to_string())
                    .data("end");
                return Some((Ok(event), self));
            }
            tokio::select! {
                () = tokio::time::sleep(FOLLOW_INTERVAL) => {}
                () = self.state.stopping.cancelled() => return None,
            }
        }
    }

    /// The next event of lines after the offset, when there are whole ones (or the end of a
    /// finished log).
    async fn event(&mut self, size: u64, ended: bool) -> Option<Event> {
        let to = size.min(self.offset + FOLLOW_CHUNK);
        let bytes = log_view::read_range(&self.path, self.offset, to)
            .await
            .unwrap_or_default();
        let whole = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(at) => at + 1,
            // The end of a finished log without a newline, or a line longer than a
            // chunk: sent as it is.
            None if ended || bytes.len() as u64 == FOLLOW_CHUNK => bytes.len(),
            None => 0,
        };
        if whole == 0 {
            return None;
        }
        let masked = self.state.logs.mask(&bytes[..whole]);
        let times = match &self.times {
            Some(times) => {
                let end = self.offset + whole as u64;
                let times = log_view::chunk_times(times, self.offset, end).await;
                Some(times.unwrap_or_default())
            }
            None => None,
        };
        let rendered =
            log_view::render(&masked, self.line, self.offset, times.as_deref(), self.cap);
        self.offset += log_view::end_of_lines(&bytes[..whole], rendered.lines) as u64;
        self.line = rendered.next_line;
        Some(
            Event::default()
                .event("lines")
                .id(self.offset.to_string())
                .data(rendered.html),
        )
    }
}

/// A deployment status as the deployments page shows it: from a `deployment_status` delivery,
/// or posted by a job here.
#[derive(Clone)]
struct DeploymentView {
    repository: String,
    environment: String,
    state: String,
    sha: String,
    /// Who: the status's creator on GitHub, or the job that posted it.
    by: String,
    at: String,
    /// Where it is recorded: the delivery's page or the job's.
    link: String,
    source: String,
}

#[derive(Template)]
#[template(path = "deployments.html")]
struct DeploymentsPage {
    head: Head,
    notice: Option<ActionRecord>,
    /// Locks released by people.
    actions: Vec<ActionRecord>,
    current: Vec<DeploymentView>,
    locks: Vec<LockView>,
    history: Vec<DeploymentView>,
}

/// A lock, its holder and the jobs waiting for it.
struct LockView {
    name: String,
    job: JobId,
    attempt: u32,
    acquired_at: String,
    waiting: Vec<(JobId, String)>,
}

/// The fields of a `deployment_status` delivery the deployments page shows (read with serde,
/// as [`SubjectFields`] is).
#[derive(Deserialize, Default)]
#[serde(default)]
struct StatusFields {
    deployment: Option<DeploymentFields>,
    deployment_status: Option<PostedStatusFields>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PostedStatusFields {
    state: Option<String>,
    created_at: Option<String>,
    creator: Option<LoginField>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LoginField {
    login: Option<String>,
}

/// Deployment statuses read back from the journal, at most this many of each source.
const DEPLOYMENT_HISTORY: usize = 100;

/// An RFC 3339 time, for ordering statuses from both sources.
fn instant(at: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()
}

/// `GET /dashboard/deployments`: what is deployed now per repository and environment (the last
/// `success`), from the deployment statuses jobs here posted and from `deployment_status`
/// deliveries, the history, and who holds and who waits for each lock.
pub async fn deployments(
    State(state): State<WebState>,
    Extension(viewer): Extension<Viewer>,
    Query(params): Params,
) -> Response {
    let reserved = match reserve(&state, PAYLOAD_READ + PAGE_BYTES).await {
        Ok(reserved) => reserved,
        Err(busy) => return busy,
    };
    let filter = RecentFilter {
        limit: DEPLOYMENT_HISTORY,
        event: Some("deployment_status".to_owned()),
        visibility: viewer.visibility,
        ..RecentFilter::default()
    };
    let records = match state.journal.recent(filter).await {
        Ok(records) => records,
        Err(error) => return journal_failed(error),
    };
    let mut history = Vec::new();
    for record in records {
        let Ok(Some(delivery)) = state.journal.delivery(&record.id).await else {
            continue;
        };
        let Ok(status) = serde_json::from_slice::<StatusFields>(&delivery.payload) else {
            continue;
        };
        drop(delivery);
        let text = |v: Option<String>| masked(&state, &v.unwrap_or_default());
        let deployment = status.deployment.unwrap_or_default();
        let posted = status.deployment_status.unwrap_or_default();
        history.push(DeploymentView {
            repository: record.repository.clone().unwrap_or_default(),
            environment: text(deployment.environment),
            state: text(posted.state),
            sha: short(&text(deployment.sha)).to_owned(),
            by: text(posted.creator.unwrap_or_default().login),
            at: text(posted.created_at),
            link: format!(
                "/dashboard/deliveries/{}",
                form_urlencoded::byte_serialize(record.id.as_bytes()).collect::<String>()
            ),
            source: format!("delivery {}", record.id),
        });
    }
    let filter = PostFilter {
        limit: DEPLOYMENT_HISTORY,
        deployments: true,
        visibility: viewer.visibility,
        ..PostFilter::default()
    };
    let posts = match state.journal.posts(filter).await {
        Ok(posts) => posts,
        Err(error) => return journal_failed(error),
    };
    for record in posts {
        let post = record.post;
        if post.kind != "deployment_status" {
            continue;
        }
        let text = |v: Option<String>| masked(&state, &v.unwrap_or_default());
        history.push(DeploymentView {
            repository: masked(&state, &post.repository),
            environment: text(post.environment),
            state: text(post.state),
            sha: short(&text(post.sha)).to_owned(),
            by: format!("job #{}", post.job),
            at: record.at,
            link: format!("/dashboard/jobs/{}", post.job),
            source: format!("posted by job #{}", post.job),
        });
    }
    // Newest first, whichever source told.
    history.sort_by_key(|d| std::cmp::Reverse(instant(&d.at)));
    let mut current: Vec<DeploymentView> = Vec::new();
    for status in history.iter().filter(|d| d.state == "success") {
        let seen = current
            .iter()
            .any(|c| c.repository == status.repository && c.environment == status.environment);
        if !seen {
            current.push(status.clone());
        }
    }
    let mut locks = match state.journal.locks().await {
        Ok(locks) => locks,
        Err(error) => return journal_failed(error),
    };
    if viewer.visibility != Visibility::All {
        // A lock shows as its holder's job does.
        let mut shown = Vec::with_capacity(locks.len());
        for lock in locks {
            match visible_job(&state, &viewer, lock.job).await {
                Ok(Some(_)) => shown.push(lock),
                Ok(None) => {}
                Err(error) => return journal_failed(error),
            }
        }
        locks = shown;
    }
    let waiting = state.locks.waiting_now();
    let locks = locks
        .into_iter()
        .map(|lock| LockView {
            waiting: waiting
                .iter()
                .filter(|wait| wait.name == lock.name)
                .map(|wait| (wait.job, wait.since.clone()))
                .collect(),
            name: lock.name,
            job: lock.job,
            attempt: lock.attempt,
            acquired_at: lock.acquired_at,
        })
        .collect();
    let filter = ActionFilter {
        action: Some("release".to_owned()),
        ..ActionFilter::default()
    };
    let (notice, actions) = match trail(&state, &viewer, &params, filter).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let head = match head(&state, &viewer, "Deployments".to_owned()).await {
        Ok(head) => head,
        Err(response) => return response,
    };
    page(
        reserved,
        &DeploymentsPage {
            head,
            notice,
            actions,
            current,
            locks,
            history,
        },
    )
}

struct PluginView {
    name: String,
    package: String,
    version: String,
    events: String,
    timeout_secs: u64,
    max_attempts: u32,
    settings: Vec<(String, String)>,
}

/// A config entry with `enabled = false`.
struct DisabledView {
    name: String,
    library: String,
}

/// The last reload: when, whether it took, and what it changed or why not.
struct ReloadView {
    at: String,
    ok: bool,
    summary: String,
}

#[derive(Template)]
#[template(path = "plugins.html")]
struct PluginsPage {
    head: Head,
    plugins: Vec<PluginView>,
    disabled: Vec<DisabledView>,
    reload: Option<ReloadView>,
}

/// Setting names whose values are never shown, whatever they hold.
fn secret_setting(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    !key.ends_with("_env")
        && !key.ends_with("_file")
        && ["token", "secret", "password", "key", "url"]
            .iter()
            .any(|word| key.contains(word))
}

/// `GET /dashboard/plugins`: the loaded plugins with their settings, secrets never shown.
pub async fn plugins(
    State(state): State<WebState>,
    Extension(viewer): Extension<Viewer>,
) -> Response {
    let reserved = match reserve(&state, PAGE_BYTES).await {
        Ok(reserved) => reserved,
        Err(busy) => return busy,
    };
    let set = state.plugins.current();
    let plugins = set
        .iter()
        .map(|plugin| PluginView {
            name: plugin.name().to_owned(),
            package: plugin.info.package.clone(),
            version: plugin.info.version.clone(),
            events: plugin
                .subscriptions()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            timeout_secs: plugin.entry.timeout_secs,
            max_attempts: plugin.entry.max_attempts,
            settings: plugin
                .entry
                .settings
                .iter()
                .map(|(key, value)| {
                    let shown = if secret_setting(key) {
                        "********".to_owned()
                    } else {
                        masked(&state, &value.to_string())
                    };
                    (key.clone(), shown)
                })
                .collect(),
        })
        .collect();
    let disabled = set
        .disabled()
        .iter()
        .map(|entry| DisabledView {
            name: entry.name.clone(),
            library: masked(&state, &entry.library.display().to_string()),
        })
        .collect();
    let reload = state.plugins.last_reload().map(|last| {
        let (ok, summary) = match last.outcome {
            Ok(summary) => (true, summary),
            Err(problem) => (false, problem),
        };
        ReloadView {
            at: last.at,
            ok,
            summary: masked(&state, &summary),
        }
    });
    let head = match head(&state, &viewer, "Plugins".to_owned()).await {
        Ok(head) => head,
        Err(response) => return response,
    };
    page(
        reserved,
        &PluginsPage {
            head,
            plugins,
            disabled,
            reload,
        },
    )
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    next: String,
    problem: Option<&'static str>,
}

/// Where to go after signing in: a dashboard path, never another site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next)
            if next.starts_with("/dashboard")
                && !next.contains("//")
                && !next.contains('\\')
                && !next.chars().any(char::is_control) =>
        {
            next.to_owned()
        }
        _ => "/dashboard".to_owned(),
    }
}

pub async fn sign_in_page(Query(params): Params) -> Response {
    html(&SignInPage {
        next: safe_next(param(&params, "next")),
        problem: None,
    })
}

#[derive(Deserialize)]
pub struct SignInForm {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /dashboard/sign-in`: a good token sets the session cookie; a wrong one is 401, and an
/// address that sent too many wrong ones lately is answered 429 (see `limit`).
pub async fn sign_in(
    State(state): State<WebState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let Ok(access) = &state.dashboard.access else {
        return internal_error();
    };
    let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0.0.ip());
    let address = client::counted_as(state.dashboard.proxies.client(peer, &headers));
    let now = std::time::Instant::now();
    let next = safe_next(form.next.as_deref());
    if let Err(wait) = state.dashboard.sign_ins.check(address, now) {
        tracing::warn!(%address, "dashboard sign-ins refused for a while: too many wrong tokens");
        let mut response = html(&SignInPage {
            next,
            problem: Some(
                "Too many wrong tokens from your address: wait a minute, then try again.",
            ),
        });
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        let seconds = wait.as_secs().max(1).to_string();
        if let Ok(value) = HeaderValue::from_str(&seconds) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let Some(name) = access.sign_in(&form.token) else {
        tracing::warn!(%address, "a dashboard sign-in with a wrong token");
        state.dashboard.sign_ins.failed(address, now);
        let mut response = html(&SignInPage {
            next,
            problem: Some("That token is not valid."),
        });
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        return response;
    };
    state.dashboard.sign_ins.succeeded(address);
    tracing::info!(%name, "signed in to the dashboard");
    // After the person's last sign-out, even within its millisecond, or it would end this too.
    let ended = match state.journal.sessions_ended(name).await {
        Ok(ended) => ended,
        Err(error) => return journal_failed(error),
    };
    let begun = unix_millis().max(ended.map_or(0, |at| at + 1));
    let Some(value) = access.session(name, begun) else {
        return internal_error();
    };
    let cookie = session_cookie(&value, auth::SESSION_SECS, state.dashboard.secure_cookie);
    let mut response = Redirect::to(&next).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The `Set-Cookie` value of a session (or, with an empty value and age 0, of its end):
/// readable by no script, sent on top-level navigations from other sites but not their
/// requests, and over https only when the host's public URL is https.
fn session_cookie(value: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{}={value}; Path=/dashboard; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
        auth::COOKIE
    )
}

#[derive(Deserialize)]
pub struct SignOutForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /dashboard/sign-out`: every session of the signed-in person ends, on every browser
/// and host (the journal keeps when), and this browser's cookie is cleared. It passes the
/// actions' checks (the dashboard's own origin, the session's form token), so another site
/// cannot sign anyone out. Without a session there is nothing to end: the cookie is cleared.
pub async fn sign_out(
    State(state): State<WebState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Response {
    if viewer.name.is_some() {
        let name = match actions::actor(&state, &viewer, &headers, &form.csrf) {
            Ok(name) => name,
            Err(refusal) => return refusal.into_response(),
        };
        if let Err(error) = state.journal.end_sessions(&name, unix_millis()).await {
            return journal_failed(error);
        }
        tracing::info!(%name, "signed out of the dashboard: every session of theirs ended");
    }
    let cookie = session_cookie("", 0, state.dashboard.secure_cookie);
    let mut response = Redirect::to("/dashboard/sign-in").into_response();
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cookies_are_http_only_lax_and_secure_behind_https() {
        assert_eq!(
            session_cookie("alice.9.ab", 60, true),
            "switchyard_session=alice.9.ab; Path=/dashboard; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(!session_cookie("", 0, false).contains("Secure"));
        let config = |url: &str| {
            crate::config::Config::parse(
                &format!("[server]\npublic_url = \"{url}\"\n"),
                std::path::Path::new("/etc/switchyard/config.toml"),
            )
            .unwrap()
        };
        let https = super::super::Dashboard::new(
            &config("https://ci.example.com"),
            Err(String::new()),
            b"k",
            Default::default(),
        );
        assert!(https.secure_cookie);
        let http = super::super::Dashboard::new(
            &config("http://127.0.0.1:9393"),
            Err(String::new()),
            b"k",
            Default::default(),
        );
        assert!(!http.secure_cookie);
    }

    #[test]
    fn sign_in_leads_only_to_dashboard_pages() {
        assert_eq!(
            safe_next(Some("/dashboard/jobs?state=failed")),
            "/dashboard/jobs?state=failed"
        );
        for elsewhere in [
            "https://evil.example/",
            "//evil.example",
            "/dashboard//evil",
            "/\\evil",
            "/healthz",
        ] {
            assert_eq!(safe_next(Some(elsewhere)), "/dashboard", "{elsewhere}");
        }
        assert_eq!(safe_next(None), "/dashboard");
    }

    #[test]
    fn link_labels_are_short_paths() {
        assert_eq!(link_label("https://github.com/o/r/runs/5"), "/o/r/runs/5");
        assert_eq!(
            link_label("http://127.0.0.1:9393/jobs/1/log/0123456789abcdef0123456789"),
            "/jobs/1/log/0123456789abcdef0123…"
        );
        assert_eq!(link_label("https://app.example.com"), "/");
    }

    #[test]
    fn subjects_name_the_pull_request_push_or_deployment() {
        let pr =
            br#"{"pull_request":{"number":7,"title":"Fix","head":{"sha":"0123456789abcdef00"}}}"#;
        assert_eq!(subject(pr), "PR #7 Fix at 0123456789ab");
        assert_eq!(
            subject(br#"{"after":"abc","ref":"refs/heads/main"}"#),
            "push of abc to refs/heads/main"
        );
        assert_eq!(subject(b"not json"), "");
    }
}
