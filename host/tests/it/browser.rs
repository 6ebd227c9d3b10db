//! The dashboard in a real browser: Chromium, headless, driven over WebDriver by chromedriver.
//! Each test saves a screenshot of its last page under the target folder
//! (`target/tmp/browser-screenshots/`). Without Chromium or chromedriver the tests skip with a
//! message, except under `CI=true`, where that fails them.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::dashboard::LogsIn;
use crate::support::{
    EVENT_LOG, FakeGitHub, HostSpec, Origin, TestHost, behaviours, binds, example,
};

pub(crate) const TOKEN: &str = "Br0wsEr7tK2qL9mXv4Nc8pRz";

/// Chromium and its driver, from `PATH`.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let find = |names: &[&str]| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).find_map(|dir| {
            names
                .iter()
                .map(|name| dir.join(name))
                .find(|candidate| candidate.is_file())
        })
    };
    Some((
        find(&["chromium", "chromium-browser", "google-chrome"])?,
        find(&["chromedriver"])?,
    ))
}

/// A chromedriver on a free loopback port and a headless browser session; `None` (after
/// saying so) where no browser is installed, outside CI. One at a time: each Chromium takes
/// hundreds of megabytes and a core while it starts, and a driver starved of both was seen to
/// refuse its session.
pub(crate) struct Browser {
    pub(crate) client: Client,
    _driver: tokio::process::Child,
    _one_at_a_time: tokio::sync::MutexGuard<'static, ()>,
}

static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Browser {
    pub(crate) async fn start(test: &str) -> Option<Self> {
        let Some((chromium, chromedriver)) = browser() else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "{test}: chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
                );
            }
            eprintln!(
                "skipping {test}: chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let one_at_a_time = ONE_BROWSER.lock().await;
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let driver = tokio::process::Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1200,800",
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session");
        Some(Self {
            client,
            _driver: driver,
            _one_at_a_time: one_at_a_time,
        })
    }

    /// Saves a screenshot of the page shown, then ends the session.
    pub(crate) async fn finish(self, name: &str) {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
        self.client.close().await.unwrap();
    }

    /// Evaluates `script` (which returns a value) until it returns `true`; panics naming
    /// `what` after 30 s.
    pub(crate) async fn until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let value = self.client.execute(script, vec![]).await.unwrap();
            if value == json!(true) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn sign_in(&self, base: &str) {
        let client = &self.client;
        client.goto(&format!("{base}/dashboard")).await.unwrap();
        // Sent to the sign-in page, which brings us back.
        assert!(client.current_url().await.unwrap().path() == "/dashboard/sign-in");
        client
            .find(Locator::Id("token"))
            .await
            .unwrap()
            .send_keys(TOKEN)
            .await
            .unwrap();
        client
            .find(Locator::Id("sign-in"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // The click navigates: wait for the page it leads to.
        let signed_in = client
            .wait()
            .at_most(std::time::Duration::from_secs(30))
            .for_element(Locator::Id("signed-in"))
            .await
            .unwrap();
        assert_eq!(signed_in.text().await.unwrap(), "alice");
    }
}

/// A job that prints a group, then a line every 0.2 s for a minute: running while the test
/// watches it.
const TICKING: &str = r#"behaviour = "run"
timeout_secs = 120
script = 'echo "::group::Setup"; echo "inside the group"; echo "::endgroup::"; printf "\033[32mready\033[0m\n"; i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo "tick $i"; sleep 0.2; done'
"#;

async fn dashboard_host(plugins: String) -> (TestHost, tempfile::TempDir) {
    dashboard_host_with(HostSpec {
        plugins,
        ..HostSpec::default()
    })
    .await
}

/// A host as `spec` says, with the dashboard on and alice's token.
pub(crate) async fn dashboard_host_with(spec: HostSpec) -> (TestHost, tempfile::TempDir) {
    let tokens = tempfile::tempdir().unwrap();
    let file = tokens.path().join("tokens");
    std::fs::write(&file, format!("alice:{TOKEN}\n")).unwrap();
    let host = TestHost::start(HostSpec {
        dashboard: format!(
            "enabled = true\ntokens_file = {:?}",
            file.display().to_string()
        ),
        ..spec
    })
    .await;
    (host, tokens)
}

#[tokio::test]
async fn sign_in_see_a_delivery_arrive_and_watch_its_log_live() {
    watch_a_log_live(LogsIn::Files, "browser::sign_in_see_a_delivery_arrive").await;
}

#[tokio::test]
async fn watch_a_log_in_postgres_live_as_a_file() {
    watch_a_log_live(LogsIn::Postgres, "browser::watch_a_log_in_postgres_live").await;
}

async fn watch_a_log_live(logs: LogsIn, test: &str) {
    let Some(store) = logs.store() else {
        return;
    };
    let Some(browser) = Browser::start(test).await else {
        return;
    };
    let (host, _tokens) = dashboard_host_with(HostSpec {
        plugins: behaviours("ticking", "timeout_secs = 120", TICKING),
        store: store.keys.clone(),
        ..HostSpec::default()
    })
    .await;
    browser.sign_in(&host.base).await;
    let client = &browser.client;

    // The delivery arrives while the list (where signing in led) is open: its row appears
    // without a reload.
    client
        .execute(
            "document.body.dataset.opened = 'before the delivery'; return true",
            vec![],
        )
        .await
        .unwrap();
    let mut payload = example("pull_request", Some("opened"));
    payload["pull_request"]["title"] = json!("<script>window.pwned = 1</script>Make it faster");
    assert_eq!(host.send("pull_request", "live-1", &payload).await.0, 202);
    let row = client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("a[href='/dashboard/deliveries/live-1']"))
        .await
        .unwrap();
    assert_eq!(row.text().await.unwrap(), "live-1");
    let same_page = client
        .execute("return document.body.dataset.opened", vec![])
        .await
        .unwrap();
    assert_eq!(
        same_page,
        json!("before the delivery"),
        "the row came without a reload"
    );

    // Its job, from the delivery's page.
    row.click().await.unwrap();
    let job = client.find(Locator::Css("ul.jobs a")).await.unwrap();
    job.click().await.unwrap();
    assert!(
        client
            .current_url()
            .await
            .unwrap()
            .path()
            .starts_with("/dashboard/jobs/")
    );
    let title = client
        .execute("return document.title", vec![])
        .await
        .unwrap();
    assert!(title.as_str().unwrap().starts_with("Job #"), "{title}");
    // The hostile title is text, never run.
    let pwned = client
        .execute("return window.pwned === undefined", vec![])
        .await
        .unwrap();
    assert_eq!(pwned, json!(true));

    // Lines appear while we watch, without a reload.
    browser
        .until("the log to follow", "return document.getElementById('log').dataset.follow === 'true' || document.querySelectorAll('#log .line').length > 0")
        .await;
    let shown: u64 = client
        .execute(
            "return document.querySelectorAll('#log .line').length",
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    let later = shown + 5;
    browser
        .until(
            "new log lines to appear live",
            &format!("return document.getElementById('L{later}') !== null"),
        )
        .await;
    let url_before = client.current_url().await.unwrap();
    assert_eq!(url_before.query(), None, "no reload happened");
    // Colours are classes: the CSP allows no inline style.
    let ready = client.find(Locator::Css("#L4 .fg2")).await.unwrap();
    assert_eq!(ready.text().await.unwrap(), "ready");

    // A #L link is followed and its line highlighted; a range highlights each line of it.
    client
        .find(Locator::Css("#L5 a.ln"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(client.current_url().await.unwrap().fragment(), Some("L5"));
    browser
        .until(
            "L5 highlighted",
            "return document.getElementById('L5').classList.contains('hl')",
        )
        .await;
    client
        .execute("window.location.hash = '#L6-L8'", vec![])
        .await
        .unwrap();
    browser
        .until(
            "L6-L8 highlighted",
            "return ['L6','L7','L8'].every(id => document.getElementById(id).classList.contains('hl')) && !document.getElementById('L5').classList.contains('hl')",
        )
        .await;

    // The group starts folded, as GitHub Actions shows it, with its markers hidden; a click
    // opens it.
    let group_open = "return document.querySelector('#log details.group').open";
    let visible = |id: &str| format!("return document.getElementById('{id}').checkVisibility()");
    assert_eq!(
        client.execute(group_open, vec![]).await.unwrap(),
        json!(false)
    );
    assert_eq!(
        client.execute(&visible("L2"), vec![]).await.unwrap(),
        json!(false)
    );
    client
        .find(Locator::Css("#log details.group > summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(
        client.execute(group_open, vec![]).await.unwrap(),
        json!(true)
    );
    assert_eq!(
        client.execute(&visible("L2"), vec![]).await.unwrap(),
        json!(true)
    );
    assert_eq!(
        client.execute(&visible("L3"), vec![]).await.unwrap(),
        json!(false),
        "the ::endgroup:: line is hidden"
    );
    let text = client
        .execute("return document.getElementById('log').innerText", vec![])
        .await
        .unwrap();
    let text = text.as_str().unwrap();
    assert!(
        text.contains("Setup") && text.contains("inside the group"),
        "{text}"
    );
    assert!(
        !text.contains("::group::") && !text.contains("::endgroup::"),
        "{text}"
    );

    let screenshot = match logs {
        LogsIn::Files => "job-live-log",
        LogsIn::Postgres => "job-live-log-postgres",
    };
    browser.finish(screenshot).await;
    host.stop().await;
}

#[tokio::test]
async fn the_deliveries_and_jobs_pages_render_in_a_browser() {
    let Some(browser) = Browser::start("browser::the_deliveries_and_jobs_pages_render").await
    else {
        return;
    };
    let (host, _tokens) = dashboard_host(EVENT_LOG.to_owned()).await;
    for (id, action) in [
        ("page-1", "opened"),
        ("page-2", "synchronize"),
        ("page-3", "closed"),
    ] {
        let payload = example("pull_request", Some(action));
        assert_eq!(host.send("pull_request", id, &payload).await.0, 202);
        host.ended_jobs(id, 1).await;
    }
    browser.sign_in(&host.base).await;
    let client = &browser.client;
    client
        .goto(&format!("{}/dashboard/jobs", host.base))
        .await
        .unwrap();
    let rows = client.find_all(Locator::Css("tr.job")).await.unwrap();
    assert_eq!(rows.len(), 3);
    client
        .goto(&format!("{}/dashboard", host.base))
        .await
        .unwrap();
    let rows = client.find_all(Locator::Css("tr.delivery")).await.unwrap();
    assert_eq!(rows.len(), 3);
    // The stylesheet applied (served from the binary, allowed by the CSP).
    let background = client
        .execute(
            "return getComputedStyle(document.querySelector('header.top')).backgroundColor",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(background, json!("rgb(36, 41, 47)"));
    browser.finish("deliveries").await;
    host.stop().await;
}

impl Browser {
    /// The text of the element with `id`, waiting (30 s at most) for it to appear: a form's
    /// answer loads after the click returns.
    pub(crate) async fn text(&self, id: &str) -> String {
        let element = self
            .client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Id(id))
            .await
            .unwrap();
        element.text().await.unwrap()
    }

    /// Reloads `url` until the element with `id` reads `text`; panics after 30 s.
    pub(crate) async fn reload_until(&self, url: &str, id: &str, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.client.goto(url).await.unwrap();
            if self.text(id).await == text {
                return;
            }
            assert!(Instant::now() < deadline, "{id} never read {text:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub(crate) async fn click(&self, css: &str) {
        let element = self.client.find(Locator::Css(css)).await.unwrap();
        element.click().await.unwrap();
    }
}

#[tokio::test]
async fn replay_a_delivery_and_see_its_new_job_appear() {
    let Some(browser) = Browser::start("browser::replay_a_delivery").await else {
        return;
    };
    let (host, _tokens) = dashboard_host(EVENT_LOG.to_owned()).await;
    let payload = example("pull_request", Some("opened"));
    assert_eq!(host.send("pull_request", "again-1", &payload).await.0, 202);
    host.ended_jobs("again-1", 1).await;
    browser.sign_in(&host.base).await;
    let client = &browser.client;
    let page = format!("{}/dashboard/deliveries/again-1", host.base);
    client.goto(&page).await.unwrap();
    assert_eq!(
        client
            .find_all(Locator::Css("ul.jobs a"))
            .await
            .unwrap()
            .len(),
        1
    );

    browser.click("#replay-button").await;
    let notice = browser.text("action-result").await;
    assert!(
        notice.starts_with("token:alice replay: replayed as new jobs #2 (event-log)"),
        "{notice}"
    );
    let jobs = client.find_all(Locator::Css("ul.jobs a")).await.unwrap();
    assert_eq!(
        jobs.len(),
        2,
        "the new job is listed on the delivery's page"
    );
    assert!(jobs[1].text().await.unwrap().starts_with("event-log #2"));
    let trail = client
        .find_all(Locator::Css("#audit tr.action"))
        .await
        .unwrap();
    assert_eq!(trail.len(), 1);
    host.ended_jobs("again-1", 2).await;
    browser.finish("delivery-replayed").await;
    host.stop().await;
}

#[tokio::test]
async fn replay_a_deployment_after_typing_its_environment_then_sign_out_everywhere() {
    let Some(browser) = Browser::start("browser::replay_a_deployment").await else {
        return;
    };
    let (host, _tokens) = dashboard_host(EVENT_LOG.to_owned()).await;
    let mut payload = example("deployment", None);
    payload["deployment"]["environment"] = json!("production");
    assert_eq!(host.send("deployment", "deploy-1", &payload).await.0, 202);
    host.ended_jobs("deploy-1", 1).await;
    browser.sign_in(&host.base).await;
    let client = &browser.client;
    client
        .goto(&format!("{}/dashboard/deliveries/deploy-1", host.base))
        .await
        .unwrap();
    // Without the name the browser does not send the form (it is required).
    browser.click("#replay-button").await;
    assert!(client.find(Locator::Id("action-result")).await.is_err());
    client
        .find(Locator::Id("replay-confirm"))
        .await
        .unwrap()
        .send_keys("production")
        .await
        .unwrap();
    browser.click("#replay-button").await;
    let notice = browser.text("action-result").await;
    assert!(
        notice.starts_with("token:alice replay: replayed as new jobs #2 (event-log)"),
        "{notice}"
    );
    host.ended_jobs("deploy-1", 2).await;

    // The session cookie as the browser holds it, to replay after signing out.
    let cookie = client.get_named_cookie("switchyard_session").await.unwrap();
    let old = format!("switchyard_session={}", cookie.value());
    let replayed = || async {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(format!("{}/dashboard/jobs", host.base))
            .header("cookie", &old)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(replayed().await, 200);
    browser.click("form.who button").await;
    browser
        .until(
            "the sign-in page",
            "return window.location.pathname === '/dashboard/sign-in'",
        )
        .await;
    assert_eq!(replayed().await, 303, "the old cookie still opens pages");
    browser.finish("deployment-replayed-signed-out").await;
    host.stop().await;
}

const REPO: &str = "Codertocat/Hello-World";

#[tokio::test]
async fn cancel_a_running_build_and_see_its_end_and_the_ci_runners_status() {
    let Some(browser) = Browser::start("browser::cancel_a_running_build").await else {
        return;
    };
    let github = FakeGitHub::start().await;
    let origin = Origin::new(REPO);
    let plugins = format!(
        "[[plugins]]\nname = \"ci\"\nlibrary = \"{{lib:switchyard-ci}}\"\n{}\n\
         [plugins.settings]\nclone_url = \"{}\"\ncommand = \"sh test.sh\"\n",
        binds(&origin),
        origin.clone_url_template()
    );
    let (host, _tokens) = dashboard_host_with(HostSpec {
        plugins,
        github_url: Some(github.url().to_owned()),
        github_token: Some(crate::support::TOKEN),
        ..HostSpec::default()
    })
    .await;
    let sha = origin.commit(
        "refs/heads/slow",
        &[("test.sh", "echo building; sleep 120; echo never")],
    );
    let mut payload = example("pull_request", Some("opened"));
    payload["pull_request"]["head"]["sha"] = json!(sha);
    payload["pull_request"]["head"]["repo"]["full_name"] = json!(REPO);
    assert_eq!(host.send("pull_request", "slow-1", &payload).await.0, 202);
    let job = host.host_state.journal.jobs_of("slow-1").await.unwrap()[0].id;

    browser.sign_in(&host.base).await;
    let page = format!("{}/dashboard/jobs/{job}", host.base);
    browser.reload_until(&page, "job-state", "running").await;
    // The build's command runs: its line is in the log, followed live.
    browser
        .until(
            "the build to print",
            "return document.getElementById('log').textContent.includes('building')",
        )
        .await;
    browser.click("#cancel-button").await;
    let notice = browser.text("action-result").await;
    assert!(
        notice.contains("cancelling: the plugin was told \"cancelled by token:alice\""),
        "{notice}"
    );
    browser
        .reload_until(&page, "job-state", "cancelled · journal: failed")
        .await;
    let error = browser
        .client
        .find(Locator::Css("dd.error-text"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(error.starts_with("cancelled by token:alice"), "{error}");
    // What the runner posted is on the job's page: its last status says error.
    let posted = browser
        .client
        .find_all(Locator::Css("#posts tr.post"))
        .await
        .unwrap();
    let last = posted
        .last()
        .expect("statuses listed")
        .text()
        .await
        .unwrap();
    assert!(last.starts_with("status error ci/switchyard"), "{last}");
    // The CI runner said so on the commit: pending, then error with the reason.
    let path = format!("/repos/{REPO}/statuses/{sha}");
    let statuses: Vec<(String, String)> = github
        .requests()
        .into_iter()
        .filter(|r| r.path == path)
        .map(|r| {
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
            (text(&r.body["state"]), text(&r.body["description"]))
        })
        .collect();
    assert_eq!(
        statuses.last(),
        Some(&(
            "error".to_owned(),
            format!("Build #{job} cancelled by token:alice")
        )),
        "{statuses:?}"
    );
    assert_eq!(statuses[0].0, "pending");
    assert!(github.violations().is_empty(), "{:?}", github.violations());
    browser.finish("job-cancelled").await;
    host.stop().await;
}

#[tokio::test]
async fn release_a_lock_after_typing_its_name() {
    let Some(browser) = Browser::start("browser::release_a_lock").await else {
        return;
    };
    let patient = behaviours(
        "deploy",
        "timeout_secs = 600",
        "behaviour = \"await_cancel\"",
    );
    let (host, _tokens) = dashboard_host(patient).await;
    let payload = example("pull_request", Some("opened"));
    assert_eq!(host.send("pull_request", "held-1", &payload).await.0, 202);
    let journal = std::sync::Arc::clone(&host.host_state.journal);
    let holder = journal.jobs_of("held-1").await.unwrap()[0].id;
    let deadline = Instant::now() + Duration::from_secs(30);
    while journal.job(holder).await.unwrap().state != switchyard::journal::JobState::Running {
        assert!(Instant::now() < deadline, "the holder never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lock = "deploy:Codertocat/Hello-World:production";
    assert!(journal.try_lock(lock, holder, 1).await.unwrap());

    browser.sign_in(&host.base).await;
    let client = &browser.client;
    client
        .goto(&format!("{}/dashboard/deployments", host.base))
        .await
        .unwrap();
    let confirm = client
        .find(Locator::Css("tr.lock input.confirm"))
        .await
        .unwrap();
    // The browser itself refuses the form until a name is typed (`required`).
    confirm.send_keys(lock).await.unwrap();
    browser.click("tr.lock button.danger").await;
    let notice = browser.text("action-result").await;
    assert!(
        notice.contains(&format!("released; holder job #{holder} cancelling: ")),
        "{notice}"
    );
    assert!(
        client
            .find_all(Locator::Css("tr.lock"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(journal.locks().await.unwrap().is_empty());
    let ended = host.ended_jobs("held-1", 1).await;
    assert_eq!(
        ended[0].error.as_deref(),
        Some("stopped: cancelled by token:alice")
    );
    browser.finish("lock-released").await;
    host.stop().await;
}
