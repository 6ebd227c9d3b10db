//! What the journal reads back and records beside the queue: job and delivery records, the
//! dashboard's filters and counts, locks, the audit trail and GitHub posts.

use switchyard_plugin_api::Verdict;

use super::{JobId, JobState, LinkSalt};

/// A job as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: JobId,
    pub delivery: String,
    pub plugin: String,
    pub state: JobState,
    pub attempts: u32,
    pub error: Option<String>,
    pub note: Option<String>,
    pub link_salt: LinkSalt,
    /// What its work came to, recorded with its end; `None` while it has not ended, and for
    /// jobs that ended before verdicts were recorded.
    pub verdict: Option<Verdict>,
}

impl JobRecord {
    /// Whether the job counts as failed where people scan for red: its verdict is failed,
    /// errored or timed out, or (recorded before verdicts were) it failed to run. The SQL
    /// twin is `rows::FAILED_JOB`.
    pub fn is_failed(&self) -> bool {
        match self.verdict {
            Some(verdict) => verdict.is_bad(),
            None => self.state == JobState::Failed,
        }
    }
}

/// Whom a dashboard query answers: everything for a named token (or the operator's commands),
/// for a visitor of a `public-read` dashboard only what belongs to repositories whose newest
/// delivery said `"private": false`, and for a person signed in with GitHub those and the
/// private repositories GitHub says they can read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Visibility {
    #[default]
    All,
    Public,
    /// Public repositories and these private ones (`owner/name`, as the journal names them).
    Readable(std::sync::Arc<[String]>),
}

impl Visibility {
    /// Whether the query keeps only some repositories' rows (bound as its SQL parameter).
    pub(crate) fn public_only(&self) -> bool {
        !matches!(self, Self::All)
    }

    /// The one visibility filter, shared by both backends' dashboard queries: the repository
    /// `column` names is known, and the newest delivery of it said it is public, or it is one
    /// of the private repositories this visibility reads. A repository made private hides its
    /// older deliveries too; one never seen with `private` set stays hidden. (Only applied
    /// where [`Self::public_only`].)
    pub(crate) fn condition(&self, column: &str) -> String {
        let readable = match self {
            Self::Readable(names) => {
                // Names as GitHub spells them; anything else cannot be a repository's, and is
                // left out rather than quoted.
                let quoted: Vec<String> = names
                    .iter()
                    .filter(|name| {
                        name.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
                    })
                    .map(|name| format!("'{name}'"))
                    .collect();
                match quoted.is_empty() {
                    true => String::new(),
                    false => format!(" OR visible.name IN ({})", quoted.join(", ")),
                }
            }
            Self::All | Self::Public => String::new(),
        };
        format!(
            "EXISTS (SELECT 1 FROM repositories visible WHERE visible.name = {column} AND (visible.private = FALSE{readable}))"
        )
    }
}

/// Which deliveries `recent` lists.
#[derive(Debug, Clone, Default)]
pub struct RecentFilter {
    pub limit: usize,
    /// Only the delivery with this id.
    pub id: Option<String>,
    pub visibility: Visibility,
    /// Only this event.
    pub event: Option<String>,
    /// Only deliveries with at least one failed job.
    pub failed: bool,
    /// Only deliveries of this repository (`owner/name`, exactly).
    pub repository: Option<String>,
    /// Only deliveries stored before the one with this [`DeliveryRecord::seq`]: the next page.
    pub before: Option<i64>,
}

/// A delivery as `switchyard deliveries` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The journal's order of arrival: larger is later. A cursor for paging.
    pub seq: i64,
    pub id: String,
    pub sender: Option<String>,
    pub event: String,
    pub action: Option<String>,
    pub repository: Option<String>,
    pub received_at: String,
    pub jobs: Vec<JobRecord>,
}

/// Which jobs [`Reads::jobs`](super::Reads::jobs) lists; every `Some` narrows it.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub limit: usize,
    /// Only jobs of deliveries of repositories it shows.
    pub visibility: Visibility,
    /// Only this job.
    pub id: Option<JobId>,
    pub state: Option<JobState>,
    /// Only jobs with this verdict; see [`VerdictFilter`].
    pub verdict: Option<VerdictFilter>,
    pub plugin: Option<String>,
    /// Only jobs of deliveries of this repository (`owner/name`, exactly).
    pub repository: Option<String>,
    /// Only jobs with smaller ids: the next page.
    pub before: Option<JobId>,
    /// Only jobs of deliveries of this event.
    pub event: Option<String>,
    /// Only jobs of deliveries about this pull request (of `repository`, when given).
    pub pull_request: Option<i64>,
    /// Only jobs of deliveries about a commit whose sha starts with these lowercase hex digits.
    pub sha_prefix: Option<String>,
    /// Only jobs of deliveries about this branch (or ref), see [`Place`](super::Place).
    pub git_ref: Option<String>,
}

/// Which verdicts a job list keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictFilter {
    /// Failed, errored or timed out, or failed to run before verdicts were recorded: what
    /// "failed" means on the dashboard, in the counts and in `deliveries --failed`.
    Failed,
    /// Exactly this verdict.
    Is(Verdict),
}

impl VerdictFilter {
    /// Every filter, as a page's select lists them: `failed` (the red ones), then each verdict
    /// but `failed` itself (which the first includes).
    pub const ALL: [VerdictFilter; 6] = [
        Self::Failed,
        Self::Is(Verdict::Passed),
        Self::Is(Verdict::Errored),
        Self::Is(Verdict::TimedOut),
        Self::Is(Verdict::Cancelled),
        Self::Is(Verdict::Skipped),
    ];

    /// Its name in a URL (`verdict=failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Is(verdict) => verdict.as_str(),
        }
    }

    /// Reads [`Self::as_str`] back; `failed` is the red group.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|filter| filter.as_str() == name)
    }

    /// How a page's select labels it.
    pub fn label(self) -> String {
        match self {
            Self::Failed => "failed, errored or timed out".to_owned(),
            Self::Is(verdict) => verdict.to_string(),
        }
    }
}

/// A job with what the dashboard shows beside it: its delivery's facts and its times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub job: JobRecord,
    pub event: String,
    pub action: Option<String>,
    pub repository: Option<String>,
    pub sender: Option<String>,
    /// RFC 3339: queued (the delivery's arrival), first attempt started, ended.
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Where the delivery points: its pull request, commit and branch, when it said.
    pub place: super::Place,
}

/// Jobs per state, for the dashboard's header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub queued: u64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Jobs that count as failed (see [`JobRecord::is_failed`]): failed, errored or timed out.
    pub bad: u64,
    /// Of `bad`, those that ended at or after the `since` asked for.
    pub failed_since: u64,
}

impl JobCounts {
    /// Counts `count` jobs in `state` (as stored); a state this build does not know is left out.
    pub(crate) fn tally(&mut self, state: &str, count: u64) {
        match JobState::parse(state) {
            Some(JobState::Queued) => self.queued = count,
            Some(JobState::Running) => self.running = count,
            Some(JobState::Succeeded) => self.succeeded = count,
            Some(JobState::Failed) => self.failed = count,
            None => {}
        }
    }
}

/// A lock held, as the journal records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRecord {
    pub name: String,
    pub job: JobId,
    pub attempt: u32,
    pub acquired_at: String,
}

/// A dashboard action to record in the audit trail: who did what to which delivery, job or
/// lock, and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewAction {
    /// The signed-in name (the token's name).
    pub actor: String,
    /// `replay`, `cancel` or `release`.
    pub action: String,
    pub delivery: Option<String>,
    pub job: Option<JobId>,
    pub lock: Option<String>,
    /// What came of it, in words (the new jobs, "cancelled", why nothing was done).
    pub outcome: String,
}

/// An action of the audit trail, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRecord {
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    pub actor: String,
    pub action: String,
    pub delivery: Option<String>,
    pub job: Option<JobId>,
    pub lock: Option<String>,
    pub outcome: String,
}

/// Which actions [`AuditTrail::actions`](super::AuditTrail::actions) lists, newest first; every `Some` narrows it.
#[derive(Debug, Clone, Default)]
pub struct ActionFilter {
    pub limit: usize,
    /// Only actions on jobs (or, without a job, deliveries) of repositories it shows.
    pub visibility: Visibility,
    pub id: Option<i64>,
    pub delivery: Option<String>,
    pub job: Option<JobId>,
    pub action: Option<String>,
}

/// What a job posted to GitHub through the host: a commit status, a check run, a deployment or
/// a deployment status, for the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitHubPost {
    pub job: JobId,
    /// `status`, `check_run`, `deployment` or `deployment_status`.
    pub kind: String,
    /// `owner/name`.
    pub repository: String,
    /// The commit. A deployment status names only its deployment: the journal fills in the sha
    /// and environment of that deployment when a job posted it.
    pub sha: Option<String>,
    pub environment: Option<String>,
    /// GitHub's id of the deployment.
    pub deployment: Option<i64>,
    pub state: Option<String>,
    /// A status's context, a check run's name.
    pub context: Option<String>,
    /// GitHub's page of it, else the link it carries (target, details or log URL).
    pub url: Option<String>,
}

/// A [`GitHubPost`] as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostRecord {
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    pub post: GitHubPost,
}

/// Which posts [`PostLog::posts`](super::PostLog::posts) lists, newest first.
#[derive(Debug, Clone, Default)]
pub struct PostFilter {
    pub limit: usize,
    /// Only posts to repositories it shows.
    pub visibility: Visibility,
    /// Only this job's.
    pub job: Option<JobId>,
    /// Only deployments and deployment statuses.
    pub deployments: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_filters_read_back_their_names_and_failed_is_the_red_group() {
        // (name in a URL, filter)
        let cases = [
            ("failed", Some(VerdictFilter::Failed)),
            ("passed", Some(VerdictFilter::Is(Verdict::Passed))),
            ("timed_out", Some(VerdictFilter::Is(Verdict::TimedOut))),
            ("cancelled", Some(VerdictFilter::Is(Verdict::Cancelled))),
            ("timed out", None),
            ("", None),
        ];
        for (name, filter) in cases {
            assert_eq!(VerdictFilter::parse(name), filter, "{name:?}");
        }
        for filter in VerdictFilter::ALL {
            assert_eq!(VerdictFilter::parse(filter.as_str()), Some(filter));
        }
    }

    #[test]
    fn a_job_counts_as_failed_by_its_verdict_or_without_one_by_its_state() {
        let job = |state, verdict| JobRecord {
            id: JobId(1),
            delivery: "d".into(),
            plugin: "ci".into(),
            state,
            attempts: 1,
            error: None,
            note: None,
            link_salt: LinkSalt::default(),
            verdict,
        };
        // (state, verdict, counts as failed)
        let cases = [
            (JobState::Succeeded, Some(Verdict::Failed), true),
            (JobState::Succeeded, Some(Verdict::TimedOut), true),
            (JobState::Failed, Some(Verdict::Errored), true),
            (JobState::Failed, Some(Verdict::Cancelled), false),
            (JobState::Succeeded, Some(Verdict::Passed), false),
            (JobState::Failed, None, true),
            (JobState::Succeeded, None, false),
            (JobState::Running, None, false),
        ];
        for (state, verdict, failed) in cases {
            assert_eq!(
                job(state, verdict).is_failed(),
                failed,
                "{state:?} {verdict:?}"
            );
        }
    }
}
