//! Answers GitHub should never give, for testing how a client copes: a body far larger than
//! any list, one that trickles, one cut off mid-way, a JSON answer of the test's choosing
//! (a minted token with a line break, say). Set with [`super::FakeGitHub::answer_badly`].

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::Value;

/// How the fake answers one call badly.
#[derive(Debug, Clone)]
pub enum BadAnswer {
    /// `status` with this JSON body, whatever the call would have been answered.
    Json { status: u16, body: Value },
    /// A 200 of `bytes` bytes (a JSON list of numbers, not closed), made as the client reads
    /// it: with a `Content-Length` announcing them all, or chunked (`content_length: false`).
    /// [`super::FakeGitHub::bytes_streamed`] counts what went out.
    Huge { bytes: u64, content_length: bool },
    /// A 200 whose JSON body comes one byte every `pause`.
    Slow { pause: Duration },
    /// A 200 whose JSON body stops half-way and the connection drops: announced by
    /// `Content-Length`, or chunked without its last chunk.
    Cut { content_length: bool },
}

/// Bytes of huge answers a client read (or the socket buffered).
pub(super) type Streamed = Arc<AtomicU64>;

const CHUNK: usize = 64 * 1024;

/// The JSON the slow and cut answers carry: an empty list of deliveries, padded.
const BODY: &[u8] = b"[                                                              ]";

pub(super) fn respond(answer: BadAnswer, streamed: &Streamed) -> Response {
    match answer {
        BadAnswer::Json { status, body } => {
            let status = StatusCode::from_u16(status).expect("a valid status");
            (status, axum::Json(body)).into_response()
        }
        BadAnswer::Huge {
            bytes,
            content_length,
        } => {
            let streamed = Arc::clone(streamed);
            let chunks = futures_util::stream::unfold(0u64, move |sent| {
                let streamed = Arc::clone(&streamed);
                async move {
                    if sent >= bytes {
                        return None;
                    }
                    let size = (bytes - sent).min(CHUNK as u64) as usize;
                    let mut chunk = b"0,".repeat(size / 2 + 1);
                    chunk.truncate(size);
                    if sent == 0 {
                        chunk[0] = b'[';
                    }
                    streamed.fetch_add(size as u64, Ordering::Relaxed);
                    Some((
                        Ok::<_, std::io::Error>(Bytes::from(chunk)),
                        sent + size as u64,
                    ))
                }
            });
            json_stream(Body::from_stream(chunks), content_length.then_some(bytes))
        }
        BadAnswer::Slow { pause } => {
            let bytes = futures_util::stream::unfold(0usize, move |at| async move {
                if at >= BODY.len() {
                    return None;
                }
                tokio::time::sleep(pause).await;
                let byte = Bytes::from_static(&BODY[at..at + 1]);
                Some((Ok::<_, std::io::Error>(byte), at + 1))
            });
            json_stream(Body::from_stream(bytes), Some(BODY.len() as u64))
        }
        BadAnswer::Cut { content_length } => {
            let parts = futures_util::stream::unfold(0, |part| async move {
                match part {
                    0 => Some((Ok(Bytes::from_static(&BODY[..BODY.len() / 2])), 1)),
                    // Once the head and the first half are out: an error at once would drop
                    // them unsent.
                    1 => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        let cut = std::io::Error::other("the fake GitHub cuts the answer");
                        Some((Err(cut), 2))
                    }
                    _ => None,
                }
            });
            let length = content_length.then_some(BODY.len() as u64);
            json_stream(Body::from_stream(parts), length)
        }
    }
}

fn json_stream(body: Body, length: Option<u64>) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, length.into());
    }
    response
}
