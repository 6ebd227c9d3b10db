//! Serving HTTP to whoever connects, within bounds. A webhook receiver is reachable by anyone, so
//! every connection is capped in time (its request's headers must arrive within the header
//! timeout, which also closes silent and idle keep-alive sockets) and in number (at most
//! `max_connections`, under the open-file limit); an answer the client does not read fails after
//! the write timeout, and meanwhile the connection may be evicted (`write_timeout`). HTTP/1.1 only: GitHub sends deliveries over
//! HTTP/1.1, and HTTP/2's many streams per connection would multiply what one socket can hold.
//! Request bodies are bounded by ingress (`ingress::BodyLimits`), job logs by `job_log`.

mod connections;
mod open_files;
mod tls;
mod write_timeout;

pub use connections::{Connection, ReadingBody};
pub use tls::{TlsCertificates, TlsError};

use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    extract::{ConnectInfo, Request},
};
use http_body_util::BodyExt as _;
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream},
};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;
use write_timeout::WriteTimeout;

use connections::{Connections, Registered};

/// Most bytes hyper buffers per connection, reading or writing. Headers must fit (GitHub's are
/// about 1 KB; more is answered 431); bodies stream through it in pieces, so it bounds what a
/// slow client pins per socket (hyper's buffer can take about twice this).
const CONNECTION_BUFFER: usize = 16 * 1024;

/// How long to wait before accepting again when `accept` fails (out of descriptors, say).
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// The bounds on connections.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    /// How long a write of an answer may wait on a client that does not read.
    pub write_timeout: Duration,
}

impl ServerLimits {
    /// Raises the open-file limit as far as allowed, and lowers the connection cap to what fits
    /// under it, with a warning that names the setting.
    pub fn fit_open_files(mut self) -> Self {
        if let Some(limit) = open_files::raise_limit() {
            let room = open_files::room_for_connections(limit);
            if self.max_connections > room {
                tracing::warn!(
                    max_connections = self.max_connections,
                    open_file_limit = limit,
                    reserved = open_files::RESERVED,
                    "[server] max_connections lowered to {room} to fit the open-file limit"
                );
                self.max_connections = room;
            }
        }
        self
    }
}

/// Serves `router` on `listener` (over TLS when `tls` is given) until `shutdown` completes; then
/// asks every connection to close once its current request is answered, and waits for them at
/// most `drain`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    tls: Option<Arc<TlsCertificates>>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let tls = tls.map(|certificates| certificates.acceptor());
    let connections = Arc::new(Connections::default());
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(CONNECTION_BUFFER)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &connections, limits.max_connections) => accepted,
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(error = error.to_string(), "cannot accept a connection");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        let registered = connections.register();
        let (http, router) = (http.clone(), router.clone());
        let peer = stream.peer_addr().ok();
        let stream = WriteTimeout::new(stream, limits.write_timeout, Arc::clone(&registered.slot));
        match &tls {
            None => tokio::spawn(serve_connection(stream, peer, registered, http, router)),
            Some(tls) => tokio::spawn(serve_tls_connection(
                tls.clone(),
                stream,
                peer,
                registered,
                http,
                router,
                limits.header_timeout,
            )),
        };
    }
    drop(listener);
    connections.close_all();
    let drained = async {
        while connections.count() > 0 {
            connections.one_closed().await;
        }
    };
    if tokio::time::timeout(drain, drained).await.is_err() {
        tracing::warn!(
            connections = connections.count(),
            "connections still open after the grace period; closing them"
        );
    }
}

/// Accepts the next connection once there is room for it. At the cap, a connection that
/// answers nothing is closed to make room (see `connections`); when every connection is
/// answering a request, new ones wait in the listen backlog until one ends.
async fn accept(
    listener: &TcpListener,
    connections: &Connections,
    max: usize,
) -> std::io::Result<TcpStream> {
    while connections.count() >= max {
        connections.evict_one();
        connections.one_closed().await;
    }
    let (stream, _) = listener.accept().await?;
    // Answers are small and written whole: don't hold them back to coalesce.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The TLS handshake counts against the header timeout: a client that opens a socket and says
/// nothing costs no more over TLS than over plain HTTP. A connection evicted mid-handshake is
/// dropped like any other answering nothing.
async fn serve_tls_connection(
    tls: TlsAcceptor,
    stream: WriteTimeout<TcpStream>,
    peer: Option<SocketAddr>,
    registered: Registered,
    http: http1::Builder,
    router: Router,
    header_timeout: Duration,
) {
    let handshake = tokio::time::timeout(header_timeout, tls.accept(stream));
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => {
                tracing::debug!(error = error.to_string(), "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!("TLS handshake not finished within the header timeout");
                return;
            }
        },
        () = registered.slot.evict.cancelled() => return,
        () = registered.slot.close.cancelled() => return,
    };
    serve_connection(stream, peer, registered, http, router).await;
}

/// Serves one connection's requests; each carries the peer's address (axum's `ConnectInfo`),
/// which the dashboard's sign-in limit counts by.
async fn serve_connection(
    stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
    peer: Option<SocketAddr>,
    registered: Registered,
    http: http1::Builder,
    router: Router,
) {
    let slot = Arc::clone(&registered.slot);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        // In flight until the response's body is sent: a streaming log is never evicted.
        let in_flight = slot.request_started();
        let mut request = request.map(Body::new);
        request
            .extensions_mut()
            .insert(Connection(Arc::clone(&slot)));
        if let Some(peer) = peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await?;
            Ok::<_, Infallible>(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _ = &in_flight;
                    frame
                }))
            }))
        }
    });
    let connection = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        // Evicted: dropped at once. Only a connection answering nothing is ever evicted, and
        // a graceful close would wait for one that has sent part of its headers.
        () = registered.slot.evict.cancelled() => Ok(()),
        () = registered.slot.close.cancelled() => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                served = connection.as_mut() => served,
                () = registered.slot.evict.cancelled() => Ok(()),
            }
        }
    };
    if let Err(error) = served {
        // Timeouts, resets and malformed requests: the client's doing, not worth a warning.
        tracing::debug!(error = error.to_string(), "connection ended with an error");
    }
}
