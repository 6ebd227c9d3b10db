//! Builds in the sandbox, against a server process holding real secrets: a build that tries to
//! reach the host (its secrets in `/proc`, its journal, config, logs, keys, other workspaces,
//! its processes) fails to and says so in its log, while git, sh and a compiler work in its
//! workspace; a fork bomb and a memory hog end the build, not the host; a killed host leaves no
//! build behind; `pass_env` and `binds` give exactly what they list; without bubblewrap,
//! commands fail saying how to install it. Real bubblewrap: outside CI these tests skip where
//! it is missing, under `CI=true` its absence fails them.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine as _;
use switchyard::{
    job_log::{LINK_SECRET, LogLinks},
    journal::{JobRecord, Journal as _, SqliteJournal},
};

use crate::support::{
    EVENT_LOG, SECRET, behaviours, eventually, example, expand,
    net::{free_port, wait_until_listening},
    send_signed,
    server::{Server, ended_jobs},
};

const SECRET_VARIABLE: &str = "SANDBOX_TEST_WEBHOOK_SECRET";
const TOKEN_VARIABLE: &str = "SANDBOX_TEST_GITHUB_TOKEN";
const TOKEN: &str = "ghp_sandboxtesttoken1234567890";

/// Whether bubblewrap is here; under CI its absence is a failure, elsewhere a skip.
fn bubblewrap() -> bool {
    let here = Command::new("bwrap")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !here {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "bubblewrap is missing: .ci/run installs it (apt-get install bubblewrap)"
        );
        eprintln!("skipped: bubblewrap is not installed (apt-get install bubblewrap)");
    }
    here
}

fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A server process in `dir` with these `[sandbox]` keys and plugin entries.
struct Host {
    server: Server,
    port: u16,
    dir: PathBuf,
}

impl Host {
    async fn start(dir: &Path, sandbox: &str, plugins: &str, user: Option<&str>) -> Self {
        let keys = format!(
            "secret_env = \"{SECRET_VARIABLE}\"\n[github]\ntoken_env = \"{TOKEN_VARIABLE}\""
        );
        Self::start_with(dir, &keys, sandbox, plugins, user, &[]).await
    }

    /// Like `start`, with `[server]` keys of its own (and `[github]` after them), and these
    /// environment variables set.
    async fn start_with(
        dir: &Path,
        server: &str,
        sandbox: &str,
        plugins: &str,
        user: Option<&str>,
        env: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
             {server}\n\
             [store]\npath = \"{{dir}}/data/switchyard.db\"\n\
             [sandbox]\n{sandbox}\n{plugins}"
        );
        let config = dir.join("config.toml");
        std::fs::write(&config, expand(&text, dir)).unwrap();
        let mut command = match user {
            // The host itself unprivileged: its builds go into a user namespace.
            Some(user) => {
                let mut command = Command::new("setpriv");
                command.args([
                    &format!("--reuid={user}"),
                    &format!("--regid={user}"),
                    "--clear-groups",
                    "--",
                ]);
                command.arg(env!("CARGO_BIN_EXE_switchyard"));
                command
            }
            None => Command::new(env!("CARGO_BIN_EXE_switchyard")),
        };
        let child = command
            .args(["serve", "--config"])
            .arg(&config)
            .env(SECRET_VARIABLE, SECRET)
            .env(TOKEN_VARIABLE, TOKEN)
            .env("SANDBOX_TEST_PASSED", "passed-value-1234")
            .env("SANDBOX_TEST_NOT_PASSED", "not-passed-value")
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("host.log")).unwrap())
            .spawn()
            .unwrap();
        let host = Self {
            server: Server(child),
            port,
            dir: dir.to_owned(),
        };
        wait_until_listening(port).await;
        host
    }

    fn store(&self) -> PathBuf {
        self.dir.join("data/switchyard.db")
    }

    /// Sends a delivery and returns its one job, ended, and that job's log.
    async fn run(&self, delivery: &str) -> (JobRecord, String) {
        self.run_all(delivery, 1).await.remove(0)
    }

    /// Sends a delivery and returns its `count` jobs, ended, each with its log.
    async fn run_all(&self, delivery: &str, count: usize) -> Vec<(JobRecord, String)> {
        let url = format!("http://127.0.0.1:{}/event_handler", self.port);
        let payload = example("pull_request", Some("opened"));
        assert_eq!(
            send_signed(&url, "pull_request", delivery, &payload).await,
            202
        );
        let jobs = ended_jobs(&self.store(), delivery, count).await;
        let journal = SqliteJournal::open(&self.store()).unwrap();
        let links = LogLinks::new(
            &format!("http://127.0.0.1:{}", self.port),
            &journal.host_key(LINK_SECRET).await.unwrap(),
        );
        let mut logged = Vec::new();
        for job in jobs {
            let log = reqwest::get(links.url(job.id, job.link_salt))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            logged.push((job, log));
        }
        logged
    }

    fn host_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("host.log")).unwrap_or_default()
    }
}

/// A `run` plugin entry with `script`, and extra entry keys.
fn runs(name: &str, entry: &str, script: &str) -> String {
    let script = toml::Value::String(script.to_owned()).to_string();
    behaviours(
        name,
        entry,
        &format!("behaviour = \"run\"\nscript = {script}\ntimeout_secs = 60"),
    )
}

/// A folder every user can enter: the host may run as another user than the test.
fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// What a hostile build tries; each line of its log says whether it got through.
fn attack(host_dir: &Path, key: &Path) -> String {
    let store = host_dir.join("data");
    let targets = [
        store.join("switchyard.db"),
        host_dir.join("config.toml"),
        store.join("logs/1.log"),
        store.join("workspaces/999/planted"),
        key.to_owned(),
    ];
    let mut script = String::from(
        "echo \"uid $(id -u)\"\n\
         echo \"pids $(ls /proc | grep -c '^[0-9]')\"\n\
         echo \"environ $(for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ; done 2>/dev/null | base64 -w0)\"\n",
    );
    for target in targets {
        let target = target.display();
        script.push_str(&format!(
            "cat {target} >/dev/null 2>&1 && echo \"READ {target}\" || echo \"cannot read {target}\"\n\
             [ -e {target} ] && (echo x >> {target}) 2>/dev/null && echo \"WROTE {target}\" || echo \"cannot write {target}\"\n"
        ));
    }
    for dir in ["/", "/usr", "/etc", "/var", "/root", "/home"] {
        script.push_str(&format!(
            "touch {dir}/sandbox-probe 2>/dev/null && echo \"WROTE {dir}\" || echo \"cannot write {dir}\"\n"
        ));
    }
    script.push_str(
        "touch /tmp/ok && echo tmp-writable\n\
         touch ./ok && echo workspace-writable\n\
         git init --quiet repo && echo git-works\n\
         printf 'int main(void) { return 0; }' > t.c && cc t.c -o t && ./t && echo compiler-works\n",
    );
    script
}

/// The log of a build that ran [`attack`]: nothing got through, and the tools worked.
fn assert_contained(log: &str, host_pid: u32) {
    for line in log.lines() {
        assert!(
            !line.starts_with("READ") && !line.starts_with("WROTE"),
            "the build got through: {line}\n{log}"
        );
    }
    for works in [
        "tmp-writable",
        "workspace-writable",
        "git-works",
        "compiler-works",
    ] {
        assert!(log.contains(works), "{works} missing:\n{log}");
    }
    // The host's secrets appear in no form: raw, or inside what the build encoded.
    let environ = log
        .lines()
        .find_map(|l| l.strip_prefix("environ "))
        .unwrap_or_default();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(environ.trim())
        .unwrap_or_default();
    let decoded = String::from_utf8_lossy(&decoded);
    for secret in [SECRET, TOKEN] {
        assert!(!log.contains(secret), "a secret in the log");
        assert!(
            !decoded.contains(secret),
            "a secret read from /proc:\n{decoded}"
        );
    }
    assert!(
        !decoded.contains(SECRET_VARIABLE),
        "the host's environment was read"
    );
    // Its own few processes only: the host's are invisible.
    let pids: usize = log
        .lines()
        .find_map(|l| l.strip_prefix("pids "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the pid count");
    assert!(pids < 10, "{pids} processes visible");
    assert!(!log.contains(&format!("/proc/{host_pid}/")));
}

async fn hostile_build_is_contained(user: Option<&str>) {
    let dir = open_dir();
    let key = dir.path().join("deploy-key");
    std::fs::write(&key, "-----BEGIN OPENSSH PRIVATE KEY-----").unwrap();
    if let Some(user) = user {
        let status = Command::new("chown")
            .args(["-R", &format!("{user}:{user}")])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
    let plugins = runs("hostile", "", &attack(dir.path(), &key));
    let host = Host::start(dir.path(), "", &plugins, user).await;
    // Another job's workspace, with a file in it (the host cleans workspaces at start).
    let other = dir.path().join("data/workspaces/999");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("planted"), "other job").unwrap();
    if let Some(user) = user {
        let status = Command::new("chown")
            .args(["-R", &format!("{user}:{user}")])
            .arg(dir.path().join("data/workspaces"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    let watched = [
        dir.path().join("config.toml"),
        key.clone(),
        other.join("planted"),
    ];
    let before: Vec<Vec<u8>> = watched.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let (job, log) = host.run("attack").await;
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}\n{log}");
    assert_contained(&log, host.server.0.id());
    // The host's files are as they were.
    let after: Vec<Vec<u8>> = watched.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert_eq!(before, after, "a host file changed");
    if root() && user.is_none() {
        assert!(log.contains("uid 65534"), "not run as nobody:\n{log}");
    }
}

#[tokio::test]
async fn a_hostile_build_reaches_nothing_of_the_host_and_still_builds() {
    if bubblewrap() {
        hostile_build_is_contained(None).await;
    }
}

#[tokio::test]
async fn a_hostile_build_under_an_unprivileged_host_is_contained_in_a_user_namespace() {
    if !bubblewrap() {
        return;
    }
    if !root() {
        // Already unprivileged: the test above covered this path.
        return;
    }
    hostile_build_is_contained(Some("65534")).await;
}

#[tokio::test]
async fn a_fork_bomb_and_a_memory_hog_end_the_build_not_the_host() {
    if !bubblewrap() || !root() {
        eprintln!("skipped: cgroup limits need the host to run as root");
        return;
    }
    let dir = open_dir();
    let plugins = runs(
        "forks",
        "",
        "for i in $(seq 1 200); do sleep 3 & done 2>&1 | tail -n 1; wait; echo forked",
    ) + &runs(
        "memory",
        "",
        "x=$(head -c 300000000 /dev/zero | tr '\\0' a); echo survived",
    );
    let host = Host::start(dir.path(), "pids = 64\nmemory_mib = 64", &plugins, None).await;
    let jobs = host.run_all("limits", 2).await;
    let job = |plugin: &str| jobs.iter().find(|(j, _)| j.plugin == plugin).unwrap();
    let (_, forks) = job("forks");
    assert!(
        forks.contains("fork") || forks.contains("Resource temporarily unavailable"),
        "no fork was refused:\n{forks}"
    );
    let (memory, log) = job("memory");
    assert_eq!(memory.state.as_str(), "failed", "{memory:?}");
    assert!(!log.contains("survived"), "{log}");
    // The host is fine.
    assert!(host.server.0.id() > 0);
    let health = reqwest::get(format!("http://127.0.0.1:{}/healthz", host.port)).await;
    assert_eq!(health.unwrap().status(), 200);
}

#[tokio::test]
async fn a_killed_host_leaves_no_build_behind() {
    if !bubblewrap() {
        return;
    }
    let dir = open_dir();
    // A duration no other run uses: another test run's build, or one an earlier failed run
    // left, must not be taken for this one.
    let marker = format!("987.{}{}", std::process::id(), rand_digits());
    let plugins = runs("long", "", &format!("sleep {marker}"));
    let mut host = Host::start(dir.path(), "", &plugins, None).await;
    let url = format!("http://127.0.0.1:{}/event_handler", host.port);
    let payload = example("pull_request", Some("opened"));
    assert_eq!(
        send_signed(&url, "pull_request", "orphan", &payload).await,
        202
    );
    let cmdlines = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
            .collect::<Vec<_>>()
    };
    // The build's own `sleep`: the launching `sh` and bubblewrap hold the marker in their
    // command lines too, and the host is to be killed once the sandbox stands.
    let sleep = format!("sleep\0{marker}\0").into_bytes();
    eventually("the build to start", || cmdlines().contains(&sleep)).await;
    host.server.0.kill().unwrap(); // SIGKILL: no chance to clean up
    host.server.0.wait().unwrap();
    // Nothing of it is left: not the sleep, not its shell, not bubblewrap.
    let left = || {
        cmdlines().iter().any(|cmdline| {
            cmdline
                .windows(marker.len())
                .any(|w| w == marker.as_bytes())
        })
    };
    eventually("the build to die with the host", || !left()).await;
}

#[tokio::test]
async fn pass_env_and_binds_give_exactly_what_they_list() {
    if !bubblewrap() {
        return;
    }
    let dir = open_dir();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("listed"), "bound in").unwrap();
    std::fs::write(shared.join("unlisted"), "not bound").unwrap();
    for file in ["listed", "unlisted"] {
        let path = shared.join(file);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let listed = shared.join("listed");
    let entry = format!(
        "pass_env = [\"SANDBOX_TEST_PASSED\"]\nbinds = [\"{}\"]",
        listed.display()
    );
    let script = format!(
        "env | cut -d= -f1 | sort | tr '\\n' ' '; echo\n\
         echo \"passed=$SANDBOX_TEST_PASSED\"\n\
         cat {} && echo\n\
         cat {} 2>/dev/null || echo unlisted-missing",
        listed.display(),
        shared.join("unlisted").display()
    );
    let plugins = runs("env", &entry, &script);
    let host = Host::start(dir.path(), "", &plugins, None).await;
    let (job, log) = host.run("env").await;
    assert_eq!(job.state.as_str(), "succeeded", "{log}");
    let names: Vec<&str> = log.lines().next().unwrap().split_whitespace().collect();
    for name in &names {
        assert!(
            [
                "HOME",
                "LANG",
                "OLDPWD",
                "PATH",
                "PWD",
                "SHLVL",
                "SANDBOX_TEST_PASSED",
                "_"
            ]
            .contains(name),
            "{name} crossed into the sandbox: {names:?}"
        );
    }
    assert!(names.contains(&"SANDBOX_TEST_PASSED"), "{names:?}");
    // Passed, and masked in the log like any secret.
    assert!(log.contains("passed=********"), "{log}");
    assert!(log.contains("bound in"), "{log}");
    assert!(log.contains("unlisted-missing"), "{log}");
}

#[tokio::test]
async fn a_passed_secret_printed_in_base64_at_each_alignment_is_masked() {
    if !bubblewrap() {
        return;
    }
    let dir = open_dir();
    let secret = "passed-value-1234";
    // The secret alone, after one and two bytes (its three alignments in base64's groups of
    // three), with a newline after it, and in the URL-safe alphabet.
    let script = "for before in '' a ab; do
                    printf '%s%s' \"$before\" \"$SANDBOX_TEST_PASSED\" | base64 -w0 | sed 's/^/b64: /'; echo
                  done
                  echo \"$SANDBOX_TEST_PASSED\" | base64 | sed 's/^/b64: /'
                  printf 'x%s' \"$SANDBOX_TEST_PASSED\" | base64 -w0 | tr '+/' '-_' | sed 's/^/b64: /'; echo
";
    let plugins = runs("b64", "pass_env = [\"SANDBOX_TEST_PASSED\"]", script);
    let host = Host::start(dir.path(), "", &plugins, None).await;
    let (job, log) = host.run("b64").await;
    assert_eq!(job.state.as_str(), "succeeded", "{log}");
    let printed: Vec<&str> = log.lines().filter(|l| l.starts_with("b64: ")).collect();
    assert_eq!(printed.len(), 5, "{log}");
    for line in &printed {
        assert!(line.contains("********"), "{log}");
    }
    for (before, after) in [("", ""), ("a", ""), ("ab", ""), ("", "\n"), ("x", "")] {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{before}{secret}{after}"));
        // Characters only the secret's bytes make, well inside it.
        let inner = &encoded[4..encoded.len() - 4];
        let url_safe = inner.replace('+', "-").replace('/', "_");
        assert!(
            !log.contains(inner) && !log.contains(&url_safe),
            "{before:?}: {log}"
        );
    }
}

#[tokio::test]
async fn without_bubblewrap_commands_fail_saying_how_to_install_it_and_other_jobs_run() {
    let dir = open_dir();
    let plugins = format!("{EVENT_LOG}{}", runs("build", "", "echo should not run"));
    let host = Host::start(dir.path(), "bwrap = \"/nonexistent/bwrap\"", &plugins, None).await;
    let url = format!("http://127.0.0.1:{}/event_handler", host.port);
    let payload = example("pull_request", Some("opened"));
    assert_eq!(
        send_signed(&url, "pull_request", "no-bwrap", &payload).await,
        202
    );
    let jobs = ended_jobs(&host.store(), "no-bwrap", 2).await;
    let job = |plugin: &str| jobs.iter().find(|j| j.plugin == plugin).unwrap().clone();
    assert_eq!(job("event-log").state.as_str(), "succeeded");
    let build = job("build");
    assert_eq!(build.state.as_str(), "failed");
    assert!(
        build
            .error
            .as_deref()
            .unwrap()
            .contains("apt-get install bubblewrap"),
        "{build:?}"
    );
    assert!(host.host_log().contains("bubblewrap does not work here"));
    // `check` says so too, and a required sandbox refuses to start.
    let config = host.dir.join("config.toml");
    let check = || {
        let out = crate::support::server::command(&config, &["check"], SECRET_VARIABLE)
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), printed)
    };
    let (_, printed) = check();
    assert!(printed.contains("sandbox: unavailable"), "{printed}");
    let required = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[sandbox]\n", "[sandbox]\nmode = \"bwrap\"\n");
    std::fs::write(&config, required).unwrap();
    let (passed, printed) = check();
    assert!(!passed);
    assert!(printed.contains("apt-get install bubblewrap"), "{printed}");
}

#[tokio::test]
async fn mode_none_is_warned_about_at_every_start() {
    let dir = open_dir();
    let host = Host::start(dir.path(), "mode = \"none\"", EVENT_LOG, None).await;
    eventually("the warning about mode none", || {
        host.host_log().contains("commands run unsandboxed")
    })
    .await;
}

#[tokio::test]
async fn secrets_from_files_are_used_and_never_reach_a_build_even_under_a_bind() {
    if !bubblewrap() {
        return;
    }
    let dir = open_dir();
    // As systemd's LoadCredential= lays them out.
    let credentials = dir.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    std::fs::write(credentials.join("webhook-secret"), format!("{SECRET}\n")).unwrap();
    std::fs::write(credentials.join("token"), format!("{TOKEN}\n")).unwrap();
    let server = "secret_env = \"SANDBOX_TEST_UNSET\"\n\
                  secret_file = \"$CREDENTIALS_DIRECTORY/webhook-secret\"\n\
                  [github]\ntoken_file = \"$CREDENTIALS_DIRECTORY/token\"";
    // Even an entry that binds the credentials' folder sees nothing of them.
    let entry = format!("binds = [\"{}\"]", credentials.display());
    let script = format!(
        "echo \"secret [$(cat {0}/webhook-secret)] token [$(cat {0}/token)]\"",
        credentials.display()
    );
    let plugins = runs("peek", &entry, &script);
    let env = [("CREDENTIALS_DIRECTORY", credentials.to_str().unwrap())];
    let host = Host::start_with(dir.path(), server, "", &plugins, None, &env).await;
    // Accepted: signed with the secret from the file (the variable is unset).
    let (job, log) = host.run("from-file").await;
    assert_eq!(job.state.as_str(), "succeeded", "{log}");
    assert!(log.contains("secret [] token []"), "{log}");
    assert!(!log.contains(SECRET) && !log.contains(TOKEN), "{log}");
}

#[tokio::test]
async fn an_entry_without_network_has_only_its_own_loopback() {
    if !bubblewrap() {
        return;
    }
    let dir = open_dir();
    let script = "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '";
    let plugins = runs("offline", "network = false", script) + &runs("online", "", script);
    let host = Host::start(dir.path(), "", &plugins, None).await;
    for (job, log) in host.run_all("net", 2).await {
        assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
        let interfaces: Vec<&str> = log.split_whitespace().collect();
        if job.plugin == "offline" {
            assert_eq!(interfaces, ["lo"], "a network namespace of its own");
        } else {
            // The host's own interfaces, as the host sees them.
            let host_dev = std::fs::read_to_string("/proc/net/dev").unwrap();
            assert_eq!(interfaces.len(), host_dev.lines().count() - 2, "{log}");
        }
    }
}

#[tokio::test]
async fn no_secret_a_build_is_given_shows_on_any_command_line() {
    if !bubblewrap() {
        return;
    }
    let dir = open_dir();
    let plugins = runs(
        "waits",
        "pass_env = [\"SANDBOX_TEST_PASSED\"]",
        "sleep 987.321",
    );
    let host = Host::start(dir.path(), "", &plugins, None).await;
    let url = format!("http://127.0.0.1:{}/event_handler", host.port);
    let payload = example("pull_request", Some("opened"));
    assert_eq!(
        send_signed(&url, "pull_request", "cmdline", &payload).await,
        202
    );
    let command_lines = || -> Vec<Vec<u8>> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|entry| std::fs::read(entry.path().join("cmdline")).ok())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lines = command_lines();
        let running = lines.iter().any(|l| l.windows(7).any(|w| w == b"987.321"));
        if running {
            // Every local user can read these: the passed value is in none of them.
            let value = b"passed-value-1234";
            assert!(
                !lines
                    .iter()
                    .any(|l| l.windows(value.len()).any(|w| w == value)),
                "a passed secret is on a command line"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the build did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_workspace_thousands_of_folders_deep_is_removed_and_the_host_lives_on() {
    if !bubblewrap() {
        return;
    }
    let dir = open_dir();
    let script = "perl -e 'for (1..15000) { mkdir \"d\" or die; chdir \"d\" or die }' && echo deep";
    let plugins = runs("deep", "", script);
    let host = Host::start(dir.path(), "", &plugins, None).await;
    let (job, log) = host.run("deep").await;
    assert_eq!(job.state.as_str(), "succeeded", "{log}");
    assert!(log.contains("deep"), "{log}");
    let workspace = dir.path().join("data/workspaces").join(job.id.to_string());
    eventually("the workspace to be removed", || !workspace.exists()).await;
    let health = reqwest::get(format!("http://127.0.0.1:{}/healthz", host.port)).await;
    assert_eq!(health.unwrap().status(), 200, "the host died");
}

/// Six digits that differ from one call to the next.
fn rand_digits() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{:06}", nanos % 1_000_000)
}
