//! Catching up missed deliveries against the fake GitHub's webhook deliveries: after the host
//! was down, exactly the GUIDs GitHub never delivered OK and the journal lacks are redelivered,
//! each once, through signed ingress; a restart does not rescan; `switchyard catch-up` by hand,
//! dry or not; token mode with a repository hook.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support::{EVENT_LOG, FakeGitHub, HostSpec, SECRET, TestHost, eventually, example};

const REPO: &str = "Codertocat/Hello-World";
const APP_HOOK: &str = "app/hook";

fn pull_request(number: u64) -> Value {
    let mut payload = example("pull_request", Some("opened"));
    payload["number"] = json!(number);
    payload["installation"] = json!({"id": 1});
    payload
}

/// The GUIDs GitHub was asked to redeliver, by the attempts it was asked for.
fn redelivered(github: &FakeGitHub, operation: &str, hook: &str) -> Vec<String> {
    let attempts = github.hook_deliveries(hook);
    github
        .calls(operation)
        .iter()
        .filter(|call| call.status == 202)
        .map(|call| {
            let id: i64 = call.path.split('/').rev().nth(1).unwrap().parse().unwrap();
            let attempt = attempts.iter().find(|a| a.id == id).unwrap();
            attempt.guid.clone()
        })
        .collect()
}

async fn held(host: &TestHost, guid: &str) -> bool {
    host.host_state
        .journal
        .delivery(guid)
        .await
        .unwrap()
        .is_some()
}

async fn wait_held(host: &TestHost, guids: &[String]) {
    for guid in guids {
        host.ended_jobs(guid, 1).await;
    }
}

#[tokio::test]
async fn after_an_outage_exactly_the_missing_deliveries_come_again_once_and_a_restart_does_not_rescan()
 {
    let github = FakeGitHub::start_app().await;
    github.install(1, "Codertocat", &[REPO], &[("metadata", "read")]);
    let spec = || HostSpec {
        plugins: EVENT_LOG.to_owned(),
        github_url: Some(github.url().to_owned()),
        app: true,
        // Two a page, so the list is read with cursors; one round at each start.
        catch_up: "enabled = true\ninterval_secs = 3600\npage_size = 2".to_owned(),
        ..Default::default()
    };
    let host = TestHost::start(spec()).await;
    github.send_webhooks_to(&host.webhook_url(), SECRET);

    // Delivered while up.
    let mut delivered = Vec::new();
    for n in 1..=2 {
        delivered.push(
            github
                .deliver(APP_HOOK, "pull_request", &pull_request(n))
                .await,
        );
    }
    // GitHub gave up waiting for this one, but the host had journaled it.
    assert_eq!(
        host.send("pull_request", "timed-out-but-held", &pull_request(3))
            .await
            .0,
        202
    );
    github.record_delivery(
        APP_HOOK,
        "timed-out-but-held",
        "pull_request",
        &pull_request(3),
        ("timed out", 0),
    );
    wait_held(&host, &delivered).await;

    // Down: four deliveries fail to connect.
    let mut missed = Vec::new();
    let host = host
        .restart_after(async {
            for n in 10..14 {
                missed.push(
                    github
                        .deliver(APP_HOOK, "pull_request", &pull_request(n))
                        .await,
                );
            }
            // Answered 503 once (the journal was away), and never again.
            let guid = "answered-503".to_owned();
            github.record_delivery(
                APP_HOOK,
                &guid,
                "pull_request",
                &pull_request(20),
                ("Invalid HTTP Response: 503", 503),
            );
            missed.push(guid);
            // Failed, then redelivered OK by hand on GitHub: not missing, whatever the
            // journal says.
            for status in [("failed to connect", 0), ("OK", 202)] {
                github.record_delivery(
                    APP_HOOK,
                    "redelivered-by-hand",
                    "pull_request",
                    &pull_request(21),
                    status,
                );
            }
        })
        .await;
    for attempt in github.hook_deliveries(APP_HOOK) {
        if missed[..4].contains(&attempt.guid) {
            assert_eq!(attempt.status, "failed to connect");
        }
    }

    // The round at start finds them and GitHub delivers them again, through ingress.
    wait_held(&host, &missed).await;
    let asked = redelivered(&github, "apps/redeliver-webhook-delivery", APP_HOOK);
    assert_eq!(
        asked.iter().collect::<BTreeSet<_>>(),
        missed.iter().collect::<BTreeSet<_>>(),
        "exactly the missing ones"
    );
    assert_eq!(asked.len(), missed.len(), "none twice: {asked:?}");
    assert!(!held(&host, "redelivered-by-hand").await);
    let lists = github.calls("apps/list-webhook-deliveries");
    assert!(lists.len() > 2, "paged with cursors: {lists:?}");
    assert!(lists.iter().all(|l| l.status == 200), "{lists:?}");
    assert!(lists.iter().skip(1).any(|l| l.query.contains("cursor=")));
    let (status, metrics) = host.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("switchyard_catch_up_missing_total 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("switchyard_catch_up_redelivered_total 5"),
        "{metrics}"
    );
    // The redeliveries' own attempts are recorded before the mark is looked at again.
    eventually("the redeliveries recorded", || {
        github
            .hook_deliveries(APP_HOOK)
            .iter()
            .filter(|a| a.redelivery)
            .count()
            == 5
    })
    .await;

    // A restart: the round lists back to the mark only, finds nothing, redelivers nothing.
    let before = github.calls("apps/list-webhook-deliveries").len();
    let newest = github.hook_deliveries(APP_HOOK).last().unwrap().id;
    let host = host.restart().await;
    let journal = std::sync::Arc::clone(&host.host_state.journal);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while journal.catch_up_mark(APP_HOOK).await.unwrap() != Some(newest) {
        assert!(
            std::time::Instant::now() < deadline,
            "the mark did not move"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let after = github.calls("apps/list-webhook-deliveries").len() - before;
    // Five new attempts (the redeliveries) above the mark: three pages of two, not the eight
    // pages of everything.
    assert_eq!(after, 3);
    assert_eq!(
        redelivered(&github, "apps/redeliver-webhook-delivery", APP_HOOK).len(),
        5
    );

    // By hand: a dry run shows a new miss and asks nothing; then one round redelivers it.
    github.record_delivery(
        APP_HOOK,
        "missed-later",
        "pull_request",
        &pull_request(30),
        ("failed to connect", 0),
    );
    let config = host.dir.path().join("config.toml");
    let run = |args: &'static [&'static str]| {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
                .arg("catch-up")
                .args(args)
                .arg("--config")
                .arg(&config)
                .env("SWITCHYARD_WEBHOOK_SECRET", SECRET)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            (out.status.success(), text)
        })
    };
    let (ok, out) = run(&["--dry-run", "--since", "6h"]).await.unwrap();
    assert!(ok, "{out}");
    assert!(
        out.contains("app/hook: ") && out.contains("1 never delivered and not in the journal"),
        "{out}"
    );
    assert!(
        out.contains("missing missed-later  pull_request.opened"),
        "{out}"
    );
    assert!(out.contains("dry run: nothing redelivered"), "{out}");
    assert_eq!(
        redelivered(&github, "apps/redeliver-webhook-delivery", APP_HOOK).len(),
        5
    );
    let (ok, out) = run(&[]).await.unwrap();
    assert!(
        ok && out.contains("redelivered: 1\n    missed-later"),
        "{out}"
    );
    host.ended_jobs("missed-later", 1).await;
    assert!(github.violations().is_empty(), "{:?}", github.violations());
    host.stop().await;
}

#[tokio::test]
async fn in_token_mode_the_configured_repository_hook_is_caught_up_and_github_away_leaves_it_for_the_next_round()
 {
    let github = FakeGitHub::start().await;
    let hook = format!("repos/{REPO}/hooks/9");
    let spec = HostSpec {
        plugins: EVENT_LOG.to_owned(),
        github_url: Some(github.url().to_owned()),
        github_token: Some(crate::support::TOKEN),
        catch_up: format!(
            "enabled = true\ninterval_secs = 3600\n[[catch_up.hooks]]\nrepository = \"{REPO}\"\nid = 9"
        ),
        ..Default::default()
    };
    let host = TestHost::start(spec).await;
    github.send_webhooks_to(&host.webhook_url(), SECRET);
    let mut missed = Vec::new();
    let host = host
        .restart_after(async {
            for n in 1..=2 {
                missed.push(
                    github
                        .deliver(&hook, "pull_request", &pull_request(n))
                        .await,
                );
            }
            // GitHub answers the first redelivery 502 through every retry the client makes.
            for _ in 0..5 {
                github.answer_next(502, &[], json!({"message": "Bad Gateway"}));
            }
        })
        .await;
    let journal = std::sync::Arc::clone(&host.host_state.journal);
    let newest = github.hook_deliveries(&hook).last().unwrap().id;
    let first = github.hook_deliveries(&hook)[0].id;
    // The round gave up on GitHub and put its mark back below the first miss.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while journal.catch_up_mark(&hook).await.unwrap() != Some(first - 1) {
        assert!(
            std::time::Instant::now() < deadline,
            "the mark did not move back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let tried = github.calls("repos/redeliver-webhook-delivery");
    assert_eq!(
        tried.len(),
        5,
        "one redelivery, retried; the second not tried"
    );
    assert!(tried.iter().all(|call| call.status == 502));
    for guid in &missed {
        assert!(!held(&host, guid).await);
    }

    // The next round (here: the next start) redelivers both.
    let host = host.restart().await;
    wait_held(&host, &missed).await;
    assert_eq!(
        redelivered(&github, "repos/redeliver-webhook-delivery", &hook),
        missed
    );
    let lists = github.calls("repos/list-webhook-deliveries");
    assert_eq!(lists[0].path, format!("/{hook}/deliveries"));
    assert_eq!(
        lists[0].headers["authorization"],
        format!("Bearer {}", crate::support::TOKEN)
    );
    let journal = std::sync::Arc::clone(&host.host_state.journal);
    assert_eq!(journal.catch_up_mark(&hook).await.unwrap(), Some(newest));
    assert!(github.violations().is_empty(), "{:?}", github.violations());
    host.stop().await;
}
