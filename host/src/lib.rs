//! Switchyard's host: receives GitHub webhooks, journals each delivery durably, and routes it to
//! handler plugins loaded from dynamic libraries. Modules follow the path of a delivery:
//! `ingress` -> `journal` -> `router` -> `workers` -> `plugins`, with `github`, `process` and
//! `job_log` as the services plugins call back into.

pub mod admin;
pub mod admin_call;
pub mod app;
pub mod catch_up;
pub mod checkout;
pub mod config;
pub mod event;
pub mod github;
pub mod http_error;
pub mod ingress;
pub mod job_log;
pub mod journal;
pub mod locks;
pub mod metrics;
pub mod ops;
pub mod outbound;
pub mod plugins;
pub mod process;
pub mod reload;
pub mod retention;
pub mod router;
pub mod sandbox;
pub mod send;
pub mod server;
pub mod web;
pub mod workers;

pub use app::{Switchyard, serve};
pub use config::Config;
