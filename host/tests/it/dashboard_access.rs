//! Who the dashboard answers, and what it shows them: the sign-in limit behind a proxy, weak
//! tokens refused, private repositories hidden from visitors, sign-out ending every session,
//! foreign `Host`s refused, only GitHub's headers stored, and a deploying replay confirmed.

use switchyard::{
    ingress::WebhookSecret,
    journal::{GitHubPost, NewAction},
};

use crate::{
    dashboard::{BOB_TOKEN, Dash, TOKEN, pull_request},
    support::behaviours,
    support::{EVENT_LOG, HostSpec, SECRET, TestHost, example},
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

/// A pull request of `repository`, private or public as GitHub says.
fn pull_request_of(repository: &str, private: bool, title: &str) -> serde_json::Value {
    let mut payload = pull_request(repository, title);
    payload["repository"]["private"] = serde_json::json!(private);
    payload
}

#[tokio::test]
async fn public_read_shows_visitors_public_repositories_only_on_every_route() {
    let dash = Dash::start("access = \"public-read\"", EVENT_LOG.to_owned()).await;
    let sends = [
        ("open-1", "octo/open", false, "open change"),
        ("secret-1", "octo/secret", true, "secret change"),
        // Public once, then made private: the older delivery hides too.
        ("flipped-1", "octo/flipped", false, "flipped before"),
        ("flipped-2", "octo/flipped", true, "flipped after"),
    ];
    for (id, repository, private, title) in sends {
        let payload = pull_request_of(repository, private, title);
        assert_eq!(dash.host.send("pull_request", id, &payload).await.0, 202);
        dash.host.ended_jobs(id, 1).await;
    }
    let mut jobs = Vec::new();
    for id in ["open-1", "secret-1", "flipped-1"] {
        jobs.push(dash.host.ended_jobs(id, 1).await[0].id);
    }
    let (open_job, secret_job, flipped_job) = (jobs[0], jobs[1], jobs[2]);
    // What the deployments page and the audit trail would show of each: a deployment status
    // posted, a lock held, an action taken.
    let journal = &dash.host.host_state.journal;
    let mut action_ids = Vec::new();
    for (job, delivery, repository, environment) in [
        (open_job, "open-1", "octo/open", "open-env"),
        (secret_job, "secret-1", "octo/secret", "secret-env"),
    ] {
        let post = GitHubPost {
            job,
            kind: "deployment_status".into(),
            repository: repository.into(),
            environment: Some(environment.into()),
            state: Some("success".into()),
            ..GitHubPost::default()
        };
        journal.record_post(post).await.unwrap();
        let lock = format!("deploy:{repository}:{environment}");
        assert!(journal.try_lock(&lock, job, 1).await.unwrap());
        let action = NewAction {
            actor: "alice".into(),
            action: "release".into(),
            delivery: Some(delivery.into()),
            job: Some(job),
            lock: Some(lock),
            outcome: format!("released {environment}"),
        };
        action_ids.push(journal.record_action(action).await.unwrap());
    }
    let hidden = [
        "octo/secret",
        "octo/flipped",
        "secret change",
        "flipped",
        "secret-env",
    ];

    // Lists, filters (a visitor asking for a private repository by name) and what the live
    // refresh fetches: the same pages.
    for path in [
        "/dashboard".to_owned(),
        "/dashboard/deliveries".to_owned(),
        "/dashboard/deliveries?event=pull_request".to_owned(),
        "/dashboard/jobs".to_owned(),
        "/dashboard/jobs?state=succeeded".to_owned(),
        "/dashboard/deployments".to_owned(),
        "/dashboard/plugins".to_owned(),
        "/dashboard/deliveries/open-1".to_owned(),
        format!("/dashboard/jobs/{open_job}"),
        // The notice an action's answer leads to, asked for with a private one's id.
        format!("/dashboard/deployments?action={}", action_ids[1]),
        format!("/dashboard/deliveries/open-1?action={}", action_ids[1]),
        format!("/dashboard/jobs/{open_job}?action={}", action_ids[1]),
    ] {
        let page = dash.ok(&path).await;
        for secret in hidden {
            assert!(!page.contains(secret), "{path} shows {secret}: {page}");
        }
    }
    // Asked for by name, a private repository has nothing (the filter box keeps the name).
    let asked = dash
        .ok("/dashboard/deliveries?repository=octo%2Fsecret")
        .await;
    assert!(!asked.contains("/dashboard/deliveries/secret-1"), "{asked}");
    assert!(!asked.contains("secret change"), "{asked}");
    let asked = dash.ok("/dashboard/jobs?repository=octo%2Fsecret").await;
    assert_eq!(asked.matches("<tr class=\"job\">").count(), 0, "{asked}");
    let deliveries = dash.ok("/dashboard/deliveries").await;
    assert!(deliveries.contains("octo/open"), "{deliveries}");
    let deployments = dash.ok("/dashboard/deployments").await;
    for shown in ["open-env", "deploy:octo/open:open-env", "released open-env"] {
        assert!(deployments.contains(shown), "{shown}: {deployments}");
    }
    let jobs = dash.ok("/dashboard/jobs?state=succeeded").await;
    assert_eq!(jobs.matches("<tr class=\"job\">").count(), 1, "{jobs}");

    // A private repository's pages, its log and its follow stream are as absent as unknown
    // ones: 404, not 403.
    for path in [
        "/dashboard/deliveries/secret-1".to_owned(),
        "/dashboard/deliveries/flipped-1".to_owned(),
        format!("/dashboard/jobs/{secret_job}"),
        format!("/dashboard/jobs/{flipped_job}"),
        format!("/dashboard/jobs/{secret_job}?timestamps=1"),
        format!("/dashboard/jobs/{secret_job}/follow?offset=0"),
        format!("/dashboard/jobs/{flipped_job}/follow"),
    ] {
        let (status, page) = dash.page(&path).await;
        assert_eq!(status, 404, "{path}: {page}");
        for secret in hidden {
            assert!(!page.contains(secret), "{path} shows {secret}");
        }
    }

    // Signed in, everything shows.
    let dash = dash.signed_in().await;
    let deliveries = dash.ok("/dashboard/deliveries").await;
    for shown in ["octo/secret", "octo/flipped", "octo/open"] {
        assert!(deliveries.contains(shown), "{shown}");
    }
    dash.ok("/dashboard/deliveries/secret-1").await;
    dash.ok(&format!("/dashboard/jobs/{secret_job}")).await;
    let deployments = dash.ok("/dashboard/deployments").await;
    for shown in [
        "secret-env",
        "deploy:octo/secret:secret-env",
        "released secret-env",
    ] {
        assert!(deployments.contains(shown), "{shown}: {deployments}");
    }
    dash.host.stop().await;
}

impl Dash {
    /// Signs in again and returns the new session's `Cookie` value: another browser.
    async fn another_session(&self) -> String {
        let response = self.sign_in(TOKEN, "/dashboard").await;
        assert_eq!(response.status().as_u16(), 303);
        let cookie = response.headers()["set-cookie"].to_str().unwrap();
        cookie.split(';').next().unwrap().to_owned()
    }

    /// Signs out with `cookie` as a browser on `origin` would, with the page's form token.
    async fn sign_out(&self, cookie: &str, origin: &str) -> u16 {
        let page = self.page_with("/dashboard", cookie).await;
        let marker = "name=\"csrf\" value=\"";
        let at = page.find(marker).expect("a sign-out form") + marker.len();
        let token = &page[at..at + page[at..].find('"').unwrap()];
        self.http
            .post(format!("{}/dashboard/sign-out", self.host.base))
            .header("cookie", cookie)
            .header("origin", origin)
            .form(&[("csrf", token)])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn page_with(&self, path: &str, cookie: &str) -> String {
        let response = self
            .http
            .get(format!("{}{path}", self.host.base))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        response.text().await.unwrap()
    }

    /// The status of `path` opened with `cookie`.
    async fn status_with(&self, path: &str, cookie: &str) -> u16 {
        let response = self.http.get(format!("{}{path}", self.host.base));
        let response = response.header("cookie", cookie).send().await.unwrap();
        response.status().as_u16()
    }
}

#[tokio::test]
async fn sign_out_ends_that_persons_sessions_everywhere_and_only_from_the_dashboard() {
    let dash = Dash::start("", EVENT_LOG.to_owned())
        .await
        .signed_in()
        .await;
    let laptop = dash.cookie.clone().unwrap();
    let phone = dash.another_session().await;
    let bob = {
        let response = dash.sign_in(BOB_TOKEN, "/dashboard").await;
        let cookie = response.headers()["set-cookie"].to_str().unwrap();
        cookie.split(';').next().unwrap().to_owned()
    };
    for cookie in [&laptop, &phone, &bob] {
        assert_eq!(dash.status_with("/dashboard/jobs", cookie).await, 200);
    }
    // From another site: refused, nothing ends.
    assert_eq!(dash.sign_out(&laptop, "https://evil.example").await, 403);
    assert_eq!(dash.status_with("/dashboard/jobs", &laptop).await, 200);

    // From the dashboard: every session of alice's ends, the old cookie replayed included;
    // bob's stays.
    assert_eq!(dash.sign_out(&laptop, &dash.host.base).await, 303);
    for cookie in [&laptop, &phone] {
        assert_eq!(dash.status_with("/dashboard/jobs", cookie).await, 303);
    }
    assert_eq!(dash.status_with("/dashboard/jobs", &bob).await, 200);
    // Signing in again starts a session that works.
    let again = dash.another_session().await;
    assert_eq!(dash.status_with("/dashboard/jobs", &again).await, 200);
    assert_eq!(dash.status_with("/dashboard/jobs", &laptop).await, 303);
    dash.host.stop().await;
}

impl Dash {
    /// Replays `delivery` from its page, typing `confirm`, and returns the notice shown.
    async fn replay_typing(&self, delivery: &str, confirm: &str) -> String {
        let path = format!("/dashboard/deliveries/{delivery}");
        let page = self.ok(&path).await;
        let marker = "name=\"csrf\" value=\"";
        let at = page.find(marker).expect("a form") + marker.len();
        let token = &page[at..at + page[at..].find('"').unwrap()];
        let response = self
            .http
            .post(format!("{}{path}/replay", self.host.base))
            .header("cookie", self.cookie.clone().unwrap())
            .header("origin", &self.host.base)
            .form(&[("csrf", token), ("plugin", ""), ("confirm", confirm)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 303);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let page = self.ok(&location).await;
        let at = page.find("id=\"action-result\"").expect("a notice");
        page[at..at + page[at..].find("</p>").unwrap()].to_owned()
    }
}

#[tokio::test]
async fn replaying_a_delivery_that_deploys_asks_for_its_environment_typed() {
    let dash = Dash::start("", EVENT_LOG.to_owned())
        .await
        .signed_in()
        .await;
    let mut deployment = example("deployment", None);
    deployment["deployment"]["environment"] = serde_json::json!("production");
    assert_eq!(
        dash.host
            .send("deployment", "deploy-1", &deployment)
            .await
            .0,
        202
    );
    dash.host.ended_jobs("deploy-1", 1).await;
    let page = dash.ok("/dashboard/deliveries/deploy-1").await;
    assert!(page.contains("id=\"replay-confirm\""), "{page}");
    assert!(
        page.contains("type <code>production</code> to replay it"),
        "{page}"
    );

    // One click, or the wrong name: nothing runs, and the trail says why.
    for typed in ["", "staging", "productio"] {
        let notice = dash.replay_typing("deploy-1", typed).await;
        assert!(
            notice.contains(
                "not replayed: it deploys, and what was typed to confirm was not production"
            ),
            "{notice}"
        );
    }
    assert_eq!(dash.host.ended_jobs("deploy-1", 1).await.len(), 1);
    let notice = dash.replay_typing("deploy-1", " production ").await;
    assert!(notice.contains("replayed as new jobs"), "{notice}");
    assert_eq!(dash.host.ended_jobs("deploy-1", 2).await.len(), 2);

    // A merge whose job created a deployment (as the deployer does) deploys when replayed too.
    let merged = pull_request_of("octo/open", false, "merge me");
    assert_eq!(
        dash.host.send("pull_request", "merge-1", &merged).await.0,
        202
    );
    let job = dash.host.ended_jobs("merge-1", 1).await[0].id;
    let page = dash.ok("/dashboard/deliveries/merge-1").await;
    assert!(!page.contains("id=\"replay-confirm\""), "{page}");
    let post = GitHubPost {
        job,
        kind: "deployment".into(),
        repository: "octo/open".into(),
        environment: Some("staging".into()),
        ..GitHubPost::default()
    };
    dash.host
        .host_state
        .journal
        .record_post(post)
        .await
        .unwrap();
    let page = dash.ok("/dashboard/deliveries/merge-1").await;
    assert!(
        page.contains("type <code>staging</code> to replay it"),
        "{page}"
    );
    let notice = dash.replay_typing("merge-1", "").await;
    assert!(
        notice.contains("not replayed: it deploys, and what was typed to confirm was not staging"),
        "{notice}"
    );
    dash.host.stop().await;

    // A merge whose deploying job recorded no deployment (it failed, as on a 409 from GitHub,
    // or never ran) still deploys when replayed: a plugin it routes to may create deployments.
    // The name to type is then the repository's.
    let deployer = behaviours(
        "deployer",
        "",
        "behaviour = \"commit_status\"\npermissions = { deployments = \"write\" }",
    );
    let dash = Dash::start("", format!("{EVENT_LOG}{deployer}"))
        .await
        .signed_in()
        .await;
    let merged = pull_request_of("octo/open", false, "merge me");
    assert_eq!(
        dash.host.send("pull_request", "merge-2", &merged).await.0,
        202
    );
    dash.host.ended_jobs("merge-2", 2).await;
    let page = dash.ok("/dashboard/deliveries/merge-2").await;
    assert!(
        page.contains("type <code>octo/open</code> to replay it"),
        "{page}"
    );
    let notice = dash.replay_typing("merge-2", "").await;
    assert!(
        notice
            .contains("not replayed: it deploys, and what was typed to confirm was not octo/open"),
        "{notice}"
    );
    let notice = dash.replay_typing("merge-2", "octo/open").await;
    assert!(notice.contains("replayed as new jobs"), "{notice}");
    dash.host.stop().await;
}
