//! Bad files under a running host, against a server process: a plugin library cut short or
//! replaced by text (renamed over it, or written over it in place), and a full disk under the
//! journal. Each is refused or reported with the file named, and the host keeps serving.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use crate::support::{
    SECRET, eventually, example, expand, library,
    net::{free_port, wait_until_listening},
    send_signed,
    server::{Server, ended_jobs},
};

const SECRET_VARIABLE: &str = "BAD_FILES_TEST_SECRET";

/// A config with one event-log plugin loaded from `installed`, the operator's copy.
fn write_config(dir: &Path, port: u16, installed: &Path) -> PathBuf {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nsecret_env = \"{SECRET_VARIABLE}\"\n\
         [store]\npath = \"{{dir}}/switchyard.db\"\n\
         [[plugins]]\nname = \"log\"\nlibrary = \"{}\"\n[plugins.settings]\npath = \"{{dir}}/events.jsonl\"\n",
        installed.display()
    );
    let config = dir.join("config.toml");
    std::fs::write(&config, expand(&text, dir)).unwrap();
    config
}

fn switchyard(args: &[&str], config: &Path) -> Command {
    crate::support::server::command(config, args, SECRET_VARIABLE)
}

/// `switchyard check` on `config`: whether it passed, and what it printed.
fn check(config: &Path) -> (bool, String) {
    let out = switchyard(&["check"], config).output().unwrap();
    let printed =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), printed)
}

/// Rewrites the config file with a newer modification time, so the host reloads it.
fn touch(config: &Path) {
    let text = std::fs::read_to_string(config).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(config, format!("{text}\n")).unwrap();
}

#[tokio::test]
async fn cut_and_replaced_libraries_are_refused_naming_the_file_and_the_host_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let installed = dir.path().join("libinstalled.so");
    let whole = std::fs::read(library("switchyard-event-log")).unwrap();
    std::fs::write(&installed, &whole).unwrap();
    let config = write_config(dir.path(), port, &installed);
    let log = dir.path().join("host.log");
    let mut server = Server(
        switchyard(&["serve"], &config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_until_listening(port).await;
    let url = format!("http://127.0.0.1:{port}/event_handler");
    let payload = example("pull_request", Some("opened"));
    let store = dir.path().join("switchyard.db");
    let delivered = |n: usize| {
        let (url, payload) = (url.clone(), payload.clone());
        async move { send_signed(&url, "pull_request", &format!("d-{n}"), &payload).await }
    };

    // Written over in place while loaded, cut after its headers (a copy that stopped early):
    // the host runs from its own copy. Mapped from this file, its next call would be a SIGBUS.
    std::fs::write(&installed, &whole[..4096]).unwrap();
    assert_eq!(delivered(1).await, 202);
    assert_eq!(
        ended_jobs(&store, "d-1", 1).await[0].state.as_str(),
        "succeeded"
    );
    // The reload the edit triggers is refused, naming the file and what is wrong with it.
    touch(&config);
    let host_log = || std::fs::read_to_string(&log).unwrap_or_default();
    eventually("the cut library's refusal is logged", || {
        host_log().contains("config reload failed")
    })
    .await;
    let logged = host_log();
    assert!(
        logged.contains("libinstalled.so") && logged.contains("truncated"),
        "{logged}"
    );
    let (ok, printed) = check(&config);
    assert!(
        !ok && printed.contains("libinstalled.so") && printed.contains("truncated"),
        "{printed}"
    );

    // A text file renamed over it: refused the same way.
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "this is not a library\n").unwrap();
    std::fs::rename(&text, &installed).unwrap();
    touch(&config);
    eventually("the text file's refusal is logged", || {
        host_log().contains("not a 64-bit ELF shared library")
    })
    .await;
    let (ok, printed) = check(&config);
    assert!(
        !ok && printed.contains("libinstalled.so: cannot load: not a 64-bit ELF"),
        "{printed}"
    );

    // Still serving, with the plugin it had.
    assert_eq!(delivered(2).await, 202);
    assert_eq!(
        ended_jobs(&store, "d-2", 1).await[0].state.as_str(),
        "succeeded"
    );
    assert!(server.0.try_wait().unwrap().is_none(), "the host died");

    // A start on the bad file is refused with the file named, and exits non-zero.
    server.0.kill().unwrap();
    server.0.wait().unwrap();
    for (bad, reason) in [
        (&b"this is not a library\n"[..], "not a 64-bit ELF"),
        (&whole[..4096], "truncated"),
    ] {
        std::fs::write(&installed, bad).unwrap();
        let start = switchyard(&["serve"], &config).output().unwrap();
        let printed = String::from_utf8_lossy(&start.stderr);
        assert!(!start.status.success(), "{printed}");
        assert!(
            printed.contains("libinstalled.so: cannot load") && printed.contains(reason),
            "{printed}"
        );
    }
}

#[tokio::test]
async fn readiness_fails_while_the_journals_disk_is_full_and_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let store = dir.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nsecret_env = \"{SECRET_VARIABLE}\"\n\
         [store]\npath = \"{}/switchyard.db\"\n",
        store.display()
    );
    let config = dir.path().join("config.toml");
    std::fs::write(&config, text).unwrap();
    // The store on a small file system of its own, in a mount namespace of the server's: a
    // user namespace too, so this needs no root.
    let server = Server(
        Command::new("unshare")
            .args(["-rm", "sh", "-c"])
            .arg("mount -t tmpfs -o size=4m tmpfs \"$2\" && exec \"$0\" serve --config \"$1\"")
            .arg(env!("CARGO_BIN_EXE_switchyard"))
            .arg(&config)
            .arg(&store)
            .env(SECRET_VARIABLE, SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_listening(port).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let readyz = || async {
        let response = client.get(format!("{base}/readyz")).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };
    assert_eq!(readyz().await.0, 200);

    // Fill the server's file system, seen through its root in /proc.
    let filler = PathBuf::from(format!("/proc/{}/root", server.0.id()))
        .join(store.strip_prefix("/").unwrap())
        .join("filler");
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
    }
    let (status, reason) = readyz().await;
    assert_eq!(status, 503, "{reason}");
    assert!(reason.contains("No space left on device"), "{reason}");
    // A delivery that needs new pages is refused, never answered 202 unsaved.
    let mut big = example("pull_request", Some("opened"));
    big["pull_request"]["body"] = serde_json::json!(
        (0..200_000u32)
            .map(|n| format!("{:x}", n.wrapping_mul(2_654_435_761)))
            .collect::<String>()
    );
    let url = format!("{base}/event_handler");
    assert_eq!(send_signed(&url, "pull_request", "full-1", &big).await, 500);

    // Space comes back: ready again, with no restart, and deliveries are taken.
    std::fs::remove_file(&filler).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while readyz().await.0 != 200 {
        assert!(std::time::Instant::now() < deadline, "still not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(send_signed(&url, "pull_request", "full-2", &big).await, 202);
    drop(server);
}
