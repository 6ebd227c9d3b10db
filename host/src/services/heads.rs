//! The heads of pull requests plugins record (`Host::record_head`, `Host::heads`): the CI
//! runner's fork gate keeps there each head of a fork's pull request it saw arrive and each a
//! maintainer approved with `/ok-to-test`. An approval also goes to the audit trail, shown on
//! the dashboard's pages of the job that recorded it.

use std::sync::Arc;

use switchyard_plugin_api::{HeadNote, HostError, RecordedHead};

use crate::journal::{JobId, Journal, NewAction, NewHead};

/// Records and reads heads in the journal, on behalf of jobs.
pub struct Heads {
    journal: Arc<dyn Journal>,
}

impl Heads {
    pub fn new(journal: Arc<dyn Journal>) -> Self {
        Self { journal }
    }

    /// Records `note` for `job`; an approval in the audit trail too.
    pub async fn record(&self, job: JobId, note: HeadNote) -> Result<bool, HostError> {
        let approval = note.approved_by.clone().map(|by| NewAction {
            actor: by,
            action: format!(
                "/ok-to-test {} on {}#{}",
                note.sha, note.repository, note.number
            ),
            delivery: None,
            job: Some(job),
            lock: None,
            outcome: "approved".to_owned(),
        });
        let head = NewHead {
            repository: note.repository,
            number: note.number,
            sha: note.sha,
            job,
            approved_by: note.approved_by,
        };
        let first = self.journal.record_head(head).await.map_err(unavailable)?;
        if let Some(action) = approval {
            self.journal
                .record_action(action)
                .await
                .map_err(unavailable)?;
        }
        Ok(first)
    }

    /// The heads recorded for a pull request, oldest first.
    pub async fn read(
        &self,
        repository: &str,
        number: u64,
    ) -> Result<Vec<RecordedHead>, HostError> {
        let heads = self
            .journal
            .heads(repository, number)
            .await
            .map_err(unavailable)?;
        Ok(heads
            .into_iter()
            .map(|head| RecordedHead {
                sha: head.sha,
                job: head.job.0,
                approved_by: head.approved_by,
            })
            .collect())
    }
}

fn unavailable(error: crate::journal::JournalError) -> HostError {
    HostError::Internal(format!("the journal: {error}"))
}
