//! Waiting for a server started as a separate process; shared with the ingress benchmark.

use std::time::{Duration, Instant};

/// Returns once 127.0.0.1:`port` accepts connections; panics after 30 s.
pub async fn wait_until_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
