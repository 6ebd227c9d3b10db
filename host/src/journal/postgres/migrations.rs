//! The PostgreSQL schema: versioned migrations, applied once under an advisory lock however
//! many hosts start at once.

use deadpool_postgres::Pool;

use super::connect::{PostgresSettings, connect_pool, pool_error};
use crate::journal::JournalError;

/// Versioned migrations: `schema_migrations` holds one row per version applied (1-based).
/// Only ever append; a migration must leave the schema usable by the previous release, so
/// hosts of two versions can share the database during an upgrade.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE deliveries (
    seq         BIGSERIAL PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    event       TEXT NOT NULL,
    action      TEXT,
    repository  TEXT,
    sender      TEXT,
    received_at TEXT NOT NULL,
    -- LZ4 block with its uncompressed size prepended, as on SQLite.
    payload     BYTEA NOT NULL
);
CREATE INDEX deliveries_received ON deliveries (received_at);
CREATE TABLE jobs (
    id          BIGSERIAL PRIMARY KEY,
    delivery    BIGINT NOT NULL REFERENCES deliveries (seq),
    plugin      TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    note        TEXT,
    created_at  TEXT NOT NULL,
    started_at  TEXT,
    finished_at TEXT,
    -- A retry's backoff, in Unix milliseconds.
    not_before  BIGINT,
    -- While running: until when the attempt's host holds it (the database's clock).
    lease_until TIMESTAMPTZ
);
CREATE INDEX jobs_by_delivery ON jobs (delivery);
CREATE INDEX jobs_queued ON jobs (id) WHERE state = 'queued';
CREATE INDEX jobs_running ON jobs (lease_until) WHERE state = 'running';
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state IN ('succeeded', 'failed');
CREATE TABLE locks (
    name        TEXT PRIMARY KEY,
    job         BIGINT NOT NULL,
    attempt     INTEGER NOT NULL,
    acquired_at TEXT NOT NULL
);
CREATE INDEX locks_by_job ON locks (job);
CREATE TABLE host_keys (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
CREATE TABLE admin_nonces (
    nonce      TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE TABLE job_logs (
    job  BIGINT NOT NULL,
    n    BIGINT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (job, n)
);
"#,
    r#"
-- The request's headers as received, signatures masked: a JSON array of [name, value] pairs
-- (NULL for deliveries stored before), for the dashboard.
ALTER TABLE deliveries ADD COLUMN headers TEXT;
"#,
    r#"
-- A cancellation asked for (a CancelReason as JSON), told to the job's next or current attempt.
ALTER TABLE jobs ADD COLUMN cancel_reason TEXT;
-- The latest job of each plugin's line (a pull request, a branch): older ones are superseded.
CREATE TABLE superseding (
    line TEXT PRIMARY KEY,
    job  BIGINT NOT NULL,
    sha  TEXT NOT NULL
);
CREATE INDEX superseding_by_job ON superseding (job);
-- The dashboard's audit trail: who (the token's name) did what (replay, cancel, release) to
-- which delivery, job or lock, when, and what came of it. Kept when jobs are pruned.
CREATE TABLE audit (
    id       BIGSERIAL PRIMARY KEY,
    at       TEXT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    delivery TEXT,
    job      BIGINT,
    lock     TEXT,
    outcome  TEXT NOT NULL
);
CREATE INDEX audit_by_delivery ON audit (delivery);
CREATE INDEX audit_by_job ON audit (job);
-- What jobs posted to GitHub through the host (statuses, check runs, deployments and their
-- statuses), for the dashboard. Statuses and check runs go with their jobs when pruned;
-- deployments stay, as what is deployed.
CREATE TABLE github_posts (
    id          BIGSERIAL PRIMARY KEY,
    job         BIGINT NOT NULL,
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    repository  TEXT NOT NULL,
    sha         TEXT,
    environment TEXT,
    deployment  BIGINT,
    state       TEXT,
    context     TEXT,
    url         TEXT
);
CREATE INDEX github_posts_by_job ON github_posts (job);
CREATE INDEX github_posts_by_kind ON github_posts (kind, id);
-- How far catching up missed deliveries got, per webhook: GitHub's largest delivery id dealt
-- with. Hosts sharing the database move it with compare-and-set, so one of them does a round.
CREATE TABLE catch_up_marks (
    source     TEXT PRIMARY KEY,
    last_id    BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);
"#,
    r#"
-- Random bytes made with each job, signed into its log link with its id, so that a link opens
-- that job's log alone (as on SQLite). NULL for jobs stored before: their links stay as they were.
ALTER TABLE jobs ADD COLUMN link_salt BYTEA;
"#,
    r#"
-- Attempts a graceful shutdown interrupted and handed back, of `attempts`: they count toward
-- `[workers] max_interruptions`, not toward the plugin's `max_attempts`.
ALTER TABLE jobs ADD COLUMN interruptions INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
-- Each repository's visibility as its newest delivery (largest seq) said it (`repository.private`):
-- what a `public-read` dashboard shows visitors. Unknown until a delivery after this migration.
CREATE TABLE repositories (
    name    TEXT PRIMARY KEY,
    private BOOLEAN NOT NULL,
    seq     BIGINT NOT NULL
);
-- A person's dashboard sessions begun at or before `at` (Unix ms) are over: their sign-out.
CREATE TABLE session_ends (
    name TEXT PRIMARY KEY,
    at   BIGINT NOT NULL
);
"#,
    r#"
-- Where each chunk of a job log stands, so that an append, a window of lines and a line's place
-- cost the same at any length of the log: the offset of its first byte, the newlines before it
-- and in it, and when it was written (Unix ms; NULL for chunks written before). A trigger sets
-- them from the chunk before (a host of the previous release appends without them).
ALTER TABLE job_logs
    ADD COLUMN start      BIGINT,
    ADD COLUMN line       BIGINT,
    ADD COLUMN newlines   BIGINT,
    ADD COLUMN written_ms BIGINT;
UPDATE job_logs SET newlines =
    length(encode(data, 'escape')) - length(replace(encode(data, 'escape'), E'\n', ''));
UPDATE job_logs SET start = placed.start, line = placed.line
FROM (
    SELECT job, n,
           sum(octet_length(data)) OVER earlier - octet_length(data) AS start,
           sum(newlines) OVER earlier - newlines AS line
    FROM job_logs
    WINDOW earlier AS (PARTITION BY job ORDER BY n)
) placed
WHERE job_logs.job = placed.job AND job_logs.n = placed.n;
CREATE INDEX job_logs_by_start ON job_logs (job, start);
CREATE INDEX job_logs_by_line ON job_logs (job, line, n);
CREATE FUNCTION job_logs_place() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Escaped, a chunk's bytes are text in which only its newlines are newlines.
    NEW.newlines := length(encode(NEW.data, 'escape'))
        - length(replace(encode(NEW.data, 'escape'), E'\n', ''));
    SELECT before.start + octet_length(before.data), before.line + before.newlines
        INTO NEW.start, NEW.line
        FROM job_logs before WHERE before.job = NEW.job AND before.n = NEW.n - 1;
    NEW.start := coalesce(NEW.start, 0);
    NEW.line := coalesce(NEW.line, 0);
    NEW.written_ms := coalesce(
        NEW.written_ms, (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
    RETURN NEW;
END
$$;
CREATE TRIGGER job_logs_place BEFORE INSERT ON job_logs
    FOR EACH ROW EXECUTE FUNCTION job_logs_place();
"#,
    r#"
-- What the job's work came to (passed, failed, errored, timed_out, cancelled, skipped), set
-- with its end; NULL while it runs and for jobs that ended before verdicts were recorded.
ALTER TABLE jobs ADD COLUMN verdict TEXT;
"#,
    r#"
-- Where each delivery points (see `journal/place.rs`), read from its payload as it is stored:
-- the dashboard's repository, pull request and commit pages and its search find deliveries by
-- these. NULL for deliveries stored before: their payloads are compressed, which SQL cannot read.
ALTER TABLE deliveries ADD COLUMN pull_request BIGINT;
ALTER TABLE deliveries ADD COLUMN head_sha TEXT;
ALTER TABLE deliveries ADD COLUMN git_ref TEXT;
CREATE INDEX deliveries_by_repository ON deliveries (repository, seq);
-- By number first: search finds a pull request's number in every repository.
CREATE INDEX deliveries_by_pull_request ON deliveries (pull_request, repository, seq)
    WHERE pull_request IS NOT NULL;
-- In bytes' order whatever the database's collation: a sha prefix is the range from it to it
-- followed by `g` (past every hex digit).
CREATE INDEX deliveries_by_sha ON deliveries ((head_sha COLLATE "C"))
    WHERE head_sha IS NOT NULL;
"#,
    r#"
-- Heads of pull requests from forks: seen arriving (approved_by NULL) or approved by a
-- maintainer's /ok-to-test (the person, `github:12345 (mona)`), with the job recording each.
CREATE TABLE pull_request_heads (
    id          BIGSERIAL PRIMARY KEY,
    repository  TEXT NOT NULL,
    number      BIGINT NOT NULL,
    sha         TEXT NOT NULL,
    job         BIGINT NOT NULL,
    approved_by TEXT,
    at          TEXT NOT NULL
);
CREATE INDEX pull_request_heads_by_number ON pull_request_heads (repository, number, id);
"#,
    r#"
-- Deploys people drive (the deployer's sticky locks and the deployments this host created):
-- kept apart from jobs, so retention never prunes them. A person is `github:12345`, with the
-- login beside it for display.
CREATE TABLE sticky_locks (
    repository  TEXT NOT NULL,
    environment TEXT NOT NULL,
    owner       TEXT NOT NULL,
    owner_login TEXT NOT NULL,
    reason      TEXT NOT NULL,
    at          TEXT NOT NULL,
    PRIMARY KEY (repository, environment)
);
CREATE TABLE deploy_records (
    repository    TEXT NOT NULL,
    deployment_id BIGINT NOT NULL,
    environment   TEXT NOT NULL,
    sha           TEXT NOT NULL,
    requested_by  TEXT NOT NULL,
    requested_login TEXT NOT NULL,
    forced        BIGINT NOT NULL,
    is_rollback   BIGINT NOT NULL,
    at            TEXT NOT NULL,
    PRIMARY KEY (repository, deployment_id)
);
-- Automatic deploys claimed, one per environment and sha: several green events (on several
-- hosts) create one deployment.
CREATE TABLE deploy_claims (
    repository  TEXT NOT NULL,
    environment TEXT NOT NULL,
    sha         TEXT NOT NULL,
    at          TEXT NOT NULL,
    PRIMARY KEY (repository, environment, sha)
);
-- Deploys that succeeded, newest last: what is deployed where, and what `/rollback` goes back to.
CREATE TABLE deploy_successes (
    id            BIGSERIAL PRIMARY KEY,
    repository    TEXT NOT NULL,
    environment   TEXT NOT NULL,
    deployment_id BIGINT NOT NULL,
    sha           TEXT NOT NULL,
    deployed_for  TEXT NOT NULL,
    pull_request  BIGINT,
    at            TEXT NOT NULL
);
CREATE INDEX deploy_successes_by_environment ON deploy_successes (repository, environment, id);
"#,
];

/// The advisory lock migrations run under (any constant; "swyd" in ASCII).
const MIGRATION_LOCK: i64 = 0x7377_7964;

/// Applies the migrations not yet applied, one transaction under an advisory lock: a host that
/// starts while another migrates waits, then finds nothing left to do. Returns the version
/// found and the version now.
pub(super) async fn migrate(pool: &Pool) -> Result<(u32, u32), JournalError> {
    let mut client = pool.get().await.map_err(pool_error)?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await?;
    let found: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .get(0);
    let known = MIGRATIONS.len() as i32;
    if found > known {
        // A newer host migrated: every migration keeps the previous release working, so this
        // one runs, but it says so.
        tracing::warn!(
            found,
            known,
            "the journal database's schema is newer than this build knows; upgrade this host"
        );
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tx.batch_execute(migration).await?;
        let version = index as i32 + 1;
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await?;
    }
    tx.commit().await?;
    Ok((found as u32, known.max(found) as u32))
}

/// `switchyard migrate` and `switchyard check`: connects, migrates if `apply`, and returns the
/// schema version found and the one the database is at afterwards.
pub async fn migrate_only(
    settings: &PostgresSettings,
    apply: bool,
) -> Result<(u32, u32), JournalError> {
    let (pool, _, _) = connect_pool(settings)?;
    if apply {
        return migrate(&pool).await;
    }
    let client = pool.get().await.map_err(pool_error)?;
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .await?
        .get(0);
    let found: i32 = match exists {
        true => client
            .query_one(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                &[],
            )
            .await?
            .get(0),
        false => 0,
    };
    Ok((found as u32, found as u32))
}

/// The schema version this build migrates to.
pub fn schema_version() -> u32 {
    MIGRATIONS.len() as u32
}

#[cfg(test)]
mod tests {
    use super::MIGRATIONS;

    #[tokio::test]
    async fn chunks_stored_before_their_places_were_kept_are_placed_by_the_migration() {
        let Some(server) = switchyard_testkit::TestPostgres::get() else {
            return;
        };
        let url = server.database();
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let placing = MIGRATIONS
            .iter()
            .position(|m| m.contains("job_logs_place"))
            .unwrap();
        for migration in &MIGRATIONS[..placing] {
            client.batch_execute(migration).await.unwrap();
        }
        let insert = "INSERT INTO job_logs (job, n, data) VALUES ($1, $2, $3)";
        // (job, n, data) as a host of the previous release appends them
        let old: [(i64, i64, &str); 3] = [(1, 0, "a\nbb\n"), (1, 1, "ccc"), (2, 0, "x\n")];
        for (job, n, data) in old {
            let data = data.as_bytes().to_vec();
            client.execute(insert, &[&job, &n, &data]).await.unwrap();
        }
        client.batch_execute(MIGRATIONS[placing]).await.unwrap();
        // Appended after the migration by such a host: placed and timed by the trigger.
        let data = b"\nd\n".to_vec();
        client
            .execute(insert, &[&1i64, &2i64, &data])
            .await
            .unwrap();
        let rows = client
            .query(
                "SELECT job, n, start, line, newlines, written_ms IS NOT NULL
                 FROM job_logs ORDER BY job, n",
                &[],
            )
            .await
            .unwrap();
        let placed: Vec<(i64, i64, i64, i64, i64, bool)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
            .collect();
        // (job, n, start, newlines before, newlines in it, timed)
        let expected = [
            (1, 0, 0, 0, 2, false),
            (1, 1, 5, 2, 0, false),
            (1, 2, 8, 2, 2, true),
            (2, 0, 0, 0, 1, false),
        ];
        assert_eq!(placed, expected);
    }
}
