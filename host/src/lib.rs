//! Switchyard's host: receives GitHub webhooks, journals each delivery durably, and hands it to
//! the handler plugins loaded from dynamic libraries. The modules follow the path of a delivery:
//! `server` (connections) -> `ingress` (the webhook, and which plugins want it) -> `journal`
//! (the durable queue) -> `workers` (running the jobs) -> `plugins` (calling them); beside the path,
//! the services plugins call back into (`services`, `github`, `sandbox`, `job_log`), `web` (the
//! dashboard), `catch_up` (deliveries GitHub failed to deliver), `ops` (health, metrics, admin
//! calls, reload, retention), `config`, `send`, and `wiring`, which starts it all.

pub mod catch_up;
pub(crate) mod commands;
pub mod config;
pub mod event;
pub(crate) mod github;
pub(crate) mod http_error;
pub mod ingress;
pub mod job_log;
pub mod journal;
pub mod ops;
pub mod plugins;
pub mod sandbox;
pub mod send;
pub mod server;
pub(crate) mod services;
pub mod web;
pub mod wiring;
pub mod workers;

pub use wiring::{Switchyard, serve};

pub use config::Config;
