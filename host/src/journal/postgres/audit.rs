//! What people did on the dashboard, and what jobs posted to GitHub.

use super::PostgresJournal;
use crate::event::now_rfc3339;
use crate::journal::rows::{action_record, post_record};
use crate::journal::{
    ActionFilter, ActionRecord, AuditTrail, GitHubPost, JournalError, NewAction, PostFilter,
    PostLog, PostRecord,
};

#[async_trait::async_trait]
impl AuditTrail for PostgresJournal {
    async fn record_action(&self, action: NewAction) -> Result<i64, JournalError> {
        let rows = self
            .query(
                "INSERT INTO audit (at, actor, action, delivery, job, lock, outcome)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &[
                    &now_rfc3339(),
                    &action.actor,
                    &action.action,
                    &action.delivery,
                    &action.job.map(|job| job.0),
                    &action.lock,
                    &action.outcome,
                ],
            )
            .await?;
        Ok(rows[0].get(0))
    }

    async fn actions(&self, filter: ActionFilter) -> Result<Vec<ActionRecord>, JournalError> {
        let rows = self
            .query(
                &format!(
                    "SELECT id, at, actor, action, delivery, job, lock, outcome FROM audit
                 WHERE ($1::bigint IS NULL OR id = $1)
                   AND ($2::text IS NULL OR delivery = $2)
                   AND ($3::bigint IS NULL OR job = $3)
                   AND ($4::text IS NULL OR action = $4)
                   AND (NOT $6
                        OR EXISTS (SELECT 1 FROM jobs j JOIN deliveries d ON d.seq = j.delivery
                                   WHERE j.id = audit.job AND {public})
                        OR (audit.job IS NULL AND EXISTS (SELECT 1 FROM deliveries d
                                   WHERE d.id = audit.delivery AND {public})))
                 ORDER BY id DESC LIMIT $5",
                    public = filter.visibility.condition("d.repository"),
                ),
                &[
                    &filter.id,
                    &filter.delivery,
                    &filter.job.map(|job| job.0),
                    &filter.action,
                    &(filter.limit as i64),
                    &filter.visibility.public_only(),
                ],
            )
            .await?;
        rows.iter().map(action_record).collect()
    }
}

#[async_trait::async_trait]
impl PostLog for PostgresJournal {
    async fn record_post(&self, post: GitHubPost) -> Result<(), JournalError> {
        // A deployment status names only its deployment: its sha and environment are the
        // deployment's, when a job posted that.
        self.execute(
            "INSERT INTO github_posts
                 (job, at, kind, repository, sha, environment, deployment, state, context, url)
             VALUES ($1, $2, $3, $4,
                 coalesce($5, (SELECT sha FROM github_posts WHERE kind = 'deployment'
                     AND repository = $4 AND deployment = $7 ORDER BY id DESC LIMIT 1)),
                 coalesce($6, (SELECT environment FROM github_posts WHERE kind = 'deployment'
                     AND repository = $4 AND deployment = $7 ORDER BY id DESC LIMIT 1)),
                 $7, $8, $9, $10)",
            &[
                &post.job.0,
                &now_rfc3339(),
                &post.kind,
                &post.repository,
                &post.sha,
                &post.environment,
                &post.deployment,
                &post.state,
                &post.context,
                &post.url,
            ],
        )
        .await
        .map(drop)
    }

    async fn posts(&self, filter: PostFilter) -> Result<Vec<PostRecord>, JournalError> {
        let rows = self
            .query(
                &format!(
                    "SELECT id, at, job, kind, repository, sha, environment, deployment, state,
                        context, url
                 FROM github_posts
                 WHERE ($1::bigint IS NULL OR job = $1)
                   AND (NOT $2 OR kind IN ('deployment', 'deployment_status'))
                   AND (NOT $4 OR {public})
                 ORDER BY id DESC LIMIT $3",
                    public = filter.visibility.condition("github_posts.repository"),
                ),
                &[
                    &filter.job.map(|job| job.0),
                    &filter.deployments,
                    &(filter.limit as i64),
                    &filter.visibility.public_only(),
                ],
            )
            .await?;
        rows.iter().map(post_record).collect()
    }
}
