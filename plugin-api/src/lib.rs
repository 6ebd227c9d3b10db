//! Write [Switchyard](https://github.com/switchyard-ci/switchyard) plugins in ordinary async Rust.
//!
//! A plugin is a `cdylib` crate that implements [`Plugin`] and exports it with
//! [`declare_plugin!`]. The host loads it from the path in `config.toml`, hands it the events it
//! subscribes to, and offers it services through [`Host`]: GitHub REST calls with the host's
//! credentials and retries, the job's log, checking out a commit, named locks, and running
//! commands with a timeout. Each plugin runs on its own tokio runtime, so tokio, reqwest or any
//! other crate work inside it as usual.
//!
//! ```
//! use switchyard_plugin_api::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Settings {
//!     /// Context of the commit status.
//!     #[serde(default = "default_context")]
//!     context: String,
//! }
//!
//! fn default_context() -> String {
//!     "hello/switchyard".to_owned()
//! }
//!
//! struct Hello {
//!     settings: Settings,
//! }
//!
//! #[async_trait]
//! impl Plugin for Hello {
//!     fn subscriptions(&self) -> Vec<Subscription> {
//!         vec!["pull_request.opened".parse().unwrap()]
//!     }
//!
//!     // As a GitHub App, the host gives each job a token that can do this and no more.
//!     fn permissions(&self) -> Option<Permissions> {
//!         Some(Permissions::none().write("statuses"))
//!     }
//!
//!     async fn handle(&self, event: &Event, host: &Host) -> Result<Outcome, PluginError> {
//!         let number = &event.payload()["number"];
//!         host.log(format!("PR #{number} opened")).await;
//!         let (Some(repo), Some(sha)) = (
//!             event.repository.as_deref(),
//!             event.payload()["pull_request"]["head"]["sha"].as_str(),
//!         ) else {
//!             return Ok(Outcome::Skipped("no repository or head sha".into()));
//!         };
//!         let status = CommitStatus::new(StatusState::Success, &self.settings.context, "Hello!")
//!             .with_target_url(&event.job.log_url);
//!         host.create_status(repo, sha, &status).await?;
//!         Ok(Outcome::Done)
//!     }
//! }
//!
//! declare_plugin!(Hello, |config: &PluginConfig| Ok(Hello { settings: config.settings()? }));
//! ```
//!
//! Build it with `crate-type = ["cdylib"]` and the default `panic = "unwind"` (the host refuses
//! plugins that abort on panic, as it could not contain their panics), then list the library in
//! `config.toml`. A panic in `handle` fails that job with the panic's message; the host goes on.
//!
//! Each job's handler runs on a thread of its own from the plugin runtime's blocking pool, so a
//! handler that blocks (blocking I/O, `std::thread::sleep`, a busy loop) holds up only itself:
//! the plugin's other jobs go on. Don't rely on it: a blocked handler cannot be cancelled, and
//! its thread is lost until it returns. Use async I/O, `tokio::time::sleep`, and
//! `tokio::task::spawn_blocking` for blocking work.
//!
//! A handler's [`Outcome`] gives the job its [`Verdict`], what the dashboard, the CLI and the
//! metrics show: `Outcome::Done` is passed, `Outcome::Skipped` skipped, and
//! `Outcome::failed(summary)` (or `Outcome::Finished`) says that the work ran and failed, as a
//! build that exits non-zero. The host names the rest: an error is errored, its timeout timed
//! out, a person's cancel cancelled.
//!
//! When the host cancels a job (its timeout, a shutdown, a person), [`Host::cancelled`]
//! completes with the [`CancelReason`]; the handler then has `[workers] cancel_grace_secs` to
//! post a final status and return before its commands are killed and its future dropped.

// The plugin example in docs/writing-plugins.md compiles as a doctest, so it cannot drift from
// the API.
#[cfg(doctest)]
#[doc = include_str!("../../docs/writing-plugins.md")]
struct WritingPluginsExamples;

mod cancel;
mod command;
mod deploys;
mod event;
mod github;
mod host;
pub mod payload;
mod permissions;
mod plugin;
mod source;

#[doc(hidden)]
pub mod abi;
#[doc(hidden)]
pub mod wire;

pub use async_trait::async_trait;
pub use cancel::CancelReason;
pub use command::{
    Applies, Command, CommandSpec, MAX_COMMAND_NAME, Person, PullRequestFacts, Role,
    is_command_name,
};
pub use deploys::{AUTO, DeployRecord, DeployRequest, DeploySuccess, PersonRef, StickyLock};
pub use event::{Event, JobInfo};
pub use github::{
    CommitStatus, DeploymentState, GitHubResponse, MAX_DESCRIPTION_CHARS, NewDeployment,
    NewDeploymentStatus, StatusState, fit_chars, fit_description,
};
pub use host::{
    CancelAnswer, CancelJobRequest, CheckoutRequest, CommentReaction, HeadNote, HeadsRequest, Host,
    HostError, HttpAnswer, HttpPost, LineLatest, LineRequest, LockAnswer, LockRequest,
    RecordedHead, RunOutput, RunRequest, SupersedeRequest, Superseding, ThreadReply, Workspace,
};
pub use permissions::{Access, Permissions};
pub use plugin::{
    GitHubApp, Outcome, Plugin, PluginConfig, PluginError, Subscription, SubscriptionError, Verdict,
};
pub use source::{Source, expand_clone_url, template_url};

/// Everything a plugin needs, in one `use`.
pub mod prelude {
    pub use crate::{
        Applies, CancelAnswer, CancelReason, Command, CommandSpec, CommitStatus, DeploymentState,
        Event, Host, HostError, NewDeployment, NewDeploymentStatus, Outcome, Permissions, Plugin,
        PluginConfig, PluginError, Role, RunOutput, RunRequest, Source, StatusState, Subscription,
        Superseding, Verdict, async_trait, declare_plugin, fit_description,
        payload::{self, short_sha},
    };
}

/// Exports a [`Plugin`] from a `cdylib` so the host can load it.
///
/// The first argument is the plugin type; the second builds it from its [`PluginConfig`]
/// (an error here is reported by `switchyard check` and at startup).
#[macro_export]
macro_rules! declare_plugin {
    ($plugin:ty, $constructor:expr) => {
        #[doc(hidden)]
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub static SWITCHYARD_PLUGIN_HEADER: $crate::abi::PluginHeader =
            $crate::abi::PluginHeader::new(
                env!("CARGO_PKG_NAME"),
                env!("CARGO_PKG_VERSION"),
                cfg!(panic = "unwind"),
            );

        #[doc(hidden)]
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        pub static SWITCHYARD_PLUGIN_VTABLE: $crate::abi::PluginVTable = {
            #[allow(unsafe_code)]
            unsafe extern "C" fn create(
                config: $crate::abi::FfiSlice,
            ) -> $crate::abi::CreateResult {
                let construct: fn(&$crate::PluginConfig) -> Result<$plugin, $crate::PluginError> =
                    $constructor;
                // SAFETY: the host keeps `config` alive for the duration of this call.
                unsafe { $crate::abi::create::<$plugin>(config, construct) }
            }
            $crate::abi::PluginVTable::new::<$plugin>(create)
        };
    };
}
