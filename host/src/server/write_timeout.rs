//! Answers a client does not read. A response is written as fast as the client takes it; one
//! that stops reading leaves the host holding the rest of its answer (a page, a log, a
//! payload). A write that makes no progress for the write timeout fails, which drops the
//! connection and all it held; and while a write is blocked the connection counts as waiting
//! on its client, so at the connection cap it is evicted as a silent socket is.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep},
};

use super::connections::Slot;

/// A socket whose writes give up after `timeout` without progress.
pub(super) struct WriteTimeout<S> {
    inner: S,
    timeout: Duration,
    /// Set while a write is blocked: when it must have made progress by.
    deadline: Option<Pin<Box<Sleep>>>,
    slot: Arc<Slot>,
}

impl<S> WriteTimeout<S> {
    pub fn new(inner: S, timeout: Duration, slot: Arc<Slot>) -> Self {
        Self {
            inner,
            timeout,
            deadline: None,
            slot,
        }
    }

    /// What a write (or flush) of the socket came to: progress clears the deadline; a blocked
    /// write starts it, or fails once it has passed.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match polled {
            Poll::Ready(done) => {
                if self.deadline.take().is_some() {
                    self.slot.write_unblocked();
                }
                Poll::Ready(done)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let slot = &self.slot;
                let deadline = self.deadline.get_or_insert_with(|| {
                    slot.write_blocked();
                    Box::pin(tokio::time::sleep_until(Instant::now() + timeout))
                });
                ready!(deadline.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client did not read its answer within the write timeout",
                )))
            }
        }
    }
}

impl<S> Drop for WriteTimeout<S> {
    fn drop(&mut self) {
        if self.deadline.is_some() {
            self.slot.write_unblocked();
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;
    use crate::server::connections::Connections;

    #[tokio::test]
    async fn a_write_the_reader_does_not_take_fails_after_the_timeout_and_is_evictable() {
        let connections = Arc::new(Connections::default());
        let registered = connections.register();
        let _answering = registered.slot.request_started();
        assert!(!connections.evict_one(), "answering: not evictable");
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let mut socket = WriteTimeout::new(
            ours,
            Duration::from_millis(300),
            Arc::clone(&registered.slot),
        );
        // Taken as it is read: no timeout, however long the whole takes.
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; 8192];
            theirs.read_exact(&mut got).await.unwrap();
            theirs
        });
        socket.write_all(&[7u8; 8192]).await.unwrap();
        let _theirs = reader.await.unwrap();
        // Not read at all: the write fails, and meanwhile the connection could be evicted.
        let started = std::time::Instant::now();
        let blocked = tokio::spawn(async move { socket.write_all(&[7u8; 8192]).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(connections.evict_one(), "a blocked writer is evictable");
        let error = blocked.await.unwrap().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(300));
    }
}
