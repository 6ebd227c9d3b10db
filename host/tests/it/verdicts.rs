//! A job's verdict on every surface: a real build (the CI runner, a real git repository, real
//! bubblewrap) that exits 3 is `failed` on its badge, in the dashboard's filter and header
//! counts, on its page in the browser (which shows its end without a reload), in
//! `switchyard deliveries --failed` and in `/metrics`; a passing one `passed`; and the host's
//! own verdicts (errored, timed out, cancelled) on both journal backends.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::json;
use switchyard::journal::{JobRecord, JobState};
use switchyard_plugin_api::{CancelReason, Verdict};

use crate::browser::{Browser, dashboard_host_with};
use crate::support::{
    EVENT_LOG, FakeGitHub, HostSpec, Origin, TOKEN, TestHost, behaviours, binds, example,
    server::command,
};

const REPO: &str = "Codertocat/Hello-World";

/// Sends a pull request event for `sha` as `delivery`.
async fn open_pull_request(host: &TestHost, delivery: &str, sha: &str) {
    let mut payload = example("pull_request", Some("opened"));
    payload["pull_request"]["head"]["sha"] = json!(sha);
    payload["pull_request"]["head"]["repo"]["full_name"] = json!(REPO);
    assert_eq!(host.send("pull_request", delivery, &payload).await.0, 202);
}

/// `switchyard ARGS` against the test host's config, its standard output.
fn switchyard(host: &TestHost, args: &[&str]) -> String {
    let out = command(
        &host.dir.path().join("config.toml"),
        args,
        "SWITCHYARD_WEBHOOK_SECRET",
    )
    .env("RUST_LOG", "warn")
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The value of `switchyard_job_verdicts_total` for `plugin` and `verdict`, 0 when absent.
async fn verdicts_counted(host: &TestHost, plugin: &str, verdict: &str) -> u64 {
    let (status, text) = host.get("/metrics").await;
    assert_eq!(status, 200);
    let series =
        format!("switchyard_job_verdicts_total{{plugin=\"{plugin}\",verdict=\"{verdict}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |value| value.trim().parse().unwrap())
}

/// The job `delivery` made, once it has ended.
async fn ended(host: &TestHost, delivery: &str) -> JobRecord {
    host.ended_jobs(delivery, 1).await.remove(0)
}

#[tokio::test]
async fn a_build_that_exits_3_is_failed_everywhere_and_its_open_page_shows_its_end() {
    let browser = Browser::start("verdicts::a_build_that_exits_3").await;
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
        github_token: Some(TOKEN),
        ..HostSpec::default()
    })
    .await;

    // A build that passes, first.
    let passing = origin.commit("refs/heads/good", &[("test.sh", "echo fine")]);
    open_pull_request(&host, "pass-1", &passing).await;
    let passed = ended(&host, "pass-1").await;
    assert_eq!(
        (passed.state, passed.verdict),
        (JobState::Succeeded, Some(Verdict::Passed))
    );

    // Then one that fails: it runs long enough for its page to be open while it runs.
    let failing = origin.commit(
        "refs/heads/bad",
        &[("test.sh", "echo building; sleep 4; echo broken >&2; exit 3")],
    );
    open_pull_request(&host, "fail-1", &failing).await;
    let job = host.host_state.journal.jobs_of("fail-1").await.unwrap()[0].id;
    if let Some(browser) = &browser {
        browser.sign_in(&host.base).await;
        let page = format!("{}/dashboard/jobs/{job}", host.base);
        browser.reload_until(&page, "job-state", "running").await;
        browser
            .until(
                "the build to print",
                "return document.getElementById('log').textContent.includes('building')",
            )
            .await;
        assert!(
            browser
                .client
                .find(Locator::Id("cancel-button"))
                .await
                .is_ok()
        );
        assert_eq!(browser.text("count-running").await, "1 running");
        // Marks this page: a reload would lose the mark.
        browser
            .client
            .execute("window.notReloaded = true; return true", vec![])
            .await
            .unwrap();
        browser
            .until(
                "the page to show the build's end",
                "return document.getElementById('job-state').textContent === 'failed · journal: succeeded'",
            )
            .await;
        let kept = browser
            .client
            .execute("return window.notReloaded === true", vec![])
            .await
            .unwrap();
        assert_eq!(kept, json!(true), "the page was reloaded");
        let duration = browser.text("job-duration").await;
        assert!(
            // The dashboard's one format: `5.2s`, `1m 05s`.
            duration.starts_with(|c: char| c.is_ascii_digit()) && duration.ends_with('s'),
            "{duration}"
        );
        assert!(
            browser.client.find(Locator::Id("cancel")).await.is_err(),
            "the Cancel button is gone"
        );
        assert_eq!(browser.text("count-running").await, "0 running");
        assert_eq!(
            browser.text("count-failed").await,
            "1 failed in the last hour"
        );
        // A reload (as without JavaScript) shows the same.
        browser.client.refresh().await.unwrap();
        assert_eq!(
            browser.text("job-state").await,
            "failed · journal: succeeded"
        );
        assert!(browser.client.find(Locator::Id("cancel")).await.is_err());
    }
    let failed = ended(&host, "fail-1").await;
    assert_eq!(
        (failed.state, failed.verdict),
        (JobState::Succeeded, Some(Verdict::Failed)),
        "ran to its end, and the build failed"
    );
    assert!(
        failed
            .note
            .as_deref()
            .unwrap_or_default()
            .starts_with("failed: exit 3 after "),
        "{failed:?}"
    );

    if let Some(browser) = &browser {
        // The jobs list: red badge for the failed build, green for the passing one.
        let jobs = format!("{}/dashboard/jobs", host.base);
        browser.client.goto(&jobs).await.unwrap();
        let badge = |id| {
            let client = browser.client.clone();
            async move {
                let link = Locator::Css(&format!("a[href='/dashboard/jobs/{id}']"));
                let row = client
                    .find(link)
                    .await
                    .unwrap()
                    .find(Locator::XPath("ancestor::tr"))
                    .await
                    .unwrap();
                let badge = row.find(Locator::Css("td.verdict .state")).await.unwrap();
                let class = badge.attr("class").await.unwrap().unwrap_or_default();
                (badge.text().await.unwrap(), class)
            }
        };
        let (text, class) = badge(job).await;
        assert_eq!(text, "failed");
        assert!(class.contains("verdict-bad"), "{class}");
        let (text, class) = badge(passed.id).await;
        assert_eq!(text, "passed");
        assert!(class.contains("verdict-passed"), "{class}");
        // The header's count leads to the failed jobs: the failed build alone.
        browser.click("#count-failed").await;
        browser
            .until(
                "the failed jobs",
                "return window.location.search === '?verdict=failed'",
            )
            .await;
        let listed = browser
            .client
            .find_all(Locator::Css("#jobs tr.job"))
            .await
            .unwrap();
        assert_eq!(listed.len(), 1);
        let row = listed[0].text().await.unwrap();
        assert!(row.starts_with(&format!("#{job} ci")), "{row}");
        // The filter's select says what it kept.
        let selected = browser
            .client
            .find(Locator::Css("#verdict-filter option[selected]"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(selected, "failed, errored or timed out");
    }

    // The CLI: the failed build's delivery alone, its verdict beside its state.
    let listed = switchyard(&host, &["deliveries", "--failed"]);
    assert!(listed.contains("  fail-1  pull_request.opened"), "{listed}");
    assert!(!listed.contains("pass-1"), "{listed}");
    assert!(
        listed.contains(&format!(
            "job {job} ci: failed (state succeeded, attempts 1)"
        )),
        "{listed}"
    );
    let all = switchyard(&host, &["deliveries"]);
    assert!(
        all.contains(&format!(
            "job {} ci: passed (state succeeded, attempts 1)",
            passed.id
        )),
        "{all}"
    );
    // The metrics.
    assert_eq!(verdicts_counted(&host, "ci", "failed").await, 1);
    assert_eq!(verdicts_counted(&host, "ci", "passed").await, 1);
    if let Some(browser) = browser {
        browser.finish("verdict-failed-build").await;
    }
    assert!(github.violations().is_empty(), "{:?}", github.violations());
    host.stop().await;
}

#[tokio::test]
async fn the_host_names_errors_timeouts_and_cancels_in_sqlite() {
    the_host_names_errors_timeouts_and_cancels(String::new()).await;
}

#[tokio::test]
async fn the_host_names_errors_timeouts_and_cancels_in_postgres() {
    let Some(server) = switchyard_testkit::TestPostgres::get() else {
        return;
    };
    let (_secrets, store) = crate::postgres::store_with_lease(&server.database(), 3);
    the_host_names_errors_timeouts_and_cancels(store).await;
}

/// One delivery, four plugins: one that returns `Done` as every plugin written before verdicts
/// does (passed), one that panics (errored), one past its entry's timeout (timed out) and one
/// a person cancels (cancelled). Each verdict is in the journal, the counts, the failed filter,
/// the CLI and the metrics.
async fn the_host_names_errors_timeouts_and_cancels(store: String) {
    let plugins = [
        EVENT_LOG.to_owned(),
        behaviours("panics", "", "behaviour = \"panic\""),
        behaviours("hangs", "timeout_secs = 1", "behaviour = \"await_cancel\""),
        behaviours("waits", "", "behaviour = \"await_cancel\""),
    ]
    .join("\n");
    let host = TestHost::start(HostSpec {
        plugins,
        store,
        ..HostSpec::default()
    })
    .await;
    let journal = &host.host_state.journal;
    let payload = example("pull_request", Some("opened"));
    assert_eq!(host.send("pull_request", "mixed-1", &payload).await.0, 202);
    let waits = eventually_running(&host, "mixed-1", "waits").await;
    host.host_state
        .workers
        .request_cancel(waits, CancelReason::User { by: "ana".into() })
        .await
        .unwrap();
    let jobs = host.ended_jobs("mixed-1", 4).await;
    let verdict = |plugin: &str| {
        let job = jobs.iter().find(|job| job.plugin == plugin).unwrap();
        (job.state, job.verdict)
    };
    // (plugin, journal state, verdict)
    let expected = [
        ("event-log", JobState::Succeeded, Verdict::Passed),
        ("panics", JobState::Failed, Verdict::Errored),
        ("hangs", JobState::Failed, Verdict::TimedOut),
        ("waits", JobState::Failed, Verdict::Cancelled),
    ];
    for (plugin, state, expected) in expected {
        assert_eq!(
            verdict(plugin),
            (state, Some(expected)),
            "{plugin}: {jobs:?}"
        );
        assert_eq!(
            verdicts_counted(&host, plugin, expected.as_str()).await,
            1,
            "{plugin}"
        );
    }
    // Errored and timed out count as failed; cancelled and passed do not.
    let counts = journal
        .job_counts("1970-01-01T00:00:00Z", Default::default())
        .await
        .unwrap();
    assert_eq!((counts.bad, counts.failed_since), (2, 2), "{counts:?}");
    let failed = journal
        .jobs(switchyard::journal::JobFilter {
            limit: 10,
            verdict: Some(switchyard::journal::VerdictFilter::Failed),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut names: Vec<&str> = failed.iter().map(|row| row.job.plugin.as_str()).collect();
    names.sort();
    assert_eq!(names, ["hangs", "panics"]);
    let cancelled = journal
        .jobs(switchyard::journal::JobFilter {
            limit: 10,
            verdict: Some(switchyard::journal::VerdictFilter::Is(Verdict::Cancelled)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].job.id, waits);
    let listed = switchyard(&host, &["deliveries", "--failed"]);
    for line in [
        ": passed (state succeeded, attempts 1)",
        ": errored (state failed, attempts 1)",
        ": timed out (state failed, attempts 1)",
        ": cancelled (state failed, attempts 1)",
    ] {
        assert!(listed.contains(line), "{line}: {listed}");
    }
    host.stop().await;
}

/// Waits until `plugin`'s job of `delivery` runs, and returns its id.
async fn eventually_running(
    host: &TestHost,
    delivery: &str,
    plugin: &str,
) -> switchyard::journal::JobId {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let jobs = host.host_state.journal.jobs_of(delivery).await.unwrap();
        if let Some(job) = jobs
            .iter()
            .find(|job| job.plugin == plugin && job.state == JobState::Running)
        {
            return job.id;
        }
        assert!(std::time::Instant::now() < deadline, "{plugin} never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
