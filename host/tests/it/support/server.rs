//! `switchyard serve` as a separate process: for kill -9, signals, and secrets that only the
//! environment may hold (a test cannot set its own process's environment safely).

use std::{
    path::Path,
    process::{Child, Command, Stdio},
};

use switchyard::journal::{JobRecord, SqliteJournal};

/// The server process, killed if the test panics before it is stopped.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `switchyard serve --config config` with `env` added; its stderr (the host's log)
/// goes to `log`, or nowhere.
pub fn spawn_server(config: &Path, env: &[(&str, &str)], log: Option<&Path>) -> Server {
    let stderr = match log {
        Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
        None => Stdio::null(),
    };
    let child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["serve", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    Server(child)
}

/// Waits until `delivery` has `count` ended jobs in the journal at `store`; panics after 30 s.
pub async fn ended_jobs(store: &Path, delivery: &str, count: usize) -> Vec<JobRecord> {
    let journal = SqliteJournal::open(store).unwrap();
    super::ended_jobs(&journal, delivery, count).await
}

/// `switchyard ARGS --config CONFIG`, with the test secret in `secret_variable` and the log at
/// `info`, ready to run or spawn.
pub fn command(config: &Path, args: &[&str], secret_variable: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    command
        .args(args)
        .arg("--config")
        .arg(config)
        .env(secret_variable, super::SECRET)
        .env("RUST_LOG", "info");
    command
}
