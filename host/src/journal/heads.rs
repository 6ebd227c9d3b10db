//! The heads of pull requests from forks the journal keeps: each head the CI runner saw arrive
//! (a pull request `opened`, `reopened` or `synchronize`) and each a maintainer approved with
//! `/ok-to-test`, with the job that recorded it. Job ids follow the order deliveries arrived in,
//! so "the head last seen before this comment" is the seen head of the largest job id below the
//! comment's job.

use super::JobId;

/// A head to record: see [`super::Approvals::record_head`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHead {
    /// `owner/repo`, the base repository.
    pub repository: String,
    pub number: u64,
    pub sha: String,
    /// The job recording it.
    pub job: JobId,
    /// `None`: seen arriving; `Some(person)`: approved by them (`github:12345 (mona)`).
    pub approved_by: Option<String>,
}

/// A recorded head, as [`super::Approvals::heads`] reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadRecord {
    pub sha: String,
    pub job: JobId,
    pub approved_by: Option<String>,
    pub at: String,
}

/// The most records of one pull request read back: the newest.
pub const HEADS_READ: u32 = 200;
