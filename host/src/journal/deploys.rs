//! What the deployer keeps beyond a job (see docs/plugins.md's deployer section): each
//! environment's sticky lock (`/lock`, held until `/unlock`, with its owner, reason and time),
//! and each deployment this host created, with the person behind it. A deployment found here was
//! "created here"; one that is not was created by someone else through GitHub's API, and its
//! creator is the person behind it. Neither table is pruned by retention.

/// An environment's sticky lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickyLockRow {
    /// `owner/repo`.
    pub repository: String,
    pub environment: String,
    /// Who holds it, by kind and numeric id: `github:12345`.
    pub owner: String,
    /// Their login when they took it, for display.
    pub owner_login: String,
    pub reason: String,
    /// When it was taken (RFC 3339).
    pub at: String,
}

/// A deployment this host created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployRecordRow {
    pub repository: String,
    /// GitHub's deployment id.
    pub deployment_id: u64,
    pub environment: String,
    pub sha: String,
    /// Who asked for it (`github:12345`), or `auto` for a deploy on merge or on green.
    pub requested_by: String,
    pub requested_login: String,
    /// Asked with `--force`.
    pub forced: bool,
    /// A `/rollback` or a Redeploy.
    pub rollback: bool,
    pub at: String,
}

/// A deploy that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploySuccessRow {
    pub repository: String,
    pub environment: String,
    pub deployment_id: u64,
    pub sha: String,
    /// Who it was for (a login), as its deploy named them.
    pub deployed_for: String,
    pub pull_request: Option<u64>,
    pub at: String,
}

/// The most successes read back at once.
pub const SUCCESSES_READ: usize = 200;
