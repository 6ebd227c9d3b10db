//! Who the dashboard answers, and what it shows them: the sign-in limit behind a proxy, weak
//! tokens refused, private repositories hidden from visitors, sign-out ending every session,
//! foreign `Host`s refused, only GitHub's headers stored, and a deploying replay confirmed.

use switchyard::ingress::WebhookSecret;

use crate::{
    dashboard::{Dash, pull_request},
    support::{EVENT_LOG, SECRET},
};

/// A delivery signed with the test secret, with `extra` headers beside GitHub's.
async fn send_with(dash: &Dash, delivery: &str, extra: &[(&str, &str)]) -> u16 {
    let body = serde_json::to_vec(&pull_request("octo/one", "headers")).unwrap();
    let signature = WebhookSecret::new(SECRET).sign_sha256(&body);
    let mut headers = vec![
        ("content-type", "application/json"),
        ("x-github-event", "pull_request"),
        ("x-github-delivery", delivery),
        ("x-hub-signature-256", signature.as_str()),
    ];
    headers.extend_from_slice(extra);
    dash.host.post(&headers, body).await.0
}

#[tokio::test]
async fn only_githubs_headers_are_stored_with_a_delivery() {
    let dash = Dash::start("", EVENT_LOG.to_owned())
        .await
        .signed_in()
        .await;
    let foreign = [
        ("x-api-key", "key-of-the-sender-0123"),
        ("x-forwarded-for", "198.51.100.7"),
        ("user-agent", "GitHub-Hookshot/abc123"),
        ("x-github-hook-id", "4242"),
    ];
    assert_eq!(send_with(&dash, "foreign-headers", &foreign).await, 202);
    dash.host.ended_jobs("foreign-headers", 1).await;
    let delivery = dash
        .host
        .host_state
        .journal
        .delivery("foreign-headers")
        .await
        .unwrap()
        .unwrap();
    let names: Vec<&str> = delivery.headers.iter().map(|(n, _)| n.as_str()).collect();
    for name in ["x-api-key", "x-forwarded-for", "host", "accept"] {
        assert!(!names.contains(&name), "{name} stored: {names:?}");
    }
    for name in [
        "content-type",
        "x-github-event",
        "x-github-delivery",
        "x-github-hook-id",
        "user-agent",
        "content-length",
    ] {
        assert!(names.contains(&name), "{name} not stored: {names:?}");
    }
    let page = dash.ok("/dashboard/deliveries/foreign-headers").await;
    assert!(!page.contains("key-of-the-sender"), "{page}");
    assert!(!page.contains("198.51.100.7"), "{page}");
    assert!(page.contains("<th>x-hub-signature-256</th><td>sha256=********</td>"));
    assert!(page.contains("<th>user-agent</th><td>GitHub-Hookshot/abc123</td>"));
    dash.host.stop().await;
}
