//! Delivery ids, kept for dedupe (GitHub redelivers with the same id) in two levels, so that
//! random GUIDs cost no more than sequential ids.
//!
//! A unique index on random GUIDs puts each new id on a random leaf: nearly every delivery of a
//! batch dirties a 4 KB page of its own, written to the WAL and copied again by the checkpoint.
//! So new ids go to `recent_delivery_ids` in arrival order (appended, like the deliveries), and
//! the writer's connection indexes them in memory (a temporary table: undone with its
//! transaction like any other write, and never written to disk). Every [`MERGE_AT`] deliveries
//! they are merged into `delivery_ids` in one go, in id order, so a leaf takes all of its new ids
//! at once. Both levels are looked up; the database stays the record, and the in-memory level
//! is rebuilt from `recent_delivery_ids` when the journal opens.

use rusqlite::{Connection, OptionalExtension, params};

/// New ids held in the recent level before they are merged: the merge's size, and at most
/// about 0.3 MB of the writer's memory. (Small in tests, so that they merge.)
const MERGE_AT: i64 = if cfg!(test) { 8 } else { 4096 };

/// The sequence number of the delivery with id `?1`, if there is one (for readers, which see
/// both levels on disk).
pub(super) const SEQ_OF_ID: &str = "(SELECT seq FROM delivery_ids WHERE id = ?1
      UNION ALL SELECT seq FROM recent_delivery_ids WHERE id = ?1 LIMIT 1)";

/// Makes the writer connection's in-memory index of the recent ids.
pub(super) fn open(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "PRAGMA temp_store = MEMORY;
         CREATE TEMP TABLE recent_ids (id TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
         INSERT INTO temp.recent_ids SELECT id, seq FROM main.recent_delivery_ids;",
    )
}

/// The sequence number of the delivery with id `id`, on the writer's connection.
pub(super) fn seq_of(conn: &Connection, id: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached(
        "SELECT seq FROM temp.recent_ids WHERE id = ?1
         UNION ALL SELECT seq FROM main.delivery_ids WHERE id = ?1 LIMIT 1",
    )?
    .query_row([id], |row| row.get(0))
    .optional()
}

/// Records the id of the delivery just stored as `seq`, merging the recent level when full.
pub(super) fn add(conn: &Connection, id: &str, seq: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO main.recent_delivery_ids (seq, id) VALUES (?1, ?2)")?
        .execute(params![seq, id])?;
    conn.prepare_cached("INSERT INTO temp.recent_ids (id, seq) VALUES (?1, ?2)")?
        .execute(params![id, seq])?;
    let oldest: i64 = conn
        .prepare_cached("SELECT min(seq) FROM main.recent_delivery_ids")?
        .query_row([], |row| row.get(0))?;
    if seq - oldest + 1 >= MERGE_AT {
        merge(conn)?;
    }
    Ok(())
}

/// Moves the recent ids into `delivery_ids`, read in id order from the in-memory index.
fn merge(conn: &Connection) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO main.delivery_ids (id, seq) SELECT id, seq FROM temp.recent_ids",
    )?
    .execute([])?;
    conn.prepare_cached("DELETE FROM main.recent_delivery_ids")?
        .execute([])?;
    conn.prepare_cached("DELETE FROM temp.recent_ids")?
        .execute([])?;
    Ok(())
}

/// Forgets the id of a pruned delivery, wherever it is.
pub(super) fn remove(conn: &Connection, id: &str, seq: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM main.delivery_ids WHERE id = ?1")?
        .execute([id])?;
    conn.prepare_cached("DELETE FROM main.recent_delivery_ids WHERE seq = ?1")?
        .execute([seq])?;
    conn.prepare_cached("DELETE FROM temp.recent_ids WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}
