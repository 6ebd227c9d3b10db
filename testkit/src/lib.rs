//! Test a Switchyard plugin the way it will run: loaded by the real `switchyard` host, fed
//! signed GitHub deliveries, calling a fake GitHub that refuses what GitHub would refuse, and
//! checking out commits from a local git repository. Everything listens on 127.0.0.1 only.
//!
//! - [`FakeGitHub`]: the REST API on a loopback port; it validates request bodies against
//!   GitHub's OpenAPI schemas (built into this crate), answers 422 like GitHub, and records
//!   every call ([`FakeGitHub::deployment_statuses`], [`FakeGitHub::commit_statuses`]).
//! - [`Origin`]: a bare git repository with commits, as a payload's `clone_url`.
//! - [`TestHost`]: `switchyard serve` with your plugin, a temporary store and a random secret;
//!   [`TestHost::send`] a delivery, [`TestHost::wait`] for its jobs, stopped on drop.
//! - [`TestPostgres`]: a private PostgreSQL server (the distribution's binaries) with a fresh
//!   database per caller, for tests of the PostgreSQL journal.
//! - [`NewComment`]: the payload of a new comment, to try a plugin's comment commands.
//! - [`cdylib_path`] builds your plugin's library; [`switchyard_bin`] finds the host binary.
//!
//! ```no_run
//! use serde_json::json;
//! use switchyard_testkit::{FakeGitHub, JobState, Origin, TestHost, cdylib_path};
//!
//! # async fn example() {
//! let github = FakeGitHub::start().await;
//! let origin = Origin::new("octo/app");
//! let sha = origin.commit("refs/heads/main", &[("deploy.sh", "echo deployed")]);
//! let host = TestHost::builder(cdylib_path("my-deploy-plugin"))
//!     .settings(r#"command = "sh deploy.sh""#)
//!     .binds(origin.binds())
//!     .github(&github)
//!     .start()
//!     .await;
//! let payload = json!({
//!     "action": "created",
//!     "deployment": {"id": 1, "sha": sha, "ref": "main", "environment": "production",
//!                    "task": "deploy", "payload": {}},
//!     "repository": {"full_name": "octo/app", "clone_url": origin.clone_url()},
//! });
//! let delivery = host.send("deployment", &payload).await;
//! let jobs = host.wait(&delivery).await;
//! assert_eq!(jobs[0].state, JobState::Succeeded, "{}", jobs[0].log);
//! let states: Vec<_> = github
//!     .deployment_statuses("octo/app", 1)
//!     .iter()
//!     .map(|s| s["state"].clone())
//!     .collect();
//! assert_eq!(states, ["in_progress", "success"]);
//! assert!(github.violations().is_empty());
//! # }
//! ```
//!
//! The host runs every command a plugin starts in a bubblewrap sandbox; where bubblewrap is
//! missing, add `.config("[sandbox]\nmode = \"none\"")` (unsandboxed). See
//! `docs/plugin-testkit.md` in the Switchyard repository.

pub mod app;
mod cargo;
mod comments;
mod fake_github;
mod git;
mod host;
mod postgres;

pub use cargo::{SWITCHYARD_BIN, cdylib_path, switchyard_bin};
pub use comments::NewComment;
pub use fake_github::{
    BadAnswer, CheckRun, DeliveryAttempt, FakeGitHub, Installation, MintedToken, NOT_ACCESSIBLE,
    Recorded, schema_errors,
};
pub use git::Origin;
pub use host::{Delivery, HostBuilder, Job, JobState, TestHost, signature, unmount_leftovers};
pub use postgres::TestPostgres;
