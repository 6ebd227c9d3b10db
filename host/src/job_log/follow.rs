//! `GET /jobs/{id}/log/{key}`: a job's log, read from its file in fixed-size chunks and sent as
//! the client takes them, so a reader that stops reading costs one chunk, not the log. While the
//! job is queued or running the response follows the file and ends when the job ends. Readers
//! at once are capped, in all and per client address, with places of their own that the
//! dashboard's readers cannot take; past a cap, 503 with `Retry-After`.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use axum::{
    Extension,
    body::Body,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio_util::sync::CancellationToken;

use super::{JobLogs, LogLinks, LogReaders, NoPlace, Place};
use crate::{
    http_error::error_response,
    journal::{JobId, JobState, LogStore, Reads},
    web::TrustedProxies,
};

/// What serving a log link takes: a substate of the app's (axum's `FromRef`), so this module
/// needs nothing of the wiring.
#[derive(Clone)]
pub struct LogState {
    pub journal: Arc<dyn Reads>,
    pub logs: JobLogs,
    pub links: LogLinks,
    /// One place per job log being streamed at its link.
    pub log_readers: LogReaders,
    /// `[server] trusted_proxies`: a reader behind a reverse proxy is counted as itself, not as
    /// the proxy, against `max_log_readers_per_client`.
    pub proxies: Arc<TrustedProxies>,
    /// Cancelled when the host shuts down: streams end.
    pub stopping: CancellationToken,
}

/// Bytes read from a log file and sent at a time.
const LOG_CHUNK: usize = 64 * 1024;

/// Chunks read from the journal and sent at a time, when it keeps the logs.
const LOG_CHUNKS: usize = 64;

/// How often a followed log checks for new output while its job runs.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

/// The answer for a wrong key, a malformed id and an unknown job alike: a link either opens a
/// log or tells nothing.
fn no_such_log() -> Response {
    error_response(StatusCode::NOT_FOUND, "no such log")
}

pub async fn serve_log(
    State(state): State<LogState>,
    Path((id, key)): Path<(String, String)>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    let Ok(id) = id.parse() else {
        return no_such_log();
    };
    let job = JobId(id);
    match state.links.opens(state.journal.as_ref(), job, &key).await {
        Ok(Some(_)) => {}
        Ok(None) => return no_such_log(),
        Err(error) => {
            tracing::error!(%job, error = error.to_string(), "cannot look up job for its log");
            return error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    }
    let client = peer.map(|p| state.proxies.client(p.0.0.ip(), &headers));
    let reader = match state.log_readers.admit(client) {
        Ok(place) => place,
        Err(refused) => {
            let message = match refused {
                NoPlace::Full => "too many job logs are being read at once; retry shortly",
                NoPlace::ClientFull => {
                    "too many job logs are being read from your address at once; retry once one ends"
                }
            };
            let mut busy = error_response(StatusCode::SERVICE_UNAVAILABLE, message);
            busy.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            return busy;
        }
    };
    let follow = Follow {
        shared: state.logs.journal().cloned(),
        chunk: 0,
        path: state.logs.path(job),
        file: None,
        offset: 0,
        job,
        journal: state.journal.clone(),
        ended: false,
        stopping: state.stopping.clone(),
        _reader: reader,
    };
    let body = Body::from_stream(futures_util::stream::unfold(follow, Follow::next));
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// A reader that follows a job's log file until the job ends and everything is sent.
struct Follow {
    /// The journal, when it keeps the logs (as chunks, read from `chunk` on).
    shared: Option<Arc<dyn LogStore>>,
    chunk: u64,
    path: PathBuf,
    /// Open once the file exists.
    file: Option<tokio::fs::File>,
    offset: u64,
    job: JobId,
    journal: Arc<dyn Reads>,
    /// The job had ended when last checked: send what is left, then stop.
    ended: bool,
    /// The host is shutting down: the stream ends, so it holds no connection open.
    stopping: CancellationToken,
    /// This reader's place under the cap, given back when the response ends or is dropped.
    _reader: Place,
}

impl Follow {
    async fn next(mut self) -> Option<(std::io::Result<Vec<u8>>, Self)> {
        loop {
            match self.read_chunk().await {
                Ok(chunk) if !chunk.is_empty() => return Some((Ok(chunk), self)),
                Ok(_) if self.ended => return None,
                Ok(_) => {}
                // The body fails with it, and the stream is not polled again.
                Err(error) => return Some((Err(error), self)),
            }
            // Nothing new: check (after reading, so no output written before the end is
            // missed) whether the job is over, else wait for more.
            self.ended = match self.journal.job(self.job).await {
                Ok(record) => matches!(record.state, JobState::Succeeded | JobState::Failed),
                Err(_) => true,
            };
            if !self.ended {
                tokio::select! {
                    () = tokio::time::sleep(FOLLOW_INTERVAL) => {}
                    () = self.stopping.cancelled() => return None,
                }
            }
        }
    }

    /// Up to [`LOG_CHUNK`] bytes written since the last read; none while the file does not
    /// exist yet.
    async fn read_chunk(&mut self) -> std::io::Result<Vec<u8>> {
        if let Some(journal) = &self.shared {
            let chunks = journal
                .read_log(self.job, self.chunk, LOG_CHUNKS)
                .await
                .map_err(std::io::Error::other)?;
            self.chunk += chunks.len() as u64;
            return Ok(chunks.concat());
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => match tokio::fs::File::open(&self.path).await {
                Ok(mut file) => {
                    file.seek(std::io::SeekFrom::Start(self.offset)).await?;
                    self.file.insert(file)
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            },
        };
        let mut chunk = Vec::with_capacity(LOG_CHUNK);
        (&mut *file)
            .take(LOG_CHUNK as u64)
            .read_to_end(&mut chunk)
            .await?;
        self.offset += chunk.len() as u64;
        Ok(chunk)
    }
}
