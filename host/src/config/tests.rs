//! The config's unit tests: parsing, defaults, and the messages for bad settings.

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/switchyard/config.toml"))
}

#[test]
fn builds_network_and_disk_settings_have_defaults_and_bad_networks_are_refused() {
    let config = parse("[server]\n").unwrap();
    let sandbox = &config.sandbox;
    assert_eq!(
        (sandbox.disk_mib, sandbox.disk_reserve_mib),
        (10 * 1024, 2 * 1024)
    );
    assert_eq!(sandbox.network_isolation, NetworkIsolation::On);
    assert!(sandbox.deny_networks.is_empty());
    let config = parse(
        "[server]\n[sandbox]\nnetwork_isolation = \"off\"\n\
         deny_networks = [\"10.0.0.0/8\", \"fd00::/8\", \"192.0.2.7\"]\n\
         [[plugins]]\nname = \"ci\"\nlibrary = \"/x.so\"\ndisk_mib = 20480\n",
    )
    .unwrap();
    assert_eq!(config.sandbox.network_isolation, NetworkIsolation::Off);
    let networks: Vec<String> = config
        .sandbox
        .deny_networks
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(networks, ["10.0.0.0/8", "fd00::/8", "192.0.2.7/32"]);
    assert_eq!(config.plugins[0].disk_mib, Some(20480));
    for bad in ["10.0.0.0/33", "fd00::/129", "lan", "10.0.0.0/x", "/8"] {
        let error = parse(&format!(
            "[server]\n[sandbox]\ndeny_networks = [\"{bad}\"]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("is not a network such as \"10.0.0.0/8\""),
            "{bad}: {error}"
        );
    }
}

#[test]
fn secret_variables_include_plugin_settings_ending_in_env() {
    let config = parse(
        "[server]\n[github]\ntoken_env = \"GH\"\n\
         [[plugins]]\nname = \"chat\"\nlibrary = \"/x.so\"\nenabled = false\n\
         [plugins.settings]\nurl_env = \"CHAT_URL\"\nstates = [\"failure\"]\n",
    )
    .unwrap();
    // The dashboard's tokens too: masked in logs, never inherited by commands.
    assert_eq!(
        config.secret_variables(),
        [
            "SWITCHYARD_WEBHOOK_SECRET",
            "GH",
            "SWITCHYARD_DASHBOARD_TOKENS",
            "SWITCHYARD_GITHUB_CLIENT_SECRET",
            "CHAT_URL"
        ]
    );
}

#[test]
fn the_dashboard_is_off_unless_enabled_and_its_settings_are_checked() {
    let config = parse(
        "[server]
",
    )
    .unwrap();
    assert_eq!(config.dashboard, DashboardConfig::default());
    assert!(!config.dashboard.enabled);
    let config = parse(
        "[server]
[dashboard]
enabled = true
access = \"public-read\"
tokens_file = \"tokens\"
",
    )
    .unwrap();
    assert_eq!(config.dashboard.access, DashboardAccess::PublicRead);
    assert!(
        config
            .secret_files()
            .contains(&PathBuf::from("/etc/switchyard/tokens"))
    );
    assert!(
        parse(
            "[server]
[dashboard]
access = \"open\"
"
        )
        .is_err()
    );
    assert!(
        parse(
            "[server]
[dashboard]
page_size = 0
"
        )
        .is_err()
    );
    assert!(
        parse(
            "[server]
[dashboard]
tokens_env = \"not a name\"
"
        )
        .is_err()
    );
    assert!(
        parse(
            "[server]
webhook_path = \"/dashboard/hook\"
"
        )
        .is_err()
    );
    // The caps on what readers cost: each at least 1, the budget room for a payload.
    for (key, value, ok) in [
        ("render_budget_mib", 53, false),
        ("render_budget_mib", 54, true),
        ("log_window_lines", 0, false),
        ("log_window_kib", 0, false),
        ("payload_shown_kib", 0, false),
        ("max_followers", 0, false),
        ("max_followers_per_client", 0, false),
        ("max_followers_per_client", 1, true),
    ] {
        let parsed = parse(&format!("[server]\n[dashboard]\n{key} = {value}\n"));
        assert_eq!(parsed.is_ok(), ok, "{key} = {value}");
    }
    for key in ["write_timeout_secs", "max_log_readers_per_client"] {
        assert!(parse(&format!("[server]\n{key} = 0\n")).is_err(), "{key}");
    }
}

#[test]
fn sign_in_with_github_takes_the_apps_own_client_id_and_its_secret_is_a_secret() {
    let config = parse(
        "[server]\n[github]\nauth = \"app\"\nclient_id = \"Iv1.a\"\n\
         [dashboard]\ngithub_client_id = \"Iv1.a\"\nallowed_organizations = [\"octo-org\"]\n\
         github_client_secret_file = \"client-secret\"",
    )
    .unwrap();
    assert_eq!(config.github.web_url, "https://github.com");
    assert!(
        config
            .secret_variables()
            .contains(&"SWITCHYARD_GITHUB_CLIENT_SECRET".to_owned())
    );
    assert!(
        config
            .secret_files()
            .contains(&PathBuf::from("/etc/switchyard/client-secret"))
    );
}

#[test]
fn the_app_key_is_a_secret_only_in_app_mode() {
    let config =
        parse("[server]\n[github]\nauth = \"app\"\napp_id = 7\nprivate_key_file = \"app.pem\"\n")
            .unwrap();
    assert_eq!(
        config.secret_variables(),
        [
            "SWITCHYARD_WEBHOOK_SECRET",
            "GITHUB_TOKEN",
            "SWITCHYARD_DASHBOARD_TOKENS",
            "SWITCHYARD_GITHUB_CLIENT_SECRET",
            "GITHUB_APP_PRIVATE_KEY"
        ]
    );
    assert_eq!(
        config.secret_files(),
        [Path::new("/etc/switchyard/app.pem")]
    );
    let token = parse("[server]\n").unwrap();
    assert_eq!(token.github.auth, GitHubAuth::Token);
    assert!(
        !token
            .secret_variables()
            .contains(&"GITHUB_APP_PRIVATE_KEY".to_owned())
    );
}

#[test]
fn webhook_paths_that_collide_or_are_not_plain_are_refused() {
    let path = |p: &str| parse(&format!("[server]\nwebhook_path = \"{p}\"\n"));
    for good in [
        "/event_handler",
        "/hooks/github",
        "/jobsx",
        "/healthzz",
        "/a.b~c-d_e/",
    ] {
        assert!(path(good).is_ok(), "{good}");
    }
    // (path, problem)
    let cases = [
        ("/admin/replay", "collides with the host's own /admin"),
        ("/admin", "collides with the host's own /admin"),
        ("/healthz", "collides with the host's own /healthz"),
        ("/jobs/1/log", "collides with the host's own /jobs"),
        ("/metrics/", "collides with the host's own /metrics"),
        ("/{id}", "use letters, digits"),
        ("/a*", "use letters, digits"),
        ("/a//b", "use letters, digits"),
        ("/a b", "use letters, digits"),
        ("event_handler", "must start with `/`"),
    ];
    for (bad, problem) in cases {
        let error = path(bad).unwrap_err().to_string();
        assert!(
            error.contains("server.webhook_path") && error.contains(problem),
            "{bad}: {error}"
        );
    }
}

#[test]
fn the_shipped_config_parses() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.toml");
    let config = Config::load(&file).unwrap();
    assert_eq!(config.server.webhook_path, "/event_handler");
    assert_eq!(config.github.api_url, "https://api.github.com");
    assert!(
        config
            .plugins
            .iter()
            .any(|p| p.name == "event-log" && p.enabled)
    );
}

#[test]
fn defaults_fill_what_is_left_out() {
    let config = parse("[server]\n").unwrap();
    assert_eq!(
        config.server.listen,
        std::net::SocketAddr::from(([127, 0, 0, 1], 9393))
    );
    assert_eq!(config.server.webhook_path, "/event_handler");
    assert_eq!(config.server.secret_env, "SWITCHYARD_WEBHOOK_SECRET");
    assert_eq!(config.server.redeliveries, Redeliveries::Ignore);
    assert!(!config.server.accept_sha1);
    assert_eq!(config.github.api_url, "https://api.github.com");
    assert_eq!(config.github.token_env, "GITHUB_TOKEN");
    assert_eq!(
        config.store_path(),
        Path::new("/etc/switchyard/switchyard.db")
    );
    assert_eq!(config.public_url(), "http://127.0.0.1:9393");
}

#[test]
fn catch_up_is_off_by_default_and_its_hooks_fit_the_auth() {
    let config = parse("[server]\n").unwrap();
    assert_eq!(config.catch_up, CatchUpConfig::default());
    assert!(!config.catch_up.enabled);
    let app = "[server]\n[github]\nauth = \"app\"\napp_id = 1\n";
    let hook = "[[catch_up.hooks]]\nrepository = \"octo/app\"\nid = 5\n";
    // (config text, None when valid, else what the message must contain)
    let cases = [
        (format!("{app}[catch_up]\nenabled = true\n"), None),
        (
            format!("[server]\n[catch_up]\nenabled = true\n{hook}"),
            None,
        ),
        (
            "[server]\n[catch_up]\nenabled = true\n".to_owned(),
            Some("catch_up.hooks: with auth = \"token\" name the webhooks"),
        ),
        (
            format!("{app}[catch_up]\nenabled = true\n{hook}"),
            Some("catch_up.hooks: with auth = \"app\""),
        ),
        (
            "[server]\n[[catch_up.hooks]]\nrepository = \"octo\"\nid = 5\n".to_owned(),
            Some("catch_up.hooks[0]: \"octo\" is not an `owner/repo`"),
        ),
        (
            "[server]\n[[catch_up.hooks]]\nid = 5\n".to_owned(),
            Some("catch_up.hooks[0]: set repository or organization"),
        ),
        (
            "[server]\n[catch_up]\npage_size = 101\n".to_owned(),
            Some("catch_up.page_size: must be between 1 and 100"),
        ),
        (
            "[server]\n[catch_up]\ninterval_secs = 0\n".to_owned(),
            Some("catch_up.interval_secs: must be at least 1"),
        ),
        (
            "[server]\n[github]\nmax_answer_mib = 0\n".to_owned(),
            Some("github.max_answer_mib: must be at least 1"),
        ),
        (
            "[server]\n[github]\ntimeout_secs = 0\n".to_owned(),
            Some("github.timeout_secs: must be at least 1"),
        ),
    ];
    for (text, expected) in cases {
        match (parse(&text), expected) {
            (Ok(_), None) => {}
            (Err(error), Some(fragment)) => {
                assert!(error.to_string().contains(fragment), "{text}: {error}")
            }
            (result, _) => panic!("{text}: {result:?}"),
        }
    }
}

#[test]
fn errors_name_the_file_the_key_and_the_problem() {
    // (config text, fragments the message must contain)
    let cases: &[(&str, &[&str])] = &[
        (
            "[server]\nlisten = \"x\"",
            &["config.toml", "listen", "invalid socket address"],
        ),
        (
            "[server]\nsecret = \"hunter2\"",
            &["config.toml", "unknown field `secret`"],
        ),
        (
            "[server]\nwebhook_path = \"hook\"",
            &["server.webhook_path", "must start with `/`"],
        ),
        (
            "[server]\nsecret_env = \"not a name\"",
            &["server.secret_env", "not an environment variable name"],
        ),
        (
            "[server]\n[github]\napi_url = \"ftp://x\"",
            &["github.api_url", "not an http(s) URL"],
        ),
        (
            "[server]\nredeliveries = \"sometimes\"",
            &["redeliveries", "unknown variant `sometimes`"],
        ),
        (
            "[server]\n[[plugins]]\nname = \"ci\"\nlibrary = \"x.so\"\nevents = [\"Pull Request\"]",
            &["events", "invalid subscription \"Pull Request\""],
        ),
        (
            "[server]\n[[plugins]]\nname = \"ci\"\nlibrary = \"x.so\"\nrepositories = [\"octo\"]",
            &["repositories", "expected \"owner/repo\" or \"owner/*\""],
        ),
        (
            "[server]\n[[plugins]]\nname = \"ci\"\nlibrary = \"x.so\"\nenabled = false\n[[plugins]]\nname = \"ci\"\nlibrary = \"x.so\"\nenabled = false",
            &["plugins[1].name", "\"ci\" is used twice"],
        ),
        (
            "[server]\n[[plugins]]\nname = \"ci\"\nlibrary = \"x.so\"\nlibary = \"typo\"",
            &["unknown field `libary`"],
        ),
        (
            "[server]\n[github]\nauth = \"app\"",
            &[
                "github.app_id",
                "needs the App's id (app_id) or its client id",
            ],
        ),
        (
            "[server]\n[github]\nauth = \"app\"\napp_id = 1\nclient_id = \"Iv1.x\"",
            &["github.client_id", "not both"],
        ),
        (
            "[server]\n[github]\nauth = \"oauth\"",
            &["auth", "unknown variant `oauth`"],
        ),
        (
            "[server]\n[github]\nauth = \"app\"\napp_id = 1\nprivate_key_env = \"A KEY\"",
            &["github.private_key_env", "not an environment variable name"],
        ),
        (
            "[server]\n[[plugins]]\nname = \"ci\"\nlibrary = \"x.so\"\npermissions = { contents = \"all\" }",
            &["permissions", "contents: invalid access \"all\""],
        ),
        // Sign in with GitHub: someone must be named, and the App is the host's own.
        (
            "[server]\n[dashboard]\ngithub_client_id = \"Iv1.a\"",
            &[
                "dashboard.allowed_organizations",
                "anyone with a GitHub account",
            ],
        ),
        (
            "[server]\n[github]\nauth = \"app\"\nclient_id = \"Iv1.a\"\n[dashboard]\ngithub_client_id = \"Iv1.b\"\nallowed_users = [1]",
            &["dashboard.github_client_id", "not the App's client id"],
        ),
        (
            "[server]\n[dashboard]\ngithub_client_id = \"Iv1.a\"\nallowed_organizations = [\"octo org\"]",
            &[
                "dashboard.allowed_organizations",
                "not an organization's login",
            ],
        ),
        (
            "[server]\n[dashboard]\ngithub_refresh_secs = 600",
            &["dashboard.github_refresh_secs", "within 5 minutes"],
        ),
        (
            "[server]\n[github]\nweb_url = \"github.com\"",
            &["github.web_url", "not a URL"],
        ),
    ];
    for (text, fragments) in cases {
        let message = parse(text).unwrap_err().to_string();
        for fragment in *fragments {
            assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
        }
    }
}

#[test]
fn repository_patterns_match_owner_and_repo() {
    // (pattern, repository, expected)
    let cases = [
        ("octo/repo", "octo/repo", true),
        ("octo/repo", "Octo/Repo", true),
        ("octo/repo", "octo/other", false),
        ("octo/*", "octo/anything", true),
        ("octo/*", "other/anything", false),
        ("octo/*", "octo", false),
    ];
    for (pattern, repo, expected) in cases {
        let pattern: RepositoryPattern = pattern.parse().unwrap();
        assert_eq!(pattern.matches(repo), expected, "{pattern:?} vs {repo}");
    }
}

#[test]
fn left_out_sections_and_keys_are_their_sections_defaults_and_required_keys_stay_required() {
    // A section left out, given empty, or given one key: the rest is its `Default`.
    for text in [
        "[server]\n",
        "[server]\n[github]\n[store]\n[workers]\n[sandbox]\n[dashboard]\n[catch_up]\n",
    ] {
        let config = parse(text).unwrap();
        assert_eq!(config.server, ServerConfig::default(), "{text}");
        assert_eq!(config.github, GitHubConfig::default(), "{text}");
        assert_eq!(config.store, StoreConfig::default(), "{text}");
        assert_eq!(config.workers, WorkersConfig::default(), "{text}");
        assert_eq!(config.sandbox, SandboxConfig::default(), "{text}");
        assert_eq!(config.dashboard, DashboardConfig::default(), "{text}");
        assert_eq!(config.catch_up, CatchUpConfig::default(), "{text}");
        assert!(config.plugins.is_empty() && config.plugin_dirs.is_empty());
    }
    let config = parse("[server]\nlisten = \"0.0.0.0:80\"\n[workers]\nconcurrency = 3\n").unwrap();
    assert_eq!(
        config.server,
        ServerConfig {
            listen: std::net::SocketAddr::from(([0, 0, 0, 0], 80)),
            ..ServerConfig::default()
        }
    );
    assert_eq!(
        config.workers,
        WorkersConfig {
            concurrency: 3,
            ..WorkersConfig::default()
        }
    );
    // (config text, what the message must contain)
    let required = [
        ("", "missing field `server`"),
        ("[github]\n", "missing field `server`"),
        (
            "[server]\n[[plugins]]\nname = \"ci\"\n",
            "missing field `library`",
        ),
        (
            "[server]\n[[plugins]]\nlibrary = \"x.so\"\n",
            "missing field `name`",
        ),
        (
            "[server]\n[[catch_up.hooks]]\nrepository = \"octo/app\"\n",
            "missing field `id`",
        ),
    ];
    for (text, fragment) in required {
        let error = parse(text).unwrap_err().to_string();
        assert!(error.contains(fragment), "{text:?}: {error}");
    }
}

/// The sample in docs/configuration.md, its settings at their defaults but for the few it
/// names otherwise, is what the code fills in: the page states the defaults the code has.
#[test]
fn the_defaults_docs_configuration_md_states_are_the_codes() {
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md"),
    )
    .unwrap();
    let sample = page
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/configuration.md has a toml sample");
    let documented = parse(sample).unwrap();
    let defaults = parse("[server]\n").unwrap();
    // The sample spells out the default public URL, which the code derives from `listen`.
    assert_eq!(
        documented.server.public_url.as_deref(),
        Some(defaults.public_url().as_str())
    );
    assert_eq!(
        documented.server,
        ServerConfig {
            public_url: documented.server.public_url.clone(),
            ..ServerConfig::default()
        }
    );
    assert_eq!(documented.github, GitHubConfig::default());
    assert_eq!(documented.store, StoreConfig::default());
    assert_eq!(documented.workers, WorkersConfig::default());
    assert_eq!(documented.sandbox, SandboxConfig::default());
    assert_eq!(documented.dashboard, DashboardConfig::default());
    assert_eq!(documented.catch_up, CatchUpConfig::default());
    assert_eq!(documented.plugin_dirs, defaults.plugin_dirs);
    // The sample's entry names its plugin and filters; its limits are an entry's defaults.
    let minimal = parse("[server]\n[[plugins]]\nname = \"x\"\nlibrary = \"x.so\"\n").unwrap();
    let (entry, minimal) = (&documented.plugins[0], &minimal.plugins[0]);
    assert_eq!(
        (
            entry.enabled,
            entry.timeout_secs,
            entry.max_attempts,
            entry.threads,
            entry.network,
            &entry.binds,
            &entry.pass_env,
            entry.disk_mib,
            &entry.permissions,
        ),
        (
            minimal.enabled,
            minimal.timeout_secs,
            minimal.max_attempts,
            minimal.threads,
            minimal.network,
            &minimal.binds,
            &minimal.pass_env,
            minimal.disk_mib,
            &minimal.permissions,
        )
    );
}
