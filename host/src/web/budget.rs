//! The memory dashboard readers may cost at once: one budget of bytes (`[dashboard]
//! render_budget_mib`) that every page, payload download and follow event is read, rendered
//! and sent under. A request reserves what it may need before it reads anything (a payload
//! read back from the journal, a log window, the page), gives back what it did not use once
//! the page is made, and keeps the page's own size reserved until the last of it has been
//! handed to the socket, which happens as fast as the client reads, or not at all until the
//! server's write timeout drops a client that does not. Past the budget a request waits a few
//! seconds, then gets 503 with `Retry-After`: readers cannot grow the host past its bound,
//! however many there are or however slowly they read.

use std::{sync::Arc, time::Duration};

use axum::{
    body::{Body, Bytes},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse as _, Response},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a request waits for room in the budget before it is turned away.
const WAIT: Duration = Duration::from_secs(5);

/// Bytes of a page handed to the socket at a time: what a connection holds beyond the budget.
const PIECE: usize = 16 * 1024;

/// The dashboard's budget of bytes.
#[derive(Clone)]
pub struct RenderBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

/// Bytes reserved in the budget, given back when dropped.
pub struct Reserved(OwnedSemaphorePermit);

impl RenderBudget {
    pub fn new(bytes: usize) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(bytes)),
            total: bytes,
        }
    }

    /// Reserves `bytes` (at most the whole budget, so a request always fits once the others
    /// are done), waiting a little for room; the answer to send when there is none.
    pub async fn reserve(&self, bytes: usize) -> Result<Reserved, Response> {
        let wanted = u32::try_from(bytes.min(self.total)).unwrap_or(u32::MAX);
        let acquire = Arc::clone(&self.bytes).acquire_many_owned(wanted);
        match tokio::time::timeout(WAIT, acquire).await {
            Ok(Ok(permit)) => Ok(Reserved(permit)),
            _ => Err(busy()),
        }
    }

    /// Bytes not reserved now.
    #[cfg(test)]
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }
}

fn busy() -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        "the dashboard is serving as much as it may at once; retry shortly",
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    response
}

impl Reserved {
    /// Keeps `bytes` reserved (never more than was) and gives the rest back.
    pub fn shrink(&mut self, bytes: usize) {
        let surplus = self.0.num_permits().saturating_sub(bytes);
        drop(self.0.split(surplus));
    }

    /// `page` as a response body, sent a piece at a time with its size kept reserved until
    /// the last piece is taken: a client that does not read holds its page in the budget.
    pub fn body(mut self, page: Bytes) -> Body {
        self.shrink(page.len());
        let pieces = futures_util::stream::unfold((page, self), |(mut page, reserved)| async {
            if page.is_empty() {
                return None;
            }
            // Copied, not sliced: a slice would keep the whole page alive in the socket's
            // buffer after its reservation is given back.
            let piece = Bytes::copy_from_slice(&page.split_to(PIECE.min(page.len())));
            Some((Ok::<_, std::convert::Infallible>(piece), (page, reserved)))
        });
        Body::from_stream(pieces)
    }

    /// Bytes reserved.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.0.num_permits()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;

    #[tokio::test]
    async fn a_page_keeps_its_size_reserved_until_its_last_piece_is_taken() {
        let budget = RenderBudget::new(1 << 20);
        let mut reserved = budget.reserve(600 << 10).await.unwrap();
        assert_eq!(budget.available(), (1 << 20) - (600 << 10));
        reserved.shrink(500 << 10);
        assert_eq!(reserved.bytes(), 500 << 10);
        let page = Bytes::from(vec![b'x'; 3 * PIECE + 5]);
        let mut body = reserved.body(page.clone());
        assert_eq!(budget.available(), (1 << 20) - page.len());
        let mut got = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            assert!(data.len() <= PIECE);
            got.extend_from_slice(&data);
        }
        assert_eq!(got, page);
        drop(body);
        assert_eq!(budget.available(), 1 << 20);
    }

    #[tokio::test]
    async fn past_the_budget_a_request_waits_then_is_turned_away() {
        let budget = RenderBudget::new(1000);
        let held = budget.reserve(800).await.unwrap();
        let refused = budget.reserve(300).await.err().expect("no room");
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "2");
        // Room made while it waits: the request goes ahead.
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(300).await.map(|r| r.bytes()).ok() }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(held);
        assert_eq!(waiting.await.unwrap(), Some(300));
    }
}
