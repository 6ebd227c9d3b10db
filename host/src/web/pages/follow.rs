//! A job log followed live: Server-Sent Events of the lines appended after an offset, in
//! places of their own and within the render budget.

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use axum::{
    Extension,
    extract::{ConnectInfo, Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};

use super::super::message::{journal_failed, not_found};
use super::super::{Viewer, WebState, log_view};
use super::{
    layout::reserve,
    params::{Params, param},
    visible::visible_job,
};
use crate::job_log::NoPlace;
use crate::journal::{JobId, JobState};

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
pub(in crate::web) async fn follow(
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
    let log = log_view::LogSource::of(&state.logs, id);
    let (offset, line) = {
        // Finding the line number reads the log up to the offset.
        let _reserved = match reserve(&state, 1 << 20).await {
            Ok(reserved) => reserved,
            Err(busy) => return busy,
        };
        let size = log.len().await.unwrap_or(0);
        let offset = log
            .align_to_line(offset.min(size))
            .await
            .unwrap_or_default();
        let line = log.count_lines(offset).await.unwrap_or(0) + 1;
        (offset, line)
    };
    let timestamps = param(&params, "timestamps").is_some();
    let follower = Follower {
        timestamps,
        state,
        job: id,
        log,
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
    log: log_view::LogSource,
    /// Lines are sent with their timestamps.
    timestamps: bool,
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
            let size = self.log.len().await.unwrap_or(0);
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
        let bytes = self
            .log
            .read_range(self.offset, to)
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
        let times = match self.timestamps {
            true => {
                let end = self.offset + whole as u64;
                let times = self.log.chunk_times(self.offset, end).await;
                Some(times.unwrap_or_default())
            }
            false => None,
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
