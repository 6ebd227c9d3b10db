//! Trying a deploy plugin on one's own machine, as docs/writing-plugins.md walks through: the
//! server with `--github-stand-in`, no token, GitHub's example `deployment` payload changed with
//! `--set` to point at a local repository, and the plugin's GitHub calls printed; and the test
//! kit getting the host by itself for a plugin's tests out of tree.

use std::time::{Duration, Instant};

use crate::support::{
    Origin, binds, library,
    net::{free_port, wait_until_listening},
    server::{Server, command},
};

const SECRET_VARIABLE: &str = "TRY_OUT_WEBHOOK_SECRET";

#[tokio::test]
async fn a_deploy_goes_through_against_the_stand_in_without_a_token() {
    let origin = Origin::new("me/app");
    let sha = origin.commit("refs/heads/main", &[("README", "hello")]);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nsecret_env = \"{SECRET_VARIABLE}\"\n\
             [store]\npath = \"{store}/switchyard.db\"\n\
             [[plugins]]\nname = \"deploy\"\nlibrary = \"{library}\"\n{binds}\n\
             [plugins.settings]\ncommand = 'echo \"deploying $SWITCHYARD_SHA\"'\n",
            store = dir.path().display(),
            library = library("switchyard-deploy-template").display(),
            binds = binds(&origin),
        ),
    )
    .unwrap();
    let printed = dir.path().join("stdout");
    let logged = dir.path().join("stderr");
    let server = Server(
        command(&config, &["serve", "--github-stand-in"], SECRET_VARIABLE)
            .env_remove("GITHUB_TOKEN")
            .stdout(std::fs::File::create(&printed).unwrap())
            .stderr(std::fs::File::create(&logged).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_until_listening(port).await;
    // The stand-in needs no token: nothing says jobs calling GitHub will fail.
    let log = std::fs::read_to_string(&logged).unwrap();
    assert!(log.contains("GitHub stand-in"), "{log}");
    assert!(!log.contains("no GitHub token"), "{log}");

    let clone_url = origin.clone_url();
    let sent = command(
        &config,
        &[
            "send",
            "--example",
            "deployment",
            "--set",
            &format!("deployment.sha={sha}"),
            "--set",
            "repository.full_name=me/app",
            "--set",
            &format!("repository.clone_url={clone_url}"),
        ],
        SECRET_VARIABLE,
    )
    .output()
    .unwrap();
    let answer = String::from_utf8_lossy(&sent.stdout).into_owned();
    assert!(sent.status.success(), "{answer}");
    // "HTTP 202", "delivery ID: 1 jobs", "  job 1 deploy: LINK"
    assert!(answer.starts_with("HTTP 202\n"), "{answer}");
    let link = answer
        .lines()
        .find_map(|line| line.trim().strip_prefix("job 1 deploy: "))
        .unwrap_or_else(|| panic!("no job line in {answer}"))
        .to_owned();

    // GitHub's example deployment has id 145988746; the template posts its statuses there.
    let statuses = "github stand-in: POST /repos/me/app/deployments/145988746/statuses";
    let deadline = Instant::now() + Duration::from_secs(60);
    let calls = loop {
        let calls = std::fs::read_to_string(&printed).unwrap();
        if calls.contains(r#""state":"success""#) {
            break calls;
        }
        assert!(
            Instant::now() < deadline,
            "no success status printed: {calls}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let posted: Vec<&str> = calls
        .lines()
        .filter(|line| line.starts_with(statuses))
        .collect();
    assert_eq!(posted.len(), 2, "{calls}");
    assert!(posted[0].contains(r#""state":"in_progress""#), "{calls}");
    assert!(posted[1].contains(r#""state":"success""#), "{calls}");
    assert!(
        posted[1].contains(&link),
        "the log link is in the status: {calls}"
    );

    let log = reqwest::get(&link).await.unwrap().text().await.unwrap();
    assert!(log.contains(&format!("deploying {sha}")), "{log}");

    // An edit that changes nothing the host reads at start: the reload says so, and does not
    // take the stand-in's address for a change of [github] api_url.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("# tried out\n{text}")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let log = loop {
        let log = std::fs::read_to_string(&logged).unwrap();
        if log.contains("config reloaded") {
            break log;
        }
        assert!(Instant::now() < deadline, "no reload: {log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(!log.contains("changed: restart switchyard"), "{log}");
    drop(server);
}

/// A plugin's tests out of tree (a crate of its own depending on the kit by path, as
/// docs/plugin-testkit.md sets it up) get the host without `SWITCHYARD_BIN`: the kit builds it
/// from the checkout it comes from, into the tests' own target folder.
#[test]
fn the_testkit_finds_the_host_out_of_tree_with_nothing_set() {
    let workspace = crate::support::workspace();
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("my-plugin");
    std::fs::create_dir_all(plugin.join("src")).unwrap();
    std::fs::create_dir_all(plugin.join("tests")).unwrap();
    std::fs::write(
        plugin.join("Cargo.toml"),
        format!(
            "[package]\nname = \"my-plugin\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\
             [dev-dependencies]\nswitchyard-testkit = {{ path = \"{}/testkit\" }}\n\
             [profile.out-of-tree]\ninherits = \"dev\"\n",
            workspace.display()
        ),
    )
    .unwrap();
    std::fs::write(plugin.join("src/lib.rs"), "").unwrap();
    std::fs::write(
        plugin.join("tests/host.rs"),
        "#[test]\nfn the_host_is_there() {\n    let bin = switchyard_testkit::switchyard_bin();\n    \
         let out = std::process::Command::new(&bin).arg(\"--version\").output().unwrap();\n    \
         assert!(out.status.success());\n    \
         println!(\"HOST {} {}\", bin.display(), String::from_utf8_lossy(&out.stdout).trim());\n}\n",
    )
    .unwrap();
    // The same versions of every dependency as here, so the shared target folder has them; a
    // profile of its own, so no host built for these tests lies beside its test executable.
    std::fs::copy(workspace.join("Cargo.lock"), plugin.join("Cargo.lock")).unwrap();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let mut cargo = std::process::Command::new(env!("CARGO"));
    for (name, _) in std::env::vars() {
        let set_for_tests = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_NAME",
            "OUT_DIR",
        ];
        if set_for_tests.iter().any(|prefix| name.starts_with(prefix)) {
            cargo.env_remove(name);
        }
    }
    let out = cargo
        .args([
            "test",
            "--quiet",
            "--profile",
            "out-of-tree",
            "--",
            "--nocapture",
        ])
        .current_dir(&plugin)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("SWITCHYARD_BIN")
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    let host = said
        .lines()
        .find_map(|line| line.strip_prefix("HOST "))
        .unwrap_or_else(|| panic!("no host found: {said}"));
    assert!(host.contains("switchyard"), "{said}");
}
