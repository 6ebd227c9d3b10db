//! Builds in the sandbox, against a server process holding real secrets: a build that tries to
//! reach the host (its secrets in `/proc`, its journal, config, logs, keys, other workspaces,
//! its processes) fails to and says so in its log, while git, sh and a compiler work in its
//! workspace; a fork bomb and a memory hog end the build, not the host; a killed host leaves no
//! build behind; `pass_env` and `binds` give exactly what they list; without bubblewrap,
//! commands fail saying how to install it. A build with the network reaches a server standing
//! for the outside world (in a network namespace the test makes) and clones from it, but none
//! of the host's addresses, link-local or denied ones; without isolation such builds are
//! refused; a build cannot write past its `disk_mib`, several at once each have their own, a
//! job waits for disk space saying why, and a killed host's mounts and rules are gone after
//! the next start. Real bubblewrap: outside CI these tests skip where
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
    journal::{JobRecord, SqliteJournal, prelude::*},
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
        // Workspaces of a size every test machine has room for, unless the test is about it:
        // the default 10 GiB each would make builds wait for disk on a fuller machine.
        let size = match sandbox.contains("disk_mib") || plugins.contains("disk_mib") {
            true => "",
            false => "disk_mib = 512\n",
        };
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
             {server}\n\
             [store]\npath = \"{{dir}}/data/switchyard.db\"\n\
             [sandbox]\n{size}{sandbox}\n{plugins}"
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
    // An unprivileged host cannot keep a build off its network: such builds are refused (see
    // `without_isolation_network_builds_are_refused_saying_what_to_install`).
    let entry = if user.is_some() {
        "network = false"
    } else {
        ""
    };
    let plugins = runs("hostile", entry, &attack(dir.path(), &key));
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
    if !isolation_tools() {
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
        } else if root() {
            // A namespace of its own too, reaching out through slirp4netns's interface.
            assert_eq!(interfaces, ["lo", "tap0"], "{log}");
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

/// Whether the network isolation's tools are here and the test runs as root (its rules are
/// the host's); under CI their absence fails.
fn isolation_tools() -> bool {
    let works = |program: &str| {
        let version = if program == "ip" { "-V" } else { "--version" };
        Command::new(program)
            .arg(version)
            .output()
            .is_ok_and(|out| out.status.success())
    };
    let here = bubblewrap() && root() && works("slirp4netns") && works("nft") && works("ip");
    if !here {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "network isolation needs root, slirp4netns, nftables and iproute2: .ci/run installs them"
        );
        eprintln!("skipped: network isolation needs root, slirp4netns, nftables and iproute2");
    }
    here
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace standing for the outside world, joined to the host's by a veth pair
/// and routed to from it: `permitted` is its end of the link; `denied` (listed in
/// `deny_networks`) and `link_local` are second addresses of that end (this kernel has no
/// dummy interfaces), routed to through the link too, so only the host's rules keep a build
/// from them. A web server there serves `files`.
struct Outside {
    name: String,
    link: String,
    permitted: String,
    denied: String,
    link_local: String,
    files: tempfile::TempDir,
}

const OUTSIDE_PORT: u16 = 8080;

impl Outside {
    fn start() -> Self {
        // Addresses of the test's own, apart from any other run's: 100.64.0.0/10 (shared
        // address space) for the link, 198.18.0.0/15 (benchmarking) for the denied one.
        let id = std::process::id();
        let (a, b) = (64 + id % 60, (id / 60) % 250 + 1);
        let outside = Self {
            name: format!("sy-outside-{id}"),
            link: format!("syo{}", id % 1_000_000),
            permitted: format!("100.{a}.{b}.2"),
            denied: format!("198.18.{a}.{b}"),
            link_local: format!("169.254.{a}.{b}"),
            files: tempfile::tempdir().unwrap(),
        };
        let (n, link) = (outside.name.as_str(), outside.link.as_str());
        ip(&["netns", "add", n]);
        ip(&[
            "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", n,
        ]);
        ip(&["addr", "add", &format!("100.{a}.{b}.1/30"), "dev", link]);
        ip(&["link", "set", link, "up"]);
        for args in [
            vec!["addr", "add", &format!("100.{a}.{b}.2/30"), "dev", "eth0"],
            vec!["link", "set", "eth0", "up"],
            vec!["link", "set", "lo", "up"],
            vec![
                "addr",
                "add",
                &format!("{}/32", outside.denied),
                "dev",
                "eth0",
            ],
            vec![
                "addr",
                "add",
                &format!("{}/32", outside.link_local),
                "dev",
                "eth0",
            ],
            vec!["route", "add", "default", "via", &format!("100.{a}.{b}.1")],
        ] {
            let mut inside = vec!["-n", n];
            inside.extend(args);
            ip(&inside);
        }
        for address in [&outside.denied, &outside.link_local] {
            ip(&[
                "route",
                "add",
                &format!("{address}/32"),
                "via",
                &outside.permitted,
            ]);
        }
        outside.serve();
        outside
    }

    /// Serves the files folder over HTTP from inside the namespace, one request at a time.
    fn serve(&self) {
        let netns = std::fs::File::open(format!("/run/netns/{}", self.name)).unwrap();
        let root = self.files.path().to_owned();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let listener = std::net::TcpListener::bind(("0.0.0.0", OUTSIDE_PORT)).unwrap();
            ready_tx.send(()).unwrap();
            for stream in listener.incoming().flatten() {
                serve_file(stream, &root);
            }
        });
        ready_rx.recv().unwrap();
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}:{OUTSIDE_PORT}/{path}", self.permitted)
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn serve_file(stream: std::net::TcpStream, root: &Path) {
    use std::io::{BufRead as _, Write as _};
    let mut reader = std::io::BufReader::new(&stream);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header.trim().is_empty() => break,
            Ok(_) => {}
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split('?').next().unwrap_or_default();
    let file = root.join(path.trim_start_matches('/'));
    let mut stream = &stream;
    let answer = match (path.contains(".."), std::fs::read(&file)) {
        (false, Ok(body)) => {
            let head = format!("HTTP/1.0 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
            [head.into_bytes(), body].concat()
        }
        _ => b"HTTP/1.0 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec(),
    };
    let _ = stream.write_all(&answer);
}

/// Every IPv4 address of the host's interfaces.
fn host_addresses() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet")?;
            Some(words.next()?.split('/').next()?.to_owned())
        })
        .collect()
}

/// A shell function the build's script probes with: `probe NAME ADDRESS PORT` prints
/// `NAME ADDRESS:PORT reached|refused MILLISECONDS`.
const PROBE: &str = "probe() { s=$(date +%s%N); if timeout 10 bash -c \"exec 3<>/dev/tcp/$2/$3\" 2>/dev/null; then r=reached; else r=refused; fi; echo \"$1 $2:$3 $r $(( ($(date +%s%N) - s) / 1000000 ))\"; }\n";

#[tokio::test]
async fn a_build_with_the_network_reaches_the_outside_world_and_nothing_of_the_hosts() {
    if !isolation_tools() {
        return;
    }
    let outside = Outside::start();
    std::fs::write(outside.files.path().join("hello"), "hello from outside\n").unwrap();
    // A repository served over git's dumb HTTP from the outside world.
    let work = outside.files.path().join("work");
    let git = |dir: &Path, args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    std::fs::create_dir(&work).unwrap();
    git(&work, &["init", "--quiet"]);
    std::fs::write(work.join("README"), "served over http\n").unwrap();
    git(&work, &["add", "README"]);
    git(&work, &["commit", "--quiet", "-m", "first"]);
    let sha = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(&work)
        .output()
        .unwrap()
        .stdout;
    let sha = String::from_utf8(sha).unwrap().trim().to_owned();
    git(
        outside.files.path(),
        &["clone", "--quiet", "--bare", "work", "repo.git"],
    );
    git(
        &outside.files.path().join("repo.git"),
        &["update-server-info"],
    );

    // The host's addresses, each listening (0.0.0.0), and reachable by the test itself.
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let addresses = host_addresses();
    assert!(addresses.len() >= 2, "{addresses:?}");
    for address in addresses
        .iter()
        .chain([&outside.denied, &outside.link_local])
    {
        let target = match address == &outside.denied || address == &outside.link_local {
            true => format!("{address}:{OUTSIDE_PORT}"),
            false => format!("{address}:{port}"),
        };
        let reached =
            std::net::TcpStream::connect_timeout(&target.parse().unwrap(), Duration::from_secs(5));
        assert!(reached.is_ok(), "the test cannot reach {target} itself");
    }

    let dir = open_dir();
    let mut script = String::from(PROBE);
    for address in &addresses {
        script.push_str(&format!("probe host {address} {port}\n"));
    }
    script.push_str(&format!(
        "probe gateway 10.0.2.2 {port}\n\
         probe link-local {link_local} {OUTSIDE_PORT}\n\
         probe metadata 169.254.169.254 80\n\
         probe denied {denied} {OUTSIDE_PORT}\n\
         probe permitted {permitted} {OUTSIDE_PORT}\n\
         curl -s --max-time 10 {hello}\n\
         git clone --quiet {repo} cloned && cat cloned/README\n",
        link_local = outside.link_local,
        denied = outside.denied,
        permitted = outside.permitted,
        hello = outside.url("hello"),
        repo = outside.url("repo.git"),
    ));
    // The host's own checkout too, from the outside world over http.
    let checkout = format!(
        "behaviour = \"checkout\"\nclone_url = \"{}\"\nsha = \"{sha}\"\nscript = \"cat README\"",
        outside.url("repo.git")
    );
    let plugins = runs("online", "", &script) + &behaviours("checks-out", "", &checkout);
    let sandbox = format!(
        "deny_networks = [\"198.18.0.0/15\", \"{}/32\"]",
        outside.denied
    );
    let host = Host::start(dir.path(), &sandbox, &plugins, None).await;
    let jobs = host.run_all("network", 2).await;
    let (job, log) = jobs.iter().find(|(j, _)| j.plugin == "checks-out").unwrap();
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}\n{log}");
    assert!(log.contains("served over http"), "{log}");
    let (job, log) = jobs.iter().find(|(j, _)| j.plugin == "online").unwrap();
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}\n{log}");
    let mut refused = 0;
    for line in log.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [kind, target, result, millis] = words[..] else {
            continue;
        };
        let millis: u64 = millis.parse().unwrap();
        match kind {
            "permitted" => assert_eq!(result, "reached", "{line}\n{log}"),
            "host" | "gateway" | "link-local" | "metadata" | "denied" => {
                assert_eq!(result, "refused", "{target} was reached:\n{log}");
                assert!(millis < 3_000, "{target} refused only after {millis} ms");
                refused += 1;
            }
            _ => {}
        }
    }
    assert_eq!(refused, addresses.len() + 4, "{log}");
    assert!(log.contains("hello from outside"), "{log}");
    assert!(
        log.contains("served over http"),
        "the http clone failed:\n{log}"
    );
    drop(listener);
}

#[tokio::test]
async fn without_isolation_network_builds_are_refused_saying_what_to_install() {
    if !bubblewrap() || !root() {
        eprintln!("skipped: the host is made unprivileged (no rules of its own) by a root test");
        return;
    }
    let start = |sandbox: &'static str| async move {
        let dir = open_dir();
        let plugins = runs("online", "", "echo online-ran")
            + &runs("offline", "network = false", "echo offline-ran");
        let status = Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        let host = Host::start(dir.path(), sandbox, &plugins, Some("65534")).await;
        (dir, host)
    };
    let (_dir, host) = start("").await;
    let jobs = host.run_all("unisolated", 2).await;
    let job = |plugin: &str| jobs.iter().find(|(j, _)| j.plugin == plugin).unwrap();
    let (online, log) = job("online");
    assert_eq!(online.state.as_str(), "failed", "{online:?}");
    let error = online.error.as_deref().unwrap_or_default();
    for says in [
        "apt-get install slirp4netns nftables",
        "network_isolation = \"off\"",
        "does not run as root",
    ] {
        assert!(error.contains(says), "{says:?} not in {error}");
    }
    assert!(!log.contains("online-ran"), "{log}");
    let (offline, log) = job("offline");
    assert_eq!(offline.state.as_str(), "succeeded", "{offline:?}");
    assert!(log.contains("offline-ran"), "{log}");
    assert!(
        host.host_log()
            .contains("builds cannot be kept off the host's network"),
        "{}",
        host.host_log()
    );
    // Turned off on purpose: the build runs, in the host's namespace.
    let (_dir, host) = start("network_isolation = \"off\"").await;
    let jobs = host.run_all("off", 2).await;
    for (job, log) in jobs {
        assert_eq!(job.state.as_str(), "succeeded", "{job:?}\n{log}");
        assert!(log.contains("-ran"), "{log}");
    }
    assert!(
        host.host_log()
            .contains("network_isolation = \"off\": builds with the network reach"),
        "{}",
        host.host_log()
    );
}

/// Whether workspaces are limited here: the host mounts them as root, with mkfs.ext4.
fn disk_limits() -> bool {
    let mkfs = Command::new("mkfs.ext4")
        .arg("-V")
        .output()
        .is_ok_and(|out| out.status.success());
    let here = bubblewrap() && root() && mkfs;
    if !here {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "disk limits need root and mkfs.ext4: .ci/run installs e2fsprogs"
        );
        eprintln!("skipped: disk limits need root and mkfs.ext4 (e2fsprogs)");
    }
    here
}

/// Mount points under `dir`, as the host's mount namespace has them.
fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| point.starts_with(&dir))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_build_writing_past_its_disk_fails_cleanly_while_the_host_goes_on() {
    if !disk_limits() {
        return;
    }
    let dir = open_dir();
    // 1 GiB into a 64 MiB workspace, the way the attack did it, then by plain writes.
    let script = "fallocate -l 1G big || dd if=/dev/zero of=more bs=1M count=1024 status=none";
    let plugins = format!("{EVENT_LOG}{}", runs("filler", "disk_mib = 64", script));
    let host = Host::start(dir.path(), "", &plugins, None).await;
    let before = nix::sys::statvfs::statvfs(dir.path()).unwrap();
    let jobs = host.run_all("fill", 2).await;
    let (filler, log) = jobs.iter().find(|(j, _)| j.plugin == "filler").unwrap();
    assert_eq!(filler.state.as_str(), "failed", "{filler:?}\n{log}");
    assert!(
        log.contains("switchyard: the build's workspace is full: disk_mib = 64"),
        "{log}"
    );
    // The host's disk lost at most the workspace's size (other engineers' builds share it:
    // a margin of 512 MiB, still half the GiB written).
    let after = nix::sys::statvfs::statvfs(dir.path()).unwrap();
    let lost = (before.blocks_available() as i64 - after.blocks_available() as i64)
        * before.fragment_size() as i64;
    assert!(lost < 512 << 20, "the host's disk lost {lost} bytes");
    // The workspace is gone with its job, mount and image.
    let workspaces = dir.path().join("data/workspaces");
    eventually("the workspace to be unmounted and removed", || {
        mounts_under(&workspaces).is_empty()
            && std::fs::read_dir(&workspaces).map_or(true, |d| d.count() == 0)
    })
    .await;
    // The host goes on taking deliveries.
    let jobs = host.run_all("after", 2).await;
    let (event_log, _) = jobs.iter().find(|(j, _)| j.plugin == "event-log").unwrap();
    assert_eq!(event_log.state.as_str(), "succeeded");
    let health = reqwest::get(format!("http://127.0.0.1:{}/readyz", host.port)).await;
    assert_eq!(health.unwrap().status(), 200, "the host is not ready");
}

#[tokio::test]
async fn builds_at_once_each_have_their_own_disk() {
    if !disk_limits() {
        return;
    }
    let dir = open_dir();
    // Each writes until its workspace is full, then says how much it wrote.
    let script = "dd if=/dev/zero of=big bs=1M count=512 status=none; ended=$?; echo \"wrote $(($(stat -c %s big) >> 20)) MiB\"; sleep 1; exit $ended";
    let sizes = [16u64, 32, 48, 80];
    let plugins: String = sizes
        .iter()
        .map(|mib| runs(&format!("disk{mib}"), &format!("disk_mib = {mib}"), script))
        .collect();
    let host = Host::start(dir.path(), "", &plugins, None).await;
    let jobs = host.run_all("many", sizes.len()).await;
    for (job, log) in jobs {
        let mib: u64 = job.plugin.trim_start_matches("disk").parse().unwrap();
        assert!(
            log.contains(&format!("workspace is full: disk_mib = {mib}\n")),
            "{log}"
        );
        let wrote: u64 = log
            .lines()
            .find_map(|l| l.strip_prefix("wrote "))
            .and_then(|l| l.trim_end_matches(" MiB").parse().ok())
            .unwrap_or_else(|| panic!("{log}"));
        // Its own limit, less the filesystem's own (inode tables: about a tenth); more than
        // the next smaller disk holds, so no two builds share one.
        assert!(
            wrote <= mib && wrote * 4 >= mib * 3,
            "{mib} MiB disk: wrote {wrote} MiB"
        );
    }
}

#[tokio::test]
async fn a_job_waits_for_disk_space_saying_why() {
    if !disk_limits() {
        return;
    }
    let dir = open_dir();
    let plugins = format!(
        "{EVENT_LOG}{}",
        runs("waits", "disk_mib = 64", "echo started")
    );
    // A reserve larger than any disk: the job cannot start.
    let host = Host::start(dir.path(), "disk_reserve_mib = 1000000000", &plugins, None).await;
    let url = format!("http://127.0.0.1:{}/event_handler", host.port);
    let payload = example("pull_request", Some("opened"));
    assert_eq!(
        send_signed(&url, "pull_request", "wait", &payload).await,
        202
    );
    let logs = dir.path().join("data/logs");
    let said = || {
        std::fs::read_dir(&logs).is_ok_and(|files| {
            files.flatten().any(|file| {
                std::fs::read_to_string(file.path()).is_ok_and(|log| {
                    log.contains("switchyard: waiting for disk space: ")
                        && log.contains("this job's disk_mib = 64, and disk_reserve_mib = 1000000000 stays free")
                        && !log.contains("started")
                })
            })
        })
    };
    eventually("the job to say it waits for disk space", said).await;
    // Other jobs are not held up; the waiting one is still running.
    let journal = SqliteJournal::open(&host.store()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let jobs = journal.jobs_of("wait").await.unwrap();
        let state = |plugin: &str| {
            jobs.iter()
                .find(|j| j.plugin == plugin)
                .map(|j| j.state.as_str().to_owned())
        };
        if state("event-log").as_deref() == Some("succeeded") {
            assert_eq!(state("waits").as_deref(), Some("running"), "{jobs:?}");
            break;
        }
        assert!(Instant::now() < deadline, "{jobs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Pids of the processes whose parent is `parent` and whose command line starts `program`.
fn children_running(parent: u32, program: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // The parent is the second field after the command's closing parenthesis.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == Some(parent) && cmdline.starts_with(program.as_bytes())
        })
        .collect()
}

#[tokio::test]
async fn a_killed_host_leaves_no_mounts_or_namespaces_after_its_next_start() {
    if !isolation_tools() || !disk_limits() {
        return;
    }
    let dir = open_dir();
    let plugins = runs("long", "disk_mib = 32", "touch started; sleep 600");
    let mut host = Host::start(dir.path(), "", &plugins, None).await;
    let url = format!("http://127.0.0.1:{}/event_handler", host.port);
    let payload = example("pull_request", Some("opened"));
    assert_eq!(
        send_signed(&url, "pull_request", "killed", &payload).await,
        202
    );
    let workspaces = dir.path().join("data/workspaces");
    let host_pid = host.server.0.id();
    eventually(
        "the build to run in its mounted workspace with its network",
        || {
            mounts_under(&workspaces).len() == 1
                && workspaces.join("1/started").exists()
                && !children_running(host_pid, "slirp4netns").is_empty()
        },
    )
    .await;
    let stacks = children_running(host_pid, "slirp4netns");
    // The process's first (and only) host's table, as `nft list tables` prints it.
    let table = format!("table inet switchyard_{host_pid}_0\n");
    let tables = || {
        let out = Command::new("nft")
            .args(["list", "tables"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(tables().contains(&table), "{}", tables());
    host.server.0.kill().unwrap(); // SIGKILL: no chance to clean up
    host.server.0.wait().unwrap();
    // The build's network stack dies with the host; its namespace with its last process.
    eventually("the build's network stack to end with the host", || {
        stacks
            .iter()
            .all(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    })
    .await;
    let image = workspaces.join("1.img");
    // The job is run again by the next host: this time it ends at once.
    let plugins = runs("long", "disk_mib = 32", "echo again");
    let next = Host::start(dir.path(), "", &plugins, None).await;
    eventually("the next start to unmount and remove the workspace", || {
        mounts_under(&workspaces).is_empty() && !image.exists()
    })
    .await;
    assert!(
        !tables().contains(&table),
        "the killed host's rules are left:\n{}",
        tables()
    );
    // Its loop device went with the mount.
    let loops = Command::new("losetup").arg("-a").output().unwrap();
    let loops = String::from_utf8_lossy(&loops.stdout);
    assert!(!loops.contains(&image.display().to_string()), "{loops}");
    drop(next);
}
