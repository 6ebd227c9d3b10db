//! Operating a running host: health, readiness and metrics endpoints, the signed admin calls
//! and the operator commands that send them, live reload of the config, and retention.

pub mod commands;
pub(crate) mod endpoints;
pub(crate) mod metrics;
pub mod reload;
pub mod retention;
pub mod signed_call;
