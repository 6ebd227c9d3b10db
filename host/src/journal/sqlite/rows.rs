//! Rows read back as records: jobs and deliveries.

use std::sync::Arc;

use bytes::Bytes;

use crate::{
    event::{Delivery, DeliveryId, EventKind, PayloadFacts},
    journal::{JobId, JobRecord, JobState, JournalError, LinkSalt},
};

/// A job's record (columns 0..=6 and 14, read by `job_record`), then its delivery's facts and
/// its times (7..=13, read by `Reads::jobs`).
pub(super) const JOB_COLUMNS: &str =
    "SELECT j.id, d.id, j.plugin, j.state, j.attempts, j.error, j.note,
            d.event, d.action, d.repository, d.sender, j.created_at, j.started_at, j.finished_at,
            j.link_salt
     FROM jobs j JOIN deliveries d ON d.seq = j.delivery";

pub(super) fn job_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
    let state: String = row.get(3)?;
    Ok(JobRecord {
        id: JobId(row.get(0)?),
        delivery: row.get(1)?,
        plugin: row.get(2)?,
        state: JobState::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, state.into())
        })?,
        attempts: row.get(4)?,
        error: row.get(5)?,
        note: row.get(6)?,
        link_salt: LinkSalt::from_stored(row.get(14)?),
    })
}

/// Rebuilds a delivery from its row (columns 3..=9 of the queued-jobs query).
pub(super) fn stored_delivery(id: &str, row: &rusqlite::Row<'_>) -> Result<Delivery, JournalError> {
    let event: String = row.get(4)?;
    let corrupt = |what: &str| {
        JournalError::Database(Arc::new(rusqlite::Error::InvalidColumnName(format!(
            "delivery {id} has an invalid {what}"
        ))))
    };
    Ok(Delivery {
        id: DeliveryId::parse(id).ok_or_else(|| corrupt("id"))?,
        kind: EventKind::parse(&event).ok_or_else(|| corrupt("event"))?,
        facts: PayloadFacts {
            action: row.get(5)?,
            repository: row.get(6)?,
            sender: row.get(9)?,
            private: None,
        },
        received_at: row.get(7)?,
        headers: Vec::new(),
        payload: Bytes::from(
            lz4_flex::decompress_size_prepended(
                row.get_ref(8)?.as_blob().map_err(rusqlite::Error::from)?,
            )
            .map_err(|_| corrupt("payload"))?,
        ),
    })
}
