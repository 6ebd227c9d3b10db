//! A job's badge, the one way every page shows how a job stands: its verdict when it has one
//! (red for failed, errored and timed out, green for passed, grey for skipped and cancelled),
//! with the journal state beside it where the two say different things; its state while it has
//! none (queued, running, and jobs recorded before verdicts were).

use std::fmt;

use switchyard_plugin_api::Verdict;

use crate::journal::{JobRecord, JobState};

/// A job's badge, rendered as HTML by its `Display` (`{{ badge|safe }}` in a template): it
/// holds only fixed words, never text from a payload or a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Badge {
    pub state: JobState,
    pub verdict: Option<Verdict>,
}

/// The badge of a job in `state` with `verdict`.
pub fn badge(state: JobState, verdict: Option<Verdict>) -> Badge {
    Badge { state, verdict }
}

/// A recorded job's badge; templates call it as `{{ self::job_badge(job)|safe }}`.
pub fn job_badge(job: &JobRecord) -> Badge {
    badge(job.state, job.verdict)
}

impl Badge {
    /// What the badge says: the verdict's words, or the state while there is no verdict.
    pub fn words(&self) -> String {
        match self.verdict {
            Some(verdict) => verdict.to_string(),
            None => self.state.as_str().to_owned(),
        }
    }

    /// The CSS class that colours it.
    fn class(&self) -> &'static str {
        match self.verdict {
            Some(verdict) if verdict.is_bad() => "verdict-bad",
            Some(Verdict::Passed) => "verdict-passed",
            Some(_) => "verdict-neutral",
            None => match self.state {
                JobState::Queued => "state-queued",
                JobState::Running => "state-running",
                JobState::Succeeded => "state-succeeded",
                JobState::Failed => "state-failed",
            },
        }
    }

    /// The journal state, when it says something the verdict does not: a failed build that
    /// ran to its end (`succeeded`), a cancelled job (`failed`).
    pub fn state_beside(&self) -> Option<&'static str> {
        let verdict = self.verdict?;
        let agree = match self.state {
            JobState::Succeeded => matches!(verdict, Verdict::Passed | Verdict::Skipped),
            JobState::Failed => verdict == Verdict::Errored,
            JobState::Queued | JobState::Running => false,
        };
        (!agree).then(|| self.state.as_str())
    }
}

impl fmt::Display for Badge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = self.verdict.map_or("", Verdict::as_str);
        write!(
            f,
            r#"<span class="badge"><span class="state {class}" data-verdict="{verdict}">{words}</span>"#,
            class = self.class(),
            words = self.words(),
        )?;
        if let Some(state) = self.state_beside() {
            write!(
                f,
                r#" <span class="journal-state" title="the journal's state: succeeded = ran to its end, failed = did not">· journal: {state}</span>"#
            )?;
        }
        f.write_str("</span>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badges_show_the_verdict_and_the_state_where_they_differ() {
        // (state, verdict, words, class, state beside)
        let cases = [
            (JobState::Running, None, "running", "state-running", None),
            (
                JobState::Succeeded,
                None,
                "succeeded",
                "state-succeeded",
                None,
            ),
            (
                JobState::Succeeded,
                Some(Verdict::Passed),
                "passed",
                "verdict-passed",
                None,
            ),
            (
                JobState::Succeeded,
                Some(Verdict::Failed),
                "failed",
                "verdict-bad",
                Some("succeeded"),
            ),
            (
                JobState::Succeeded,
                Some(Verdict::TimedOut),
                "timed out",
                "verdict-bad",
                Some("succeeded"),
            ),
            (
                JobState::Failed,
                Some(Verdict::Errored),
                "errored",
                "verdict-bad",
                None,
            ),
            (
                JobState::Failed,
                Some(Verdict::TimedOut),
                "timed out",
                "verdict-bad",
                Some("failed"),
            ),
            (
                JobState::Failed,
                Some(Verdict::Cancelled),
                "cancelled",
                "verdict-neutral",
                Some("failed"),
            ),
            (
                JobState::Succeeded,
                Some(Verdict::Skipped),
                "skipped",
                "verdict-neutral",
                None,
            ),
        ];
        for (state, verdict, words, class, beside) in cases {
            let badge = badge(state, verdict);
            assert_eq!(
                (badge.words().as_str(), badge.class(), badge.state_beside()),
                (words, class, beside),
                "{state:?} {verdict:?}"
            );
            let html = badge.to_string();
            assert!(
                html.contains(&format!(r#"class="state {class}""#)),
                "{html}"
            );
            assert_eq!(html.contains("journal-state"), beside.is_some(), "{html}");
        }
    }
}
