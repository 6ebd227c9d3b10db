//! Small records other parts keep here: session ends, admin-call nonces, host keys, catch-up
//! marks.

use super::PostgresJournal;
use crate::event::now_rfc3339;
use crate::journal::{CatchUpMarks, HostKeys, JournalError, Nonces, Sessions};

#[async_trait::async_trait]
impl Sessions for PostgresJournal {
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
}

#[async_trait::async_trait]
impl CatchUpMarks for PostgresJournal {
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
}

#[async_trait::async_trait]
impl Nonces for PostgresJournal {
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
}

#[async_trait::async_trait]
impl HostKeys for PostgresJournal {
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
}
