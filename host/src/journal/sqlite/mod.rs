//! SQLite journal (WAL). One writer thread commits whatever arrived meanwhile in one
//! transaction, and a sync thread makes the commits durable, one fsync for many (see
//! [`writer`]); reads use a connection of their own so they never queue behind writes.
//!
//! Payloads are stored LZ4-compressed: GitHub's JSON shrinks about 4x, and disk bandwidth (each
//! byte is written to the WAL, then again by the checkpoint, both fsynced) is what bounds
//! durable ingress. Compression runs on the caller's task, not on the single writer thread.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use rusqlite::{Connection, params};

use super::{JobId, JournalError, LinkSalt, Place};
use crate::event::Delivery;
use delivery_ids::SEQ_OF_ID;
use migrations::migrate;
use writer::Writer;

mod audit;
mod delivery_ids;
mod deploys;
mod heads;
mod locks;
mod logs;
mod maintain;
mod marks;
mod migrations;
mod queue;
mod reads;
mod rows;
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
    place: &Place,
    plugins: &[String],
    salts: &[LinkSalt],
    rerun: bool,
) -> Result<Option<Vec<StoredJob>>, JournalError> {
    let seq = match (delivery_ids::seq_of(conn, delivery.id.as_str())?, rerun) {
        (Some(_), false) => return Ok(None),
        (Some(seq), true) => seq,
        (None, _) => {
            conn.prepare_cached(
                "INSERT INTO deliveries (id, event, action, repository, received_at, payload, sender, headers,
                                         pull_request, head_sha, git_ref)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
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
                place.pull_request,
                place.head_sha,
                place.git_ref,
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

#[cfg(test)]
mod tests;
