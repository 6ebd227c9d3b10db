//! The jobs: the list with its filters, and one job's page (its facts, what it posted to
//! GitHub, the audit trail and a window of its log).

use askama::Template;
use axum::{
    Extension,
    extract::{Path, Query, State},
    response::Response,
};
use serde::Deserialize;

use super::super::message::{internal_error, journal_failed, not_found};
use super::super::{Viewer, WebState, log_view};
use super::{
    badge::{Badge, badge},
    layout::{Head, PAGE_BYTES, PAYLOAD_READ, filters, head, job_duration, page, reserve},
    links::{commit_link, pull_request_link, repository_link},
    params::{Params, next_page, param},
    trail::{TRAIL, trail},
    visible::{masked, visible_job},
};
use crate::journal::{
    ActionFilter, ActionRecord, JobFilter, JobId, JobRow, JobState, PostFilter, VerdictFilter,
};

/// A job as a row of the jobs list or the job page's facts.
struct JobView {
    id: JobId,
    plugin: String,
    repository: String,
    event: String,
    sender: String,
    /// Its verdict, or its state while it has none (see `badge`).
    badge: Badge,
    attempts: u32,
    created_at: String,
    started_at: String,
    duration: String,
    /// The pages of its repository, pull request and commit, when its delivery named them.
    repository_link: Option<String>,
    pull_request: Option<(i64, String)>,
    commit: Option<(String, String)>,
}

fn job_view(state: &WebState, row: &JobRow) -> JobView {
    let duration = job_duration(row.started_at.as_deref(), row.finished_at.as_deref());
    let repository = row.repository.as_deref().unwrap_or_default();
    let known = !repository.is_empty();
    JobView {
        repository_link: known.then(|| repository_link(repository)),
        pull_request: (row.place.pull_request.filter(|_| known))
            .map(|number| (number, pull_request_link(repository, number))),
        commit: (row.place.head_sha.as_deref().filter(|_| known))
            .map(|sha| (short(sha).to_owned(), commit_link(repository, sha))),
        id: row.job.id,
        plugin: row.job.plugin.clone(),
        repository: row.repository.clone().unwrap_or_default(),
        event: match &row.action {
            Some(action) => format!("{}.{action}", row.event),
            None => row.event.clone(),
        },
        sender: masked(state, row.sender.as_deref().unwrap_or_default()),
        badge: badge(row.job.state, row.job.verdict),
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
    /// The verdict filter's options: (value, label).
    verdicts: Vec<(&'static str, String)>,
    filter_verdict: &'static str,
    filter_plugin: String,
    filter_repository: String,
    next_page: Option<String>,
}

/// `GET /dashboard/jobs?state=&verdict=&plugin=&repository=&before=ID`: `verdict=failed`
/// lists the red ones (failed, errored, timed out; see [`VerdictFilter`]).
pub(in crate::web) async fn list(
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
    let verdict = param(&params, "verdict").and_then(VerdictFilter::parse);
    let plugin = param(&params, "plugin");
    let repository = param(&params, "repository");
    let before = param(&params, "before").and_then(|b| b.parse().ok());
    let size = state.dashboard.page_size;
    let filter = JobFilter {
        limit: size + 1,
        visibility: viewer.visibility.clone(),
        id: None,
        state: job_state,
        verdict,
        plugin: plugin.map(str::to_owned),
        repository: repository.map(str::to_owned),
        before: before.map(JobId),
        ..JobFilter::default()
    };
    let mut rows = match state.journal.jobs(filter).await {
        Ok(rows) => rows,
        Err(error) => return journal_failed(error),
    };
    let filters = [
        ("state", job_state.map(JobState::as_str)),
        ("verdict", verdict.map(VerdictFilter::as_str)),
        ("plugin", plugin),
        ("repository", repository),
    ];
    let next_page = next_page(&mut rows, size, "/dashboard/jobs", &filters, |row| {
        row.job.id.to_string()
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
            verdicts: VerdictFilter::ALL
                .into_iter()
                .map(|filter| (filter.as_str(), filter.label()))
                .collect(),
            filter_verdict: verdict.map_or("", VerdictFilter::as_str),
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
pub(super) struct DeploymentFields {
    pub(super) sha: Option<String>,
    pub(super) environment: Option<String>,
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

pub(super) fn short(sha: &str) -> &str {
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
pub(in crate::web) async fn one(
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
    let log = log_view::LogSource::of(&state.logs, id);
    let size = match log.len().await {
        Ok(size) => size,
        Err(error) => return log_unreadable(id, &error),
    };
    let end = param(&params, "end").and_then(|e| e.parse::<u64>().ok());
    // The window: from a line asked for, from a byte asked for, or before a byte (the tail).
    let (start, window_end, tail) =
        if let Some(line) = param(&params, "line").and_then(|l| l.parse::<u64>().ok()) {
            let start = log.line_offset(line.saturating_sub(20).max(1)).await;
            (start, None, false)
        } else if let Some(start) = param(&params, "start").and_then(|s| s.parse::<u64>().ok()) {
            (log.align_to_line(start.min(size)).await, None, false)
        } else {
            let end = end.map_or(size, |end| end.min(size));
            let start = log
                .align_to_line(end.saturating_sub(log_view::WINDOW))
                .await;
            (start, Some(end), true)
        };
    let start = match start {
        Ok(start) => start,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(error) => return log_unreadable(id, &error),
    };
    let window_end = window_end.unwrap_or(start + log_view::WINDOW).min(size);
    let mut start = start.min(window_end);
    let mut bytes = if size == 0 {
        Vec::new()
    } else {
        match log.read_range(start, window_end).await {
            Ok(bytes) => bytes,
            Err(error) => return log_unreadable(id, &error),
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
    let first_line = match log.count_lines(start).await {
        Ok(lines) => lines + 1,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 1,
        Err(error) => return log_unreadable(id, &error),
    };
    let masked_bytes = state.logs.mask(&bytes[..whole]);
    let timestamps = param(&params, "timestamps").is_some();
    let times = if timestamps {
        let times = log.chunk_times(start, start + whole as u64);
        times.await.unwrap_or_else(|error| {
            tracing::warn!(
                job = id.0,
                error = error.to_string(),
                "cannot read a job log's times"
            );
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
        visibility: viewer.visibility.clone(),
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

/// The answer when job `id`'s log cannot be read, which the host's log tells why.
fn log_unreadable(id: JobId, error: &std::io::Error) -> Response {
    tracing::error!(
        job = id.0,
        error = error.to_string(),
        "cannot read a job log"
    );
    internal_error()
}

#[cfg(test)]
mod tests {
    use super::*;

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
