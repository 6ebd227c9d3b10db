//! SQLite journal (WAL). One writer thread commits whatever arrived meanwhile in one
//! transaction, and a sync thread makes the commits durable, one fsync for many (see
//! [`writer`]); reads use a connection of their own so they never queue behind writes.
//!
//! Payloads are stored LZ4-compressed: GitHub's JSON shrinks about 4x, and disk bandwidth (each
//! byte is written to the WAL, then again by the checkpoint, both fsynced) is what bounds
//! durable ingress. Compression runs on the caller's task, not on the single writer thread.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};

use switchyard_plugin_api::CancelReason;

use super::{
    ActionFilter, ActionRecord, Appended, AttemptEnd, DeliveryRecord, GitHubPost, JobCounts,
    JobFilter, JobId, JobRecord, JobRow, JobState, Journal, JournalError, LinkSalt, LockRecord,
    NewAction, PageBuilder, PendingJob, PostFilter, PostRecord, QueuedPage, RecentFilter, Started,
    Supersede, Visibility, cancel_reason, public_repository,
};
use crate::event::{Delivery, DeliveryId, EventKind, PayloadFacts, now_rfc3339};
use delivery_ids::SEQ_OF_ID;
use migrations::migrate;
use writer::Writer;

mod delivery_ids;
mod migrations;
mod writer;

/// Asks a queued or running job (?1) to cancel for a reason (?2, JSON), keeping an earlier one.
const ASK_TO_CANCEL: &str = "UPDATE jobs SET cancel_reason = coalesce(cancel_reason, ?2)
     WHERE id = ?1 AND state IN ('queued', 'running')";

pub struct SqliteJournal {
    writer: Writer,
    reads: Arc<Mutex<Connection>>,
    /// The journal's folder, where the readiness probe checks for free space.
    dir: PathBuf,
}

impl SqliteJournal {
    /// Opens (creating and migrating if needed) the journal at `path`.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        Self::open_with(path, writer::sync_wal)
    }

    /// Opens the journal with `make_sync` making its commits durable (tests stand in for the
    /// disk with it).
    fn open_with(
        path: &Path,
        make_sync: impl FnOnce(&Path) -> std::io::Result<writer::Sync>,
    ) -> Result<Self, JournalError> {
        let open_error = |e: &dyn std::fmt::Display| JournalError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_error(&e))?;
        }
        let writer = Connection::open(path).map_err(|e| open_error(&e))?;
        // NORMAL: a commit does not fsync; the writer's sync thread does, before any durable
        // write is answered, so a 202 still means the delivery survives power loss.
        writer
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            .map_err(|e| open_error(&e))?;
        migrate(&writer).map_err(|e| open_error(&e))?;
        writer
            .execute_batch("PRAGMA foreign_keys = ON;")
            .map_err(|e| open_error(&e))?;
        delivery_ids::open(&writer).map_err(|e| open_error(&e))?;
        let reader = Connection::open(path).map_err(|e| open_error(&e))?;
        reader
            .execute_batch("PRAGMA busy_timeout = 5000;")
            .map_err(|e| open_error(&e))?;

        let checkpointer = Connection::open(path).map_err(|e| open_error(&e))?;
        let sync = make_sync(path).map_err(|e| open_error(&e))?;
        let writer = Writer::start(writer, sync, checkpointer).map_err(|e| open_error(&e))?;
        Ok(Self {
            writer,
            reads: Arc::new(Mutex::new(reader)),
            dir: path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_owned(),
        })
    }

    async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        self.writer.write(write).await
    }

    async fn write_uncommitted<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        self.writer.write_uncommitted(write).await
    }

    /// Waits until every write queued before it is durable (a start answered early, say).
    #[cfg(test)]
    async fn settled(&self) {
        self.writer.synced().await.unwrap();
    }

    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let reads = Arc::clone(&self.reads);
        tokio::task::spawn_blocking(move || {
            let conn = reads
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            read(&conn)
        })
        .await
        .map_err(|_| JournalError::Unavailable)?
    }
}

/// Copies the journal at `store` to `to` while it may be in use, as one consistent snapshot
/// (SQLite's online backup API, in one step: under WAL the writer goes on meanwhile). The copy
/// is written beside `to` and renamed over it, so `to` is never a half-written file.
pub fn backup(store: &Path, to: &Path) -> Result<(), JournalError> {
    let open_error = |e: &dyn std::fmt::Display| JournalError::Open {
        path: store.display().to_string(),
        message: e.to_string(),
    };
    if !store.is_file() {
        return Err(open_error(&"no journal there"));
    }
    let source = Connection::open_with_flags(store, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| open_error(&e))?;
    source
        .execute_batch("PRAGMA busy_timeout = 5000;")
        .map_err(|e| open_error(&e))?;
    let partial = to.with_file_name(format!(
        ".{}.partial",
        to.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = std::fs::remove_file(&partial);
    let mut copy = Connection::open(&partial)?;
    {
        let backup = rusqlite::backup::Backup::new(&source, &mut copy)?;
        backup.step(-1)?;
    }
    // The copy is a single file, with no WAL of its own to carry along.
    copy.execute_batch("PRAGMA journal_mode = DELETE;")?;
    drop(copy);
    std::fs::rename(&partial, to).map_err(|e| JournalError::Storage(e.to_string()))
}

/// Now, in Unix milliseconds: how retry backoffs are kept.
pub fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// Bytes the readiness probe writes: more than a usual delivery takes in the WAL.
const PROBE_BYTES: usize = 64 * 1024;

/// Writes and syncs [`PROBE_BYTES`] to an unnamed file in `dir` (gone when closed, even after a
/// crash): fails as a delivery would on a full or read-only file system.
fn probe_space(dir: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut probe = tempfile::tempfile_in(dir)?;
    probe.write_all(&[0u8; PROBE_BYTES])?;
    probe.sync_data()
}

fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// Runs a write of several statements inside a savepoint, so that if it fails it leaves
/// nothing half-done and the rest of its batch still commits. (A write of one statement needs
/// none: SQLite undoes a failed statement by itself.)
fn all_or_nothing<T>(
    conn: &Connection,
    write: impl FnOnce() -> Result<T, JournalError>,
) -> Result<T, JournalError> {
    run_cached(conn, "SAVEPOINT write")?;
    let result = write();
    if result.is_err() {
        let _ = run_cached(conn, "ROLLBACK TO write");
    }
    // RELEASE closes the savepoint whether or not it was rolled back to.
    run_cached(conn, "RELEASE write")?;
    result
}

/// A job `insert_delivery` stored: its id, plugin and link salt.
type StoredJob = (JobId, String, LinkSalt);

fn insert_delivery(
    conn: &Connection,
    delivery: &Delivery,
    compressed_payload: &[u8],
    plugins: &[String],
    salts: &[LinkSalt],
    rerun: bool,
) -> Result<Option<Vec<StoredJob>>, JournalError> {
    let seq = match (delivery_ids::seq_of(conn, delivery.id.as_str())?, rerun) {
        (Some(_), false) => return Ok(None),
        (Some(seq), true) => seq,
        (None, _) => {
            conn.prepare_cached(
                "INSERT INTO deliveries (id, event, action, repository, received_at, payload, sender, headers)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                delivery.id.as_str(),
                delivery.kind.as_str(),
                delivery.facts.action,
                delivery.facts.repository,
                delivery.received_at,
                compressed_payload,
                delivery.facts.sender,
                (!delivery.headers.is_empty())
                    .then(|| serde_json::to_string(&delivery.headers).unwrap_or_default()),
            ])?;
            let seq = conn.last_insert_rowid();
            delivery_ids::add(conn, delivery.id.as_str(), seq)?;
            if let (Some(repository), Some(private)) =
                (&delivery.facts.repository, delivery.facts.private)
            {
                conn.prepare_cached(REMEMBER_VISIBILITY)?
                    .execute(params![repository, private, seq])?;
            }
            seq
        }
    };
    let mut insert_job = conn.prepare_cached(
        "INSERT INTO jobs (delivery, plugin, state, created_at, link_salt)
         VALUES (?1, ?2, 'queued', ?3, ?4)",
    )?;
    let mut jobs = Vec::with_capacity(plugins.len());
    for (plugin, salt) in plugins.iter().zip(salts) {
        insert_job.execute(params![seq, plugin, delivery.received_at, salt.stored()])?;
        jobs.push((JobId(conn.last_insert_rowid()), plugin.clone(), *salt));
    }
    Ok(Some(jobs))
}

/// Records repository ?1's visibility (?2: private) as delivery ?3 said it, unless a newer
/// delivery already did.
const REMEMBER_VISIBILITY: &str =
    "INSERT INTO repositories (name, private, seq) VALUES (?1, ?2, ?3)
     ON CONFLICT (name) DO UPDATE SET private = excluded.private, seq = excluded.seq
     WHERE excluded.seq > repositories.seq";

#[async_trait::async_trait]
impl Journal for SqliteJournal {
    async fn append(
        &self,
        delivery: Arc<Delivery>,
        plugins: Vec<String>,
        rerun: bool,
    ) -> Result<Appended, JournalError> {
        let stored = Arc::clone(&delivery);
        let payload = lz4_flex::compress_prepend_size(&delivery.payload);
        let salts = LinkSalt::fresh(plugins.len())?;
        let jobs = self
            .write(move |conn| {
                all_or_nothing(conn, || {
                    insert_delivery(conn, &stored, &payload, &plugins, &salts, rerun)
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
                        "UPDATE jobs SET state = 'failed', error = ?3, finished_at = ?4
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
                    let delivery_id: String = row.get(3)?;
                    let delivery =
                        page.delivery(delivery_id.clone(), || stored_delivery(&delivery_id, row))?;
                    let job = PendingJob {
                        id: JobId(row.get(0)?),
                        plugin: row.get(1)?,
                        attempts: row.get(2)?,
                        interruptions: row.get(10)?,
                        delivery,
                        link_salt: LinkSalt::from_stored(row.get(11)?),
                    };
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

    async fn end_attempt(
        &self,
        job: JobId,
        attempt: u32,
        end: AttemptEnd,
    ) -> Result<(), JournalError> {
        self.write(move |conn| {
            let (state, error, note, not_before) = match end {
                AttemptEnd::Succeeded { note } => (JobState::Succeeded, None, note, None),
                AttemptEnd::Failed { error } => (JobState::Failed, Some(error), None, None),
                AttemptEnd::WillRetry { error, not_before } => {
                    (JobState::Queued, Some(error), None, Some(not_before as i64))
                }
            };
            let finished_at = (state != JobState::Queued).then(now_rfc3339);
            all_or_nothing(conn, || {
                let changed = conn
                    .prepare_cached(
                        "UPDATE jobs SET state = ?3, error = ?4, note = ?5, finished_at = ?6,
                                not_before = ?7
                         WHERE id = ?1 AND state = 'running' AND attempts = ?2",
                    )?
                    .execute(params![
                        job.0,
                        attempt,
                        state.as_str(),
                        error,
                        note,
                        finished_at,
                        not_before
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

    async fn delivery(&self, id: &str) -> Result<Option<Delivery>, JournalError> {
        let id = id.to_owned();
        self.read(move |conn| {
            // Columns laid out as `stored_delivery` reads them (3..=9).
            let row = conn
                .query_row(
                    &format!(
                        "SELECT NULL, NULL, NULL, id, event, action, repository, received_at,
                                payload, sender, headers
                         FROM deliveries WHERE seq = {SEQ_OF_ID}"
                    ),
                    [&id],
                    |row| {
                        let headers: Option<String> = row.get(10)?;
                        Ok(stored_delivery(&id, row).map(|mut delivery| {
                            delivery.headers = headers
                                .and_then(|text| serde_json::from_str(&text).ok())
                                .unwrap_or_default();
                            delivery
                        }))
                    },
                )
                .optional()?;
            row.transpose()
        })
        .await
    }

    async fn recent(&self, filter: RecentFilter) -> Result<Vec<DeliveryRecord>, JournalError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT d.seq, d.id, d.event, d.action, d.repository, d.received_at, d.sender
                 FROM deliveries d
                 WHERE (?1 IS NULL OR d.event = ?1)
                   AND (?2 = 0 OR EXISTS (SELECT 1 FROM jobs j WHERE j.delivery = d.seq AND j.state = 'failed'))
                   AND (?4 IS NULL OR d.repository = ?4)
                   AND (?5 IS NULL OR d.seq < ?5)
                   AND (?6 IS NULL OR d.seq = {seq_of_id})
                   AND (?7 = 0 OR {public})
                 ORDER BY d.seq DESC LIMIT ?3",
                seq_of_id = SEQ_OF_ID.replace("?1", "?6"),
                public = public_repository("d.repository"),
            ))?;
            let rows = statement.query_map(
                params![
                    filter.event,
                    filter.failed,
                    filter.limit as i64,
                    filter.repository,
                    filter.before,
                    filter.id,
                    filter.visibility.public_only(),
                ],
                |row| {
                    Ok(DeliveryRecord {
                        seq: row.get(0)?,
                        sender: row.get(6)?,
                        id: row.get(1)?,
                        event: row.get(2)?,
                        action: row.get(3)?,
                        repository: row.get(4)?,
                        received_at: row.get(5)?,
                        jobs: Vec::new(),
                    })
                },
            )?;
            let mut deliveries = rows.collect::<Result<Vec<_>, _>>()?;
            let mut jobs = conn.prepare_cached(&format!("{JOB_COLUMNS} WHERE j.delivery = ?1 ORDER BY j.id"))?;
            for delivery in &mut deliveries {
                delivery.jobs = jobs
                    .query_map([delivery.seq], job_record)?
                    .collect::<Result<Vec<_>, _>>()?;
            }
            Ok(deliveries)
        })
        .await
    }

    async fn ping(&self) -> Result<(), JournalError> {
        // An empty transaction commits without writing a byte, even on a full disk. So first
        // the space a delivery needs, in the journal's folder ...
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || probe_space(&dir))
            .await
            .map_err(|_| JournalError::Unavailable)?
            .map_err(|error| JournalError::Storage(error.to_string()))?;
        // ... then a write through the writer's batch, which puts a page in the WAL.
        self.write(|conn| {
            conn.prepare_cached(
                "INSERT INTO host_keys (name, value) VALUES ('readiness-probe', randomblob(16))
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )?
            .execute([])?;
            Ok(())
        })
        .await
    }

    async fn host_key(&self, name: &str) -> Result<Vec<u8>, JournalError> {
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(|error| JournalError::Random(error.to_string()))?;
        let name = name.to_owned();
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO host_keys (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
            )?
            .execute(params![name, &fresh[..]])?;
            let kept = conn
                .prepare_cached("SELECT value FROM host_keys WHERE name = ?1")?
                .query_row(params![name], |row| row.get(0))?;
            Ok(kept)
        })
        .await
    }

    async fn prune_jobs(
        &self,
        ended_before: &str,
        limit: usize,
    ) -> Result<Vec<JobId>, JournalError> {
        // Found on the reader, so the writer (and ingress behind it) never waits on the scan;
        // the delete re-checks that each job is still finished.
        let before = ended_before.to_owned();
        let found: Vec<i64> = self
            .read(move |conn| {
                let mut statement = conn.prepare_cached(
                    "SELECT id FROM jobs WHERE state IN ('succeeded', 'failed') AND finished_at < ?1
                     ORDER BY id LIMIT ?2",
                )?;
                let ids = statement
                    .query_map(params![before, limit as i64], |row| row.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok(ids)
            })
            .await?;
        if found.is_empty() {
            return Ok(Vec::new());
        }
        self.write(move |conn| {
            all_or_nothing(conn, || {
                let mut pruned = Vec::with_capacity(found.len());
                let mut locks = conn.prepare_cached("DELETE FROM locks WHERE job = ?1")?;
                let mut lines = conn.prepare_cached("DELETE FROM superseding WHERE job = ?1")?;
                let mut posts = conn.prepare_cached(
                    "DELETE FROM github_posts WHERE job = ?1 AND kind IN ('status', 'check_run')",
                )?;
                let mut delete = conn.prepare_cached(
                    "DELETE FROM jobs WHERE id = ?1 AND state IN ('succeeded', 'failed')",
                )?;
                for id in found {
                    locks.execute([id])?;
                    lines.execute([id])?;
                    if delete.execute([id])? == 1 {
                        posts.execute([id])?;
                        pruned.push(JobId(id));
                    }
                }
                Ok(pruned)
            })
        })
        .await
    }

    async fn prune_deliveries(
        &self,
        received_before: &str,
        limit: usize,
    ) -> Result<usize, JournalError> {
        let before = received_before.to_owned();
        let found: Vec<(i64, String)> = self
            .read(move |conn| {
                let mut statement = conn.prepare_cached(
                    "SELECT d.seq, d.id FROM deliveries d WHERE d.received_at < ?1
                     AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.delivery = d.seq)
                     ORDER BY d.seq LIMIT ?2",
                )?;
                let found = statement
                    .query_map(params![before, limit as i64], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?
                    .collect::<Result<_, _>>()?;
                Ok(found)
            })
            .await?;
        if found.is_empty() {
            return Ok(0);
        }
        self.write(move |conn| {
            // A delivery replayed since it was found has jobs again: it stays.
            let mut delete = conn.prepare_cached(
                "DELETE FROM deliveries WHERE seq = ?1
                 AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.delivery = ?1)",
            )?;
            all_or_nothing(conn, || {
                let mut pruned = 0;
                for (seq, id) in found {
                    if delete.execute([seq])? == 1 {
                        delivery_ids::remove(conn, &id, seq)?;
                        pruned += 1;
                    }
                }
                Ok(pruned)
            })
        })
        .await
    }

    async fn skip_job_ids_through(&self, job: JobId) -> Result<(), JournalError> {
        // AUTOINCREMENT gives ids above `sqlite_sequence`'s count, which the migration that
        // made ids monotonic left a row in.
        self.write(move |conn| {
            conn.prepare_cached(
                "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'jobs' AND seq < ?1",
            )?
            .execute([job.0])?;
            Ok(())
        })
        .await
    }

    async fn claim_nonce(&self, nonce: &str, until: u64, now: u64) -> Result<bool, JournalError> {
        let nonce = nonce.to_owned();
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM admin_nonces WHERE expires_at < ?1")?
                .execute([now as i64])?;
            let claimed = conn
                .prepare_cached(
                    "INSERT INTO admin_nonces (nonce, expires_at) VALUES (?1, ?2)
                     ON CONFLICT (nonce) DO NOTHING",
                )?
                .execute(params![nonce, until as i64])?;
            Ok(claimed == 1)
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

    async fn try_lock(&self, name: &str, job: JobId, attempt: u32) -> Result<bool, JournalError> {
        let name = name.to_owned();
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO locks (name, job, attempt, acquired_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO NOTHING",
            )?
            .execute(params![name, job.0, attempt, now_rfc3339()])?;
            let holder: (i64, u32) = conn
                .prepare_cached("SELECT job, attempt FROM locks WHERE name = ?1")?
                .query_row(params![name], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(holder == (job.0, attempt))
        })
        .await
    }

    async fn held_deliveries(&self, ids: Vec<String>) -> Result<HashSet<String>, JournalError> {
        self.read(move |conn| {
            let mut statement =
                conn.prepare_cached(&format!("SELECT 1 WHERE {SEQ_OF_ID} IS NOT NULL"))?;
            let mut held = HashSet::new();
            for id in ids {
                if statement.exists([&id])? {
                    held.insert(id);
                }
            }
            Ok(held)
        })
        .await
    }

    async fn catch_up_mark(&self, source: &str) -> Result<Option<i64>, JournalError> {
        let source = source.to_owned();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached("SELECT last_id FROM catch_up_marks WHERE source = ?1")?
                .query_row([&source], |row| row.get(0))
                .optional()?)
        })
        .await
    }

    async fn move_catch_up_mark(
        &self,
        source: &str,
        from: Option<i64>,
        to: i64,
    ) -> Result<bool, JournalError> {
        let source = source.to_owned();
        self.write(move |conn| {
            let moved = match from {
                None => conn
                    .prepare_cached(
                        "INSERT INTO catch_up_marks (source, last_id, updated_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (source) DO NOTHING",
                    )?
                    .execute(params![source, to, now_rfc3339()])?,
                Some(from) => conn
                    .prepare_cached(
                        "UPDATE catch_up_marks SET last_id = ?3, updated_at = ?4
                         WHERE source = ?1 AND last_id = ?2",
                    )?
                    .execute(params![source, from, to, now_rfc3339()])?,
            };
            Ok(moved == 1)
        })
        .await
    }

    async fn release_lock(&self, name: &str, job: JobId) -> Result<bool, JournalError> {
        let name = name.to_owned();
        self.write(move |conn| {
            let freed = conn
                .prepare_cached("DELETE FROM locks WHERE name = ?1 AND job = ?2")?
                .execute(params![name, job.0])?;
            Ok(freed == 1)
        })
        .await
    }

    async fn record_action(&self, action: NewAction) -> Result<i64, JournalError> {
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO audit (at, actor, action, delivery, job, lock, outcome)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                now_rfc3339(),
                action.actor,
                action.action,
                action.delivery,
                action.job.map(|job| job.0),
                action.lock,
                action.outcome
            ])?;
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    async fn actions(&self, filter: ActionFilter) -> Result<Vec<ActionRecord>, JournalError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT id, at, actor, action, delivery, job, lock, outcome FROM audit
                 WHERE (?1 IS NULL OR id = ?1)
                   AND (?2 IS NULL OR delivery = ?2)
                   AND (?3 IS NULL OR job = ?3)
                   AND (?4 IS NULL OR action = ?4)
                   AND (?6 = 0
                        OR EXISTS (SELECT 1 FROM jobs j JOIN deliveries d ON d.seq = j.delivery
                                   WHERE j.id = audit.job AND {public})
                        OR (audit.job IS NULL AND EXISTS (SELECT 1 FROM deliveries d
                                   WHERE d.seq = {seq_of_delivery} AND {public})))
                 ORDER BY id DESC LIMIT ?5",
                seq_of_delivery = SEQ_OF_ID.replace("?1", "audit.delivery"),
                public = public_repository("d.repository"),
            ))?;
            let rows = statement.query_map(
                params![
                    filter.id,
                    filter.delivery,
                    filter.job.map(|job| job.0),
                    filter.action,
                    filter.limit as i64,
                    filter.visibility.public_only(),
                ],
                |row| {
                    Ok(ActionRecord {
                        id: row.get(0)?,
                        at: row.get(1)?,
                        actor: row.get(2)?,
                        action: row.get(3)?,
                        delivery: row.get(4)?,
                        job: row.get::<_, Option<i64>>(5)?.map(JobId),
                        lock: row.get(6)?,
                        outcome: row.get(7)?,
                    })
                },
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn record_post(&self, post: GitHubPost) -> Result<(), JournalError> {
        self.write(move |conn| {
            // A deployment status names only its deployment: its sha and environment are the
            // deployment's, when a job posted that.
            conn.prepare_cached(
                "INSERT INTO github_posts
                     (job, at, kind, repository, sha, environment, deployment, state, context, url)
                 VALUES (?1, ?2, ?3, ?4,
                     coalesce(?5, (SELECT sha FROM github_posts WHERE kind = 'deployment'
                         AND repository = ?4 AND deployment = ?7 ORDER BY id DESC LIMIT 1)),
                     coalesce(?6, (SELECT environment FROM github_posts WHERE kind = 'deployment'
                         AND repository = ?4 AND deployment = ?7 ORDER BY id DESC LIMIT 1)),
                     ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                post.job.0,
                now_rfc3339(),
                post.kind,
                post.repository,
                post.sha,
                post.environment,
                post.deployment,
                post.state,
                post.context,
                post.url
            ])?;
            Ok(())
        })
        .await
    }

    async fn posts(&self, filter: PostFilter) -> Result<Vec<PostRecord>, JournalError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT id, at, job, kind, repository, sha, environment, deployment, state,
                        context, url
                 FROM github_posts
                 WHERE (?1 IS NULL OR job = ?1)
                   AND (?2 = 0 OR kind IN ('deployment', 'deployment_status'))
                   AND (?4 = 0 OR {public})
                 ORDER BY id DESC LIMIT ?3",
                public = public_repository("github_posts.repository"),
            ))?;
            let rows = statement.query_map(
                params![
                    filter.job.map(|job| job.0),
                    filter.deployments,
                    filter.limit as i64,
                    filter.visibility.public_only(),
                ],
                |row| {
                    Ok(PostRecord {
                        id: row.get(0)?,
                        at: row.get(1)?,
                        post: GitHubPost {
                            job: JobId(row.get(2)?),
                            kind: row.get(3)?,
                            repository: row.get(4)?,
                            sha: row.get(5)?,
                            environment: row.get(6)?,
                            deployment: row.get(7)?,
                            state: row.get(8)?,
                            context: row.get(9)?,
                            url: row.get(10)?,
                        },
                    })
                },
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn jobs(&self, filter: JobFilter) -> Result<Vec<JobRow>, JournalError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "{JOB_COLUMNS}
                 WHERE (?1 IS NULL OR j.id = ?1)
                   AND (?2 IS NULL OR j.state = ?2)
                   AND (?3 IS NULL OR j.plugin = ?3)
                   AND (?4 IS NULL OR d.repository = ?4)
                   AND (?5 IS NULL OR j.id < ?5)
                   AND (?7 = 0 OR {public})
                 ORDER BY j.id DESC LIMIT ?6",
                public = public_repository("d.repository"),
            ))?;
            let rows = statement.query_map(
                params![
                    filter.id.map(|id| id.0),
                    filter.state.map(JobState::as_str),
                    filter.plugin,
                    filter.repository,
                    filter.before.map(|id| id.0),
                    filter.limit as i64,
                    filter.visibility.public_only(),
                ],
                |row| {
                    Ok(JobRow {
                        job: job_record(row)?,
                        event: row.get(7)?,
                        action: row.get(8)?,
                        repository: row.get(9)?,
                        sender: row.get(10)?,
                        created_at: row.get(11)?,
                        started_at: row.get(12)?,
                        finished_at: row.get(13)?,
                    })
                },
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn job_counts(
        &self,
        since: &str,
        visibility: Visibility,
    ) -> Result<JobCounts, JournalError> {
        let since = since.to_owned();
        self.read(move |conn| {
            let mut counts = JobCounts::default();
            // Everything, as before, without a join; a visitor's counts join the filter.
            let (from, public) = match visibility {
                Visibility::All => ("jobs j".to_owned(), "1".to_owned()),
                Visibility::Public => (
                    "jobs j JOIN deliveries d ON d.seq = j.delivery".to_owned(),
                    public_repository("d.repository"),
                ),
            };
            let mut statement = conn.prepare_cached(&format!(
                "SELECT j.state, COUNT(*) FROM {from} WHERE {public} GROUP BY j.state"
            ))?;
            let rows = statement.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (state, count) = row?;
                let count = count as u64;
                match JobState::parse(&state) {
                    Some(JobState::Queued) => counts.queued = count,
                    Some(JobState::Running) => counts.running = count,
                    Some(JobState::Succeeded) => counts.succeeded = count,
                    Some(JobState::Failed) => counts.failed = count,
                    None => {}
                }
            }
            counts.failed_since =
                conn.prepare_cached(&format!(
                    "SELECT COUNT(*) FROM {from}
                     WHERE j.state = 'failed' AND j.finished_at >= ?1 AND {public}"
                ))?
                .query_row([since], |row| row.get::<_, i64>(0))? as u64;
            Ok(counts)
        })
        .await
    }

    async fn end_sessions(&self, name: &str, at: u64) -> Result<(), JournalError> {
        let name = name.to_owned();
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO session_ends (name, at) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET at = max(at, excluded.at)",
            )?
            .execute(params![name, at as i64])?;
            Ok(())
        })
        .await
    }

    async fn sessions_ended(&self, name: &str) -> Result<Option<u64>, JournalError> {
        let name = name.to_owned();
        self.read(move |conn| {
            let at = conn
                .prepare_cached("SELECT at FROM session_ends WHERE name = ?1")?
                .query_row([name], |row| row.get::<_, i64>(0))
                .optional()?;
            Ok(at.map(|at| at as u64))
        })
        .await
    }

    async fn locks(&self) -> Result<Vec<LockRecord>, JournalError> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT name, job, attempt, acquired_at FROM locks ORDER BY name",
            )?;
            let rows = statement.query_map([], |row| {
                Ok(LockRecord {
                    name: row.get(0)?,
                    job: JobId(row.get(1)?),
                    attempt: row.get(2)?,
                    acquired_at: row.get(3)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn job(&self, job: JobId) -> Result<JobRecord, JournalError> {
        self.read(move |conn| {
            conn.query_row(
                &format!("{JOB_COLUMNS} WHERE j.id = ?1"),
                [job.0],
                job_record,
            )
            .optional()?
            .ok_or(JournalError::NoSuchJob(job))
        })
        .await
    }

    async fn jobs_of(&self, delivery: &str) -> Result<Vec<JobRecord>, JournalError> {
        let delivery = delivery.to_owned();
        self.read(move |conn| {
            let mut statement = conn.prepare(&format!(
                "{JOB_COLUMNS} WHERE d.seq = {SEQ_OF_ID} ORDER BY j.id"
            ))?;
            let jobs = statement
                .query_map([delivery], job_record)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(jobs)
        })
        .await
    }
}

/// A job's record (columns 0..=6 and 14, read by `job_record`), then its delivery's facts and
/// its times (7..=13, read by `Journal::jobs`).
const JOB_COLUMNS: &str = "SELECT j.id, d.id, j.plugin, j.state, j.attempts, j.error, j.note,
            d.event, d.action, d.repository, d.sender, j.created_at, j.started_at, j.finished_at,
            j.link_salt
     FROM jobs j JOIN deliveries d ON d.seq = j.delivery";

fn job_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
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
fn stored_delivery(id: &str, row: &rusqlite::Row<'_>) -> Result<Delivery, JournalError> {
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

#[cfg(test)]
mod tests;
