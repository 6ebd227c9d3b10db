//! What people did on the dashboard, and what jobs posted to GitHub.

use rusqlite::params;

use super::{SEQ_OF_ID, SqliteJournal};
use crate::event::now_rfc3339;
use crate::journal::rows::{action_record, post_record};
use crate::journal::{
    ActionFilter, ActionRecord, AuditTrail, GitHubPost, JournalError, NewAction, PostFilter,
    PostLog, PostRecord,
};

#[async_trait::async_trait]
impl AuditTrail for SqliteJournal {
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
                public = filter.visibility.condition("d.repository"),
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
                |row| action_record(row),
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

#[async_trait::async_trait]
impl PostLog for SqliteJournal {
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
                public = filter.visibility.condition("github_posts.repository"),
            ))?;
            let rows = statement.query_map(
                params![
                    filter.job.map(|job| job.0),
                    filter.deployments,
                    filter.limit as i64,
                    filter.visibility.public_only(),
                ],
                |row| post_record(row),
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
