//! The queue: deliveries stored with their jobs, attempts from start to end, cancellation and
//! supersession.

use std::sync::Arc;

use rusqlite::{OptionalExtension, params};

use switchyard_plugin_api::CancelReason;

use super::{ASK_TO_CANCEL, SqliteJournal, all_or_nothing, insert_delivery};
use crate::event::{Delivery, now_rfc3339};
use crate::journal::rows::pending_job;
use crate::journal::{
    Appended, AttemptEnd, EndedColumns, JobId, JobState, JournalError, LinkSalt, PageBuilder,
    PendingJob, Place, Queue, QueuedPage, Started, Supersede, cancel_reason, unix_millis,
};

#[async_trait::async_trait]
impl Queue for SqliteJournal {
    async fn append(
        &self,
        delivery: Arc<Delivery>,
        plugins: Vec<String>,
        rerun: bool,
    ) -> Result<Appended, JournalError> {
        let stored = Arc::clone(&delivery);
        let payload = lz4_flex::compress_prepend_size(&delivery.payload);
        let place = Place::of(&delivery.payload);
        let salts = LinkSalt::fresh(plugins.len())?;
        let jobs = self
            .write(move |conn| {
                all_or_nothing(conn, || {
                    insert_delivery(conn, &stored, &payload, &place, &plugins, &salts, rerun)
                })
            })
            .await?;
        Ok(match jobs {
            Some(jobs) => Appended::New(
                jobs.into_iter()
                    .map(|(id, plugin, link_salt)| PendingJob {
                        id,
                        plugin,
                        attempts: 0,
                        interruptions: 0,
                        delivery: Arc::clone(&delivery),
                        link_salt,
                    })
                    .collect(),
            ),
            None => Appended::Duplicate,
        })
    }

    async fn start_attempt(
        &self,
        job: JobId,
        attempts: u32,
    ) -> Result<Option<Started>, JournalError> {
        // Not waiting for the fsync is what lets jobs keep up with ingress: a worker would
        // otherwise idle for a whole group commit before every job.
        self.write_uncommitted(move |conn| {
            let started = conn
                .prepare_cached(
                    "UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = ?3
                     WHERE id = ?1 AND state = 'queued' AND attempts = ?2
                       AND (not_before IS NULL OR not_before <= ?4)
                     RETURNING attempts, cancel_reason",
                )?
                .query_row(
                    params![job.0, attempts, now_rfc3339(), unix_millis() as i64],
                    |row| {
                        Ok(Started {
                            number: row.get(0)?,
                            cancel: cancel_reason(row.get(1)?),
                        })
                    },
                )
                .optional()?;
            Ok(started)
        })
        .await
    }

    async fn end_attempt(
        &self,
        job: JobId,
        attempt: u32,
        end: AttemptEnd,
    ) -> Result<(), JournalError> {
        self.write(move |conn| {
            let EndedColumns {
                state,
                error,
                note,
                verdict,
                not_before,
                finished_at,
            } = end.columns();
            all_or_nothing(conn, || {
                let changed = conn
                    .prepare_cached(
                        "UPDATE jobs SET state = ?3, error = ?4, note = ?5, finished_at = ?6,
                                not_before = ?7, verdict = ?8
                         WHERE id = ?1 AND state = 'running' AND attempts = ?2",
                    )?
                    .execute(params![
                        job.0,
                        attempt,
                        state.as_str(),
                        error,
                        note,
                        finished_at,
                        not_before,
                        verdict
                    ])?;
                if changed == 0 {
                    return Err(JournalError::NotRunning { job, attempt });
                }
                // In the same transaction as the state: the attempt's end is one fact.
                conn.prepare_cached("DELETE FROM locks WHERE job = ?1")?
                    .execute(params![job.0])?;
                Ok(())
            })
        })
        .await
    }

    async fn fail_unstarted(
        &self,
        job: JobId,
        attempts: u32,
        error: String,
    ) -> Result<bool, JournalError> {
        self.write(move |conn| {
            all_or_nothing(conn, || {
                let changed = conn
                    .prepare_cached(
                        "UPDATE jobs SET state = 'failed', error = ?3, finished_at = ?4,
                                verdict = 'errored'
                         WHERE id = ?1 AND state = 'queued' AND attempts = ?2",
                    )?
                    .execute(params![job.0, attempts, error, now_rfc3339()])?;
                // Whatever an attempt of it held when the host died goes with it.
                if changed == 1 {
                    conn.prepare_cached("DELETE FROM locks WHERE job = ?1")?
                        .execute(params![job.0])?;
                }
                Ok(changed == 1)
            })
        })
        .await
    }

    async fn hand_back(&self, job: JobId, attempt: u32) -> Result<(), JournalError> {
        self.write(move |conn| {
            all_or_nothing(conn, || {
                let queued = conn
                    .prepare_cached(
                        "UPDATE jobs SET state = 'queued', interruptions = interruptions + 1
                         WHERE id = ?1 AND attempts = ?2 AND state = 'running'",
                    )?
                    .execute(params![job.0, attempt])?;
                if queued == 1 {
                    conn.prepare_cached("DELETE FROM locks WHERE job = ?1")?
                        .execute(params![job.0])?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn requeue_interrupted(&self) -> Result<usize, JournalError> {
        self.write(|conn| {
            all_or_nothing(conn, || {
                // The attempts that held these locks are dead: free them with their jobs.
                conn.prepare_cached(
                    "DELETE FROM locks WHERE job IN (SELECT id FROM jobs WHERE state = 'running')",
                )?
                .execute([])?;
                let changed = conn
                    .prepare_cached("UPDATE jobs SET state = 'queued' WHERE state = 'running'")?
                    .execute([])?;
                Ok(changed)
            })
        })
        .await
    }

    async fn queued(
        &self,
        from: JobId,
        limit: usize,
        max_bytes: usize,
    ) -> Result<QueuedPage, JournalError> {
        let page = self
            .read(move |conn| {
                let mut statement = conn.prepare_cached(
                    "SELECT j.id, j.plugin, j.attempts, d.id, d.event, d.action, d.repository,
                        d.received_at, d.payload, d.sender, j.interruptions, j.link_salt
                 FROM jobs j JOIN deliveries d ON d.seq = j.delivery
                 WHERE j.state = 'queued' AND j.id >= ?1
                   AND (j.not_before IS NULL OR j.not_before <= ?3)
                 ORDER BY j.id LIMIT ?2",
                )?;
                let mut page = PageBuilder::new(max_bytes);
                let mut rows =
                    statement.query(params![from.0, limit as i64, unix_millis() as i64])?;
                while let Some(row) = rows.next()? {
                    let job = pending_job(&mut page, row)?;
                    if !page.push(job) {
                        break;
                    }
                }
                Ok(page.finish(limit))
            })
            .await?;
        // What the read saw is committed but may not be synced yet (a delivery whose 202 is
        // still on its way): its jobs run only once it is durable.
        self.writer.synced().await?;
        Ok(page)
    }

    async fn unfinished_count(&self) -> Result<u64, JournalError> {
        self.read(|conn| {
            let count: i64 = conn
                .prepare_cached("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')")?
                .query_row([], |row| row.get(0))?;
            Ok(count as u64)
        })
        .await
    }

    async fn request_cancel(
        &self,
        job: JobId,
        reason: &CancelReason,
    ) -> Result<Option<JobState>, JournalError> {
        let reason = serde_json::to_string(reason).expect("a reason always serializes");
        self.write(move |conn| {
            let state: Option<String> = conn
                .prepare_cached("SELECT state FROM jobs WHERE id = ?1")?
                .query_row([job.0], |row| row.get(0))
                .optional()?;
            conn.prepare_cached(ASK_TO_CANCEL)?
                .execute(params![job.0, reason])?;
            Ok(state.as_deref().and_then(JobState::parse))
        })
        .await
    }

    async fn latest_of_line(&self, line: &str) -> Result<Option<(JobId, String)>, JournalError> {
        let line = line.to_owned();
        self.read(move |conn| {
            let latest = conn
                .prepare_cached("SELECT job, sha FROM superseding WHERE line = ?1")?
                .query_row([&line], |row| Ok((JobId(row.get(0)?), row.get(1)?)))
                .optional()?;
            Ok(latest)
        })
        .await
    }

    async fn supersede(
        &self,
        line: &str,
        job: JobId,
        sha: &str,
    ) -> Result<Supersede, JournalError> {
        let (line, sha) = (line.to_owned(), sha.to_owned());
        self.write(move |conn| {
            all_or_nothing(conn, || {
                let latest: Option<(i64, String)> = conn
                    .prepare_cached("SELECT job, sha FROM superseding WHERE line = ?1")?
                    .query_row([&line], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()?;
                match latest {
                    Some((newer, newer_sha)) if newer > job.0 => {
                        return Ok(Supersede::Stale { newer_sha });
                    }
                    // A retry of the latest job: still the latest.
                    Some((same, _)) if same == job.0 => {
                        return Ok(Supersede::Latest { replaced: None });
                    }
                    _ => {}
                }
                conn.prepare_cached(
                    "INSERT INTO superseding (line, job, sha) VALUES (?1, ?2, ?3)
                     ON CONFLICT (line) DO UPDATE SET job = excluded.job, sha = excluded.sha",
                )?
                .execute(params![line, job.0, sha])?;
                let Some((older, _)) = latest else {
                    return Ok(Supersede::Latest { replaced: None });
                };
                let reason = serde_json::to_string(&CancelReason::Superseded { sha })
                    .expect("a reason always serializes");
                let asked = conn
                    .prepare_cached(ASK_TO_CANCEL)?
                    .execute(params![older, reason])?;
                Ok(Supersede::Latest {
                    replaced: (asked == 1).then_some(JobId(older)),
                })
            })
        })
        .await
    }
}
