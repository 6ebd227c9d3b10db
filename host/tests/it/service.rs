//! Installing and running as a service: `host/dist/install.sh` lays out the binary, plugins,
//! config (its own, `host/dist/config.toml`, whatever the checkout's `config.toml` holds) and unit
//! where docs/operations.md says, the installed host finds its plugins and reads its secrets
//! (the dashboard's tokens too) as systemd credentials, and the unit passes
//! `systemd-analyze verify`.

use std::{path::Path, process::Command};

use crate::support::{SECRET, library, workspace};

#[test]
fn install_lays_out_a_host_that_finds_its_plugins_and_credentials() {
    let built = library("switchyard-event-log");
    let build_dir = built.parent().unwrap();
    // A checkout whose config.toml a newcomer edited: the service never gets it.
    let checkout = tempfile::tempdir().unwrap();
    let dist = checkout.path().join("host/dist");
    std::fs::create_dir_all(&dist).unwrap();
    for file in ["install.sh", "config.toml", "switchyard.service"] {
        std::fs::copy(workspace().join("host/dist").join(file), dist.join(file)).unwrap();
    }
    std::fs::write(
        checkout.path().join("config.toml"),
        "[store]\npath = \"my-own-tries.db\"\n",
    )
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    let installed = Command::new("sh")
        .arg(dist.join("install.sh"))
        .arg(root.path())
        .env("SWITCHYARD_BUILD", build_dir)
        .output()
        .unwrap();
    assert!(
        installed.status.success(),
        "{}",
        String::from_utf8_lossy(&installed.stderr)
    );
    let at = |path: &str| root.path().join(path);
    for file in [
        "usr/local/bin/switchyard",
        "usr/local/lib/switchyard/plugins/libswitchyard_event_log.so",
        "usr/local/lib/switchyard/plugins/libswitchyard_ci.so",
        "etc/switchyard/config.toml",
        "etc/systemd/system/switchyard.service",
    ] {
        assert!(at(file).exists(), "{file} was not installed");
    }
    assert!(!at("usr/local/lib/switchyard/plugins/libswitchyard_test_behaviours.so").exists());
    // The service's own config, installed as it is.
    let config = at("etc/switchyard/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert_eq!(
        text,
        std::fs::read_to_string(dist.join("config.toml")).unwrap()
    );
    // Its store moved into this test's root.
    let store = at("var/lib/switchyard").display().to_string();
    std::fs::write(&config, text.replace("/var/lib/switchyard", &store)).unwrap();
    // Credentials as systemd hands them over, one for each LoadCredential= of the unit; an
    // empty token file: no plugin calls GitHub.
    let credentials = root.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    let unit = std::fs::read_to_string(at("etc/systemd/system/switchyard.service")).unwrap();
    let loaded: Vec<&str> = unit
        .lines()
        .filter_map(|line| line.strip_prefix("LoadCredential="))
        .filter_map(|credential| credential.split(':').next())
        .collect();
    assert_eq!(
        loaded,
        ["webhook-secret", "github-token", "dashboard-tokens"]
    );
    std::fs::write(credentials.join("webhook-secret"), format!("{SECRET}\n")).unwrap();
    std::fs::write(credentials.join("github-token"), "").unwrap();
    std::fs::write(
        credentials.join("dashboard-tokens"),
        "admin:3f6b0c1e9d2a47c58e1f0b2d6a9c4e7f1a2b3c4d5e6f7081\n",
    )
    .unwrap();
    let check = Command::new(at("usr/local/bin/switchyard"))
        .args(["check", "--config"])
        .arg(&config)
        .env("CREDENTIALS_DIRECTORY", &credentials)
        .env_remove("GITHUB_TOKEN")
        .env_remove("SWITCHYARD_DASHBOARD_TOKENS")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{printed}");
    assert!(
        printed.contains("event-log (switchyard-event-log 0.1.0)"),
        "{printed}"
    );
    // The empty token file is what is named, not a variable the config does not read.
    assert!(
        printed.contains("github-token ([github] token_file) is empty: put a token in it"),
        "{printed}"
    );
    assert!(!printed.contains("GITHUB_TOKEN"), "{printed}");
    assert!(
        printed.contains("dashboard: sign-in tokens for admin"),
        "the dashboard's tokens come from the credential: {printed}"
    );
}

#[test]
fn the_unit_passes_systemd_analyze_verify() {
    let present = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !present {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "systemd-analyze is missing (the systemd package)"
        );
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    let unit = std::fs::read_to_string(workspace().join("host/dist/switchyard.service")).unwrap();
    // verify checks that ExecStart's program exists: point it at the one just built.
    let unit = unit.replace(
        "/usr/local/bin/switchyard",
        env!("CARGO_BIN_EXE_switchyard"),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("switchyard.service");
    std::fs::write(&file, unit).unwrap();
    let verified = Command::new("systemd-analyze")
        .arg("verify")
        .arg(Path::new(&file))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verified.stderr).into_owned()
        + &String::from_utf8_lossy(&verified.stdout);
    // Only what concerns this unit counts (systemd may complain about the machine's own).
    let about_us: Vec<&str> = said
        .lines()
        .filter(|line| line.contains("switchyard.service"))
        .collect();
    assert!(verified.status.success() && about_us.is_empty(), "{said}");
}
