//! Small records other parts keep here: session ends, admin-call nonces, host keys, catch-up
//! marks.

use std::collections::HashSet;

use rusqlite::{OptionalExtension, params};

use super::{SEQ_OF_ID, SqliteJournal};
use crate::event::now_rfc3339;
use crate::journal::{CatchUpMarks, HostKeys, JournalError, Nonces, Sessions};

#[async_trait::async_trait]
impl Sessions for SqliteJournal {
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
}

#[async_trait::async_trait]
impl CatchUpMarks for SqliteJournal {
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
}

#[async_trait::async_trait]
impl Nonces for SqliteJournal {
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
}

#[async_trait::async_trait]
impl HostKeys for SqliteJournal {
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
}
