use switchyard::{Config, plugins::PluginSet};

use crate::support::{behaviours, expand, library};

fn load(plugins: &str) -> Result<PluginSet, String> {
    let dir = tempfile::tempdir().unwrap();
    let text = expand(&format!("[server]\n{plugins}"), dir.path());
    let config = Config::parse(&text, &dir.path().join("config.toml")).unwrap();
    PluginSet::load(&config).map_err(|e| e.to_string())
}

fn entry(library: &std::path::Path) -> String {
    format!(
        "[[plugins]]\nname = \"p\"\nlibrary = \"{}\"\n",
        library.display()
    )
}

#[test]
fn a_plugin_built_against_another_abi_is_refused_naming_both_versions_and_the_file() {
    let old = library("switchyard-test-old-abi");
    let error = load(&entry(&old)).err().unwrap();
    assert!(error.contains("plugins[0]"), "{error}");
    assert!(error.contains(&old.display().to_string()), "{error}");
    assert!(
        error.contains("plugin ABI v2 but host speaks ABI v3; rebuild the plugin against switchyard-plugin-api 0.1.0"),
        "{error}"
    );
}

#[test]
fn a_library_without_the_entry_point_is_refused() {
    let error = load(&entry(&library("switchyard-test-not-a-plugin")))
        .err()
        .unwrap();
    assert!(
        error.contains("not a Switchyard plugin: it exports no SWITCHYARD_PLUGIN_HEADER"),
        "{error}"
    );
}

#[test]
fn a_file_that_is_not_a_library_is_refused_with_the_loaders_reason() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libfake.so");
    std::fs::write(&fake, "not an ELF file").unwrap();
    let error = load(&entry(&fake)).err().unwrap();
    assert!(error.contains("cannot load:"), "{error}");
    // libloading's own Display would only say "dlopen failed"; the reason must show.
    assert!(!error.ends_with("dlopen failed"), "{error}");
    assert!(error.contains("libfake.so"), "{error}");
}

#[test]
fn a_missing_library_is_named() {
    let error = load("[[plugins]]\nname = \"ci\"\nlibrary = \"/nowhere/libci.so\"\n")
        .err()
        .unwrap();
    assert!(
        error.contains("plugins[0] (\"ci\").library: /nowhere/libci.so: no such file"),
        "{error}"
    );
}

#[test]
fn a_plugin_that_refuses_its_settings_is_reported() {
    let error = load(&behaviours("picky", "", "behaviour = \"refuse_to_start\""))
        .err()
        .unwrap();
    assert!(
        error.contains("the plugin refused to start: refusing to start, as asked"),
        "{error}"
    );
    // Its settings are what to look at, not its library.
    assert!(
        error.contains("plugins[0] (\"picky\").settings: "),
        "{error}"
    );
    let error = load(&behaviours("typo", "", "behaviour = \"sleep\"\nmilis = 3"))
        .err()
        .unwrap();
    assert!(
        error.contains("plugins.settings") && error.contains("milis"),
        "{error}"
    );
}

#[test]
fn subscriptions_come_from_the_plugin_unless_the_config_overrides_them() {
    let own = load(&behaviours("own", "", "behaviour = \"sleep\"\nmillis = 1")).unwrap();
    let names: Vec<String> = own
        .iter()
        .flat_map(|p| p.subscriptions().iter().map(ToString::to_string))
        .collect();
    assert_eq!(names, ["pull_request"]);
    let overridden = load(&behaviours(
        "over",
        "events = [\"push\", \"issues.opened\"]",
        "behaviour = \"sleep\"\nmillis = 1",
    ))
    .unwrap();
    let names: Vec<String> = overridden
        .iter()
        .flat_map(|p| p.subscriptions().iter().map(ToString::to_string))
        .collect();
    assert_eq!(names, ["push", "issues.opened"]);
    let disabled = load(&behaviours(
        "off",
        "enabled = false",
        "behaviour = \"refuse_to_start\"",
    ))
    .unwrap();
    assert_eq!(disabled.iter().count(), 0);
}

#[test]
fn switchyard_check_lists_plugins_or_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let check = |text: &str| {
        std::fs::write(&config, expand(text, dir.path())).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["check", "--config"])
            .arg(&config)
            .env("CHECK_TEST_SECRET", "s3cret-value-long-enough")
            .env("CHECK_TEST_BLANK", " \t")
            .env("CHECK_TEST_SHORT", "~%^")
            .env_remove("GITHUB_TOKEN")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let good = format!(
        "[server]\nsecret_env = \"CHECK_TEST_SECRET\"\n{}",
        crate::support::EVENT_LOG
    );
    let (ok, out) = check(&good);
    assert!(ok, "{out}");
    assert!(
        out.contains("event-log (switchyard-event-log 0.1.0): *"),
        "{out}"
    );
    assert!(
        out.contains("GITHUB_TOKEN"),
        "the missing token is warned about: {out}"
    );
    assert!(!out.contains("s3cret-value"), "{out}");
    assert!(!out.contains("shorter than"), "{out}");

    let (ok, out) = check("[server]\nsecret_env = \"CHECK_TEST_BLANK\"\n");
    assert!(!ok && out.contains("CHECK_TEST_BLANK is blank"), "{out}");
    let (ok, out) = check("[server]\nsecret_env = \"CHECK_TEST_SHORT\"\n");
    assert!(ok && out.contains("shorter than 16 bytes"), "{out}");
    assert!(!out.contains("~%^"), "{out}");
    let (ok, out) =
        check("[server]\nsecret_env = \"CHECK_TEST_SECRET\"\nwebhook_path = \"/admin/replay\"\n");
    assert!(
        !ok && out.contains("server.webhook_path") && out.contains("collides"),
        "{out}"
    );

    let (ok, out) = check("[server]\nsecret_env = \"CHECK_TEST_UNSET_SECRET\"\n");
    assert!(
        !ok && out.contains("export CHECK_TEST_UNSET_SECRET"),
        "{out}"
    );
    let (ok, out) = check("[server]\nsecret_env = \"CHECK_TEST_SECRET\"\nlisten = 5\n");
    assert!(
        !ok && out.contains("config.toml") && out.contains("listen"),
        "{out}"
    );
    let (ok, out) = check(
        "[server]\nsecret_env = \"CHECK_TEST_SECRET\"\n[[plugins]]\nname = \"x\"\nlibrary = \"nope.so\"\n",
    );
    assert!(
        !ok && out.contains("plugins[0] (\"x\").library: nope.so: not found in"),
        "{out}"
    );
}

#[test]
fn a_bare_library_name_is_looked_for_in_plugin_dirs_and_beside_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    // Under a name only `plugin_dirs` (relative to the config's folder) can find.
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    let copy = dir.path().join("plugins/libsy_copied.so");
    std::fs::copy(library("switchyard-event-log"), copy).unwrap();
    let config = |text: &str| {
        Config::parse(&expand(text, dir.path()), &dir.path().join("config.toml")).unwrap()
    };
    let entry = "[[plugins]]\nname = \"log\"\nlibrary = \"libsy_copied.so\"\n\
                 [plugins.settings]\npath = \"{dir}/events.jsonl\"\n";
    let found = config(&format!("plugin_dirs = [\"plugins\"]\n[server]\n{entry}"));
    let set = PluginSet::load(&found).unwrap();
    assert_eq!(
        set.iter().next().unwrap().info.package,
        "switchyard-event-log"
    );

    // Nowhere to be found: the error lists every folder searched.
    let elsewhere = dir.path().join("nothing-here");
    let missing = config(&format!(
        "plugin_dirs = [\"{}\"]\n[server]\n{}",
        elsewhere.display(),
        entry.replace("libsy_copied.so", "libswitchyard_nothing.so")
    ));
    let error = PluginSet::load(&missing).err().unwrap().to_string();
    assert!(
        error.contains("libswitchyard_nothing.so: not found in")
            && error.contains(&elsewhere.display().to_string())
            && error.contains("lib/switchyard/plugins"),
        "{error}"
    );
}

#[test]
fn switchyard_check_writes_nothing_not_even_the_store_of_the_config_it_checks() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let store = dir.path().join("store");
    std::fs::write(
        &config,
        format!(
            "[server]\nsecret_env = \"CHECK_TEST_SECRET\"\n[store]\npath = \"store/switchyard.db\"\n\
             [[plugins]]\nname = \"event-log\"\nlibrary = \"{}\"\n\
             [plugins.settings]\npath = \"store/events.jsonl\"\n",
            library("switchyard-event-log").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["check", "--config"])
        .arg(&config)
        .env("CHECK_TEST_SECRET", "s3cret-value-long-enough")
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("event-log (switchyard-event-log"), "{said}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(left, ["config.toml"], "check wrote to disk: {said}");
    assert!(!store.exists());
}
