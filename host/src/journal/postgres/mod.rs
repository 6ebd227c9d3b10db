//! PostgreSQL journal: any number of hosts share one database, its queue, locks and job logs.
//!
//! - Deliveries arriving together are stored in one transaction, attempts starting together
//!   claimed in one statement, and attempts ending together ended in one (`batch.rs`,
//!   `group.rs`): a batch is whatever arrived while the one before it ran, so at low load
//!   nothing waits, and a delivery is answered only once the commit that covers it is known,
//!   durable before the 202 exactly as on SQLite. Other writes are each their own transaction.
//! - Starting an attempt claims the job with `FOR UPDATE SKIP LOCKED` (a CTE, as River and Oban
//!   do) and gives it a **lease** in the database's clock. This journal renews the leases of the
//!   attempts it started until they end; any host queues again the jobs whose leases expired
//!   (their host died), keeping the dead attempt counted, and frees the locks they held. Ending
//!   an attempt is fenced by its number: an attempt whose lease was lost cannot record its end
//!   over the re-run's. Renewal runs on a connection of its own; a lease it could not renew for
//!   half the lease period is reported lost (`Queue::leases_lost`), so the workers stop the
//!   attempt before another host can take the job.
//! - Workers wake on `LISTEN switchyard_queue` (one connection per host); a NOTIFY is sent in
//!   the transaction that queues jobs, naming the host that sent it and the lowest new job id,
//!   so a host skips its own and the others read from there, not the queue's head. Polling (`sweep_interval`) is the fallback correctness
//!   rests on: a NOTIFY is never the only record of anything.
//! - Job logs are chunks in `job_logs`, numbered per job without gaps, readable from any host.
//! - Migrations are versioned in `schema_migrations` and run under an advisory lock, so hosts
//!   starting at once apply each exactly once.

mod audit;
mod batch;
mod connect;
mod deploys;
mod group;
mod heads;
mod lease;
mod listen;
mod locks;
mod logs;
mod maintain;
mod marks;
mod migrations;
mod queue;
mod reads;
mod rows;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use deadpool_postgres::Pool;
use tokio::sync::Notify;
use tokio_postgres::{Row, types::ToSql};

pub use connect::{PostgresSettings, mask_url, tls_config};
pub use migrations::{migrate_only, schema_version};

use super::{Appended, JobId, JournalError};
use batch::Batcher;
use connect::{connect_pool, pool_error};
use group::{Claim, ToEnd, ToStart, ToStore};
use lease::{Lease, Shared, renew_leases, rescue, rescue_expired};
use listen::listen;
use migrations::migrate;

/// The channel workers listen on: a NOTIFY on it says the queue changed.
const CHANNEL: &str = "switchyard_queue";

/// The channel that says a running job was asked to cancel: its host renews its leases at
/// once, which reads the request.
const CANCEL_CHANNEL: &str = "switchyard_cancel";

/// Asks a queued or running job ($1) to cancel for a reason ($2, JSON), keeping an earlier one,
/// and tells the hosts when it is running.
const ASK_TO_CANCEL: &str = "WITH asked AS (
         UPDATE jobs SET cancel_reason = coalesce(cancel_reason, $2)
         WHERE id = $1 AND state IN ('queued', 'running') RETURNING state
     )
     SELECT count(*), bool_or(state = 'running' AND pg_notify($3, '') IS NOT NULL) FROM asked";

/// Most requests of one kind in one batch.
const MOST_BATCHED: usize = 256;

pub struct PostgresJournal {
    pool: Pool,
    shared: Arc<Shared>,
    poll: Duration,
    stores: Batcher<ToStore, Appended>,
    starts: Batcher<ToStart, Claim>,
    ends: Batcher<ToEnd, ()>,
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
        let mut instance = [0u8; 8];
        getrandom::fill(&mut instance).map_err(|error| JournalError::Random(error.to_string()))?;
        let instance: String = instance.iter().map(|byte| format!("{byte:02x}")).collect();
        let shared = Arc::new(Shared {
            held: Mutex::default(),
            instance: instance.clone(),
            changed_from: Mutex::default(),
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
        let (stores, storing) = Batcher::start(MOST_BATCHED, {
            let pool = pool.clone();
            move |batch| {
                let (pool, instance) = (pool.clone(), instance.clone());
                async move { group::store(&pool, &instance, batch).await }
            }
        });
        let (starts, starting) = Batcher::start(MOST_BATCHED, {
            let (pool, lease) = (pool.clone(), settings.lease);
            move |batch| {
                let pool = pool.clone();
                async move { group::claim(&pool, lease, batch).await }
            }
        });
        let (ends, ending) = Batcher::start(MOST_BATCHED, {
            let pool = pool.clone();
            move |batch| {
                let pool = pool.clone();
                async move { group::end(&pool, batch).await }
            }
        });
        Ok(Self {
            pool,
            shared,
            poll: settings.poll,
            stores,
            starts,
            ends,
            tasks: vec![renewing, rescuing, listening, storing, starting, ending],
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
        self.shared.held.lock().unwrap().remove(&job);
    }
}
