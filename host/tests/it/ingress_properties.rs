//! Ingress on arbitrary input: any bytes, headers and form bodies, signed or not, get one of the
//! documented answers (docs/deliveries.md, "What a delivery gets") and never a panic or a 500.

use std::sync::OnceLock;

use axum::{Router, body::Body, http::Request};
use proptest::prelude::*;
use switchyard::{Config, Switchyard, ingress::WebhookSecret, wiring::Secrets};
use tower::ServiceExt as _;

use crate::support::SECRET;

/// A host with no plugins on a temporary store, and a runtime to drive it from proptest's
/// synchronous cases.
fn host() -> &'static (tokio::runtime::Runtime, Router) {
    static HOST: OnceLock<(tokio::runtime::Runtime, Router)> = OnceLock::new();
    HOST.get_or_init(|| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let dir = Box::leak(Box::new(tempfile::tempdir().unwrap()));
        let file = dir.path().join("config.toml");
        let text = format!(
            "[server]\n[store]\npath = \"{}/j.db\"\n",
            dir.path().display()
        );
        let config = Config::parse(&text, &file).unwrap();
        let secrets = Secrets {
            webhook: WebhookSecret::new(SECRET),
            github_token: None,
            github_app_key: None,
        };
        let router =
            runtime.block_on(async { Switchyard::start(config, secrets).await.unwrap().router() });
        (runtime, router)
    })
}

/// Posts to the webhook endpoint; returns the status and whether the body was JSON.
fn post(headers: &[(String, Vec<u8>)], body: Vec<u8>) -> (u16, bool) {
    let (runtime, router) = host();
    let mut request = Request::post("/event_handler");
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_slice());
    }
    let request = request.body(Body::from(body)).unwrap();
    runtime.block_on(async {
        let response = router.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let json = serde_json::from_slice::<serde_json::Value>(&body).is_ok();
        (status, json)
    })
}

fn signed(body: &[u8]) -> (String, Vec<u8>) {
    let signature = WebhookSecret::new(SECRET).sign_sha256(body);
    ("x-hub-signature-256".to_owned(), signature.into_bytes())
}

/// Header values as a client could send them (visible ASCII and spaces, or anything).
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[ -~]{0,40}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

fn event() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"pull_request".to_vec()),
        Just(b"ping".to_vec()),
        Just(b"deployment".to_vec()),
        header_value(),
    ]
}

fn content_type() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"application/json".to_vec()),
        Just(b"application/x-www-form-urlencoded".to_vec()),
        header_value(),
    ]
}

/// JSON shaped like a delivery, with every field of any type.
fn delivery_like() -> impl Strategy<Value = Vec<u8>> {
    let any_json = prop_oneof![
        Just(serde_json::Value::Null),
        any::<i64>().prop_map(serde_json::Value::from),
        "[ -~]{0,12}".prop_map(serde_json::Value::from),
        Just(serde_json::json!({"full_name": "octo/app", "login": "mona"})),
        Just(serde_json::json!([1, "two"])),
    ];
    (any_json.clone(), any_json.clone(), any_json).prop_map(|(action, repository, sender)| {
        serde_json::to_vec(&serde_json::json!({
            "action": action, "repository": repository, "sender": sender
        }))
        .unwrap()
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        delivery_like()
    ]
}

/// Headers of a delivery: each of GitHub's may be missing, well-formed or anything at all.
fn headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    (
        proptest::option::of(event()),
        proptest::option::of(header_value()),
        proptest::option::of(content_type()),
        proptest::option::of(header_value()),
    )
        .prop_map(|(event, delivery, content_type, length)| {
            let named = [
                ("x-github-event", event),
                ("x-github-delivery", delivery),
                ("content-type", content_type),
                ("content-length", length),
            ];
            named
                .into_iter()
                .filter_map(|(name, value)| value.map(|v| (name.to_owned(), v)))
                // A value no HTTP client could send is not a case.
                .filter(|(_, v)| axum::http::HeaderValue::from_bytes(v).is_ok())
                .collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn unsigned_requests_are_refused_before_their_body_is_looked_at(
        headers in headers(),
        body in body(),
    ) {
        let (status, json) = post(&headers, body);
        prop_assert!(matches!(status, 400 | 401 | 413), "{status}");
        prop_assert!(json);
    }

    #[test]
    fn signed_requests_get_a_documented_answer(
        mut headers in headers(),
        body in body(),
    ) {
        // A declared length that is not the body's own is the client's lie, not ours to sign.
        headers.retain(|(name, _)| name != "content-length");
        headers.push(signed(&body));
        let (status, json) = post(&headers, body);
        prop_assert!(matches!(status, 200 | 202 | 400 | 415), "{status}");
        prop_assert!(json);
    }

    #[test]
    fn signed_form_bodies_get_a_documented_answer(
        payload in prop_oneof![delivery_like(), proptest::collection::vec(any::<u8>(), 0..200)],
        other in "[ -~]{0,20}",
        id in "[0-9a-f-]{1,36}",
    ) {
        let payload = String::from_utf8_lossy(&payload).into_owned();
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("other", &other)
            .append_pair("payload", &payload)
            .finish()
            .into_bytes();
        let headers = vec![
            ("x-github-event".to_owned(), b"pull_request".to_vec()),
            ("x-github-delivery".to_owned(), id.into_bytes()),
            ("content-type".to_owned(), b"application/x-www-form-urlencoded".to_vec()),
            signed(&form),
        ];
        let (status, json) = post(&headers, form);
        prop_assert!(matches!(status, 200 | 202 | 400), "{status}");
        prop_assert!(json);
    }
}
