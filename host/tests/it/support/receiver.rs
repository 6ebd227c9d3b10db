//! A recording HTTP receiver on 127.0.0.1, standing in for Slack's incoming webhooks and
//! PagerDuty's Events API. Answers `202 {"status":"success"}` unless told otherwise.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::Bytes,
    http::{StatusCode, Uri},
    response::IntoResponse,
};
use serde_json::Value;

#[derive(Default)]
struct State {
    received: Vec<(String, Value)>,
    script: VecDeque<(u16, String)>,
}

pub struct Receiver {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let app = Router::new().fallback(move |uri: Uri, body: Bytes| {
            let state = Arc::clone(&shared);
            async move {
                let mut state = state.lock().unwrap();
                let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
                state.received.push((uri.path().to_owned(), body));
                let (status, text) = state
                    .script
                    .pop_front()
                    .unwrap_or((202, r#"{"status":"success"}"#.to_owned()));
                (StatusCode::from_u16(status).unwrap(), text).into_response()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    /// The next request gets this answer.
    pub fn answer_next(&self, status: u16, body: &str) {
        self.state
            .lock()
            .unwrap()
            .script
            .push_back((status, body.to_owned()));
    }

    /// `(path, JSON body)` of every request, in order.
    pub fn received(&self) -> Vec<(String, Value)> {
        self.state.lock().unwrap().received.clone()
    }
}
