//! HTTPS served by the host itself: the configured certificate, the CLI trusting it, a renewed
//! certificate taken on SIGHUP without a restart, a bad renewal kept out, bad files refused at
//! start, and silent clients closed during the handshake.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use nix::{sys::signal::Signal, unistd::Pid};
use tokio::io::AsyncReadExt as _;

use crate::support::{
    SECRET,
    net::{free_port, wait_until_listening},
    server::{command, spawn_server},
};

const SECRET_VARIABLE: &str = "TLS_TEST_WEBHOOK_SECRET";

/// A self-signed certificate for `localhost` and 127.0.0.1: (certificate PEM, key PEM).
fn self_signed() -> (String, String) {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    (made.cert.pem(), made.signing_key.serialize_pem())
}

/// Replaces a file whole, as certbot and other renewal tools do.
fn replace(path: &Path, text: &str) {
    let fresh = path.with_extension("new");
    std::fs::write(&fresh, text).unwrap();
    std::fs::rename(&fresh, path).unwrap();
}

fn write_config(dir: &Path, port: u16) -> std::path::PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nsecret_env = \"{SECRET_VARIABLE}\"\n\
             header_timeout_secs = 1\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n\
             [store]\npath = \"{}/switchyard.db\"\n",
            dir.display()
        ),
    )
    .unwrap();
    config
}

/// Whether a client that trusts only `certificate` gets `/healthz` answered 200.
async fn trusted_with(certificate: &str, port: u16) -> bool {
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(certificate.as_bytes()).unwrap())
        .build()
        .unwrap();
    let answer = client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await;
    let healthy = matches!(answer, Ok(answer) if answer.status() == 200);
    // Resolves `localhost` through the system, which may give ::1 first: retry on 127.0.0.1.
    if healthy {
        return true;
    }
    let answer = client
        .get(format!("https://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    matches!(answer, Ok(answer) if answer.status() == 200)
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn serves_https_and_takes_a_renewed_certificate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (first_cert, first_key) = self_signed();
    std::fs::write(dir.path().join("cert.pem"), &first_cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), &first_key).unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port);
    let log = dir.path().join("host.log");
    let server = spawn_server(&config, &[(SECRET_VARIABLE, SECRET)], Some(&log));
    wait_until_listening(port).await;

    assert!(
        trusted_with(&first_cert, port).await,
        "HTTPS with the configured certificate"
    );
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await;
    assert!(
        !matches!(&plain, Ok(answer) if answer.status().is_success()),
        "plain HTTP must not be served on the TLS port: {plain:?}"
    );

    // The CLI finds the server over HTTPS and trusts the configured (self-signed) certificate.
    let payload = dir.path().join("ping.json");
    std::fs::write(
        &payload,
        r#"{"zen": "Keep it logically awesome.", "hook_id": 1}"#,
    )
    .unwrap();
    let sent = command(&config, &["send", "--event", "ping"], SECRET_VARIABLE)
        .arg(&payload)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&sent.stdout);
    assert!(
        sent.status.success() && printed.starts_with("HTTP 2"),
        "{printed}{}",
        String::from_utf8_lossy(&sent.stderr)
    );

    // Renewed in place: new connections get the new certificate, with no restart.
    let (second_cert, second_key) = self_signed();
    replace(&dir.path().join("key.pem"), &second_key);
    replace(&dir.path().join("cert.pem"), &second_cert);
    let pid = Pid::from_raw(server.0.id() as i32);
    nix::sys::signal::kill(pid, Signal::SIGHUP).unwrap();
    eventually("the renewed certificate is served", async || {
        trusted_with(&second_cert, port).await
    })
    .await;
    assert!(
        !trusted_with(&first_cert, port).await,
        "the old certificate is no longer served"
    );

    // A renewal caught half-written keeps the certificate in use, and says why.
    replace(
        &dir.path().join("cert.pem"),
        "-----BEGIN CERTIFICATE-----\ntrunc",
    );
    nix::sys::signal::kill(pid, Signal::SIGHUP).unwrap();
    eventually("the failed reload is logged", async || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("TLS certificate not reloaded")
    })
    .await;
    assert!(trusted_with(&second_cert, port).await);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("[server] tls_cert"), "{logged}");
    assert!(
        !logged.contains(second_key.lines().nth(1).unwrap()),
        "no key material in the log"
    );
    drop(server);
}

#[tokio::test]
async fn a_silent_client_is_closed_during_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed();
    std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), key).unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port);
    let _server = spawn_server(&config, &[(SECRET_VARIABLE, SECRET)], None);
    wait_until_listening(port).await;

    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    // header_timeout_secs = 1; the bound here only keeps a broken host from hanging the test.
    let read = tokio::time::timeout(Duration::from_secs(20), silent.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "the host closes a client that never starts the handshake: {read:?}"
    );
}

#[test]
fn bad_certificate_files_are_refused_at_start_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), free_port());
    let check = |expected: &[&str]| {
        let out = command(&config, &["check"], SECRET_VARIABLE)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "check must fail: {stderr}");
        for part in expected {
            assert!(stderr.contains(part), "{part:?} not in: {stderr}");
        }
    };
    check(&["[server] tls_cert", "cert.pem"]);

    let (cert, key) = self_signed();
    let (_, other_key) = self_signed();
    std::fs::write(dir.path().join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
    check(&["[server] tls_key", "key.pem"]);

    std::fs::write(dir.path().join("key.pem"), &other_key).unwrap();
    check(&["[server] tls_key", "does not match the certificate"]);

    std::fs::write(dir.path().join("key.pem"), &key).unwrap();
    let out = command(&config, &["check"], SECRET_VARIABLE)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("serving: https"), "{stdout}");

    // Half of the pair is a config error.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("tls_key = \"key.pem\"\n", "");
    std::fs::write(&config, text).unwrap();
    check(&["server.tls_key", "must be set with tls_cert"]);
}
