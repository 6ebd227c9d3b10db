use serde_json::json;
use switchyard::{ingress::WebhookSecret, journal::JobState};

use crate::support::{EVENT_LOG, HostSpec, SECRET, TestHost, behaviours, example};

fn event_log_host() -> HostSpec {
    HostSpec {
        plugins: EVENT_LOG.to_owned(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_signed_delivery_reaches_the_event_log() {
    let host = TestHost::start(event_log_host()).await;
    let payload = example("pull_request", Some("opened"));
    let (status, answer) = host.send("pull_request", "d-signed-1", &payload).await;
    let job = switchyard::journal::JobId(1);
    let salt = host.host_state.journal.job(job).await.unwrap().link_salt;
    assert_eq!(
        (status, &answer),
        (
            202,
            &json!({"delivery": "d-signed-1", "jobs": [{"job": 1, "plugin": "event-log", "log": host.host_state.links.url(job, salt)}]})
        )
    );

    let jobs = host.ended_jobs("d-signed-1", 1).await;
    assert_eq!(
        (jobs[0].plugin.as_str(), jobs[0].state),
        ("event-log", JobState::Succeeded)
    );
    let logged = host.events_logged();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0]["delivery"], "d-signed-1");
    assert_eq!(logged[0]["event"], "pull_request");
    assert_eq!(logged[0]["action"], "opened");
    assert_eq!(logged[0]["repository"], payload["repository"]["full_name"]);
    assert_eq!(logged[0]["sender"], payload["sender"]["login"]);
    assert!(logged[0]["sender"].is_string());
    assert!(logged[0]["received_at"].as_str().unwrap().ends_with('Z'));
    // The job wrote no log lines: its log exists and is empty.
    assert_eq!(
        host.get(&host.log_path(jobs[0].id).await).await,
        (200, String::new())
    );
    host.stop().await;
}

#[tokio::test]
async fn every_bad_input_gets_its_answer_and_dispatches_nothing() {
    let host = TestHost::start(event_log_host()).await;
    let body = serde_json::to_vec(&example("pull_request", Some("opened"))).unwrap();
    let signed = |b: &[u8]| WebhookSecret::new(SECRET).sign_sha256(b);
    let good = signed(&body);
    let wrong = WebhookSecret::new("not-the-secret").sign_sha256(&body);
    let malformed = b"{\"action\": \"opened\",".to_vec();
    let malformed_sig = signed(&malformed);
    let text_sig = signed(b"hello");
    let huge = vec![b' '; 26 * 1024 * 1024];
    let json = ("content-type", "application/json");
    // (what, headers, body, status, fragment of the error)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "no signature",
            vec![
                json,
                ("x-github-event", "pull_request"),
                ("x-github-delivery", "bad-1"),
            ],
            body.clone(),
            401,
            "missing X-Hub-Signature-256",
        ),
        (
            "wrong secret",
            vec![
                json,
                ("x-github-event", "pull_request"),
                ("x-github-delivery", "bad-2"),
                ("x-hub-signature-256", &wrong),
            ],
            body.clone(),
            401,
            "does not match",
        ),
        (
            "sha1 not enabled",
            vec![
                json,
                ("x-github-event", "pull_request"),
                ("x-github-delivery", "bad-3"),
                ("x-hub-signature", "sha1=00"),
            ],
            body.clone(),
            401,
            "accept_sha1",
        ),
        (
            "no event header",
            vec![
                json,
                ("x-github-delivery", "bad-4"),
                ("x-hub-signature-256", &good),
            ],
            body.clone(),
            400,
            "missing X-GitHub-Event",
        ),
        (
            "no delivery header",
            vec![
                json,
                ("x-github-event", "pull_request"),
                ("x-hub-signature-256", &good),
            ],
            body.clone(),
            400,
            "missing X-GitHub-Delivery",
        ),
        (
            "bad event header",
            vec![
                json,
                ("x-github-event", "Pull Request"),
                ("x-github-delivery", "bad-6"),
                ("x-hub-signature-256", &good),
            ],
            body.clone(),
            400,
            "invalid X-GitHub-Event",
        ),
        (
            "malformed JSON",
            vec![
                json,
                ("x-github-event", "pull_request"),
                ("x-github-delivery", "bad-7"),
                ("x-hub-signature-256", &malformed_sig),
            ],
            malformed.clone(),
            400,
            "the payload is not valid JSON",
        ),
        (
            "text body",
            vec![
                ("content-type", "text/plain"),
                ("x-github-event", "pull_request"),
                ("x-github-delivery", "bad-8"),
                ("x-hub-signature-256", &text_sig),
            ],
            b"hello".to_vec(),
            415,
            "unsupported content type",
        ),
        (
            "over 25 MiB",
            vec![
                json,
                ("x-github-event", "pull_request"),
                ("x-github-delivery", "bad-9"),
            ],
            huge,
            413,
            "larger than 25 MiB",
        ),
    ];
    for (what, headers, body, status, fragment) in cases {
        let (got, answer) = host.post(&headers, body).await;
        assert_eq!(got, status, "{what}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(fragment),
            "{what}: {error:?} lacks {fragment:?}"
        );
        assert!(!error.contains(SECRET), "{what}: the secret leaked");
    }
    let (status, _) = host.get("/event_handler").await;
    assert_eq!(status, 405);

    // Nothing was stored or dispatched for any of them.
    for n in 1..=9 {
        assert!(
            host.host_state
                .journal
                .jobs_of(&format!("bad-{n}"))
                .await
                .unwrap()
                .is_empty()
        );
    }
    host.nothing_else_dispatched().await;
    host.stop().await;
}

#[tokio::test]
async fn signed_bodies_of_the_wrong_shape_are_refused_naming_what_is_wrong() {
    let host = TestHost::start(event_log_host()).await;
    let mut wrong_types = example("pull_request", Some("opened"));
    wrong_types["action"] = json!(1);
    let mut repository_text = example("pull_request", Some("opened"));
    repository_text["repository"] = json!("octo/app");
    let mut invalid_utf8 = br#"{"action":"opened","ignored":"caf"#.to_vec();
    invalid_utf8.extend_from_slice(b"\xc3\"}");
    // (body, error)
    let cases: [(Vec<u8>, &str); 6] = [
        (
            invalid_utf8,
            "the payload is not UTF-8 (invalid byte at offset 33)",
        ),
        (b"[null]".to_vec(), "the payload must be a JSON object"),
        (b"\"x\"".to_vec(), "the payload must be a JSON object"),
        (b"[]".to_vec(), "the payload must be a JSON object"),
        (
            serde_json::to_vec(&wrong_types).unwrap(),
            "invalid payload: \"action\" must be a string",
        ),
        (
            serde_json::to_vec(&repository_text).unwrap(),
            "invalid payload: \"repository\" must be an object",
        ),
    ];
    for (n, (body, expected)) in cases.into_iter().enumerate() {
        let delivery = format!("shape-{n}");
        let signature = WebhookSecret::new(SECRET).sign_sha256(&body);
        let headers = [
            ("content-type", "application/json"),
            ("x-github-event", "pull_request"),
            ("x-github-delivery", delivery.as_str()),
            ("x-hub-signature-256", signature.as_str()),
        ];
        let (status, answer) = host.post(&headers, body).await;
        assert_eq!(status, 400, "{expected}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.starts_with(expected), "{error:?} is not {expected:?}");
        let stored = host.host_state.journal.delivery(&delivery).await.unwrap();
        assert!(stored.is_none(), "{delivery} was stored");
    }
    host.nothing_else_dispatched().await;
    host.stop().await;
}

#[tokio::test]
async fn form_encoded_deliveries_are_accepted() {
    let host = TestHost::start(event_log_host()).await;
    let payload = serde_json::to_string(&example("push", None)).unwrap();
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload)
        .finish();
    let signature = WebhookSecret::new(SECRET).sign_sha256(body.as_bytes());
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("x-github-event", "push"),
        ("x-github-delivery", "form-1"),
        ("x-hub-signature-256", signature.as_str()),
    ];
    let (status, _) = host.post(&headers, body.into_bytes()).await;
    assert_eq!(status, 202);
    host.ended_jobs("form-1", 1).await;
    assert_eq!(host.events_logged()[0]["event"], "push");
    host.stop().await;
}

#[tokio::test]
async fn sha1_signatures_are_accepted_only_when_enabled() {
    use hmac::{Hmac, Mac};
    let host = TestHost::start(HostSpec {
        server: "accept_sha1 = true".into(),
        ..event_log_host()
    })
    .await;
    let body = br#"{"action":"created","repository":{"full_name":"octo/repo"}}"#.to_vec();
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let signature = format!("sha1={}", hex::encode(mac.finalize().into_bytes()));
    let headers = [
        ("content-type", "application/json"),
        ("x-github-event", "label"),
        ("x-github-delivery", "sha1-1"),
        ("x-hub-signature", signature.as_str()),
    ];
    let (status, _) = host.post(&headers, body.clone()).await;
    assert_eq!(status, 202);
    let mut bad = headers;
    bad[2] = ("x-github-delivery", "sha1-2");
    bad[3] = (
        "x-hub-signature",
        "sha1=0000000000000000000000000000000000000000",
    );
    let (status, _) = host.post(&bad, body).await;
    assert_eq!(status, 401);
    host.stop().await;
}

#[tokio::test]
async fn ping_is_answered_and_not_dispatched() {
    let host = TestHost::start(event_log_host()).await;
    let (status, answer) = host.send("ping", "ping-1", &example("ping", None)).await;
    assert_eq!((status, answer["pong"].as_bool()), (200, Some(true)));
    let stored = host.host_state.journal.delivery("ping-1").await.unwrap();
    assert!(stored.is_none(), "a ping was stored");
    assert!(
        host.host_state
            .journal
            .jobs_of("ping-1")
            .await
            .unwrap()
            .is_empty()
    );
    host.stop().await;
}

#[tokio::test]
async fn a_replayed_delivery_is_not_dispatched_again() {
    let host = TestHost::start(event_log_host()).await;
    let payload = example("issues", Some("opened"));
    assert_eq!(host.send("issues", "replay-1", &payload).await.0, 202);
    let (status, answer) = host.send("issues", "replay-1", &payload).await;
    assert_eq!((status, answer["duplicate"].as_bool()), (200, Some(true)));
    host.ended_jobs("replay-1", 1).await;
    assert_eq!(host.events_logged().len(), 1);
    host.stop().await;
}

#[tokio::test]
async fn redeliveries_rerun_when_configured() {
    let host = TestHost::start(HostSpec {
        server: "redeliveries = \"rerun\"".into(),
        ..event_log_host()
    })
    .await;
    let payload = example("issues", Some("opened"));
    assert_eq!(host.send("issues", "rerun-1", &payload).await.0, 202);
    assert_eq!(host.send("issues", "rerun-1", &payload).await.0, 202);
    host.ended_jobs("rerun-1", 2).await;
    assert_eq!(host.events_logged().len(), 2);
    host.stop().await;
}

#[tokio::test]
async fn unknown_events_are_stored_and_reach_wildcard_subscribers_only() {
    let plugins = format!(
        "{EVENT_LOG}{}",
        behaviours("prs-only", "", "behaviour = \"sleep\"\nmillis = 1")
    );
    let host = TestHost::start(HostSpec {
        plugins,
        ..Default::default()
    })
    .await;
    let (status, answer) = host
        .send("brand_new_event", "new-1", &json!({"action": "invented"}))
        .await;
    assert_eq!(
        (status, answer["jobs"].as_array().map(Vec::len)),
        (202, Some(1))
    );
    let jobs = host.ended_jobs("new-1", 1).await;
    assert_eq!(jobs[0].plugin, "event-log");
    host.stop().await;
}

#[tokio::test]
async fn a_slow_plugin_does_not_hold_up_the_answer() {
    let plugins = behaviours("slow", "", "behaviour = \"sleep\"\nmillis = 5000");
    let host = TestHost::start(HostSpec {
        plugins,
        ..Default::default()
    })
    .await;
    let (status, _) = host
        .send(
            "pull_request",
            "slow-1",
            &example("pull_request", Some("opened")),
        )
        .await;
    assert_eq!(status, 202);
    // Answered while the job has not ended: ingress did not wait for it.
    let jobs = host.host_state.journal.jobs_of("slow-1").await.unwrap();
    assert!(
        matches!(jobs[0].state, JobState::Queued | JobState::Running),
        "{jobs:?}"
    );
    host.stop().await;
}
