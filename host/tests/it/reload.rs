//! Live reload: edits to config.toml swap the plugin set while deliveries keep arriving, a bad
//! edit keeps the running set, and a library rebuilt in place is picked up.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use switchyard::journal::JobState;

use crate::support::{HostSpec, TestHost, eventually, example, library};

/// An event-log entry named `name` writing to `{dir}/{name}.jsonl`.
fn log_plugin(name: &str, extra: &str) -> String {
    format!(
        "[[plugins]]\nname = \"{name}\"\nlibrary = \"{{lib:switchyard-event-log}}\"\n{extra}\n\
         [plugins.settings]\npath = \"{{dir}}/{name}.jsonl\"\n"
    )
}

#[tokio::test]
async fn a_disabled_handler_stops_receiving_within_seconds() {
    let plugins = log_plugin("a", "") + &log_plugin("b", "");
    let host = TestHost::start(HostSpec {
        plugins,
        ..Default::default()
    })
    .await;
    let payload = example("pull_request", Some("opened"));
    host.send("pull_request", "before", &payload).await;
    assert_eq!(host.ended_jobs("before", 2).await.len(), 2);

    let started = Instant::now();
    host.rewrite_plugins(&(log_plugin("a", "") + &log_plugin("b", "enabled = false")));
    eventually("b to be disabled", || host.plugin_names() == ["a"]).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    host.send("pull_request", "after", &payload).await;
    let jobs = host.ended_jobs("after", 1).await;
    assert_eq!(jobs[0].plugin, "a");
    // One edit, one reload: reading the file must not count as a change.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let reloads = host.host_state.metrics.reloads.get();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        host.host_state.metrics.reloads.get(),
        reloads,
        "reloads keep coming"
    );
    assert!(reloads <= 2, "{reloads} reloads for one edit");
    host.stop().await;
}

#[tokio::test]
async fn a_bad_edit_keeps_the_running_set_and_says_what_is_wrong() {
    let host = TestHost::start(HostSpec {
        plugins: log_plugin("a", ""),
        ..Default::default()
    })
    .await;
    host.rewrite_plugins(&log_plugin("a", "colour = \"blue\""));
    let error = host.reloader.reload().unwrap_err().to_string();
    assert!(
        error.contains("config.toml") && error.contains("colour"),
        "names the file and the key: {error}"
    );
    let missing = "[[plugins]]\nname = \"b\"\nlibrary = \"/no/such.so\"\n";
    host.rewrite_plugins(&(log_plugin("a", "") + missing));
    let error = host.reloader.reload().unwrap_err().to_string();
    assert!(error.contains("plugins[1] (\"b\")"), "{error}");
    // The watcher saw both edits too; neither changed what runs.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(host.plugin_names(), ["a"]);
    let payload = example("pull_request", Some("opened"));
    host.send("pull_request", "still-a", &payload).await;
    assert_eq!(host.ended_jobs("still-a", 1).await[0].plugin, "a");
    host.stop().await;
}

#[tokio::test]
async fn reloading_under_a_stream_of_deliveries_loses_and_doubles_nothing() {
    let host = TestHost::start(HostSpec {
        plugins: log_plugin("a", ""),
        ..Default::default()
    })
    .await;
    let payload = example("pull_request", Some("opened"));
    let sending = async {
        for n in 0..150 {
            let (status, _) = host
                .send("pull_request", &format!("stream-{n}"), &payload)
                .await;
            assert_eq!(status, 202);
        }
    };
    let editing = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        host.rewrite_plugins(&(log_plugin("a", "") + &log_plugin("b", "")));
        eventually("b to be added", || host.plugin_names() == ["a", "b"]).await;
        host.rewrite_plugins(&log_plugin("a", "threads = 3"));
        eventually("b to be removed", || host.plugin_names() == ["a"]).await;
    };
    tokio::join!(sending, editing);

    let mut counts: HashMap<String, usize> = HashMap::new();
    let (mut b_ran, mut b_gone) = (0, 0);
    for n in 0..150 {
        let delivery = format!("stream-{n}");
        let journal = &host.host_state.journal;
        let deadline = Instant::now() + Duration::from_secs(30);
        let jobs = loop {
            let jobs = journal.jobs_of(&delivery).await.unwrap();
            if jobs
                .iter()
                .all(|j| j.state != JobState::Queued && j.state != JobState::Running)
            {
                break jobs;
            }
            assert!(Instant::now() < deadline, "{jobs:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let a_jobs = jobs.iter().filter(|j| j.plugin == "a").count();
        assert_eq!(a_jobs, 1, "{delivery}: a ran exactly once: {jobs:?}");
        assert!(jobs.len() <= 2, "{jobs:?}");
        for job in &jobs {
            *counts.entry(job.plugin.clone()).or_default() += 1;
            if job.plugin == "b" {
                match (job.state, job.error.as_deref()) {
                    (JobState::Succeeded, _) => b_ran += 1,
                    (JobState::Failed, Some(error)) if error.contains("no longer loaded") => {
                        b_gone += 1
                    }
                    _ => {}
                }
            }
        }
    }
    // What the plugins wrote matches the journal: nothing lost, nothing run twice.
    let lines = |name: &str| {
        std::fs::read_to_string(host.dir.path().join(format!("{name}.jsonl")))
            .unwrap_or_default()
            .lines()
            .count()
    };
    assert_eq!(lines("a"), 150);
    // Every job of b either ran (and wrote its line) or found b gone before it started.
    assert_eq!(
        counts.get("b").copied().unwrap_or_default(),
        b_ran + b_gone,
        "a job of b ended some other way"
    );
    assert_eq!(
        lines("b"),
        b_ran,
        "b wrote {} lines for {b_ran} jobs",
        lines("b")
    );
    host.stop().await;
}

#[tokio::test]
async fn a_library_rebuilt_in_place_is_picked_up() {
    let host = TestHost::start(HostSpec::default()).await;
    let installed = host.dir.path().join("libinstalled.so");
    std::fs::copy(library("switchyard-event-log"), &installed).unwrap();
    let entry = format!(
        "[[plugins]]\nname = \"swap\"\nlibrary = \"{}\"\n[plugins.settings]\npath = \"{{dir}}/swap.jsonl\"\n",
        installed.display()
    );
    host.rewrite_plugins(&entry);
    let summary = host.reloader.reload().unwrap();
    assert_eq!(summary.added, ["swap"]);

    // "Rebuilt" into something else: the loader must read the new file, not its cached image.
    std::fs::copy(library("switchyard-test-not-a-plugin"), &installed).unwrap();
    let error = host.reloader.reload().unwrap_err().to_string();
    assert!(error.contains("not a Switchyard plugin"), "{error}");
    assert!(
        error.contains("libinstalled.so"),
        "names the configured path: {error}"
    );

    // Rebuilt again, as a valid plugin: a new instance replaces the running one.
    let mut bytes = std::fs::read(library("switchyard-event-log")).unwrap();
    bytes.extend_from_slice(b"rebuilt");
    std::fs::write(&installed, bytes).unwrap();
    let before = host
        .host_state
        .plugins
        .current()
        .get("swap")
        .cloned()
        .unwrap();
    let summary = host.reloader.reload().unwrap();
    assert_eq!(summary.reloaded, ["swap"]);
    let after = host
        .host_state
        .plugins
        .current()
        .get("swap")
        .cloned()
        .unwrap();
    assert!(!std::sync::Arc::ptr_eq(&before, &after));
    // Unchanged now: a reload keeps the running instance.
    assert_eq!(
        host.reloader.reload().unwrap().to_string(),
        "no plugin changed"
    );
    host.stop().await;
}

#[tokio::test]
async fn enabling_a_plugin_whose_variable_is_unset_says_a_restart_is_needed() {
    let host = TestHost::start(HostSpec {
        plugins: log_plugin("a", ""),
        ..Default::default()
    })
    .await;
    // Exported after the host started, it could never reach it: the message must say so.
    let chat = "[[plugins]]\nname = \"chat\"\nlibrary = \"{lib:switchyard-chat}\"\n\
                [plugins.settings]\nurl_env = \"RELOAD_TEST_CHAT_URL_NEVER_SET\"\n";
    host.rewrite_plugins(&(log_plugin("a", "") + chat));
    let error = host.reloader.reload().unwrap_err().to_string();
    assert!(
        error.contains("plugins[1] (\"chat\")")
            && error.contains("RELOAD_TEST_CHAT_URL_NEVER_SET is not set")
            && error.contains("restart switchyard")
            && error.contains("a config reload cannot add it"),
        "{error}"
    );
    assert_eq!(host.plugin_names(), ["a"]);
    host.stop().await;
}
