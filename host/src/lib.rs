//! Switchyard's host: receives GitHub webhooks, journals each delivery durably, and routes it to
//! handler plugins loaded from dynamic libraries. Modules follow the path of a delivery:
//! `ingress` -> `journal` -> `router` -> `workers` -> `plugins`, with `github`, `process` and
//! `job_log` as the services plugins call back into.

pub mod catch_up;
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
pub(crate) mod web;
pub mod wiring;
pub mod workers;

pub use wiring::{Switchyard, serve};

pub use config::Config;
