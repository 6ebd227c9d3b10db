//! Reading a request body within bounds, before anything is known about who sent it: a declared
//! length (GitHub always sends `Content-Length`; a body of unknown length is refused, so no
//! buffer ever grows), a cap per body checked before a byte is read, a time limit, and a budget
//! of body bytes across all requests being read at once. Whoever connects can make the host
//! hold at most the budget in bodies, however many connections they open.

use std::{sync::Arc, time::Duration};

use axum::{
    body::{Body, Bytes},
    extract::Request,
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use http_body_util::BodyExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http_error::error_response;
use crate::server::Connection;

/// Seconds a client refused for lack of budget is asked to wait.
const RETRY_AFTER_SECS: u64 = 1;

/// The bounds every request body is read within.
#[derive(Clone)]
pub struct BodyLimits {
    budget: Arc<Semaphore>,
    budget_bytes: usize,
    timeout: Duration,
}

/// A body read in full. Its bytes count against the budget until this is dropped: keep it
/// until the signature is checked, so unsigned bodies never outgrow the budget.
pub struct ReadBody {
    pub bytes: Bytes,
    _budget: OwnedSemaphorePermit,
}

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("body larger than {}", in_units(*.max))]
    TooLarge { max: usize },
    #[error("the server is reading too many request bodies at once; retry shortly")]
    Busy,
    #[error("the body did not arrive within {} s", .0.as_secs())]
    TimedOut(Duration),
    #[error("invalid Content-Length header")]
    BadLength,
    #[error("a body needs a Content-Length header")]
    NoLength,
    #[error("could not read the body: {0}")]
    Unreadable(String),
}

impl BodyError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
            Self::NoLength => StatusCode::LENGTH_REQUIRED,
            Self::BadLength | Self::Unreadable(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The answer to send, with `Retry-After` when the budget was the reason.
    pub fn response(&self, status: StatusCode) -> Response {
        let mut response = error_response(status, &self.to_string());
        if matches!(self, Self::Busy) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

impl IntoResponse for BodyError {
    fn into_response(self) -> Response {
        self.response(self.status())
    }
}

impl BodyLimits {
    pub fn new(budget_bytes: usize, timeout: Duration) -> Self {
        Self {
            budget: Arc::new(Semaphore::new(budget_bytes)),
            budget_bytes,
            timeout,
        }
    }

    /// Body bytes that may be held at once.
    pub fn budget_bytes(&self) -> usize {
        self.budget_bytes
    }

    /// Reads `request`'s body, at most `max` bytes. Its length must be known (declared, or an
    /// in-process body's own); over `max` it is refused before reading. The budget is taken for
    /// the whole length up front, and a body that would go past it is refused at once rather
    /// than waited for: waiting would let stalled clients queue up behind each other. While
    /// the body arrives, its connection may be evicted to make room for others.
    pub async fn read(&self, request: Request, max: usize) -> Result<(Parts, ReadBody), BodyError> {
        let (parts, body) = request.into_parts();
        let length = match declared_length(&parts.headers)? {
            Some(length) => length,
            None => http_body::Body::size_hint(&body)
                .exact()
                .ok_or(BodyError::NoLength)?,
        };
        if length > max as u64 {
            return Err(BodyError::TooLarge { max });
        }
        let length = length as usize;
        let budget = self.take(length)?;
        let _reading = parts
            .extensions
            .get::<Connection>()
            .map(Connection::reading_body);
        let read = tokio::time::timeout(self.timeout, collect(body, length));
        let bytes = read
            .await
            .map_err(|_| BodyError::TimedOut(self.timeout))??;
        Ok((
            parts,
            ReadBody {
                bytes,
                _budget: budget,
            },
        ))
    }

    fn take(&self, bytes: usize) -> Result<OwnedSemaphorePermit, BodyError> {
        let bytes = u32::try_from(bytes).map_err(|_| BodyError::Busy)?;
        Arc::clone(&self.budget)
            .try_acquire_many_owned(bytes)
            .map_err(|_| BodyError::Busy)
    }
}

/// `max` in MiB or KiB where it is a whole number of them.
fn in_units(max: usize) -> String {
    match max {
        m if m >= 1 << 20 && m % (1 << 20) == 0 => format!("{} MiB", m >> 20),
        m if m >= 1 << 10 && m % (1 << 10) == 0 => format!("{} KiB", m >> 10),
        m => format!("{m} bytes"),
    }
}

/// Reads a body of `length` bytes into one buffer of exactly that size.
async fn collect(mut body: Body, length: usize) -> Result<Bytes, BodyError> {
    let mut buffer = Vec::with_capacity(length);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| BodyError::Unreadable(error.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        // hyper holds a body to its Content-Length; an in-process body could lie.
        if buffer.len() + data.len() > length {
            return Err(BodyError::Unreadable(
                "longer than its declared length".into(),
            ));
        }
        buffer.extend_from_slice(&data);
    }
    Ok(Bytes::from(buffer))
}

fn declared_length(headers: &HeaderMap) -> Result<Option<u64>, BodyError> {
    let Some(value) = headers.get(header::CONTENT_LENGTH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .map(Some)
        .ok_or(BodyError::BadLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(declared: Option<&str>, body: Body) -> Request {
        let mut builder = Request::post("/");
        if let Some(length) = declared {
            builder = builder.header(header::CONTENT_LENGTH, length);
        }
        builder.body(body).unwrap()
    }

    fn chunked(chunks: usize, size: usize) -> Body {
        let frames = (0..chunks).map(move |_| Ok::<_, std::io::Error>(vec![b'x'; size]));
        Body::from_stream(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn bodies_within_bounds_are_read_whole() {
        let limits = BodyLimits::new(1 << 20, Duration::from_secs(5));
        let (_, body) = limits
            .read(request(Some("5"), Body::from("hello")), 100)
            .await
            .unwrap();
        assert_eq!(body.bytes, "hello");
        // Declared, and sent in chunks.
        let (_, body) = limits
            .read(request(Some("10000"), chunked(10, 1000)), 20_000)
            .await
            .unwrap();
        assert_eq!(body.bytes.len(), 10_000);
        // In process, a body knows its own length.
        let (_, body) = limits
            .read(request(None, Body::from(vec![0; 300])), 20_000)
            .await
            .unwrap();
        assert_eq!(body.bytes.len(), 300);
    }

    #[tokio::test]
    async fn bodies_past_a_bound_are_refused() {
        let limits = BodyLimits::new(10_000, Duration::from_secs(5));
        // (declared length, body, max, expected status)
        let cases = [
            (Some("101"), Body::from("x"), 100, 413),
            (None, Body::from(vec![0; 101]), 100, 413),
            (Some("20000"), Body::empty(), 50_000, 503),
            (None, chunked(3, 50), 100, 411),
            (Some("10"), chunked(3, 50), 100, 400),
            (Some("ten"), Body::empty(), 100, 400),
            (Some("-1"), Body::empty(), 100, 400),
        ];
        for (declared, body, max, status) in cases {
            let refused = limits.read(request(declared, body), max).await.err();
            let refused = refused.expect("refused");
            assert_eq!(refused.status().as_u16(), status, "{declared:?}: {refused}");
        }
    }

    #[tokio::test]
    async fn the_budget_is_shared_and_given_back() {
        let limits = BodyLimits::new(1000, Duration::from_secs(5));
        let (_, held) = limits
            .read(request(Some("600"), Body::from(vec![0; 600])), 1000)
            .await
            .unwrap();
        let refused = limits
            .read(request(Some("600"), Body::from(vec![0; 600])), 1000)
            .await
            .err()
            .unwrap();
        assert!(matches!(refused, BodyError::Busy));
        let response = refused.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        drop(held);
        limits
            .read(request(Some("600"), Body::from(vec![0; 600])), 1000)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_stalled_body_times_out() {
        let limits = BodyLimits::new(1000, Duration::from_millis(100));
        let stalled = futures_util::stream::pending::<Result<Vec<u8>, std::io::Error>>();
        let refused = limits
            .read(request(Some("10"), Body::from_stream(stalled)), 100)
            .await
            .err()
            .unwrap();
        assert_eq!(refused.status(), StatusCode::REQUEST_TIMEOUT);
    }
}
