//! Rows read back as records: jobs and deliveries.

use bytes::Bytes;
use tokio_postgres::Row;

use crate::{
    event::{Delivery, DeliveryId, EventKind, PayloadFacts},
    journal::{JobId, JobRecord, JobState, JournalError, LinkSalt},
};

/// A job's record, as `job_record` reads it (`link_salt` by name, as `Reads::jobs` adds
/// columns after the others).
pub(super) const JOB_COLUMNS: &str =
    "SELECT j.id, d.id, j.plugin, j.state, j.attempts, j.error, j.note,
            j.link_salt
     FROM jobs j JOIN deliveries d ON d.seq = j.delivery";

pub(super) fn job_record(row: &Row) -> Result<JobRecord, JournalError> {
    let state: String = row.get(3);
    Ok(JobRecord {
        id: JobId(row.get(0)),
        delivery: row.get(1),
        plugin: row.get(2),
        state: JobState::parse(&state)
            .ok_or_else(|| JournalError::Postgres(format!("job has an unknown state {state:?}")))?,
        attempts: row.get::<_, i32>(4) as u32,
        error: row.get(5),
        note: row.get(6),
        link_salt: LinkSalt::from_stored(row.get("link_salt")),
    })
}

/// Rebuilds a delivery from columns `at..at + 7`: id, event, action, repository, received_at,
/// payload, sender.
pub(super) fn stored_delivery(row: &Row, at: usize) -> Result<Delivery, JournalError> {
    let id: String = row.get(at);
    let event: String = row.get(at + 1);
    let corrupt =
        |what: &str| JournalError::Postgres(format!("delivery {id} has an invalid {what}"));
    let payload: &[u8] = row.get(at + 5);
    Ok(Delivery {
        id: DeliveryId::parse(&id).ok_or_else(|| corrupt("id"))?,
        kind: EventKind::parse(&event).ok_or_else(|| corrupt("event"))?,
        facts: PayloadFacts {
            action: row.get(at + 2),
            repository: row.get(at + 3),
            sender: row.get(at + 6),
            private: None,
        },
        received_at: row.get(at + 4),
        headers: Vec::new(),
        payload: Bytes::from(
            lz4_flex::decompress_size_prepended(payload).map_err(|_| corrupt("payload"))?,
        ),
    })
}
