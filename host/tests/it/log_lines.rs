//! The host's own log, read whole after a run that writes many kinds of line (jobs that succeed,
//! retry, fail a checkout, time out, are interrupted by the shutdown; a bad signature, a
//! repeated delivery, reloads good and bad): in the text and the JSON formats alike, every line
//! is one log record, none carries Rust's Debug text, and a job's end says its outcome in plain
//! words.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use switchyard::journal::{JobState, SqliteJournal, prelude::*};

use crate::support::{
    EVENT_LOG, behaviours, example, expand,
    net::{free_port, wait_until_listening},
    send_signed, send_signed_bytes,
    server::Server,
};

const SECRET_VARIABLE: &str = "LOG_LINES_TEST_SECRET";

#[tokio::test]
async fn text_log_lines_carry_plain_words_not_debug_text() {
    let log = run_through_many_lines("text").await;
    let mut outcomes = Vec::new();
    for line in log.lines() {
        // One record a line: a message over several lines would break a reader's parsing.
        assert!(
            is_record(line),
            "a line that is not a log record:\n{line}\n\n{log}"
        );
        let unquoted = without_quoted(line);
        assert_no_debug_shape(&unquoted, line);
        if line.contains("job attempt ended") {
            let outcome = unquoted
                .split_whitespace()
                .find_map(|field| field.strip_prefix("outcome="))
                .unwrap_or_else(|| panic!("a job's end without its outcome: {line}"));
            if outcome == "failed" || outcome == "retried" {
                assert!(line.contains(" error=\""), "no error field: {line}");
            }
            outcomes.push(outcome.to_owned());
        }
    }
    assert_outcomes(&outcomes, &log);
}

#[tokio::test]
async fn json_log_lines_carry_plain_words_not_debug_text() {
    let log = run_through_many_lines("json").await;
    let mut outcomes = Vec::new();
    for line in log.lines() {
        let object: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
        for value in strings(&object) {
            assert_no_debug_shape(&without_quoted(value), line);
        }
        let fields = &object["fields"];
        if fields["message"] == "job attempt ended" {
            let outcome = fields["outcome"]
                .as_str()
                .unwrap_or_else(|| panic!("a job's end without its outcome: {line}"));
            if outcome == "failed" || outcome == "retried" {
                assert!(fields["error"].is_string(), "no error field: {line}");
            }
            outcomes.push(outcome.to_owned());
        }
    }
    assert_outcomes(&outcomes, &log);
}

/// Whether a text-format line begins as a log record does: `2026-12-07T17:45:31.166197Z`.
fn is_record(line: &str) -> bool {
    let bytes = line.as_bytes();
    bytes.len() > 20 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[10] == b'T'
}

/// Every outcome the run had, each a plain word.
fn assert_outcomes(outcomes: &[String], log: &str) {
    for outcome in outcomes {
        assert!(
            outcome.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "outcome {outcome:?} is not a plain word:\n{log}"
        );
    }
    for expected in ["succeeded", "retried", "failed"] {
        assert!(
            outcomes.iter().any(|o| o == expected),
            "no job ended {expected}: {outcomes:?}\n{log}"
        );
    }
}

/// Panics when `text` (quoted strings taken out) has the shape of Rust's Debug output.
fn assert_no_debug_shape(text: &str, line: &str) {
    if let Some(shape) = debug_shape(text) {
        panic!("a log line with Debug text ({shape}):\n{line}");
    }
}

/// Which Debug shape `text` has, if any: a struct or struct variant (`Failed { error: .. }`),
/// a tuple variant or wrapper (`Some(..)`, `Timeout(..)`), `None`, or a list (`["a"]`, `[]`).
fn debug_shape(text: &str) -> Option<&'static str> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts_word = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if c.is_ascii_alphabetic() && starts_word {
            let begin = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[begin..i].iter().collect();
            if word == "None" {
                return Some("None");
            }
            let capital = word.starts_with(|c: char| c.is_ascii_uppercase());
            match chars.get(i) {
                Some('(') if capital => return Some("Name(..)"),
                Some(' ') if capital && chars.get(i + 1) == Some(&'{') => {
                    return Some("Name { .. }");
                }
                Some('{') if capital => return Some("Name{..}"),
                Some(':') if begin >= 2 && chars[begin - 1] == ' ' && chars[begin - 2] == '{' => {
                    return Some("{ field: .. }");
                }
                _ => continue,
            }
        }
        if c == '[' && matches!(chars.get(i + 1), Some('"' | ']')) {
            return Some("[..]");
        }
        i += 1;
    }
    None
}

#[test]
fn debug_shapes_are_found_and_plain_words_pass() {
    let cases = [
        ("outcome=Failed { error: \"\" }", true),
        ("outcome=Succeeded { note: None }", true),
        ("repository=Some(\"\")", true),
        ("reason=Timeout(3)", true),
        ("groups=[\"\", \"\"]", true),
        ("x={ note: 1 }", true),
        ("outcome=failed error=\"\"", false),
        (
            "INFO switchyard::workers: job attempt ended job=3 outcome=succeeded",
            false,
        ),
        (
            "[sandbox] disk_mib is not enforced: a build may fill the disk",
            false,
        ),
        ("SIGTERM received", false),
    ];
    for (text, shaped) in cases {
        assert_eq!(debug_shape(text).is_some(), shaped, "{text}");
    }
}

/// `text` with each double-quoted string (escapes honoured) replaced by `""`.
fn without_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            out.push(c);
            continue;
        }
        out.push_str("\"\"");
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => break,
                _ => {}
            }
        }
    }
    out
}

/// Every string in a JSON value, keys aside.
fn strings(value: &serde_json::Value) -> Vec<&str> {
    match value {
        serde_json::Value::String(text) => vec![text],
        serde_json::Value::Array(items) => items.iter().flat_map(strings).collect(),
        serde_json::Value::Object(map) => map.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// Runs a host process logging in `format` through a delivery whose jobs succeed, retry and
/// fail, fail a checkout, time out, and one the shutdown interrupts; a bad signature,
/// the delivery again, a reload and a refused reload; then SIGTERM. Returns the host's log.
async fn run_through_many_lines(format: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let plugins = [
        EVENT_LOG.to_owned(),
        behaviours(
            "flaky",
            "max_attempts = 2",
            "behaviour = \"succeed_on_attempt\"\nattempt = 99",
        ),
        behaviours(
            "checks-out",
            "",
            "behaviour = \"checkout\"\nclone_url = \"{dir}/nowhere.git\"\n\
             sha = \"0123456789012345678901234567890123456789\"\nscript = \"true\"",
        ),
        behaviours("slow", "timeout_secs = 1", "behaviour = \"await_cancel\""),
        behaviours(
            "patient",
            "timeout_secs = 600",
            &format!(
                "behaviour = \"interruptible\"\ndir = \"{}\"\ninterrupted = 1",
                dir.path().display()
            ),
        ),
    ]
    .concat();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
         secret_env = \"{SECRET_VARIABLE}\"\nshutdown_grace_secs = 5\n\
         [store]\npath = \"{{dir}}/switchyard.db\"\n\
         [workers]\nretry_backoff_ms = 10\ncancel_grace_secs = 1\n{plugins}"
    );
    let config = dir.path().join("config.toml");
    let text = expand(&text, dir.path());
    std::fs::write(&config, &text).unwrap();
    let log_path = dir.path().join("host.log");
    let mut server = Server(
        crate::support::server::command(&config, &["serve"], SECRET_VARIABLE)
            .env("SWITCHYARD_LOG_FORMAT", format)
            .env("RUST_LOG", "info,switchyard=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_until_listening(port).await;
    let url = format!("http://127.0.0.1:{port}/event_handler");
    let payload = example("pull_request", Some("opened"));
    assert_eq!(
        send_signed(&url, "pull_request", "lines-1", &payload).await,
        202
    );
    // Sent again, and once with a signature that does not match.
    send_signed(&url, "pull_request", "lines-1", &payload).await;
    let refused = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", "lines-2")
        .header("x-hub-signature-256", format!("sha256={}", "0".repeat(64)))
        .body(serde_json::to_vec(&payload).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    assert_eq!(
        send_signed_bytes(&url, "pull_request", "lines-3", b"{not json".to_vec()).await,
        400
    );
    all_but_patient_ended(&dir.path().join("switchyard.db")).await;
    // A reload that changes an entry, and one the config's error refuses.
    std::fs::write(
        &config,
        text.replace("timeout_secs = 1\n", "timeout_secs = 2\n"),
    )
    .unwrap();
    signal(&server, nix::sys::signal::Signal::SIGHUP);
    wait_for_log(&log_path, "slow").await;
    // A TOML error, whose message runs over several lines.
    std::fs::write(&config, format!("{text}\n[workers]\nconcurrency = 2\n")).unwrap();
    signal(&server, nix::sys::signal::Signal::SIGHUP);
    wait_for_log(&log_path, "failed").await;
    signal(&server, nix::sys::signal::Signal::SIGTERM);
    assert!(server.0.wait().unwrap().success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    // The run wrote the lines it was meant to.
    for expected in [
        "delivery refused",
        "seen before",
        "checkout",
        "timed out",
        "reload",
        "interrupted by the shutdown",
    ] {
        assert!(log.contains(expected), "no line says {expected:?}:\n{log}");
    }
    log
}

/// Waits until every job of `lines-1` but the patient one ended; panics after 60 s.
async fn all_but_patient_ended(store: &Path) {
    let journal = SqliteJournal::open(store).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let jobs = journal.jobs_of("lines-1").await.unwrap();
        let ended = |state: JobState| matches!(state, JobState::Succeeded | JobState::Failed);
        let others: Vec<_> = jobs.iter().filter(|j| j.plugin != "patient").collect();
        let patient_runs = jobs
            .iter()
            .any(|j| j.plugin == "patient" && j.state == JobState::Running);
        if others.len() == 4 && others.iter().all(|j| ended(j.state)) && patient_runs {
            return;
        }
        assert!(Instant::now() < deadline, "jobs did not end: {jobs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the log at `path` has a line saying it reloaded (or refused to) mentioning `word`.
async fn wait_for_log(path: &PathBuf, word: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log
            .lines()
            .any(|line| line.contains("reload") && line.contains(word))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no reload line on {word}:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signal(server: &Server, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(server.0.id() as i32), signal).unwrap();
}
