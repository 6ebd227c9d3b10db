//! The journal's one writer, and the sync that makes its commits durable.
//!
//! One thread owns the write connection and commits whatever arrived meanwhile in one
//! transaction (group commit). The commit itself does not fsync (`synchronous = NORMAL`): a
//! second thread syncs the WAL and only then answers the batch's durable writes, while the
//! writer already runs the next batch. So a write never waits for an fsync that is not its
//! own, and one fsync covers every batch committed while the one before it ran. Starting a job
//! (which does not wait for durability) then takes the time of a statement, not of an fsync.
//!
//! Why this keeps a `202` durable: in WAL mode a transaction survives power loss once its
//! frames, commit frame included, are on disk, and the WAL is only appended to, synced before
//! every checkpoint copies it and its header synced before it is reused (SQLite's own rules
//! for `synchronous = NORMAL`). Syncing the WAL file after the commit returned puts everything
//! committed so far on disk; what a power loss takes is a suffix of commits none of which was
//! answered yet. A process crash loses nothing committed, as before: the kernel has the pages.

use std::{
    fs::File,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::journal::JournalError;

/// Most operations committed in one transaction; bounds a batch's latency.
const MAX_BATCH: usize = 512;

/// Committed batches waiting for their sync at most; past it the writer waits for the sync.
const MAX_UNSYNCED_BATCHES: usize = 64;

/// Least time between two background checkpoints: each costs two fsyncs, whatever it copies.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(20);

/// One write, run inside the batch's transaction; it returns what to do once the batch's fate
/// (durable or not) is known. Given `Err` instead of the connection, it answers with that
/// error without running: the journal refuses every write once a sync has failed.
type Write = Box<dyn FnOnce(Result<&Connection, JournalError>) -> Completion + Send>;
type Completion = Box<dyn FnOnce(Result<(), JournalError>) + Send>;

/// Makes the journal's committed writes durable: syncs its WAL file.
pub(super) type Sync = Box<dyn FnMut() -> std::io::Result<()> + Send>;

/// The syncing of the journal at `path` (its WAL file, which WAL mode keeps while the journal
/// is open).
pub(super) fn sync_wal(path: &Path) -> std::io::Result<Sync> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(wal)?;
    Ok(Box::new(move || wal.sync_data()))
}

/// The queue into the writer thread. Cheap to clone.
#[derive(Clone)]
pub(super) struct Writer {
    writes: mpsc::Sender<Write>,
}

impl Writer {
    /// Starts the writer thread on `conn`, its sync thread, and the background checkpoints
    /// on `checkpointer`.
    pub(super) fn start(
        conn: Connection,
        sync: Sync,
        checkpointer: Connection,
    ) -> std::io::Result<Self> {
        let (synced, checkpoint) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("journal-checkpoint".to_owned())
            .spawn(move || checkpoint_after_syncs(checkpointer, checkpoint))?;
        let broken = Arc::new(AtomicBool::new(false));
        let (committed, to_sync) = std::sync::mpsc::sync_channel(MAX_UNSYNCED_BATCHES);
        let sync_broken = Arc::clone(&broken);
        std::thread::Builder::new()
            .name("journal-sync".to_owned())
            .spawn(move || sync_commits(sync, to_sync, synced, &sync_broken))?;
        let (writes, queue) = mpsc::channel(4 * MAX_BATCH);
        std::thread::Builder::new()
            .name("journal-writer".to_owned())
            .spawn(move || write_batches(conn, queue, committed, &broken))?;
        Ok(Self { writes })
    }

    /// Queues a write for the next batch and waits until that batch is committed and synced.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let (reply, answer) = oneshot::channel();
        let write: Write = Box::new(move |conn| {
            let result = conn.and_then(write);
            Box::new(move |durable| {
                let _ = reply.send(durable.and(result));
            })
        });
        self.writes
            .send(write)
            .await
            .map_err(|_| JournalError::Unavailable)?;
        answer.await.map_err(|_| JournalError::Unavailable)?
    }

    /// Queues a write and answers as soon as it has run inside its batch's transaction, without
    /// waiting for the commit or its sync. Only for writes whose loss in a crash costs nothing
    /// but doing work again; if the batch fails to commit, the write is undone with it.
    pub(super) async fn write_uncommitted<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let (reply, answer) = oneshot::channel();
        let write: Write = Box::new(move |conn| {
            let _ = reply.send(conn.and_then(write));
            Box::new(|_durable| {})
        });
        self.writes
            .send(write)
            .await
            .map_err(|_| JournalError::Unavailable)?;
        answer.await.map_err(|_| JournalError::Unavailable)?
    }

    /// Waits until everything committed before it is durable.
    pub(super) async fn synced(&self) -> Result<(), JournalError> {
        self.write(|_| Ok(())).await
    }
}

/// The writer thread: take everything queued, run it in one transaction, commit, and hand the
/// batch's answers to the sync thread.
fn write_batches(
    conn: Connection,
    mut queue: mpsc::Receiver<Write>,
    committed: std::sync::mpsc::SyncSender<Vec<Completion>>,
    broken: &AtomicBool,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.blocking_recv_many(&mut batch, MAX_BATCH) > 0 {
        // Once a sync failed, no write runs: what the disk kept is unknown, and a write that
        // answers before its commit (a job's start) would otherwise set a job going that the
        // journal never records, to run again after the restart.
        if broken.load(Ordering::Acquire) {
            for write in batch.drain(..) {
                write(Err(sync_failed()))(Err(sync_failed()));
            }
            continue;
        }
        let completions: Result<Vec<Completion>, rusqlite::Error> = (|| {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let completions = batch.drain(..).map(|write| write(Ok(&conn))).collect();
            Ok(completions)
        })();
        let completions = match completions {
            Ok(completions) => completions,
            Err(error) => {
                tracing::error!(
                    error = error.to_string(),
                    "journal cannot begin a transaction"
                );
                // The writes are dropped unrun; their callers get `Unavailable`.
                batch.clear();
                continue;
            }
        };
        // A sync that failed while this batch ran: nothing more is committed.
        let commit = if broken.load(Ordering::Acquire) {
            Err(sync_failed())
        } else {
            conn.execute_batch("COMMIT").map_err(JournalError::from)
        };
        match commit {
            Ok(()) => {
                if committed.send(completions).is_err() {
                    return;
                }
            }
            Err(error) => {
                if !broken.load(Ordering::Acquire) {
                    tracing::error!(error = error.to_string(), "journal commit failed");
                }
                let _ = conn.execute_batch("ROLLBACK");
                for completion in completions {
                    completion(Err(error.clone()));
                }
            }
        }
    }
}

fn sync_failed() -> JournalError {
    JournalError::Storage(
        "the journal's disk failed to sync a commit, so what it kept is unknown; \
         writes are refused until the host is restarted (see the log for the error)"
            .to_owned(),
    )
}

/// The sync thread: sync the WAL once for every batch committed meanwhile, then answer them.
/// A failed sync is not tried again: the kernel may have dropped the pages it could not write
/// (and a later sync would succeed without them), so the journal refuses writes from then on.
fn sync_commits(
    mut sync: Sync,
    to_sync: std::sync::mpsc::Receiver<Vec<Completion>>,
    synced: std::sync::mpsc::SyncSender<()>,
    broken: &AtomicBool,
) {
    while let Ok(first) = to_sync.recv() {
        let mut batches = vec![first];
        batches.extend(to_sync.try_iter());
        let durable = if broken.load(Ordering::Acquire) {
            Err(sync_failed())
        } else {
            sync().map_err(|error| {
                tracing::error!(
                    error = error.to_string(),
                    "journal sync failed; refusing writes until restarted"
                );
                broken.store(true, Ordering::Release);
                sync_failed()
            })
        };
        if durable.is_ok() {
            // Full: the checkpointer has a sync to look at already.
            let _ = synced.try_send(());
        }
        for completion in batches.into_iter().flatten() {
            completion(durable.clone());
        }
    }
}

/// Copies synced pages from the WAL into the database file on a thread and connection of its
/// own, so that the writer, whose transactions every delivery waits for, does not. The writer
/// keeps SQLite's automatic checkpoint too: it then finds little left to copy, and a checkpoint
/// that ends right after a commit is what lets the next transaction start the WAL over.
fn checkpoint_after_syncs(conn: Connection, syncs: std::sync::mpsc::Receiver<()>) {
    while syncs.recv().is_ok() {
        if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(
                error = error.to_string(),
                "background journal checkpoint failed; the writer's own checkpoints catch up"
            );
        }
        std::thread::sleep(CHECKPOINT_INTERVAL);
    }
}
