//! Who the dashboard answers, and what it shows them: the sign-in limit behind a proxy, weak
//! tokens refused, private repositories hidden from visitors, sign-out ending every session,
//! foreign `Host`s refused, only GitHub's headers stored, and a deploying replay confirmed.

use switchyard::ingress::WebhookSecret;

use crate::{
    dashboard::{Dash, TOKEN, pull_request},
    support::{EVENT_LOG, HostSpec, SECRET, TestHost},
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

impl Dash {
    /// A sign-in with `token` through a proxy that sent `forwarded` as `X-Forwarded-For`.
    async fn sign_in_from(&self, token: &str, forwarded: &str) -> u16 {
        self.http
            .post(format!("{}/dashboard/sign-in", self.host.base))
            .header("x-forwarded-for", forwarded)
            .form(&[("token", token), ("next", "/dashboard")])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_wrong_tokens_lock_out_their_sender_only() {
    let spec = HostSpec {
        server: "trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]".to_owned(),
        plugins: EVENT_LOG.to_owned(),
        ..HostSpec::default()
    };
    let dash = Dash::start_with("", spec).await;
    // A build guessing through the proxy, writing a new first address each time: the proxy
    // appended the address it saw, and that is the one counted.
    for n in 0..5 {
        let forged = format!("192.0.2.{n}, 203.0.113.5");
        assert_eq!(dash.sign_in_from("wrong", &forged).await, 401, "guess {n}");
    }
    assert_eq!(
        dash.sign_in_from(TOKEN, "192.0.2.99, 203.0.113.5").await,
        429
    );
    // The operator, also behind the proxy (through a second, internal one), signs in.
    assert_eq!(
        dash.sign_in_from(TOKEN, "198.51.100.1, 10.1.2.3").await,
        303
    );
    // IPv6: the whole /64 shares its five tries; the next /64 has its own.
    for n in 1..=5 {
        let address = format!("2001:db8:0:1::{n}");
        assert_eq!(dash.sign_in_from("wrong", &address).await, 401);
    }
    assert_eq!(dash.sign_in_from(TOKEN, "2001:db8:0:1:ffff::9").await, 429);
    assert_eq!(dash.sign_in_from(TOKEN, "2001:db8:0:2::1").await, 303);
    dash.host.stop().await;

    // Without trusted proxies the header is the client's own words: not believed, so a
    // forged address escapes nothing.
    let dash = Dash::start("", EVENT_LOG.to_owned()).await;
    for n in 0..5 {
        let forged = format!("203.0.113.{n}");
        assert_eq!(dash.sign_in_from("wrong", &forged).await, 401);
    }
    assert_eq!(dash.sign_in_from(TOKEN, "198.51.100.1").await, 429);
    dash.host.stop().await;
}

#[tokio::test]
async fn a_weak_token_is_refused_at_load_without_being_shown() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    std::fs::write(&file, format!("alice:{TOKEN}\nbob:bob-password-1\n")).unwrap();
    let host = TestHost::start(HostSpec {
        dashboard: format!(
            "enabled = true\ntokens_file = {:?}",
            file.display().to_string()
        ),
        ..HostSpec::default()
    })
    .await;
    let (status, page) = host.get("/dashboard").await;
    assert_eq!(status, 503);
    assert!(page.contains("line 2: the token is too weak"), "{page}");
    assert!(!page.contains("bob-password-1"), "{page}");
    host.stop().await;
}

#[tokio::test]
async fn the_dashboard_answers_only_for_its_own_host_and_aliases() {
    let dash = Dash::start(
        "aliases = [\"http://localhost:7777\"]",
        EVENT_LOG.to_owned(),
    )
    .await
    .signed_in()
    .await;
    let with_host = |host: &'static str| {
        let mut request = dash
            .http
            .get(format!("{}/dashboard/deliveries", dash.host.base))
            .header("host", host);
        if let Some(cookie) = &dash.cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };
    // A page whose name was rebound to this address sends its own name as Host.
    for host in ["rebound.example", "rebound.example:9393", "127.0.0.1:1", ""] {
        let response = with_host(host).await.unwrap();
        assert_eq!(response.status().as_u16(), 421, "{host}");
        let page = response.text().await.unwrap();
        assert!(!page.contains("id=\"deliveries\""), "{page}");
    }
    assert_eq!(with_host("localhost:7777").await.unwrap().status(), 200);
    assert_eq!(dash.get("/dashboard/deliveries").await.status(), 200);
    // The webhook and the log links are not the dashboard's: they answer any Host.
    let webhook = dash
        .http
        .get(format!("{}/healthz", dash.host.base))
        .header("host", "rebound.example")
        .send()
        .await
        .unwrap();
    assert_eq!(webhook.status(), 200);

    // An action from another origin is refused, whichever Host it names.
    let cancel = dash
        .http
        .post(format!("{}/dashboard/jobs/1/cancel", dash.host.base))
        .header("host", dash.host.base.trim_start_matches("http://"))
        .header("origin", "http://rebound.example:9393")
        .header("sec-fetch-site", "same-origin")
        .header("cookie", dash.cookie.clone().unwrap())
        .form(&[("csrf", "whatever")])
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 403);
    dash.host.stop().await;
}
