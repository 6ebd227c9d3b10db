//! Delivery ids, kept for dedupe (GitHub redelivers with the same id) in two levels, so that
//! random GUIDs cost no more than sequential ids.
//!
//! A unique index on random GUIDs puts each new id on a random leaf: nearly every delivery of a
//! batch dirties a 4 KB page of its own, written to the WAL and copied again by the checkpoint.
//! So new ids go to `recent_delivery_ids` in arrival order (appended, like the deliveries), and
//! the writer's connection indexes them in memory (a temporary table: undone with its
//! transaction like any other write, and never written to disk). Once [`MERGE_AT`] have
//! gathered, they are merged into `delivery_ids` in id order, a few with each following
//! delivery ([`MERGE_STEP`]) from a cursor: a leaf of the index takes the new ids that fall in
//! it at once, and no one transaction carries the whole merge (one that did made its batch wait
//! for a long fsync). A merged id stays in `recent_delivery_ids` until the merge ends; both
//! levels are looked up. The database is the record: the in-memory level is rebuilt from
//! `recent_delivery_ids` when the journal opens, and a merge cut short starts over.

use rusqlite::{Connection, OptionalExtension, params};

/// New ids gathered before a merge begins: the more there are for the index's leaves, the
/// fewer times each leaf is written. About 1 MB of the writer's memory. (Small in tests.)
const MERGE_AT: i64 = if cfg!(test) { 8 } else { 16_384 };

/// Ids merged with each new delivery while a merge runs: fast enough to end long before the
/// next one is due.
const MERGE_STEP: i64 = if cfg!(test) { 3 } else { 4 };

/// The sequence number of the delivery with id `?1`, if there is one (for readers, which see
/// both levels on disk).
pub(super) const SEQ_OF_ID: &str = "(SELECT seq FROM delivery_ids WHERE id = ?1
      UNION ALL SELECT seq FROM recent_delivery_ids WHERE id = ?1 LIMIT 1)";

/// Makes the writer connection's in-memory index of the recent ids not merged yet.
pub(super) fn open(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "PRAGMA temp_store = MEMORY;
         CREATE TEMP TABLE recent_ids (id TEXT PRIMARY KEY, seq INTEGER NOT NULL) WITHOUT ROWID;
         -- The merge under way, if any: ids up to `up_to` move, in id order after `cursor`.
         CREATE TEMP TABLE merging (cursor TEXT NOT NULL, up_to INTEGER NOT NULL);
         INSERT INTO temp.recent_ids SELECT r.id, r.seq FROM main.recent_delivery_ids r
             WHERE NOT EXISTS (SELECT 1 FROM main.delivery_ids d WHERE d.id = r.id);",
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

/// Records the id of the delivery just stored as `seq`, and takes the merge a step further.
pub(super) fn add(conn: &Connection, id: &str, seq: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO main.recent_delivery_ids (seq, id) VALUES (?1, ?2)")?
        .execute(params![seq, id])?;
    conn.prepare_cached("INSERT INTO temp.recent_ids (id, seq) VALUES (?1, ?2)")?
        .execute(params![id, seq])?;
    let merging: Option<(String, i64)> = conn
        .prepare_cached("SELECT cursor, up_to FROM temp.merging")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    match merging {
        Some((cursor, up_to)) => merge_step(conn, &cursor, up_to),
        None => {
            let oldest: i64 = conn
                .prepare_cached("SELECT min(seq) FROM main.recent_delivery_ids")?
                .query_row([], |row| row.get(0))?;
            if seq - oldest + 1 >= MERGE_AT {
                conn.prepare_cached("INSERT INTO temp.merging (cursor, up_to) VALUES ('', ?1)")?
                    .execute([seq])?;
                merge_step(conn, "", seq)?;
            }
            Ok(())
        }
    }
}

/// Moves the next [`MERGE_STEP`] ids of the merge into `delivery_ids`; past the last, ends it.
fn merge_step(conn: &Connection, cursor: &str, up_to: i64) -> rusqlite::Result<()> {
    let next: Vec<(String, i64)> = conn
        .prepare_cached(
            "SELECT id, seq FROM temp.recent_ids WHERE id > ?1 AND seq <= ?2 ORDER BY id LIMIT ?3",
        )?
        .query_map(params![cursor, up_to, MERGE_STEP], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let Some((last, _)) = next.last() else {
        // All moved: the disk's recent level forgets them, and the merge is over.
        conn.prepare_cached("DELETE FROM main.recent_delivery_ids WHERE seq <= ?1")?
            .execute([up_to])?;
        conn.prepare_cached("DELETE FROM temp.merging")?
            .execute([])?;
        return Ok(());
    };
    let mut insert =
        conn.prepare_cached("INSERT INTO main.delivery_ids (id, seq) VALUES (?1, ?2)")?;
    let mut forget = conn.prepare_cached("DELETE FROM temp.recent_ids WHERE id = ?1")?;
    for (id, seq) in &next {
        insert.execute(params![id, seq])?;
        forget.execute([id])?;
    }
    conn.prepare_cached("UPDATE temp.merging SET cursor = ?1")?
        .execute([last])?;
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
