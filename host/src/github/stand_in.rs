//! A stand-in for GitHub's REST API on a loopback port, for trying plugins on one's own machine
//! (`switchyard serve --github-stand-in`): every call a plugin makes is printed and answered as
//! GitHub answers a success, no token is needed, and nothing leaves the machine. It stores
//! nothing: a write is echoed back with an id, a read is answered 404.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};

/// Longest body printed, in characters; the rest is elided.
const PRINTED_BODY: usize = 400;

/// The stand-in, serving until dropped.
pub struct StandIn {
    /// What `[github] api_url` becomes.
    pub url: String,
    serving: JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

#[derive(Clone)]
struct Ids {
    base: String,
    next: Arc<AtomicU64>,
}

/// Starts the stand-in on a free port of 127.0.0.1.
pub async fn start() -> std::io::Result<StandIn> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let ids = Ids {
        base: url.clone(),
        next: Arc::new(AtomicU64::new(1)),
    };
    let router = Router::new().fallback(answer).with_state(ids);
    let serving = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(error = error.to_string(), "the GitHub stand-in stopped");
        }
    });
    Ok(StandIn { url, serving })
}

/// Prints the call on stdout, one line, and answers it.
async fn answer(State(ids): State<Ids>, method: Method, uri: Uri, body: Bytes) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let sent: Option<Value> = serde_json::from_slice(&body).ok();
    let shown = sent.as_ref().map(Value::to_string).unwrap_or_default();
    let shown = match shown.char_indices().nth(PRINTED_BODY) {
        Some((cut, _)) => format!("{}...", &shown[..cut]),
        None => shown,
    };
    println!("github stand-in: {method} {path} {shown}");
    match method {
        Method::GET | Method::HEAD => (
            StatusCode::NOT_FOUND,
            Json(json!({
                "message": "Not Found (the GitHub stand-in stores nothing to read)",
                "documentation_url": "https://docs.github.com/rest",
            })),
        )
            .into_response(),
        Method::DELETE => StatusCode::NO_CONTENT.into_response(),
        method => {
            let id = ids.next.fetch_add(1, Ordering::Relaxed);
            let now = time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let mut echoed = match sent {
                Some(Value::Object(fields)) => fields,
                _ => serde_json::Map::new(),
            };
            for (key, value) in [
                ("id", json!(id)),
                ("node_id", json!(format!("STAND_IN_{id}"))),
                ("url", json!(format!("{}{}/{id}", ids.base, uri.path()))),
                ("created_at", json!(now)),
                ("updated_at", json!(now)),
            ] {
                echoed.insert(key.to_owned(), value);
            }
            let status = if method == Method::POST {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(Value::Object(echoed))).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn writes_are_echoed_with_an_id_and_reads_are_not_found() {
        let stand_in = super::start().await.unwrap();
        let client = reqwest::Client::new();
        let created: serde_json::Value = client
            .post(format!("{}/repos/o/r/deployments", stand_in.url))
            .json(&serde_json::json!({"ref": "main", "environment": "production"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(created["environment"], "production");
        assert_eq!(created["id"], 1);
        let read = client
            .get(format!("{}/repos/o/r/installation", stand_in.url))
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 404);
    }
}
