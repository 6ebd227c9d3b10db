//! `switchyard-check-output`: what a GitHub check run shows of a build, as plain functions any
//! plugin can use (the CI runner does):
//!
//! - [`annotations::parse`]: compiler and linter lines (`path:line:col: error: message`,
//!   rustc's `--> path:line:col`, eslint's unix format) as check-run annotations, for files of
//!   the checkout only;
//! - [`text::log_end`]: the end of a log as Markdown within GitHub's 65,535 characters;
//! - [`text::rfc3339`]: times as GitHub wants them.

pub mod annotations;
pub mod text;
