//! The dashboard over HTTP: access modes and sign-in, every page, filters and paging, the log
//! viewer and its follow stream, and hostile input rendered escaped and masked.

use std::path::PathBuf;

use serde_json::json;
use switchyard::journal::JobId;

use crate::support::{
    EVENT_LOG, FakeGitHub, HostSpec, Origin, SECRET, TestHost, behaviours, binds, example,
};

/// A dashboard token of the test's person.
pub(crate) const TOKEN: &str = "d4e1c6b2a9f3087e5b1c2d3e4f5a6b7c";

/// The other person's token.
pub(crate) const BOB_TOKEN: &str = "9a8b7c6d5e4f30211f2e3d4c5b6a7988";

/// A tokens file beside the test (the host's own folder is made when it starts).
fn tokens_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens");
    std::fs::write(&file, format!("# people\nalice:{TOKEN}\nbob:{BOB_TOKEN}\n")).unwrap();
    (dir, file)
}

pub(crate) struct Dash {
    pub(crate) host: TestHost,
    pub(crate) http: reqwest::Client,
    /// `Cookie` header value once signed in.
    pub(crate) cookie: Option<String>,
    _tokens: tempfile::TempDir,
}

impl Dash {
    pub(crate) async fn start(dashboard: &str, plugins: String) -> Self {
        let spec = HostSpec {
            plugins,
            ..HostSpec::default()
        };
        Self::start_with(dashboard, spec).await
    }

    /// A host as `spec` says, with the dashboard's `dashboard` keys and the test's tokens.
    pub(crate) async fn start_with(dashboard: &str, spec: HostSpec) -> Self {
        let (tokens, file) = tokens_file();
        let host = TestHost::start(HostSpec {
            dashboard: format!(
                "enabled = true\ntokens_file = {:?}\n{dashboard}",
                file.display().to_string()
            ),
            ..spec
        })
        .await;
        Self {
            host,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
            _tokens: tokens,
        }
    }

    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.host.base));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.unwrap()
    }

    /// A page's status and text.
    pub(crate) async fn page(&self, path: &str) -> (u16, String) {
        let response = self.get(path).await;
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// A page that must answer 200.
    pub(crate) async fn ok(&self, path: &str) -> String {
        let (status, text) = self.page(path).await;
        assert_eq!(status, 200, "{path}: {text}");
        text
    }

    pub(crate) async fn sign_in(&self, token: &str, next: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/dashboard/sign-in", self.host.base))
            .form(&[("token", token), ("next", next)])
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn signed_in(mut self) -> Self {
        let response = self.sign_in(TOKEN, "/dashboard").await;
        assert_eq!(response.status().as_u16(), 303);
        let cookie = response.headers()["set-cookie"].to_str().unwrap();
        self.cookie = Some(cookie.split(';').next().unwrap().to_owned());
        self
    }
}

/// Where a test host keeps its job logs: the log viewer must show them alike.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LogsIn {
    Files,
    /// A PostgreSQL journal (a database of its own on the test server), chunks in a table.
    Postgres,
}

/// A host's `[store]` keys for [`LogsIn`], with the folder holding its database URL.
pub(crate) struct LogStoreKeys {
    pub(crate) keys: String,
    _secrets: Option<tempfile::TempDir>,
}

impl LogsIn {
    /// `None` when PostgreSQL is not installed (the test is skipped, as the PostgreSQL ones).
    pub(crate) fn store(self) -> Option<LogStoreKeys> {
        match self {
            Self::Files => Some(LogStoreKeys {
                keys: String::new(),
                _secrets: None,
            }),
            Self::Postgres => {
                let url = switchyard_testkit::TestPostgres::get()?.database();
                let (secrets, keys) = crate::postgres::store_with_lease(&url, 3);
                Some(LogStoreKeys {
                    keys,
                    _secrets: Some(secrets),
                })
            }
        }
    }
}

pub(crate) fn pull_request(repository: &str, title: &str) -> serde_json::Value {
    let mut payload = example("pull_request", Some("opened"));
    payload["repository"]["full_name"] = json!(repository);
    payload["pull_request"]["title"] = json!(title);
    payload
}

/// Rows of a list page: the ids of the deliveries it links to, in order.
fn delivery_links(page: &str) -> Vec<String> {
    page.match_indices("<a href=\"/dashboard/deliveries/")
        .map(|(at, _)| {
            let rest = &page[at + "<a href=\"/dashboard/deliveries/".len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

fn next_page(page: &str) -> String {
    let at = page
        .find("id=\"next-page\" href=\"")
        .expect("a next page link");
    let rest = &page[at + "id=\"next-page\" href=\"".len()..];
    // Templates escape `&` in attributes as `&#38;`.
    rest[..rest.find('"').unwrap()]
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

#[tokio::test]
async fn private_pages_need_a_sign_in_and_a_wrong_token_is_refused() {
    let dash = Dash::start("", EVENT_LOG.to_owned()).await;
    let response = dash.get("/dashboard/jobs?state=failed").await;
    assert_eq!(response.status().as_u16(), 303);
    assert_eq!(
        response.headers()["location"],
        "/dashboard/sign-in?next=%2Fdashboard%2Fjobs%3Fstate%3Dfailed"
    );
    for path in [
        "/dashboard",
        "/dashboard/deliveries/x",
        "/dashboard/jobs/1",
        "/dashboard/jobs/1/follow",
        "/dashboard/deployments",
        "/dashboard/plugins",
    ] {
        assert_eq!(dash.get(path).await.status().as_u16(), 303, "{path}");
    }
    // The sign-in page and the assets are open.
    assert!(
        dash.ok("/dashboard/sign-in")
            .await
            .contains("name=\"token\"")
    );
    let css = dash.get("/dashboard/assets/dashboard.css").await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");

    let wrong = dash.sign_in("not-a-token", "/dashboard").await;
    assert_eq!(wrong.status().as_u16(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let text = wrong.text().await.unwrap();
    assert!(text.contains("That token is not valid."));
    assert!(!text.contains("not-a-token"));

    // Another site is never where a sign-in leads.
    let elsewhere = dash.sign_in(TOKEN, "https://evil.example/").await;
    assert_eq!(elsewhere.headers()["location"], "/dashboard");
    let right = dash.sign_in(TOKEN, "/dashboard/jobs?state=failed").await;
    assert_eq!(right.status().as_u16(), 303);
    assert_eq!(right.headers()["location"], "/dashboard/jobs?state=failed");
    let cookie = right.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/dashboard"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "http public_url: {cookie}");
    assert!(!cookie.contains(TOKEN));

    let mut dash = dash;
    dash.cookie = Some(cookie.split(';').next().unwrap().to_owned());
    let response = dash.get("/dashboard").await;
    assert_eq!(response.status().as_u16(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let page = response.text().await.unwrap();
    assert!(page.contains("<span id=\"signed-in\">alice</span>"));
    assert!(!page.contains("<script>"), "no inline script");
    for path in [
        "/dashboard/jobs",
        "/dashboard/deployments",
        "/dashboard/plugins",
    ] {
        dash.ok(path).await;
    }
    assert_eq!(dash.page("/dashboard/jobs/999").await.0, 404);
    assert_eq!(dash.page("/dashboard/deliveries/none").await.0, 404);

    // A forged cookie (bob's name on alice's MAC) is no session.
    let forged = dash.cookie.clone().unwrap().replacen("alice", "bob", 1);
    dash.cookie = Some(forged);
    assert_eq!(dash.get("/dashboard").await.status().as_u16(), 303);

    let out = dash
        .http
        .post(format!("{}/dashboard/sign-out", dash.host.base))
        .form(&[("csrf", "")])
        .send()
        .await
        .unwrap();
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    dash.host.stop().await;
}

#[tokio::test]
async fn public_read_opens_the_pages_without_a_sign_in() {
    let dash = Dash::start("access = \"public-read\"", EVENT_LOG.to_owned()).await;
    let page = dash.ok("/dashboard").await;
    assert!(page.contains("href=\"/dashboard/sign-in\">Sign in</a>"));
    dash.ok("/dashboard/jobs").await;
    dash.ok("/dashboard/plugins").await;
    dash.host.stop().await;
}

#[tokio::test]
async fn without_tokens_every_page_says_what_to_set_and_the_host_runs_on() {
    let host = TestHost::start(HostSpec {
        dashboard: "enabled = true\ntokens_env = \"SWITCHYARD_TEST_TOKENS_NEVER_SET\"".to_owned(),
        plugins: EVENT_LOG.to_owned(),
        ..HostSpec::default()
    })
    .await;
    for path in ["/dashboard", "/dashboard/sign-in", "/dashboard/jobs/1"] {
        let (status, page) = host.get(path).await;
        assert_eq!(status, 503, "{path}");
        assert!(
            page.contains("not configured: set SWITCHYARD_TEST_TOKENS_NEVER_SET"),
            "{page}"
        );
    }
    let (status, _) = host
        .send(
            "pull_request",
            "still-served",
            &pull_request("octo/one", "x"),
        )
        .await;
    assert_eq!(status, 202);
    // Paths outside the dashboard are not the dashboard's to answer.
    for path in ["/nope", "/jobs/1/log", "/dashboardx"] {
        assert_eq!(host.get(path).await.0, 404, "{path}");
    }
    host.stop().await;

    // A tokens file that is missing is named, not its content.
    let host = TestHost::start(HostSpec {
        dashboard: "enabled = true\ntokens_file = \"no-such-tokens\"".to_owned(),
        ..HostSpec::default()
    })
    .await;
    let (status, page) = host.get("/dashboard").await;
    assert_eq!(status, 503);
    assert!(page.contains("[dashboard] tokens_file"), "{page}");
    host.stop().await;
}

#[tokio::test]
async fn deliveries_filter_by_repository_event_and_failure_and_page() {
    let failing = behaviours(
        "failing",
        "repositories = [\"octo/failing\"]\nmax_attempts = 1",
        "behaviour = \"panic\"",
    );
    let dash = Dash::start("page_size = 2", format!("{EVENT_LOG}\n{failing}"))
        .await
        .signed_in()
        .await;
    for (id, repository) in [
        ("d1", "octo/one"),
        ("d2", "octo/one"),
        ("d3", "octo/one"),
        ("d4", "octo/failing"),
    ] {
        let (status, _) = dash
            .host
            .send("pull_request", id, &pull_request(repository, "t"))
            .await;
        assert_eq!(status, 202);
        let jobs = if repository == "octo/failing" { 2 } else { 1 };
        dash.host.ended_jobs(id, jobs).await;
    }
    let first = dash.ok("/dashboard/deliveries").await;
    assert_eq!(delivery_links(&first), ["d4", "d3"]);
    assert!(first.contains("pull_request.opened"));
    assert!(first.contains("state-failed"));
    let second = dash.ok(&next_page(&first)).await;
    assert_eq!(delivery_links(&second), ["d2", "d1"]);
    assert!(!second.contains("id=\"next-page\""));

    let one = dash.ok("/dashboard/deliveries?repository=octo%2Fone").await;
    assert_eq!(delivery_links(&one), ["d3", "d2"]);
    let next = next_page(&one);
    assert!(next.contains("repository=octo%2Fone&before="), "{next}");
    assert_eq!(delivery_links(&dash.ok(&next).await), ["d1"]);
    let failed = dash.ok("/dashboard/deliveries?failed=1").await;
    assert_eq!(delivery_links(&failed), ["d4"]);
    let push = dash.ok("/dashboard/deliveries?event=push").await;
    assert!(delivery_links(&push).is_empty());
    assert!(push.contains("No deliveries match."));

    // Jobs: filters and counts.
    let jobs = dash.ok("/dashboard/jobs?state=failed").await;
    assert_eq!(jobs.matches("<tr class=\"job\">").count(), 1);
    assert!(jobs.contains("failed 1</a>"), "{jobs}");
    assert!(jobs.contains("1 failed in the last hour"));
    let event_log = dash.ok("/dashboard/jobs?plugin=event-log").await;
    assert_eq!(event_log.matches("<tr class=\"job\">").count(), 2);
    let older = dash.ok(&next_page(&event_log)).await;
    assert_eq!(older.matches("<tr class=\"job\">").count(), 2);
    let failing_repo = dash.ok("/dashboard/jobs?repository=octo%2Ffailing").await;
    assert_eq!(failing_repo.matches("<tr class=\"job\">").count(), 2);
    dash.host.stop().await;
}

#[tokio::test]
async fn hostile_titles_payload_secrets_and_signatures_are_escaped_and_masked() {
    let dash = Dash::start("", EVENT_LOG.to_owned())
        .await
        .signed_in()
        .await;
    let mut payload = pull_request("octo/one", "<script>alert('pwned')</script>");
    payload["pull_request"]["body"] = json!(format!("leaked {SECRET} and {TOKEN}"));
    assert_eq!(
        dash.host.send("pull_request", "hostile", &payload).await.0,
        202
    );
    let jobs = dash.host.ended_jobs("hostile", 1).await;

    let page = dash.ok("/dashboard/deliveries/hostile").await;
    assert!(!page.contains("<script>alert"), "unescaped title");
    // Templates escape with numeric references.
    assert!(
        page.contains("&#60;script&#62;alert(&#39;pwned&#39;)&#60;/script&#62;"),
        "{page}"
    );
    assert!(!page.contains(SECRET), "webhook secret shown");
    assert!(!page.contains(TOKEN), "dashboard token shown");
    assert!(page.contains("leaked ******** and ********"));
    // Headers as received, the signature masked.
    assert!(page.contains("<th>x-github-event</th><td>pull_request</td>"));
    assert!(page.contains("<th>x-hub-signature-256</th><td>sha256=********</td>"));

    let job = dash.ok(&format!("/dashboard/jobs/{}", jobs[0].id)).await;
    assert!(!job.contains("<script>alert"));
    assert!(job.contains("PR #"), "{job}");
    assert!(job.contains("&#60;script&#62;alert("));
    dash.host.stop().await;
}

/// A command printing colours, HTML, a group and an error, then slowly more lines.
const NOISY: &str = r#"behaviour = "run"
script = 'printf "\033[31mred <b>bold</b>\033[0m & more\n::group::Setup step\ninside the group\n::endgroup::\nerror: it broke\nlast line\n"'
"#;

#[tokio::test]
async fn a_job_log_renders_colours_escaped_numbered_grouped_and_follows_from_an_offset() {
    a_job_log_renders_and_follows(LogsIn::Files).await;
}

#[tokio::test]
async fn a_job_log_in_postgres_renders_and_follows_as_a_file_does() {
    a_job_log_renders_and_follows(LogsIn::Postgres).await;
}

async fn a_job_log_renders_and_follows(logs: LogsIn) {
    let Some(store) = logs.store() else {
        return;
    };
    let spec = HostSpec {
        plugins: behaviours("noisy", "", NOISY),
        store: store.keys.clone(),
        ..HostSpec::default()
    };
    let dash = Dash::start_with("", spec).await.signed_in().await;
    let payload = pull_request("octo/one", "t");
    assert_eq!(
        dash.host.send("pull_request", "noisy-1", &payload).await.0,
        202
    );
    let job = dash.host.ended_jobs("noisy-1", 1).await[0].id;
    let page = dash.ok(&format!("/dashboard/jobs/{job}")).await;
    let log = &page[page.find("<pre class=\"log\"").unwrap()..];
    assert!(
        log.contains("<span class=\"fg1\">red &lt;b&gt;bold&lt;/b&gt;</span> &amp; more"),
        "{log}"
    );
    assert!(!log.contains("<b>bold"));
    assert!(log.contains("id=\"L1\"><a class=\"ln\" href=\"#L1\">1</a>"));
    assert!(
        log.contains(
            "<details class=\"group\"><summary><span class=\"line group-start\" id=\"L2\">"
        )
    );
    assert!(log.contains("<span class=\"t\">Setup step</span>"));
    // Folded, as GitHub Actions shows a group, and neither marker shown.
    assert!(
        !log.contains("::group::") && !log.contains("::endgroup::"),
        "{log}"
    );
    assert!(log.contains("<span class=\"line group-end\" id=\"L4\" hidden></span>"));
    assert!(log.contains("<span class=\"line error\" id=\"L5\">"));
    assert!(log.contains("data-follow=\"false\""));
    // The raw log is the capability link GitHub gets, still served as text.
    let raw = dash.host.log_path(job).await;
    assert!(page.contains(&format!("href=\"{raw}\"")));
    let response = dash.get(&raw).await;
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let text = response.text().await.unwrap();
    assert!(text.contains("<b>bold</b>"));

    // The follow stream: whole lines after the offset, each event's id the offset after it.
    let after_two: usize = text.split_inclusive('\n').take(2).map(str::len).sum();
    let mut request = dash
        .http
        .get(format!("{}/dashboard/jobs/{job}/follow", dash.host.base))
        .header("last-event-id", after_two.to_string());
    request = request.header("cookie", dash.cookie.clone().unwrap());
    let response = request.send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let stream = response.text().await.unwrap();
    assert!(stream.starts_with("event: lines\n"), "{stream}");
    assert!(stream.contains(&format!("id: {}\n", text.len())));
    assert!(stream.contains("id=\"L3\""), "resumed at line 3: {stream}");
    assert!(!stream.contains("id=\"L2\""));
    assert!(stream.contains("event: end\n"));

    // Timestamps on demand: none unless asked for, then one per line, in the page and the
    // follow stream alike.
    assert!(!page.contains("class=\"ts\""));
    assert!(page.contains("show timestamps</a>"));
    let stamped = dash
        .ok(&format!("/dashboard/jobs/{job}?timestamps=1"))
        .await;
    let stamps: Vec<&str> = stamped
        .split("<span class=\"ts\">")
        .skip(1)
        .map(|rest| &rest[..rest.find('<').unwrap()])
        .collect();
    // Six lines, the hidden `::endgroup::` without one.
    assert_eq!(stamps.len(), 5, "one per line shown: {stamped}");
    for stamp in &stamps {
        let digits: Vec<&str> = stamp.split([':', '.']).collect();
        assert_eq!(
            digits.iter().map(|d| d.len()).collect::<Vec<_>>(),
            [2, 2, 2, 3],
            "{stamp}"
        );
    }
    assert!(stamped.contains("hide timestamps</a>"));
    assert!(stamped.contains("data-timestamps=\"true\""));
    let response = dash
        .get(&format!(
            "/dashboard/jobs/{job}/follow?offset=0&timestamps=1"
        ))
        .await;
    let stream = response.text().await.unwrap();
    assert_eq!(stream.matches("<span class=\"ts\">").count(), 5, "{stream}");
    dash.host.stop().await;
}

#[tokio::test]
async fn a_big_log_shows_its_tail_first_and_earlier_windows_on_request() {
    a_big_log_shows_its_tail_first(LogsIn::Files).await;
}

#[tokio::test]
async fn a_big_log_in_postgres_shows_its_tail_first_as_a_file_does() {
    a_big_log_shows_its_tail_first(LogsIn::Postgres).await;
}

async fn a_big_log_shows_its_tail_first(logs: LogsIn) {
    let Some(store) = logs.store() else {
        return;
    };
    let script = "behaviour = \"run\"\nscript = 'seq 1 200000'";
    let spec = HostSpec {
        plugins: behaviours("long", "", script),
        store: store.keys.clone(),
        ..HostSpec::default()
    };
    let dash = Dash::start_with("", spec).await.signed_in().await;
    let payload = pull_request("octo/one", "t");
    assert_eq!(
        dash.host.send("pull_request", "long-1", &payload).await.0,
        202
    );
    let job: JobId = dash.host.ended_jobs("long-1", 1).await[0].id;
    let page = dash.ok(&format!("/dashboard/jobs/{job}")).await;
    // `seq` prints line N as N: the tail ends at line 200000, numbered as in the file.
    assert!(page.contains(
        "id=\"L200000\"><a class=\"ln\" href=\"#L200000\">200000</a><span class=\"t\">200000</span>"
    ));
    assert!(!page.contains("id=\"L1\""));
    let earlier = page.find("id=\"show-earlier\"").expect("an earlier window");
    assert!(earlier > 0);
    let around = dash.ok(&format!("/dashboard/jobs/{job}?line=120")).await;
    assert!(around.contains(
        "id=\"L120\"><a class=\"ln\" href=\"#L120\">120</a><span class=\"t\">120</span>"
    ));
    assert!(around.contains("id=\"show-later\""));
    dash.host.stop().await;
}

#[tokio::test]
async fn plugins_and_deployments_pages_show_what_the_host_has() {
    let dash = Dash::start("", EVENT_LOG.to_owned())
        .await
        .signed_in()
        .await;
    let mut status = example("deployment_status", None);
    status["repository"]["full_name"] = json!("octo/app");
    status["deployment_status"]["state"] = json!("success");
    status["deployment"]["environment"] = json!("production");
    status["deployment"]["sha"] = json!("0123456789abcdef0123");
    assert_eq!(
        dash.host
            .send("deployment_status", "dep-1", &status)
            .await
            .0,
        202
    );
    dash.host.ended_jobs("dep-1", 1).await;
    let page = dash.ok("/dashboard/deployments").await;
    let deployed = &page[page.find("id=\"deployed\"").unwrap()..page.find("id=\"locks\"").unwrap()];
    assert!(
        deployed.contains("<td>octo/app</td><td>production</td><td><code>0123456789ab</code>"),
        "{deployed}"
    );
    assert!(page.contains("No lock is held."));

    let plugins = dash.ok("/dashboard/plugins").await;
    assert!(plugins.contains("id=\"plugin-event-log\""));
    assert!(plugins.contains("switchyard-event-log"));
    assert!(plugins.contains("<th>path</th>"));
    assert!(plugins.contains("has not been reloaded since the host started"));

    // A disabled entry is listed as such, with the reload that brought it.
    let parked = behaviours("parked", "enabled = false", "behaviour = \"await_cancel\"");
    dash.host.rewrite_plugins(&format!("{EVENT_LOG}\n{parked}"));
    dash.host.reloader.reload().unwrap();
    let plugins = dash.ok("/dashboard/plugins").await;
    let parked = &plugins[plugins.find("id=\"plugin-parked\"").expect("listed")..];
    assert!(parked.contains(">disabled</span>"), "{parked}");
    assert!(parked.contains("libswitchyard_test_behaviours.so"));
    assert!(
        plugins.contains(">applied</span> added parked"),
        "{plugins}"
    );
    // A bad edit: refused, and the page says why.
    dash.host.rewrite_plugins("[[plugins]]\nname = \"x\"\n");
    assert!(dash.host.reloader.reload().is_err());
    let plugins = dash.ok("/dashboard/plugins").await;
    assert!(
        plugins.contains(">refused</span>, the running plugins kept: "),
        "{plugins}"
    );
    assert!(plugins.contains("id=\"plugin-event-log\""));
    dash.host.stop().await;
}

#[tokio::test]
async fn an_address_sending_too_many_wrong_tokens_waits_even_with_the_right_one() {
    let dash = Dash::start("", EVENT_LOG.to_owned()).await;
    for n in 0..5 {
        let wrong = dash.sign_in(&format!("guess-{n}"), "/dashboard").await;
        assert_eq!(wrong.status().as_u16(), 401, "guess {n}");
    }
    let limited = dash.sign_in(TOKEN, "/dashboard").await;
    assert_eq!(limited.status().as_u16(), 429);
    let wait: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(limited.headers().get("set-cookie").is_none());
    assert!(
        limited
            .text()
            .await
            .unwrap()
            .contains("Too many wrong tokens")
    );
    dash.host.stop().await;
}

const REPO: &str = "Codertocat/Hello-World";

/// `(state, context)` of each row of the job page's "Posted to GitHub" table.
fn posted_rows(page: &str) -> Vec<String> {
    page.split("<tr class=\"post\">")
        .skip(1)
        .map(|row| row[..row.find("</tr>").unwrap()].to_owned())
        .collect()
}

#[tokio::test]
async fn a_ci_jobs_page_shows_the_statuses_it_posted_with_their_links() {
    let github = FakeGitHub::start().await;
    let origin = Origin::new(REPO);
    let plugins = format!(
        "[[plugins]]\nname = \"ci\"\nlibrary = \"{{lib:switchyard-ci}}\"\n{}\n\
         [plugins.settings]\nclone_url = \"{}\"\ncommand = \"true\"\n",
        binds(&origin),
        origin.clone_url_template()
    );
    let spec = HostSpec {
        plugins,
        github_url: Some(github.url().to_owned()),
        github_token: Some(crate::support::TOKEN),
        ..HostSpec::default()
    };
    let dash = Dash::start_with("", spec).await.signed_in().await;
    let sha = origin.commit("refs/heads/fix", &[]);
    let mut payload = example("pull_request", Some("opened"));
    payload["pull_request"]["head"]["sha"] = json!(sha);
    payload["pull_request"]["head"]["repo"]["full_name"] = json!(REPO);
    assert_eq!(
        dash.host.send("pull_request", "ci-1", &payload).await.0,
        202
    );
    let job = dash.host.ended_jobs("ci-1", 1).await[0].id;
    let page = dash.ok(&format!("/dashboard/jobs/{job}")).await;
    let rows = posted_rows(&page);
    assert_eq!(rows.len(), 2, "{page}");
    let log_link = format!("{}{}", dash.host.base, dash.host.log_path(job).await);
    for (row, state) in rows.iter().zip(["pending", "success"]) {
        assert!(row.starts_with(&format!("<td>status</td><td><span class=\"state state-{state}\">{state}</span></td><td>ci/switchyard</td><td>{REPO}</td><td><code>{}</code>", &sha[..12])), "{row}");
        assert!(row.contains(&format!("<a href=\"{log_link}\">")), "{row}");
    }
    assert!(github.violations().is_empty(), "{:?}", github.violations());
    dash.host.stop().await;
}

#[tokio::test]
async fn deployments_show_what_the_deployer_posted_and_who_holds_and_waits_for_each_lock() {
    let github = FakeGitHub::start().await;
    let origin = Origin::new(REPO);
    let go = origin.scratch().join("go");
    // The first deployment holds the environment's lock until the test says go.
    let command = format!(
        "if [ \"$SWITCHYARD_DEPLOYMENT_ID\" = 1 ]; then while [ ! -e {} ]; do sleep 0.1; done; fi",
        go.display()
    );
    let plugins = format!(
        "[[plugins]]\nname = \"deployer\"\nlibrary = \"{{lib:switchyard-deployer}}\"\n{}\n\
         [plugins.settings]\nclone_url = \"{}\"\ncommand = '{command}'\n",
        binds(&origin),
        origin.clone_url_template()
    );
    let spec = HostSpec {
        plugins,
        github_url: Some(github.url().to_owned()),
        github_token: Some(crate::support::TOKEN),
        ..HostSpec::default()
    };
    let dash = Dash::start_with("", spec).await.signed_in().await;
    github.send_webhooks_to(&dash.host.webhook_url(), SECRET);
    let sha = origin.commit("refs/heads/main", &[]);
    for (delivery, id) in [("first", 1), ("second", 2)] {
        let mut event = example("deployment", None);
        event["deployment"]["id"] = json!(id);
        event["deployment"]["sha"] = json!(sha);
        event["deployment"]["environment"] = json!("production");
        event["repository"]["full_name"] = json!(REPO);
        assert_eq!(dash.host.send("deployment", delivery, &event).await.0, 202);
        if id == 1 {
            let locks = &dash.host.host_state.journal;
            let held = || async { !locks.locks().await.unwrap().is_empty() };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while !held().await {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the first deploy took no lock"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
    let holder = dash.host.host_state.journal.jobs_of("first").await.unwrap()[0].id;
    let waiter = dash
        .host
        .host_state
        .journal
        .jobs_of("second")
        .await
        .unwrap()[0]
        .id;
    let locks = std::sync::Arc::clone(&dash.host.host_state.locks);
    crate::support::eventually("the second deploy to wait", || {
        !locks.waiting_now().is_empty()
    })
    .await;
    let page = dash.ok("/dashboard/deployments").await;
    let row = &page[page.find("<tr class=\"lock\">").expect("a lock row")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.starts_with(&format!(
            "<tr class=\"lock\"><td>deploy:{REPO}:production</td>"
        )),
        "{row}"
    );
    assert!(
        row.contains(&format!(
            "<a href=\"/dashboard/jobs/{holder}\">job #{holder}</a>"
        )),
        "{row}"
    );
    assert!(
        row.contains(&format!(
            "<td class=\"waiting\"><a href=\"/dashboard/jobs/{waiter}\">job #{waiter}</a> since"
        )),
        "{row}"
    );

    std::fs::write(&go, "").unwrap();
    dash.host.ended_jobs("first", 1).await;
    dash.host.ended_jobs("second", 1).await;
    let page = dash.ok("/dashboard/deployments").await;
    assert!(page.contains("No lock is held."));
    // Deployed now, from the deployer's own success status (the fake GitHub sends no
    // deployment_status webhooks): the second deployment's job.
    let deployed = &page[page.find("id=\"deployed\"").unwrap()..page.find("id=\"locks\"").unwrap()];
    assert!(
        deployed.contains(&format!("<td>{REPO}</td><td>production</td>")),
        "{deployed}"
    );
    assert!(
        deployed.contains(&format!(
            "<a href=\"/dashboard/jobs/{waiter}\">posted by job #{waiter}</a>"
        )),
        "{deployed}"
    );
    let history = &page[page.find("id=\"history\"").unwrap()..];
    assert_eq!(history.matches("posted by job #").count(), 5, "{history}");
    assert!(github.violations().is_empty(), "{:?}", github.violations());
    dash.host.stop().await;
}

/// A client of the host from its own loopback address (127.0.0.0/8 is all loopback).
fn client_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, last]))
        .build()
        .unwrap()
}

#[tokio::test]
async fn followers_never_take_the_log_links_places_and_each_address_gets_its_share() {
    let slow = "behaviour = \"run\"\nscript = 'echo started; sleep 60'";
    let spec = HostSpec {
        plugins: behaviours("slow", "", slow),
        server: "max_log_readers = 4\nmax_log_readers_per_client = 2".to_owned(),
        ..HostSpec::default()
    };
    let dash = Dash::start_with(
        "access = \"public-read\"\nmax_followers = 16\nmax_followers_per_client = 4",
        spec,
    )
    .await;
    let payload = pull_request("octo/one", "t");
    assert_eq!(
        dash.host.send("pull_request", "slow-1", &payload).await.0,
        202
    );
    let journal = &dash.host.host_state.journal;
    let job = loop {
        let filter = switchyard::journal::JobFilter {
            limit: 1,
            ..Default::default()
        };
        if let Some(row) = journal.jobs(filter).await.unwrap().into_iter().next() {
            break row.job.id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let follow = format!("{}/dashboard/jobs/{job}/follow?offset=0", dash.host.base);
    // An address gets 4 followers of the 16.
    let one = client_from(100);
    let mut statuses = Vec::new();
    let mut followers = Vec::new();
    for _ in 0..5 {
        let response = one.get(&follow).send().await.unwrap();
        statuses.push(response.status().as_u16());
        followers.push(response);
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 503],
        "an address's share is 4"
    );
    // 70 anonymous followers from 20 more addresses, held open: they get the 12 left.
    let mut refused = Vec::new();
    for n in 0..70u8 {
        let response = client_from(2 + n % 20).get(&follow).send().await.unwrap();
        match response.status().as_u16() {
            200 => followers.push(response),
            503 => refused.push(response.text().await.unwrap()),
            other => panic!("a follower got {other}"),
        }
    }
    let following = followers.iter().filter(|r| r.status() == 200).count();
    assert_eq!(following, 16);
    assert!(
        refused.iter().all(|text| text.contains("followed")),
        "{refused:?}"
    );
    let status = client_from(101).get(&follow).send().await.unwrap().status();
    assert_eq!(status, 503, "past the total, even a new address waits");

    // Meanwhile the log link GitHub shows answers: followers have places of their own. The
    // links' places are capped per address too.
    let link = format!("{}{}", dash.host.base, dash.host.log_path(job).await);
    let mut readers = Vec::new();
    for (from, wanted) in [
        (30, 200),
        (30, 200),
        (30, 503),
        (31, 200),
        (32, 200),
        (33, 503),
    ] {
        let response = client_from(from).get(&link).send().await.unwrap();
        assert_eq!(
            response.status().as_u16(),
            wanted,
            "a log link read from 127.0.0.{from}"
        );
        readers.push(response);
    }
    drop(readers);
    dash.host.stop().await;
}
