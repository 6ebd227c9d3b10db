//! Comment commands (`/retest`, `/deploy staging`), the host's service for every plugin: which
//! commands the loaded plugins take (`declared`), reading them out of a comment (`parse`), and
//! the commenter's permission, read from GitHub's answer (`trust`). A comment reaches a plugin
//! only through here: the host, never the plugin, decides whether its author may give it.
//!
//! It sits on a comment's path between ingress and the workers, and imports neither.

mod declared;
pub(crate) mod parse;
pub(crate) mod trust;

pub(crate) use declared::effective;
