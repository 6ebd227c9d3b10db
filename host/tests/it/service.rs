//! Installing and running as a service: `host/dist/install.sh` lays out the binary, plugins,
//! config and unit where docs/operations.md says, the installed host finds its plugins and reads
//! its secrets as systemd credentials, and the unit passes `systemd-analyze verify`.

use std::{path::Path, process::Command};

use crate::support::{SECRET, library, workspace};

#[test]
fn install_lays_out_a_host_that_finds_its_plugins_and_credentials() {
    let built = library("switchyard-event-log");
    let build_dir = built.parent().unwrap();
    let root = tempfile::tempdir().unwrap();
    let installed = Command::new("sh")
        .arg(workspace().join("host/dist/install.sh"))
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
    // The installed config, with its store moved into this test's root.
    let config = at("etc/switchyard/config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("secret_file = \"$CREDENTIALS_DIRECTORY/webhook-secret\""));
    let store = at("var/lib/switchyard").display().to_string();
    std::fs::write(&config, text.replace("/var/lib/switchyard", &store)).unwrap();
    // Credentials as systemd hands them over; an empty token file: no plugin calls GitHub.
    let credentials = root.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::write(credentials.join("webhook-secret"), format!("{SECRET}\n")).unwrap();
    std::fs::write(credentials.join("github-token"), "").unwrap();
    let check = Command::new(at("usr/local/bin/switchyard"))
        .args(["check", "--config"])
        .arg(&config)
        .env("CREDENTIALS_DIRECTORY", &credentials)
        .env_remove("GITHUB_TOKEN")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "{printed}");
    assert!(
        printed.contains("event-log (switchyard-event-log 0.1.0)"),
        "{printed}"
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
