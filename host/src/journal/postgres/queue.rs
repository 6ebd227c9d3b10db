//! The queue: deliveries stored with their jobs, attempts from start to end, cancellation and
//! supersession.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use switchyard_plugin_api::CancelReason;

use super::group::{Claim, ToEnd, ToStart, ToStore};
use super::{ASK_TO_CANCEL, CANCEL_CHANNEL, CHANNEL, Lease, PostgresJournal, rescue};

/// How often a start whose row was locked for a moment asks again, and how long it waits
/// between: a cancel or a supersede holds a row for a statement or two.
const BUSY_RETRIES: u32 = 40;
const BUSY_PAUSE: Duration = Duration::from_millis(25);
use crate::event::{Delivery, now_rfc3339};
use crate::journal::rows::pending_job;
use crate::journal::{
    Appended, AttemptEnd, JobId, JobState, JournalError, LinkSalt, LostLease, PageBuilder,
    PendingJob, Place, Queue, QueuedPage, Started, Supersede, unix_millis,
};

#[async_trait::async_trait]
impl Queue for PostgresJournal {
    async fn append(
        &self,
        delivery: Arc<Delivery>,
        plugins: Vec<String>,
        rerun: bool,
    ) -> Result<Appended, JournalError> {
        if rerun {
            // A replay or a redelivery run again: rare, and it reads the stored row.
            return self.append_rerun(delivery, plugins).await;
        }
        self.stores.call(ToStore { delivery, plugins }).await
    }

    async fn start_attempt(
        &self,
        job: JobId,
        attempts: u32,
    ) -> Result<Option<Started>, JournalError> {
        // Committed before it answers: the claim is one statement, shared with the other
        // starts of the moment.
        let sent = Instant::now();
        let mut busy = 0;
        let started = loop {
            match self.starts.call(ToStart { job, attempts }).await? {
                Claim::Started(started) => break started,
                Claim::Gone => return Ok(None),
                // Its row was locked for a moment (a cancel, a supersede): ask again rather
                // than leave the job to the next poll.
                Claim::Busy if busy < BUSY_RETRIES => {
                    busy += 1;
                    tokio::time::sleep(BUSY_PAUSE).await;
                }
                Claim::Busy => return Ok(None),
            }
        };
        let lease = Lease {
            attempt: started.number,
            renewed: sent,
            // Told as the attempt starts (`Started::cancel`).
            cancel_told: started.cancel.is_some(),
        };
        self.shared.held.lock().unwrap().insert(job, lease);
        Ok(Some(started))
    }

    async fn end_attempt(
        &self,
        job: JobId,
        attempt: u32,
        end: AttemptEnd,
    ) -> Result<(), JournalError> {
        let columns = end.columns();
        let ended = self
            .ends
            .call(ToEnd {
                job,
                attempt,
                columns,
            })
            .await;
        // Ended, or fenced (the lease was lost and the job queued again meanwhile): either
        // way this host holds it no more.
        if matches!(ended, Ok(()) | Err(JournalError::NotRunning { .. })) {
            self.forget(job);
        }
        ended
    }

    async fn fail_unstarted(
        &self,
        job: JobId,
        attempts: u32,
        error: String,
    ) -> Result<bool, JournalError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let changed = tx
            .execute(
                "UPDATE jobs SET state = 'failed', error = $3, finished_at = $4,
                        verdict = 'errored'
                 WHERE id = $1 AND state = 'queued' AND attempts = $2",
                &[&job.0, &(attempts as i32), &error, &now_rfc3339()],
            )
            .await?;
        if changed == 1 {
            tx.execute("DELETE FROM locks WHERE job = $1", &[&job.0])
                .await?;
        }
        tx.commit().await?;
        Ok(changed == 1)
    }

    async fn hand_back(&self, job: JobId, attempt: u32) -> Result<(), JournalError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let queued = tx
            .execute(
                "UPDATE jobs SET state = 'queued', lease_until = NULL,
                        interruptions = interruptions + 1
                 WHERE id = $1 AND attempts = $2 AND state = 'running'",
                &[&job.0, &(attempt as i32)],
            )
            .await?;
        if queued == 1 {
            tx.execute("DELETE FROM locks WHERE job = $1", &[&job.0])
                .await?;
            // Delivered to the other hosts only if this commits.
            tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL]).await?;
        }
        tx.commit().await?;
        self.forget(job);
        Ok(())
    }

    async fn requeue_interrupted(&self) -> Result<usize, JournalError> {
        // Other hosts' jobs run on: only the attempts whose leases expired are dead.
        Ok(rescue(&self.pool).await? as usize)
    }

    async fn queued(
        &self,
        from: JobId,
        limit: usize,
        max_bytes: usize,
    ) -> Result<QueuedPage, JournalError> {
        let rows = self
            .query(
                "SELECT j.id, j.plugin, j.attempts, d.id, d.event, d.action, d.repository,
                        d.received_at, d.payload, d.sender, j.interruptions, j.link_salt
                 FROM jobs j JOIN deliveries d ON d.seq = j.delivery
                 WHERE j.state = 'queued' AND j.id >= $1
                   AND (j.not_before IS NULL OR j.not_before <= $3)
                 ORDER BY j.id LIMIT $2",
                &[&from.0, &(limit as i64), &(unix_millis() as i64)],
            )
            .await?;
        let mut page = PageBuilder::new(max_bytes);
        for row in &rows {
            let job = pending_job(&mut page, row)?;
            if !page.push(job) {
                break;
            }
        }
        Ok(page.finish(limit))
    }

    async fn unfinished_count(&self) -> Result<u64, JournalError> {
        let rows = self
            .query(
                "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')",
                &[],
            )
            .await?;
        Ok(rows[0].get::<_, i64>(0) as u64)
    }

    async fn request_cancel(
        &self,
        job: JobId,
        reason: &CancelReason,
    ) -> Result<Option<JobState>, JournalError> {
        let reason = serde_json::to_string(reason).expect("a reason always serializes");
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let state = tx
            .query_opt("SELECT state FROM jobs WHERE id = $1", &[&job.0])
            .await?
            .and_then(|row| JobState::parse(row.get(0)));
        tx.query(ASK_TO_CANCEL, &[&job.0, &reason, &CANCEL_CHANNEL])
            .await?;
        tx.commit().await?;
        Ok(state)
    }

    async fn cancel_requested(&self) -> Vec<(JobId, CancelReason)> {
        loop {
            let found = std::mem::take(&mut *self.shared.cancels.lock().unwrap());
            if !found.is_empty() {
                return found;
            }
            self.shared.cancels_found.notified().await;
        }
    }

    async fn leases_lost(&self) -> Vec<LostLease> {
        loop {
            let found = std::mem::take(&mut *self.shared.lost.lock().unwrap());
            if !found.is_empty() {
                return found;
            }
            self.shared.lost_found.notified().await;
        }
    }

    async fn latest_of_line(&self, line: &str) -> Result<Option<(JobId, String)>, JournalError> {
        let client = self.client().await?;
        let latest = client
            .query_opt("SELECT job, sha FROM superseding WHERE line = $1", &[&line])
            .await?;
        Ok(latest.map(|row| (JobId(row.get(0)), row.get(1))))
    }

    async fn supersede(
        &self,
        line: &str,
        job: JobId,
        sha: &str,
    ) -> Result<Supersede, JournalError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let inserted = tx
            .query_opt(
                "INSERT INTO superseding (line, job, sha) VALUES ($1, $2, $3)
                 ON CONFLICT (line) DO NOTHING RETURNING job",
                &[&line, &job.0, &sha],
            )
            .await?;
        if inserted.is_some() {
            tx.commit().await?;
            return Ok(Supersede::Latest { replaced: None });
        }
        let latest = tx
            .query_one(
                "SELECT job, sha FROM superseding WHERE line = $1 FOR UPDATE",
                &[&line],
            )
            .await?;
        let (latest, latest_sha): (i64, String) = (latest.get(0), latest.get(1));
        if latest > job.0 {
            return Ok(Supersede::Stale {
                newer_sha: latest_sha,
            });
        }
        if latest == job.0 {
            // A retry of the latest job: still the latest.
            return Ok(Supersede::Latest { replaced: None });
        }
        tx.execute(
            "UPDATE superseding SET job = $2, sha = $3 WHERE line = $1",
            &[&line, &job.0, &sha],
        )
        .await?;
        let reason = CancelReason::Superseded {
            sha: sha.to_owned(),
        };
        let reason = serde_json::to_string(&reason).expect("a reason always serializes");
        let asked: i64 = tx
            .query_one(ASK_TO_CANCEL, &[&latest, &reason, &CANCEL_CHANNEL])
            .await?
            .get(0);
        tx.commit().await?;
        Ok(Supersede::Latest {
            replaced: (asked == 1).then_some(JobId(latest)),
        })
    }

    async fn queue_changed(&self) -> JobId {
        loop {
            if let Some(from) = self.shared.changed_from.lock().unwrap().take() {
                return JobId(from);
            }
            self.shared.changed.notified().await;
        }
    }

    fn sweep_interval(&self) -> Duration {
        self.poll
    }
}

impl PostgresJournal {
    /// Stores a delivery run again (`rerun`): new jobs whether or not it was stored before.
    async fn append_rerun(
        &self,
        delivery: Arc<Delivery>,
        plugins: Vec<String>,
    ) -> Result<Appended, JournalError> {
        let payload = lz4_flex::compress_prepend_size(&delivery.payload);
        let place = Place::of(&delivery.payload);
        let headers = (!delivery.headers.is_empty())
            .then(|| serde_json::to_string(&delivery.headers).unwrap_or_default());
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO deliveries (id, event, action, repository, received_at, payload, sender, headers,
                                         pull_request, head_sha, git_ref)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (id) DO NOTHING RETURNING seq",
            )
            .await?;
        // A host storing the same id at once holds the row: this waits for its commit, then
        // finds it there.
        let inserted = tx
            .query_opt(
                &insert,
                &[
                    &delivery.id.as_str(),
                    &delivery.kind.as_str(),
                    &delivery.facts.action,
                    &delivery.facts.repository,
                    &delivery.received_at,
                    &payload,
                    &delivery.facts.sender,
                    &headers,
                    &place.pull_request,
                    &place.head_sha,
                    &place.git_ref,
                ],
            )
            .await?;
        let inserted_new = inserted.is_some();
        let seq: i64 = match inserted {
            Some(row) => row.get(0),
            None => tx
                .query_one(
                    "SELECT seq FROM deliveries WHERE id = $1",
                    &[&delivery.id.as_str()],
                )
                .await?
                .get(0),
        };
        if let (Some(repository), Some(private), true) = (
            &delivery.facts.repository,
            delivery.facts.private,
            inserted_new,
        ) {
            // Hosts storing deliveries of one repository at once: the newest (largest seq)
            // says, whichever commits last.
            tx.execute(
                "INSERT INTO repositories (name, private, seq) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET private = excluded.private, seq = excluded.seq
                 WHERE excluded.seq > repositories.seq",
                &[repository, &private, &seq],
            )
            .await?;
        }
        let mut jobs = Vec::with_capacity(plugins.len());
        if !plugins.is_empty() {
            let salts: Vec<Vec<u8>> = LinkSalt::fresh(plugins.len())?
                .iter()
                .filter_map(|salt| salt.stored().map(<[u8]>::to_vec))
                .collect();
            let insert_jobs = tx
                .prepare_cached(
                    "INSERT INTO jobs (delivery, plugin, state, created_at, link_salt)
                     SELECT $1, plugin, 'queued', $3, salt
                     FROM unnest($2::text[], $4::bytea[]) WITH ORDINALITY AS p (plugin, salt, n)
                     ORDER BY n
                     RETURNING id, plugin, link_salt",
                )
                .await?;
            let rows = tx
                .query(
                    &insert_jobs,
                    &[&seq, &plugins, &delivery.received_at, &salts],
                )
                .await?;
            for row in rows {
                jobs.push(PendingJob {
                    id: JobId(row.get(0)),
                    plugin: row.get(1),
                    attempts: 0,
                    interruptions: 0,
                    delivery: Arc::clone(&delivery),
                    link_salt: LinkSalt::from_stored(row.get(2)),
                });
            }
            jobs.sort_by_key(|job| job.id);
            // Delivered to the listeners only if this commits.
            tx.execute("SELECT pg_notify($1, '')", &[&CHANNEL]).await?;
        }
        tx.commit().await?;
        Ok(Appended::New(jobs))
    }
}
