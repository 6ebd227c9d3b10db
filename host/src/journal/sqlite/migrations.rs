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
];

/// Applies the migrations not applied yet. Runs before foreign keys are turned on: a migration
/// that rebuilds a table drops the one other tables refer to.
pub(super) fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let applied: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    for (version, migration) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
        conn.execute_batch(&format!(
            "BEGIN; {migration}; PRAGMA user_version = {}; COMMIT;",
            version + 1
        ))?;
    }
    Ok(())
}
