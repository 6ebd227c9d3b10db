//! A bare webhook server the ingress benchmark runs side by side with Switchyard: axum, the
//! host's HMAC-SHA256 check of the body and a full JSON parse, no journal and no plugins. Secret
//! `bench-secret`, as the benchmark signs. The benchmark builds and starts it; by hand:
//!
//! ```sh
//! cargo run --release -p switchyard --example bare_webhook_server -- 39001
//! ```

use axum::{
    Router,
    body::Bytes,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use switchyard::ingress::{SignatureHeaders, WebhookSecret, verify};

async fn receive(headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = SignatureHeaders {
        sha256: headers
            .get("x-hub-signature-256")
            .and_then(|value| value.to_str().ok()),
        sha1: None,
    };
    if verify(&WebhookSecret::new("bench-secret"), signature, &body, false).is_err() {
        return StatusCode::UNAUTHORIZED;
    }
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(_) => StatusCode::ACCEPTED,
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|port| port.parse().ok())
        .expect("usage: bare_webhook_server PORT");
    let app = Router::new().route("/event_handler", post(receive));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    axum::serve(listener, app).await.unwrap();
}
