//! Upkeep: pruning by age, and the readiness check.

use rusqlite::params;

use super::{SqliteJournal, all_or_nothing, delivery_ids, probe_space};
use crate::journal::{Health, JobId, JournalError, Pruning};

#[async_trait::async_trait]
impl Pruning for SqliteJournal {
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
}

#[async_trait::async_trait]
impl Health for SqliteJournal {
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
}
