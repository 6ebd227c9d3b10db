//! PostgreSQL journal: any number of hosts share one database, its queue, locks and job logs.
//!
//! - Every write is its own committed transaction (PostgreSQL groups concurrent commits itself),
//!   so a delivery is durable before the 202 exactly as on SQLite.
//! - Starting an attempt claims the job with `FOR UPDATE SKIP LOCKED` (a CTE, as River and Oban
//!   do) and gives it a **lease** in the database's clock. This journal renews the leases of the
//!   attempts it started until they end; any host queues again the jobs whose leases expired
//!   (their host died), keeping the dead attempt counted, and frees the locks they held. Ending
//!   an attempt is fenced by its number: an attempt whose lease was lost cannot record its end
//!   over the re-run's. Renewal runs on a connection of its own; a lease it could not renew for
//!   half the lease period is reported lost (`Journal::leases_lost`), so the workers stop the
//!   attempt before another host can take the job.
//! - Workers wake on `LISTEN switchyard_queue` (one connection per host); a NOTIFY is sent in
//!   the transaction that queues jobs. Polling (`sweep_interval`) is the fallback correctness
//!   rests on: a NOTIFY is never the only record of anything.
//! - Job logs are chunks in `job_logs`, numbered per job without gaps, readable from any host.
//! - Migrations are versioned in `schema_migrations` and run under an advisory lock, so hosts
//!   starting at once apply each exactly once.

mod connect;
mod lease;
mod listen;
mod migrations;
mod rows;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use deadpool_postgres::Pool;
use tokio::sync::Notify;
use tokio_postgres::{Row, types::ToSql};

use switchyard_plugin_api::CancelReason;

pub use connect::{PostgresSettings, mask_url, tls_config};
pub use migrations::{migrate_only, schema_version};

use super::{
    ActionFilter, ActionRecord, Appended, AttemptEnd, DeliveryRecord, GitHubPost, JobCounts,
    JobFilter, JobId, JobRecord, JobRow, JobState, Journal, JournalError, LinkSalt, LockRecord,
    LostLease, NewAction, PageBuilder, PendingJob, PostFilter, PostRecord, QueuedPage,
    RecentFilter, Started, Supersede, Visibility, cancel_reason, public_repository, unix_millis,
};
use crate::event::{Delivery, now_rfc3339};
use connect::{connect_pool, pool_error};
use lease::{Lease, Shared, renew_leases, rescue, rescue_expired};
use listen::{CANCEL_CHANNEL, CHANNEL, listen};
use migrations::migrate;
use rows::{JOB_COLUMNS, job_record, stored_delivery};

/// Asks a queued or running job ($1) to cancel for a reason ($2, JSON), keeping an earlier one,
/// and tells the hosts when it is running.
const ASK_TO_CANCEL: &str = "WITH asked AS (
         UPDATE jobs SET cancel_reason = coalesce(cancel_reason, $2)
         WHERE id = $1 AND state IN ('queued', 'running') RETURNING state
     )
     SELECT count(*), bool_or(state = 'running' AND pg_notify($3, '') IS NOT NULL) FROM asked";

pub struct PostgresJournal {
    pool: Pool,
    shared: Arc<Shared>,
    poll: Duration,
    /// Lease renewal, rescue and LISTEN; stopped when the journal is dropped.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for PostgresJournal {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl PostgresJournal {
    /// Connects, migrates (under the advisory lock) and starts lease renewal, rescue and LISTEN.
    pub async fn open(settings: PostgresSettings) -> Result<Self, JournalError> {
        let (pool, config, tls) = connect_pool(&settings)?;
        migrate(&pool).await?;
        let shared = Arc::new(Shared {
            running: Mutex::default(),
            changed: Notify::new(),
            lease: settings.lease,
            cancels: Mutex::default(),
            cancels_found: Notify::new(),
            lost: Mutex::default(),
            lost_found: Notify::new(),
            renew_now: Notify::new(),
        });
        // Renewed six times per lease, and given up at half of it: a lease renewal missed for
        // a third of the lease is a connection in trouble, and the rest of the lease is what
        // the attempt has to stop in before another host may take it.
        let renewing = tokio::spawn(renew_leases(
            config.clone(),
            tls.clone(),
            Arc::clone(&shared),
            settings.lease / 6,
        ));
        let rescuing = tokio::spawn(rescue_expired(
            pool.clone(),
            Arc::clone(&shared),
            settings.poll.min(settings.lease / 3),
        ));
        let listening = tokio::spawn(listen(config, tls, Arc::clone(&shared)));
        Ok(Self {
            pool,
            shared,
            poll: settings.poll,
            tasks: vec![renewing, rescuing, listening],
        })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, JournalError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Queries with a cached statement.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, JournalError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.query(&statement, params).await?)
    }

    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, JournalError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.execute(&statement, params).await?)
    }

    fn forget(&self, job: JobId) {
        self.shared.running.lock().unwrap().remove(&job);
    }
}

#[async_trait::async_trait]
impl Journal for PostgresJournal {
    async fn append(
        &self,
        delivery: Arc<Delivery>,
        plugins: Vec<String>,
        rerun: bool,
    ) -> Result<Appended, JournalError> {
        let payload = lz4_flex::compress_prepend_size(&delivery.payload);
        let headers = (!delivery.headers.is_empty())
            .then(|| serde_json::to_string(&delivery.headers).unwrap_or_default());
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO deliveries (id, event, action, repository, received_at, payload, sender, headers)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING RETURNING seq",
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
                ],
            )
            .await?;
        let inserted_new = inserted.is_some();
        let seq: i64 = match (inserted, rerun) {
            (Some(row), _) => row.get(0),
            (None, false) => return Ok(Appended::Duplicate),
            (None, true) => tx
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

    async fn start_attempt(
        &self,
        job: JobId,
        attempts: u32,
    ) -> Result<Option<Started>, JournalError> {
        // Committed before it answers: on PostgreSQL a start is its own transaction.
        let sent = Instant::now();
        let rows = self
            .query(
                "WITH claimed AS (
                     SELECT id FROM jobs
                     WHERE id = $1 AND state = 'queued' AND attempts = $2
                       AND (not_before IS NULL OR not_before <= $3)
                     FOR UPDATE SKIP LOCKED
                 )
                 UPDATE jobs SET state = 'running', attempts = jobs.attempts + 1, started_at = $4,
                        lease_until = now() + make_interval(secs => $5)
                 FROM claimed WHERE jobs.id = claimed.id
                 RETURNING jobs.attempts, jobs.cancel_reason",
                &[
                    &job.0,
                    &(attempts as i32),
                    &(unix_millis() as i64),
                    &now_rfc3339(),
                    &self.shared.lease.as_secs_f64(),
                ],
            )
            .await?;
        let started = rows.first().map(|row| Started {
            number: row.get::<_, i32>(0) as u32,
            cancel: cancel_reason(row.get(1)),
        });
        if let Some(started) = &started {
            let lease = Lease {
                attempt: started.number,
                renewed: sent,
                // Told as the attempt starts (`Started::cancel`).
                cancel_told: started.cancel.is_some(),
            };
            self.shared.running.lock().unwrap().insert(job, lease);
        }
        Ok(started)
    }

    async fn end_attempt(
        &self,
        job: JobId,
        attempt: u32,
        end: AttemptEnd,
    ) -> Result<(), JournalError> {
        let (state, error, note, not_before) = match end {
            AttemptEnd::Succeeded { note } => (JobState::Succeeded, None, note, None),
            AttemptEnd::Failed { error } => (JobState::Failed, Some(error), None, None),
            AttemptEnd::WillRetry { error, not_before } => {
                (JobState::Queued, Some(error), None, Some(not_before as i64))
            }
        };
        let finished_at = (state != JobState::Queued).then(now_rfc3339);
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let update = tx
            .prepare_cached(
                "UPDATE jobs SET state = $3, error = $4, note = $5, finished_at = $6,
                        not_before = $7, lease_until = NULL
                 WHERE id = $1 AND state = 'running' AND attempts = $2",
            )
            .await?;
        let changed = tx
            .execute(
                &update,
                &[
                    &job.0,
                    &(attempt as i32),
                    &state.as_str(),
                    &error,
                    &note,
                    &finished_at,
                    &not_before,
                ],
            )
            .await?;
        if changed == 0 {
            // Fenced: the lease was lost and the job queued again (or re-run) meanwhile.
            self.forget(job);
            return Err(JournalError::NotRunning { job, attempt });
        }
        let unlock = tx
            .prepare_cached("DELETE FROM locks WHERE job = $1")
            .await?;
        tx.execute(&unlock, &[&job.0]).await?;
        tx.commit().await?;
        self.forget(job);
        Ok(())
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
                "UPDATE jobs SET state = 'failed', error = $3, finished_at = $4
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
            let delivery = page.delivery(row.get(3), || stored_delivery(row, 3))?;
            let job = PendingJob {
                id: JobId(row.get(0)),
                plugin: row.get(1),
                attempts: row.get::<_, i32>(2) as u32,
                interruptions: row.get::<_, i32>(10) as u32,
                delivery,
                link_salt: LinkSalt::from_stored(row.get(11)),
            };
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

    async fn jobs(&self, filter: JobFilter) -> Result<Vec<JobRow>, JournalError> {
        let state = filter.state.map(JobState::as_str);
        let rows = self
            .query(
                &format!(
                    "SELECT j.id, d.id, j.plugin, j.state, j.attempts, j.error, j.note,
                        d.event, d.action, d.repository, d.sender, j.created_at, j.started_at,
                        j.finished_at, j.link_salt
                 FROM jobs j JOIN deliveries d ON d.seq = j.delivery
                 WHERE ($1::bigint IS NULL OR j.id = $1)
                   AND ($2::text IS NULL OR j.state = $2)
                   AND ($3::text IS NULL OR j.plugin = $3)
                   AND ($4::text IS NULL OR d.repository = $4)
                   AND ($5::bigint IS NULL OR j.id < $5)
                   AND (NOT $7 OR {public})
                 ORDER BY j.id DESC LIMIT $6",
                    public = public_repository("d.repository"),
                ),
                &[
                    &filter.id.map(|id| id.0),
                    &state,
                    &filter.plugin,
                    &filter.repository,
                    &filter.before.map(|id| id.0),
                    &(filter.limit as i64),
                    &filter.visibility.public_only(),
                ],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(JobRow {
                    job: job_record(row)?,
                    event: row.get(7),
                    action: row.get(8),
                    repository: row.get(9),
                    sender: row.get(10),
                    created_at: row.get(11),
                    started_at: row.get(12),
                    finished_at: row.get(13),
                })
            })
            .collect()
    }

    async fn job_counts(
        &self,
        since: &str,
        visibility: Visibility,
    ) -> Result<JobCounts, JournalError> {
        // Everything, as before, without a join; a visitor's counts join the filter.
        let (from, public) = match visibility {
            Visibility::All => ("jobs j".to_owned(), "TRUE".to_owned()),
            Visibility::Public => (
                "jobs j JOIN deliveries d ON d.seq = j.delivery".to_owned(),
                public_repository("d.repository"),
            ),
        };
        let rows = self
            .query(
                &format!("SELECT j.state, COUNT(*) FROM {from} WHERE {public} GROUP BY j.state"),
                &[],
            )
            .await?;
        let mut counts = JobCounts::default();
        for row in rows {
            let state: String = row.get(0);
            let count = row.get::<_, i64>(1) as u64;
            match JobState::parse(&state) {
                Some(JobState::Queued) => counts.queued = count,
                Some(JobState::Running) => counts.running = count,
                Some(JobState::Succeeded) => counts.succeeded = count,
                Some(JobState::Failed) => counts.failed = count,
                None => {}
            }
        }
        let failed = self
            .query(
                &format!(
                    "SELECT COUNT(*) FROM {from}
                     WHERE j.state = 'failed' AND j.finished_at >= $1 AND {public}"
                ),
                &[&since],
            )
            .await?;
        counts.failed_since = failed[0].get::<_, i64>(0) as u64;
        Ok(counts)
    }

    async fn end_sessions(&self, name: &str, at: u64) -> Result<(), JournalError> {
        self.execute(
            "INSERT INTO session_ends (name, at) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET at = greatest(session_ends.at, excluded.at)",
            &[&name, &(at as i64)],
        )
        .await
        .map(drop)
    }

    async fn sessions_ended(&self, name: &str) -> Result<Option<u64>, JournalError> {
        let rows = self
            .query("SELECT at FROM session_ends WHERE name = $1", &[&name])
            .await?;
        Ok(rows.first().map(|row| row.get::<_, i64>(0) as u64))
    }

    async fn locks(&self) -> Result<Vec<LockRecord>, JournalError> {
        let rows = self
            .query(
                "SELECT name, job, attempt, acquired_at FROM locks ORDER BY name",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| LockRecord {
                name: row.get(0),
                job: JobId(row.get(1)),
                attempt: row.get::<_, i32>(2) as u32,
                acquired_at: row.get(3),
            })
            .collect())
    }

    async fn job(&self, job: JobId) -> Result<JobRecord, JournalError> {
        let rows = self
            .query(&format!("{JOB_COLUMNS} WHERE j.id = $1"), &[&job.0])
            .await?;
        rows.first()
            .map(job_record)
            .transpose()?
            .ok_or(JournalError::NoSuchJob(job))
    }

    async fn jobs_of(&self, delivery: &str) -> Result<Vec<JobRecord>, JournalError> {
        let rows = self
            .query(
                &format!("{JOB_COLUMNS} WHERE d.id = $1 ORDER BY j.id"),
                &[&delivery],
            )
            .await?;
        rows.iter().map(job_record).collect()
    }

    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, JournalError> {
        let rows = self
            .query(
                "SELECT id, event, action, repository, received_at, payload, sender, headers
                 FROM deliveries WHERE id = $1",
                &[&id],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let mut delivery = stored_delivery(row, 0)?;
        let headers: Option<String> = row.get(7);
        delivery.headers = headers
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        Ok(Some(delivery))
    }

    async fn recent(&self, filter: RecentFilter) -> Result<Vec<DeliveryRecord>, JournalError> {
        let rows = self
            .query(
                &format!(
                    "SELECT d.seq, d.id, d.event, d.action, d.repository, d.received_at, d.sender
                 FROM deliveries d
                 WHERE ($1::text IS NULL OR d.event = $1)
                   AND (NOT $2 OR EXISTS (SELECT 1 FROM jobs j WHERE j.delivery = d.seq AND j.state = 'failed'))
                   AND ($4::text IS NULL OR d.repository = $4)
                   AND ($5::bigint IS NULL OR d.seq < $5)
                   AND ($6::text IS NULL OR d.id = $6)
                   AND (NOT $7 OR {public})
                 ORDER BY d.seq DESC LIMIT $3",
                    public = public_repository("d.repository"),
                ),
                &[
                    &filter.event,
                    &filter.failed,
                    &(filter.limit as i64),
                    &filter.repository,
                    &filter.before,
                    &filter.id,
                    &filter.visibility.public_only(),
                ],
            )
            .await?;
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.get(1);
            let jobs = self.jobs_of(&id).await?;
            deliveries.push(DeliveryRecord {
                seq: row.get(0),
                sender: row.get(6),
                id,
                event: row.get(2),
                action: row.get(3),
                repository: row.get(4),
                received_at: row.get(5),
                jobs,
            });
        }
        Ok(deliveries)
    }

    async fn ping(&self) -> Result<(), JournalError> {
        // A committed write, as a delivery needs.
        self.execute(
            "INSERT INTO host_keys (name, value) VALUES ('readiness-probe', convert_to(clock_timestamp()::text, 'UTF8'))
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            &[],
        )
        .await
        .map(drop)
    }

    async fn host_key(&self, name: &str) -> Result<Vec<u8>, JournalError> {
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(|error| JournalError::Random(error.to_string()))?;
        self.execute(
            "INSERT INTO host_keys (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &&fresh[..]],
        )
        .await?;
        let rows = self
            .query("SELECT value FROM host_keys WHERE name = $1", &[&name])
            .await?;
        Ok(rows[0].get(0))
    }

    async fn prune_jobs(
        &self,
        ended_before: &str,
        limit: usize,
    ) -> Result<Vec<JobId>, JournalError> {
        let rows = self
            .query(
                "WITH doomed AS (
                     SELECT id FROM jobs
                     WHERE state IN ('succeeded', 'failed') AND finished_at < $1
                     ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
                 ), unlocked AS (
                     DELETE FROM locks WHERE job IN (SELECT id FROM doomed)
                 ), logs AS (
                     DELETE FROM job_logs WHERE job IN (SELECT id FROM doomed)
                 ), lines AS (
                     DELETE FROM superseding WHERE job IN (SELECT id FROM doomed)
                 ), posts AS (
                     DELETE FROM github_posts
                     WHERE job IN (SELECT id FROM doomed) AND kind IN ('status', 'check_run')
                 )
                 DELETE FROM jobs WHERE id IN (SELECT id FROM doomed) RETURNING id",
                &[&ended_before, &(limit as i64)],
            )
            .await?;
        let mut pruned: Vec<JobId> = rows.iter().map(|row| JobId(row.get(0))).collect();
        pruned.sort();
        Ok(pruned)
    }

    async fn prune_deliveries(
        &self,
        received_before: &str,
        limit: usize,
    ) -> Result<usize, JournalError> {
        let deleted = self
            .execute(
                "WITH doomed AS (
                     SELECT seq FROM deliveries d
                     WHERE d.received_at < $1
                       AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.delivery = d.seq)
                     ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED
                 )
                 DELETE FROM deliveries WHERE seq IN (SELECT seq FROM doomed)
                   AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.delivery = deliveries.seq)",
                &[&received_before, &(limit as i64)],
            )
            .await?;
        Ok(deleted as usize)
    }

    async fn skip_job_ids_through(&self, job: JobId) -> Result<(), JournalError> {
        // Only ever raised: the last id given is `last_value`, or one below it before the first.
        self.execute(
            "SELECT setval('jobs_id_seq', $1) FROM jobs_id_seq
             WHERE $1 > CASE WHEN is_called THEN last_value ELSE last_value - 1 END",
            &[&job.0],
        )
        .await?;
        Ok(())
    }

    async fn claim_nonce(&self, nonce: &str, until: u64, now: u64) -> Result<bool, JournalError> {
        self.execute(
            "DELETE FROM admin_nonces WHERE expires_at < $1",
            &[&(now as i64)],
        )
        .await?;
        let claimed = self
            .execute(
                "INSERT INTO admin_nonces (nonce, expires_at) VALUES ($1, $2)
                 ON CONFLICT (nonce) DO NOTHING",
                &[&nonce, &(until as i64)],
            )
            .await?;
        Ok(claimed == 1)
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

    async fn leases_lost(&self) -> Vec<LostLease> {
        loop {
            let found = std::mem::take(&mut *self.shared.lost.lock().unwrap());
            if !found.is_empty() {
                return found;
            }
            self.shared.lost_found.notified().await;
        }
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

    async fn held_deliveries(
        &self,
        ids: Vec<String>,
    ) -> Result<std::collections::HashSet<String>, JournalError> {
        let rows = self
            .query("SELECT id FROM deliveries WHERE id = ANY($1)", &[&ids])
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn catch_up_mark(&self, source: &str) -> Result<Option<i64>, JournalError> {
        let rows = self
            .query(
                "SELECT last_id FROM catch_up_marks WHERE source = $1",
                &[&source],
            )
            .await?;
        Ok(rows.first().map(|row| row.get(0)))
    }

    async fn move_catch_up_mark(
        &self,
        source: &str,
        from: Option<i64>,
        to: i64,
    ) -> Result<bool, JournalError> {
        let now = now_rfc3339();
        let moved = match from {
            None => {
                self.execute(
                    "INSERT INTO catch_up_marks (source, last_id, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (source) DO NOTHING",
                    &[&source, &to, &now],
                )
                .await?
            }
            Some(from) => {
                self.execute(
                    "UPDATE catch_up_marks SET last_id = $3, updated_at = $4
                     WHERE source = $1 AND last_id = $2",
                    &[&source, &from, &to, &now],
                )
                .await?
            }
        };
        Ok(moved == 1)
    }

    async fn release_lock(&self, name: &str, job: JobId) -> Result<bool, JournalError> {
        let freed = self
            .execute(
                "DELETE FROM locks WHERE name = $1 AND job = $2",
                &[&name, &job.0],
            )
            .await?;
        Ok(freed == 1)
    }

    async fn record_action(&self, action: NewAction) -> Result<i64, JournalError> {
        let rows = self
            .query(
                "INSERT INTO audit (at, actor, action, delivery, job, lock, outcome)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &now_rfc3339(),
                    &action.actor,
                    &action.action,
                    &action.delivery,
                    &action.job.map(|job| job.0),
                    &action.lock,
                    &action.outcome,
                ],
            )
            .await?;
        Ok(rows[0].get(0))
    }

    async fn actions(&self, filter: ActionFilter) -> Result<Vec<ActionRecord>, JournalError> {
        let rows = self
            .query(
                &format!(
                    "SELECT id, at, actor, action, delivery, job, lock, outcome FROM audit
                 WHERE ($1::bigint IS NULL OR id = $1)
                   AND ($2::text IS NULL OR delivery = $2)
                   AND ($3::bigint IS NULL OR job = $3)
                   AND ($4::text IS NULL OR action = $4)
                   AND (NOT $6
                        OR EXISTS (SELECT 1 FROM jobs j JOIN deliveries d ON d.seq = j.delivery
                                   WHERE j.id = audit.job AND {public})
                        OR (audit.job IS NULL AND EXISTS (SELECT 1 FROM deliveries d
                                   WHERE d.id = audit.delivery AND {public})))
                 ORDER BY id DESC LIMIT $5",
                    public = public_repository("d.repository"),
                ),
                &[
                    &filter.id,
                    &filter.delivery,
                    &filter.job.map(|job| job.0),
                    &filter.action,
                    &(filter.limit as i64),
                    &filter.visibility.public_only(),
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| ActionRecord {
                id: row.get(0),
                at: row.get(1),
                actor: row.get(2),
                action: row.get(3),
                delivery: row.get(4),
                job: row.get::<_, Option<i64>>(5).map(JobId),
                lock: row.get(6),
                outcome: row.get(7),
            })
            .collect())
    }

    async fn record_post(&self, post: GitHubPost) -> Result<(), JournalError> {
        // A deployment status names only its deployment: its sha and environment are the
        // deployment's, when a job posted that.
        self.execute(
            "INSERT INTO github_posts
                 (job, at, kind, repository, sha, environment, deployment, state, context, url)
             VALUES ($1, $2, $3, $4,
                 coalesce($5, (SELECT sha FROM github_posts WHERE kind = 'deployment'
                     AND repository = $4 AND deployment = $7 ORDER BY id DESC LIMIT 1)),
                 coalesce($6, (SELECT environment FROM github_posts WHERE kind = 'deployment'
                     AND repository = $4 AND deployment = $7 ORDER BY id DESC LIMIT 1)),
                 $7, $8, $9, $10)",
            &[
                &post.job.0,
                &now_rfc3339(),
                &post.kind,
                &post.repository,
                &post.sha,
                &post.environment,
                &post.deployment,
                &post.state,
                &post.context,
                &post.url,
            ],
        )
        .await
        .map(drop)
    }

    async fn posts(&self, filter: PostFilter) -> Result<Vec<PostRecord>, JournalError> {
        let rows = self
            .query(
                &format!(
                    "SELECT id, at, job, kind, repository, sha, environment, deployment, state,
                        context, url
                 FROM github_posts
                 WHERE ($1::bigint IS NULL OR job = $1)
                   AND (NOT $2 OR kind IN ('deployment', 'deployment_status'))
                   AND (NOT $4 OR {public})
                 ORDER BY id DESC LIMIT $3",
                    public = public_repository("github_posts.repository"),
                ),
                &[
                    &filter.job.map(|job| job.0),
                    &filter.deployments,
                    &(filter.limit as i64),
                    &filter.visibility.public_only(),
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| PostRecord {
                id: row.get(0),
                at: row.get(1),
                post: GitHubPost {
                    job: JobId(row.get(2)),
                    kind: row.get(3),
                    repository: row.get(4),
                    sha: row.get(5),
                    environment: row.get(6),
                    deployment: row.get(7),
                    state: row.get(8),
                    context: row.get(9),
                    url: row.get(10),
                },
            })
            .collect())
    }

    async fn try_lock(&self, name: &str, job: JobId, attempt: u32) -> Result<bool, JournalError> {
        // Taken when free, or when its holder is no longer a live attempt (ended, or its lease
        // expired: its host is dead).
        let rows = self
            .query(
                "INSERT INTO locks AS l (name, job, attempt, acquired_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE
                     SET job = excluded.job, attempt = excluded.attempt,
                         acquired_at = excluded.acquired_at
                     WHERE NOT EXISTS (
                         SELECT 1 FROM jobs j
                         WHERE j.id = l.job AND j.attempts = l.attempt AND j.state = 'running'
                           AND j.lease_until > now()
                     )
                 RETURNING job, attempt",
                &[&name, &job.0, &(attempt as i32), &now_rfc3339()],
            )
            .await?;
        if let Some(row) = rows.first() {
            return Ok((row.get::<_, i64>(0), row.get::<_, i32>(1)) == (job.0, attempt as i32));
        }
        let holder = self
            .query("SELECT job, attempt FROM locks WHERE name = $1", &[&name])
            .await?;
        Ok(holder.first().is_some_and(|row| {
            (row.get::<_, i64>(0), row.get::<_, i32>(1)) == (job.0, attempt as i32)
        }))
    }

    async fn queue_changed(&self) {
        self.shared.changed.notified().await;
    }

    fn sweep_interval(&self) -> Duration {
        self.poll
    }

    fn keeps_logs(&self) -> bool {
        true
    }

    async fn append_log(&self, job: JobId, text: Vec<u8>) -> Result<(), JournalError> {
        // Chunks are numbered without gaps: two appends that pick the same number collide on
        // the key, and the loser, which waited for the winner's commit, takes the next. So a
        // reader never sees chunk n+1 before chunk n.
        for _ in 0..100 {
            let inserted = self
                .execute(
                    "INSERT INTO job_logs (job, n, data)
                     SELECT $1, coalesce(max(n) + 1, 0), $2 FROM job_logs WHERE job = $1
                     ON CONFLICT (job, n) DO NOTHING",
                    &[&job.0, &text],
                )
                .await?;
            if inserted == 1 {
                return Ok(());
            }
        }
        Err(JournalError::Postgres(format!(
            "job {job}'s log is being written too often at once"
        )))
    }

    async fn log_len(&self, job: JobId) -> Result<u64, JournalError> {
        let rows = self
            .query(
                "SELECT coalesce(sum(octet_length(data)), 0)::bigint FROM job_logs WHERE job = $1",
                &[&job.0],
            )
            .await?;
        Ok(rows[0].get::<_, i64>(0) as u64)
    }

    async fn read_log(
        &self,
        job: JobId,
        from: u64,
        max: usize,
    ) -> Result<Vec<Vec<u8>>, JournalError> {
        let rows = self
            .query(
                "SELECT n, data FROM job_logs WHERE job = $1 AND n >= $2 ORDER BY n LIMIT $3",
                &[&job.0, &(from as i64), &(max as i64)],
            )
            .await?;
        // Stop at a gap (none is expected): the reader asks again from there.
        let mut chunks = Vec::with_capacity(rows.len());
        for (expected, row) in (from as i64..).zip(&rows) {
            if row.get::<_, i64>(0) != expected {
                break;
            }
            chunks.push(row.get(1));
        }
        Ok(chunks)
    }
}
