//! A private PostgreSQL server for tests and benchmarks: one per process, in a temporary
//! folder, on 127.0.0.1 and a free port, with a fresh database per caller. It lives here, not
//! in the host, so that the host's binary does not carry a harness that runs `initdb`.
//!
//! The server binaries are the distribution's, under `/usr/lib/postgresql/<version>/bin` (not
//! on PATH). PostgreSQL refuses to run as root, so as root it runs as the `postgres` user. A
//! watchdog process stops the server and removes its folder once this process is gone, however
//! it ended. `pg_stat_statements` is loaded when installed, so a test can count statements. When no server is installed, [`TestPostgres::get`] returns `None` (the tests say
//! they are skipped), except under `CI=true`, where it panics.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

pub struct TestPostgres {
    port: u16,
    bin: PathBuf,
    data: PathBuf,
    as_postgres: bool,
    next: AtomicUsize,
}

static SERVER: OnceLock<Option<TestPostgres>> = OnceLock::new();

impl TestPostgres {
    /// The process's server, started on first use; `None` when PostgreSQL is not installed
    /// (a panic under `CI=true`).
    pub fn get() -> Option<&'static TestPostgres> {
        SERVER
            .get_or_init(|| match find_bin() {
                Some(bin) => Some(start(bin, Durability::Off)),
                None if std::env::var("CI").is_ok_and(|ci| ci == "true") => panic!(
                    "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb), and CI=true: install the postgresql package"
                ),
                None => {
                    eprintln!(
                        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): skipping the PostgreSQL tests"
                    );
                    None
                }
            })
            .as_ref()
    }

    /// A server of the caller's own, stopped when dropped: for a test that stops and starts it.
    pub fn dedicated() -> Option<TestPostgres> {
        Self::get()?;
        Some(start(find_bin()?, Durability::Off))
    }

    /// A server of the caller's own with PostgreSQL's own durability (`fsync` and
    /// `full_page_writes` on, as an operator runs it), for benchmarks that count WAL flushes;
    /// the tests' servers skip them for speed.
    pub fn durable() -> Option<TestPostgres> {
        Self::get()?;
        Some(start(find_bin()?, Durability::On))
    }

    /// A new, empty database; returns its URL (loopback, user `postgres`, no password).
    pub fn database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        let status = self
            .command("createdb")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg(&name)
            .status()
            .expect("createdb runs");
        assert!(status.success(), "createdb {name} failed");
        self.url(&name)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (fast: connections are cut), as a database going away.
    pub fn stop(&self) {
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .status()
            .expect("pg_ctl runs");
        assert!(status.success(), "pg_ctl stop failed");
    }

    /// Starts it again after [`Self::stop`].
    pub fn start(&self) {
        pg_ctl_start(&self.bin, &self.data, self.port, self.as_postgres);
    }

    fn command(&self, tool: &str) -> Command {
        command(&self.bin, tool, self.as_postgres)
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn command(bin: &Path, tool: &str, as_postgres: bool) -> Command {
    let tool = bin.join(tool);
    if as_postgres {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(tool);
        command
    } else {
        Command::new(tool)
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb` in it.
fn find_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

/// Whether a server syncs its WAL: tests do not need it, benchmarks of durability do.
#[derive(Clone, Copy, PartialEq)]
enum Durability {
    Off,
    On,
}

fn start(bin: PathBuf, durability: Durability) -> TestPostgres {
    let as_postgres = nix::unistd::geteuid().is_root();
    let root = tempfile::Builder::new()
        .prefix("switchyard-pg-")
        .tempdir()
        .expect("a temporary folder")
        .keep();
    let data = root.join("data");
    let sockets = root.join("sockets");
    std::fs::create_dir_all(&sockets).unwrap();
    if as_postgres {
        let status = Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(&root)
            .status()
            .expect("chown runs");
        assert!(
            status.success(),
            "cannot hand {} to postgres",
            root.display()
        );
    }
    let status = command(&bin, "initdb", as_postgres)
        .arg("-D")
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        .stdout(Stdio::null())
        .status()
        .expect("initdb runs");
    assert!(status.success(), "initdb failed");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let mut settings = format!(
        "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
         max_connections = 300\n",
        sockets.display()
    );
    if durability == Durability::Off {
        settings.push_str("fsync = off\nfull_page_writes = off\n");
    }
    // Statements counted per database (`CREATE EXTENSION pg_stat_statements`), for the tests
    // that assert how many statements something costs.
    if bin.join("../lib/pg_stat_statements.so").is_file() {
        settings.push_str("shared_preload_libraries = 'pg_stat_statements'\n");
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .and_then(|mut file| std::io::Write::write_all(&mut file, settings.as_bytes()))
        .expect("postgresql.conf is writable");
    // Stops the server and removes its folder once this process is gone, however it ended.
    let watchdog = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         {stop} -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{root}'",
        pid = std::process::id(),
        stop = if as_postgres {
            format!("runuser -u postgres -- '{}'", bin.join("pg_ctl").display())
        } else {
            format!("'{}'", bin.join("pg_ctl").display())
        },
        data = data.display(),
        root = root.display(),
    );
    // `setsid -f` forks the watchdog off in a session of its own and returns at once.
    Command::new("setsid")
        .args(["-f", "sh", "-c", &watchdog])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("the watchdog starts");
    pg_ctl_start(&bin, &data, port, as_postgres);
    TestPostgres {
        port,
        bin,
        data,
        as_postgres,
        next: AtomicUsize::new(0),
    }
}

fn pg_ctl_start(bin: &Path, data: &Path, port: u16, as_postgres: bool) {
    let log = data.with_file_name("server.log");
    let status = command(bin, "pg_ctl", as_postgres)
        .arg("-D")
        .arg(data)
        .arg("-l")
        .arg(&log)
        .args(["-w", "start"])
        .stdout(Stdio::null())
        .status()
        .expect("pg_ctl runs");
    assert!(
        status.success(),
        "PostgreSQL did not start on port {port}: see {}",
        log.display()
    );
}
