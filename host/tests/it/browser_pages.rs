//! The pages a developer keeps open, in a real browser: a visitor finds a private repository's
//! pages and its commit as absent as unknown ones; signed in, the search box leads by sha
//! prefix, pull request number and delivery id to the commit, pull request and delivery pages
//! of real signed deliveries (builds and a deploy); times read "ago" with the exact time in
//! the title; a build's log shows its `::group::` folded, the markers gone.
//!
//! With `SWITCHYARD_DOCS_SCREENSHOTS=1` the test also writes the pictures of
//! `docs/dashboard.md` (`docs/images/dashboard-{repository,pull-request,commit}.png`).

use std::{path::Path, time::Duration};

use fantoccini::{Client, Locator};
use serde_json::json;

use crate::browser::{Browser, TOKEN};
use crate::pages::{SHA, deployment_of, pull_request_at, push_of};
use crate::support::{EVENT_LOG, HostSpec, TestHost, behaviours};

/// A build on pull requests that prints a group.
const BUILD: &str = r#"behaviour = "run"
script = 'echo "::group::Install dependencies"; echo "fetched 12 crates"; echo "::endgroup::"; echo "build ok"'
"#;

const PRIVATE_SHA: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";

/// Saves a picture of the page shown beside the other tests' (and into `docs/images/` when
/// asked for).
async fn picture(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
    if std::env::var_os("SWITCHYARD_DOCS_SCREENSHOTS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/images");
        std::fs::write(docs.join(format!("dashboard-{name}.png")), &png).unwrap();
    }
}

/// Types `query` into the header's search box and waits for the page it leads to.
async fn search(client: &Client, query: &str) -> String {
    let before = client.current_url().await.unwrap();
    let field = client.find(Locator::Id("search")).await.unwrap();
    field.send_keys(&format!("{query}\n")).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = client.current_url().await.unwrap();
        if now != before {
            return now.path().to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the search did not load"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn title(client: &Client) -> String {
    let title = client
        .execute("return document.title", vec![])
        .await
        .unwrap();
    title.as_str().unwrap().to_owned()
}

#[tokio::test]
async fn search_leads_to_a_commits_builds_and_deploy_and_hidden_repositories_stay_hidden() {
    let Some(browser) = Browser::start("browser_pages::search_leads_to_a_commit").await else {
        return;
    };
    let tokens = tempfile::tempdir().unwrap();
    let file = tokens.path().join("tokens");
    std::fs::write(&file, format!("alice:{TOKEN}\n")).unwrap();
    let host = TestHost::start(HostSpec {
        plugins: format!("{EVENT_LOG}{}", behaviours("build", "", BUILD)),
        dashboard: format!(
            "enabled = true\naccess = \"public-read\"\ntokens_file = {:?}",
            file.display().to_string()
        ),
        ..HostSpec::default()
    })
    .await;
    let repo = "octo/app";
    let mut private = pull_request_at("octo/secret", 4, PRIVATE_SHA, "hidden");
    private["repository"]["private"] = json!(true);
    let sends = [
        (
            "pr-1",
            "pull_request",
            pull_request_at(repo, 12, SHA, "faster"),
            2,
        ),
        ("push-1", "push", push_of(repo, SHA, "main"), 1),
        ("deploy-1", "deployment", deployment_of(repo, SHA), 1),
        ("secret-1", "pull_request", private, 2),
    ];
    for (id, event, payload, jobs) in &sends {
        assert_eq!(host.send(event, id, payload).await.0, 202);
        host.ended_jobs(id, *jobs).await;
    }
    let client = &browser.client;
    let base = &host.base;

    // A visitor: the private repository's pages answer as unknown ones, and search finds
    // nothing of it.
    for (hidden, unknown) in [
        ("octo/secret", "octo/unknown"),
        ("octo/secret/pulls/4", "octo/unknown/pulls/4"),
        (
            &format!("octo/secret/commits/{PRIVATE_SHA}") as &str,
            &format!("octo/unknown/commits/{PRIVATE_SHA}") as &str,
        ),
    ] {
        client
            .goto(&format!("{base}/dashboard/repositories/{unknown}"))
            .await
            .unwrap();
        let unknown_text = client
            .find(Locator::Css("main"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        client
            .goto(&format!("{base}/dashboard/repositories/{hidden}"))
            .await
            .unwrap();
        assert_eq!(title(client).await, "Not found · Switchyard", "{hidden}");
        let text = client
            .find(Locator::Css("main"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(text, unknown_text, "{hidden}");
    }
    client
        .goto(&format!("{base}/dashboard/deliveries"))
        .await
        .unwrap();
    for query in [
        &PRIVATE_SHA[..8],
        "octo/secret#4",
        "octo/secret",
        "secret-1",
    ] {
        assert_eq!(search(client, query).await, "/dashboard/search", "{query}");
        let text = client
            .find(Locator::Id("no-match"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(text, format!("Nothing matches {query}."));
    }

    // Signed in.
    client
        .goto(&format!("{base}/dashboard/sign-in"))
        .await
        .unwrap();
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
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("signed-in"))
        .await
        .unwrap();

    // A sha prefix opens the commit: the pull request's build and event log, the push's and
    // the deploy's jobs, newest first.
    let commit = format!("/dashboard/repositories/octo/app/commits/{SHA}");
    assert_eq!(search(client, &SHA[..7]).await, commit);
    let rows = client.find_all(Locator::Css("#jobs tr.job")).await.unwrap();
    assert_eq!(rows.len(), 4);
    let events: Vec<String> = {
        let mut events = Vec::new();
        for row in &rows {
            let cell = row.find(Locator::Css("td:nth-child(3)")).await.unwrap();
            events.push(cell.text().await.unwrap());
        }
        events
    };
    assert_eq!(
        events,
        [
            "deployment.created",
            "push",
            "pull_request.opened",
            "pull_request.opened"
        ]
    );
    // Times: relative, the exact time in the reader's zone on hover.
    let time = client.find(Locator::Css("#jobs time")).await.unwrap();
    let shown = time.text().await.unwrap();
    assert!(shown == "just now" || shown.ends_with(" ago"), "{shown}");
    let exact = time.attr("title").await.unwrap().unwrap();
    let year = time::OffsetDateTime::now_utc().year().to_string();
    assert!(
        exact.contains(&year) && exact.matches(':').count() >= 2,
        "{exact}"
    );
    assert!(time.attr("datetime").await.unwrap().unwrap().ends_with('Z'));
    // Long names do not wrap.
    let wraps = client
        .execute(
            "return getComputedStyle(document.querySelector('#jobs td.clip')).whiteSpace",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(wraps, json!("nowrap"));
    picture(client, "commit").await;

    // The pull request's number opens its page; its build's log has the group folded.
    let pull = "/dashboard/repositories/octo/app/pulls/12";
    assert_eq!(search(client, "#12").await, pull);
    assert_eq!(
        client
            .find_all(Locator::Css("#jobs tr.job"))
            .await
            .unwrap()
            .len(),
        2
    );
    picture(client, "pull-request").await;
    let build = client
        .find(Locator::XPath(
            "//tr[td[2][normalize-space()='build']]//a[text()='log']",
        ))
        .await
        .unwrap();
    build.click().await.unwrap();
    let log = client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("log"))
        .await
        .unwrap();
    let text = log.text().await.unwrap();
    assert!(
        text.contains("Install dependencies") && text.contains("build ok"),
        "{text}"
    );
    assert!(!text.contains("fetched 12 crates"), "folded: {text}");
    assert!(
        !text.contains("::group::") && !text.contains("::endgroup::"),
        "{text}"
    );
    let open = client
        .execute(
            "return document.querySelector('#log details.group').open",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(open, json!(false));

    // From the job to its repository: pull requests, branches, deploys.
    client
        .find(Locator::Id("repository-link"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("pulls"))
        .await
        .unwrap();
    assert_eq!(title(client).await, "Repository octo/app · Switchyard");
    let pulls = client
        .find(Locator::Css("#pulls tr.place"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        pulls.contains("#12 faster") && pulls.contains("build passed"),
        "{pulls}"
    );
    let branches = client
        .find(Locator::Css("#branches tr.place"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(branches.starts_with("main"), "{branches}");
    assert_eq!(
        client
            .find_all(Locator::Css("#deploys tr.job"))
            .await
            .unwrap()
            .len(),
        1
    );
    picture(client, "repository").await;

    // A delivery id opens the delivery.
    assert_eq!(
        search(client, "deploy-1").await,
        "/dashboard/deliveries/deploy-1"
    );
    browser.finish("pages-delivery").await;
    host.stop().await;
}
