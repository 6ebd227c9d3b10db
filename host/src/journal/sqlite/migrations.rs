//! The SQLite journal's schema: migrations applied in order, counted by `PRAGMA user_version`.

use rusqlite::Connection;

/// Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
pub(super) const MIGRATIONS: &[&str] = &[
    r#"
-- An integer rowid keeps inserts appending to the table's last pages; keyed by the random
-- delivery GUID, each insert of a batch would dirty a different page (a 4 KB WAL frame each).
CREATE TABLE deliveries (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    event       TEXT NOT NULL,
    action      TEXT,
    repository  TEXT,
    received_at TEXT NOT NULL,
    -- LZ4 block with its uncompressed size prepended (lz4_flex's size-prepended format).
    payload     BLOB NOT NULL
);
CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,
    delivery    INTEGER NOT NULL REFERENCES deliveries(seq),
    plugin      TEXT NOT NULL,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    note        TEXT,
    created_at  TEXT NOT NULL,
    started_at  TEXT,
    finished_at TEXT
);
CREATE INDEX jobs_by_delivery ON jobs(delivery);
CREATE INDEX jobs_unfinished ON jobs(state) WHERE state IN ('queued', 'running');
CREATE TABLE locks (
    name        TEXT PRIMARY KEY,
    job         INTEGER NOT NULL REFERENCES jobs(id),
    acquired_at TEXT NOT NULL
);
"#,
    r#"
-- `sender.login`, handed to plugins with the routing facts (NULL for deliveries stored before).
ALTER TABLE deliveries ADD COLUMN sender TEXT;
"#,
    r#"
-- Random secrets the host makes once and keeps, such as the key that signs job log links.
CREATE TABLE host_keys (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
-- Nonces of signed admin calls seen, kept until their timestamps are too old to be accepted.
CREATE TABLE admin_nonces (
    nonce      TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
"#,
    r#"
-- A retry's backoff, in Unix milliseconds: the job is not started (nor read back) before it.
ALTER TABLE jobs ADD COLUMN not_before INTEGER;
-- The attempt holding a lock: recovery frees what a dead attempt held.
ALTER TABLE locks ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
"#,
    r#"
-- The request's headers as received, signatures masked: a JSON array of [name, value] pairs
-- (NULL for deliveries stored before), shown on the dashboard's delivery page.
ALTER TABLE deliveries ADD COLUMN headers TEXT;
"#,
    r#"
-- A cancellation asked for (a CancelReason as JSON), told to the job's next or current attempt.
ALTER TABLE jobs ADD COLUMN cancel_reason TEXT;
-- The latest job of each plugin's line (a pull request, a branch): older ones are superseded.
CREATE TABLE superseding (
    line TEXT PRIMARY KEY,
    job  INTEGER NOT NULL,
    sha  TEXT NOT NULL
);
CREATE INDEX superseding_by_job ON superseding(job);
-- The dashboard's audit trail: who (the token's name) did what (replay, cancel, release) to
-- which delivery, job or lock, when, and what came of it. Kept when jobs are pruned.
CREATE TABLE audit (
    id       INTEGER PRIMARY KEY,
    at       TEXT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    delivery TEXT,
    job      INTEGER,
    lock     TEXT,
    outcome  TEXT NOT NULL
);
CREATE INDEX audit_by_delivery ON audit (delivery);
CREATE INDEX audit_by_job ON audit (job);
-- What jobs posted to GitHub through the host (statuses, check runs, deployments and their
-- statuses), for the dashboard. Statuses and check runs go with their jobs when pruned;
-- deployments stay, as what is deployed.
CREATE TABLE github_posts (
    id          INTEGER PRIMARY KEY,
    job         INTEGER NOT NULL,
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    repository  TEXT NOT NULL,
    sha         TEXT,
    environment TEXT,
    deployment  INTEGER,
    state       TEXT,
    context     TEXT,
    url         TEXT
);
CREATE INDEX github_posts_by_job ON github_posts (job);
CREATE INDEX github_posts_by_kind ON github_posts (kind, id);
-- How far catching up missed deliveries got, per webhook: GitHub's largest delivery id dealt
-- with, so a restart does not list what it has seen again.
CREATE TABLE catch_up_marks (
    source     TEXT PRIMARY KEY,
    last_id    INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
"#,
    r#"
-- Delivery ids move out of `deliveries` into an index merged in bulk (see `delivery_ids.rs`):
-- a unique index on random GUIDs dirtied a page of its own for nearly every delivery. The table
-- is rebuilt without it (SQLite cannot drop a column's UNIQUE), with foreign keys off.
CREATE TABLE deliveries_rebuilt (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL,
    event       TEXT NOT NULL,
    action      TEXT,
    repository  TEXT,
    received_at TEXT NOT NULL,
    payload     BLOB NOT NULL,
    sender      TEXT,
    headers     TEXT
);
INSERT INTO deliveries_rebuilt
    SELECT seq, id, event, action, repository, received_at, payload, sender, headers FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_rebuilt RENAME TO deliveries;
-- Every delivery id but the newest few thousand, for dedupe and lookups.
CREATE TABLE delivery_ids (
    id  TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO delivery_ids SELECT id, seq FROM deliveries ORDER BY id;
-- The newest ids, in arrival order, until they are merged into `delivery_ids`.
CREATE TABLE recent_delivery_ids (
    seq INTEGER PRIMARY KEY,
    id  TEXT NOT NULL
);
"#,
    r#"
-- Ids are never given twice. Without AUTOINCREMENT SQLite gives the largest id again once its
-- row is deleted, as retention does: a pruned job's id went to the next job, whose log then
-- opened with the old job's link and whose page showed the old job's audit rows and posts.
-- AUTOINCREMENT cannot be added to a table, so the four tables whose ids are shown or
-- referenced are rebuilt (foreign keys are off during migrations), and each count starts
-- above every id ever referenced: rows kept, audit rows and posts of pruned jobs. (Log files on
-- disk are counted by the host at every start: see `Journal::skip_job_ids_through`.)
CREATE TABLE deliveries_rebuilt (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL,
    event       TEXT NOT NULL,
    action      TEXT,
    repository  TEXT,
    received_at TEXT NOT NULL,
    payload     BLOB NOT NULL,
    sender      TEXT,
    headers     TEXT
);
INSERT INTO deliveries_rebuilt
    SELECT seq, id, event, action, repository, received_at, payload, sender, headers FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_rebuilt RENAME TO deliveries;
-- `link_salt`: random bytes made with the job, signed into its log link with its id, so that
-- a link opens that job's log alone even where an id could come again (a journal restored
-- from a backup). NULL for jobs stored before: their links are signed as they were.
CREATE TABLE jobs_rebuilt (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery      INTEGER NOT NULL REFERENCES deliveries(seq),
    plugin        TEXT NOT NULL,
    state         TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    note          TEXT,
    created_at    TEXT NOT NULL,
    started_at    TEXT,
    finished_at   TEXT,
    not_before    INTEGER,
    cancel_reason TEXT,
    link_salt     BLOB
);
INSERT INTO jobs_rebuilt
    SELECT id, delivery, plugin, state, attempts, error, note, created_at, started_at,
        finished_at, not_before, cancel_reason, NULL FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_rebuilt RENAME TO jobs;
CREATE INDEX jobs_by_delivery ON jobs(delivery);
CREATE INDEX jobs_unfinished ON jobs(state) WHERE state IN ('queued', 'running');
CREATE TABLE audit_rebuilt (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    delivery TEXT,
    job      INTEGER,
    lock     TEXT,
    outcome  TEXT NOT NULL
);
INSERT INTO audit_rebuilt SELECT id, at, actor, action, delivery, job, lock, outcome FROM audit;
DROP TABLE audit;
ALTER TABLE audit_rebuilt RENAME TO audit;
CREATE INDEX audit_by_delivery ON audit (delivery);
CREATE INDEX audit_by_job ON audit (job);
CREATE TABLE github_posts_rebuilt (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job         INTEGER NOT NULL,
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    repository  TEXT NOT NULL,
    sha         TEXT,
    environment TEXT,
    deployment  INTEGER,
    state       TEXT,
    context     TEXT,
    url         TEXT
);
INSERT INTO github_posts_rebuilt
    SELECT id, job, at, kind, repository, sha, environment, deployment, state, context, url
    FROM github_posts;
DROP TABLE github_posts;
ALTER TABLE github_posts_rebuilt RENAME TO github_posts;
CREATE INDEX github_posts_by_job ON github_posts (job);
CREATE INDEX github_posts_by_kind ON github_posts (kind, id);
-- One row per table, so that later steps only ever raise it.
DELETE FROM sqlite_sequence WHERE name IN ('deliveries', 'jobs', 'audit', 'github_posts');
INSERT INTO sqlite_sequence (name, seq) VALUES
    ('deliveries', max(
        coalesce((SELECT max(seq) FROM deliveries), 0),
        coalesce((SELECT max(seq) FROM delivery_ids), 0),
        coalesce((SELECT max(seq) FROM recent_delivery_ids), 0))),
    ('jobs', max(
        coalesce((SELECT max(id) FROM jobs), 0),
        coalesce((SELECT max(job) FROM audit), 0),
        coalesce((SELECT max(job) FROM github_posts), 0),
        coalesce((SELECT max(job) FROM superseding), 0),
        coalesce((SELECT max(job) FROM locks), 0))),
    ('audit', coalesce((SELECT max(id) FROM audit), 0)),
    ('github_posts', coalesce((SELECT max(id) FROM github_posts), 0));
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
    private INTEGER NOT NULL,
    seq     INTEGER NOT NULL
) WITHOUT ROWID;
-- A person's dashboard sessions begun at or before `at` (Unix ms) are over: their sign-out.
CREATE TABLE session_ends (
    name TEXT PRIMARY KEY,
    at   INTEGER NOT NULL
) WITHOUT ROWID;
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
ALTER TABLE deliveries ADD COLUMN pull_request INTEGER;
ALTER TABLE deliveries ADD COLUMN head_sha TEXT;
ALTER TABLE deliveries ADD COLUMN git_ref TEXT;
CREATE INDEX deliveries_by_repository ON deliveries (repository, seq);
-- By number first: search finds a pull request's number in every repository.
CREATE INDEX deliveries_by_pull_request ON deliveries (pull_request, repository, seq)
    WHERE pull_request IS NOT NULL;
CREATE INDEX deliveries_by_sha ON deliveries (head_sha) WHERE head_sha IS NOT NULL;
"#,
    r#"
-- Heads of pull requests from forks: seen arriving (approved_by NULL) or approved by a
-- maintainer's /ok-to-test (the person, `github:12345 (mona)`), with the job recording each.
CREATE TABLE pull_request_heads (
    id          INTEGER PRIMARY KEY,
    repository  TEXT NOT NULL,
    number      INTEGER NOT NULL,
    sha         TEXT NOT NULL,
    job         INTEGER NOT NULL,
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
    deployment_id INTEGER NOT NULL,
    environment   TEXT NOT NULL,
    sha           TEXT NOT NULL,
    requested_by  TEXT NOT NULL,
    requested_login TEXT NOT NULL,
    forced        INTEGER NOT NULL,
    is_rollback   INTEGER NOT NULL,
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
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    repository    TEXT NOT NULL,
    environment   TEXT NOT NULL,
    deployment_id INTEGER NOT NULL,
    sha           TEXT NOT NULL,
    deployed_for  TEXT NOT NULL,
    pull_request  INTEGER,
    at            TEXT NOT NULL
);
CREATE INDEX deploy_successes_by_environment ON deploy_successes (repository, environment, id);
"#,
];

/// Applies the migrations not applied yet, with foreign keys off: a migration that rebuilds a
/// table drops the one other tables refer to. (The bundled SQLite turns them on by default,
/// and dropping a table that rows refer to is then refused; the caller turns them on after.)
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    // Outside a transaction: there the pragma does nothing.
    conn.execute_batch("PRAGMA foreign_keys = OFF;")?;
    let applied: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (version, migration) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        conn.execute_batch(&format!(
            "BEGIN; {migration}; PRAGMA user_version = {}; COMMIT;",
            version + 1
        ))?;
    }
    Ok(())
}
