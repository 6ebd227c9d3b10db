//! The SQLite journal's own tests (what every journal must do is in `conformance`).
use bytes::Bytes;

use super::migrations::MIGRATIONS;
use super::*;
use crate::event::PayloadFacts;
use crate::job_log::{JobLogs, LINK_SECRET, LogLinks};
use crate::journal::{
    Appended, AttemptEnd, GitHubPost, JobFilter, JobState, NewAction, PostFilter, RecentFilter,
    VerdictFilter, Visibility,
    conformance::{delivery, new_jobs, plugins},
    prelude::*,
    started,
};

#[tokio::test]
async fn a_nonce_is_claimed_once_until_it_expires_even_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let journal = SqliteJournal::open(&path).unwrap();
    assert!(journal.claim_nonce("n-1", 160, 100).await.unwrap());
    assert!(!journal.claim_nonce("n-1", 160, 100).await.unwrap());
    assert!(journal.claim_nonce("n-2", 160, 100).await.unwrap());
    drop(journal);
    let reopened = SqliteJournal::open(&path).unwrap();
    assert!(!reopened.claim_nonce("n-1", 170, 110).await.unwrap());
    // Past its expiry it is forgotten (the timestamp check refuses such a call by then).
    assert!(reopened.claim_nonce("n-1", 261, 201).await.unwrap());
}

#[tokio::test]
async fn a_host_key_is_made_once_and_kept_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let journal = SqliteJournal::open(&path).unwrap();
    let key = journal.host_key("links").await.unwrap();
    assert_eq!(key.len(), 32);
    assert_eq!(journal.host_key("links").await.unwrap(), key);
    assert_ne!(journal.host_key("other").await.unwrap(), key);
    drop(journal);
    let reopened = SqliteJournal::open(&path).unwrap();
    assert_eq!(reopened.host_key("links").await.unwrap(), key);
}

#[tokio::test]
async fn committed_pages_reach_the_database_file_without_the_writer_checkpointing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let journal = SqliteJournal::open(&path).unwrap();
    let empty = std::fs::metadata(&path).unwrap().len();
    // Random hex, which LZ4 cannot shrink much: about 100 pages in all, well under the
    // 1,000 at which the writer checkpoints by itself.
    for n in 0..100 {
        let mut delivery = (*delivery(&format!("d{n}"))).clone();
        let noise: String = (0..100)
            .map(|_| uuid::Uuid::new_v4().simple().to_string())
            .collect();
        delivery.payload = Bytes::from(format!(r#"{{"noise":"{noise}"}}"#));
        journal
            .append(Arc::new(delivery), Vec::new(), false)
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::metadata(&path).unwrap().len() < empty + 40 * 4096 {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing was checkpointed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_journal_of_the_first_schema_is_migrated_with_its_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    let v1 = Connection::open(&path).unwrap();
    v1.execute_batch(&format!("{} PRAGMA user_version = 1;", MIGRATIONS[0]))
        .unwrap();
    v1.execute(
        "INSERT INTO deliveries (id, event, action, repository, received_at, payload)
         VALUES ('old-1', 'push', NULL, 'octo/repo', '2026-01-01T00:00:00Z', ?1)",
        [lz4_flex::compress_prepend_size(b"{}")],
    )
    .unwrap();
    // A job refers to it: the tables rebuilt are dropped with rows referring to them.
    v1.execute(
        "INSERT INTO jobs (delivery, plugin, state, created_at)
         VALUES (1, 'a', 'succeeded', '2026-01-01T00:00:00Z')",
        [],
    )
    .unwrap();
    drop(v1);

    let journal = SqliteJournal::open(&path).unwrap();
    let old = journal.delivery("old-1").await.unwrap().unwrap();
    let expected = PayloadFacts {
        repository: Some("octo/repo".into()),
        ..PayloadFacts::default()
    };
    assert_eq!(old.facts, expected);
    journal
        .append(delivery("new-1"), Vec::new(), false)
        .await
        .unwrap();
    let new = journal.delivery("new-1").await.unwrap().unwrap();
    assert_eq!(new.facts.sender.as_deref(), Some("mona"));
    // The old delivery's id moved with it: a redelivery of it is still a duplicate, and its job
    // still belongs to it.
    assert!(matches!(
        journal
            .append(delivery("old-1"), plugins(&["a"]), false)
            .await
            .unwrap(),
        Appended::Duplicate
    ));
    journal
        .append(delivery("old-1"), plugins(&["a"]), true)
        .await
        .unwrap();
    assert_eq!(journal.jobs_of("old-1").await.unwrap().len(), 2);
}

#[tokio::test]
async fn delivery_ids_are_found_before_and_after_their_merge_and_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let journal = SqliteJournal::open(&path).unwrap();
    // The tests' journal begins a merge once 8 ids have gathered and moves 3 with each new
    // delivery: after these 18, one merge is over and the next has moved all of its ids but
    // not ended (they are in both levels on disk).
    let mut ids: Vec<String> = (0..18).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for id in &ids {
        new_jobs(&journal, id, &["a"]).await;
    }
    let check = |journal: Arc<SqliteJournal>, ids: Vec<String>| async move {
        for id in &ids {
            assert!(
                matches!(
                    journal
                        .append(delivery(id), plugins(&["a"]), false)
                        .await
                        .unwrap(),
                    Appended::Duplicate
                ),
                "{id} stored twice"
            );
            assert_eq!(journal.delivery(id).await.unwrap().unwrap().id.as_str(), id);
            assert_eq!(journal.jobs_of(id).await.unwrap().len(), 1, "{id}");
        }
        let held = journal.held_deliveries(ids.clone()).await.unwrap();
        assert_eq!(held.len(), ids.len());
    };
    let journal = Arc::new(journal);
    check(Arc::clone(&journal), ids.clone()).await;
    let merged: i64 = Connection::open(&path)
        .unwrap()
        .query_row("SELECT count(*) FROM delivery_ids", [], |row| row.get(0))
        .unwrap();
    assert!((8..18).contains(&merged), "{merged} merged");

    // The in-memory level is rebuilt from the disk, and the merge cut short starts over.
    drop(journal);
    let journal = Arc::new(SqliteJournal::open(&path).unwrap());
    check(Arc::clone(&journal), ids.clone()).await;
    for _ in 0..12 {
        let id = uuid::Uuid::new_v4().to_string();
        new_jobs(&*journal, &id, &["a"]).await;
        ids.push(id);
    }
    check(Arc::clone(&journal), ids.clone()).await;
    assert!(journal.delivery("never-sent").await.unwrap().is_none());

    // Pruned, an id is forgotten at both levels: a delivery with it is new again.
    let (merged_id, recent_id) = (&ids[0], &ids[29]);
    for id in [merged_id, recent_id] {
        let job = journal.jobs_of(id).await.unwrap()[0].id;
        assert_eq!(journal.start_attempt(job, 0).await.unwrap(), started(1));
        journal
            .end_attempt(
                job,
                1,
                AttemptEnd::Succeeded {
                    note: None,
                    verdict: switchyard_plugin_api::Verdict::Passed,
                },
            )
            .await
            .unwrap();
    }
    journal.prune_jobs("9999", 100).await.unwrap();
    journal.prune_deliveries("9999", 100).await.unwrap();
    for id in [merged_id, recent_id] {
        assert!(journal.delivery(id).await.unwrap().is_none());
        new_jobs(&*journal, id, &["a"]).await;
    }
}

#[tokio::test]
async fn a_lock_has_one_holder_until_its_attempt_ends_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let journal = SqliteJournal::open(&path).unwrap();
    let jobs = new_jobs(&journal, "d1", &["a", "b"]).await;
    let (first, second) = (jobs[0].id, jobs[1].id);
    let production = "deploy:o/r:production";
    assert_eq!(journal.start_attempt(first, 0).await.unwrap(), started(1));
    assert!(journal.try_lock(production, first, 1).await.unwrap());
    assert!(
        journal.try_lock(production, first, 1).await.unwrap(),
        "re-entrant"
    );
    assert!(!journal.try_lock(production, second, 1).await.unwrap());
    assert!(
        journal
            .try_lock("deploy:o/r:staging", second, 1)
            .await
            .unwrap()
    );
    drop(journal);

    // Reopened by another reader while the host runs: the lock is still held.
    let journal = SqliteJournal::open(&path).unwrap();
    assert!(!journal.try_lock(production, second, 1).await.unwrap());
    let end = AttemptEnd::Succeeded {
        note: None,
        verdict: switchyard_plugin_api::Verdict::Passed,
    };
    journal.end_attempt(first, 1, end).await.unwrap();
    assert!(journal.try_lock(production, second, 1).await.unwrap());
}

#[tokio::test]
async fn recovery_frees_the_locks_of_dead_attempts_and_a_given_up_job_keeps_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let journal = SqliteJournal::open(&path).unwrap();
    let jobs = new_jobs(&journal, "d1", &["deployer", "other"]).await;
    let (deploy, other) = (jobs[0].id, jobs[1].id);
    let production = "deploy:o/r:production";
    assert_eq!(journal.start_attempt(deploy, 0).await.unwrap(), started(1));
    assert!(journal.try_lock(production, deploy, 1).await.unwrap());
    // The host dies during the attempt. At the next start the job is put back in the
    // queue, and what its dead attempt held is free.
    assert_eq!(journal.requeue_interrupted().await.unwrap(), 1);
    assert!(journal.try_lock(production, other, 1).await.unwrap());

    // A queued job still holding a lock (a journal from before locks were freed at start)
    // that is given up frees it with its end.
    let staging = "deploy:o/r:staging";
    assert_eq!(journal.start_attempt(deploy, 1).await.unwrap(), started(2));
    assert!(journal.try_lock(staging, deploy, 2).await.unwrap());
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute("UPDATE jobs SET state = 'queued' WHERE id = ?1", [deploy.0])
        .unwrap();
    let given_up = journal.fail_unstarted(deploy, 2, "gave up".into());
    assert!(given_up.await.unwrap());
    assert!(journal.try_lock(staging, other, 1).await.unwrap());
}

#[tokio::test]
async fn appends_are_durable_and_duplicates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let journal = SqliteJournal::open(&path).unwrap();
    let Appended::New(jobs) = journal
        .append(delivery("d1"), plugins(&["a", "b"]), false)
        .await
        .unwrap()
    else {
        panic!("first append must be new");
    };
    assert_eq!(jobs.len(), 2);
    assert!(matches!(
        journal
            .append(delivery("d1"), plugins(&["a", "b"]), false)
            .await
            .unwrap(),
        Appended::Duplicate
    ));
    let Appended::New(rerun) = journal
        .append(delivery("d1"), plugins(&["a"]), true)
        .await
        .unwrap()
    else {
        panic!("a rerun adds jobs");
    };
    assert_eq!(rerun.len(), 1);
    drop(journal);

    // A second process sees what the first committed.
    let reopened = SqliteJournal::open(&path).unwrap();
    let queued = reopened.queued(JobId(0), 100, usize::MAX).await.unwrap();
    assert_eq!(queued.jobs.len(), 3);
    assert_eq!(
        queued.jobs[0].delivery.payload,
        &br#"{"action":"opened"}"#[..]
    );
    assert_eq!(queued.jobs[0].delivery.facts, delivery("d1").facts);
    assert_eq!(reopened.unfinished_count().await.unwrap(), 3);
}

#[tokio::test]
async fn attempts_move_jobs_through_their_states() {
    let dir = tempfile::tempdir().unwrap();
    let journal = SqliteJournal::open(&dir.path().join("j.db")).unwrap();
    let Appended::New(jobs) = journal
        .append(delivery("d2"), plugins(&["a"]), false)
        .await
        .unwrap()
    else {
        panic!()
    };
    let job = jobs[0].id;
    assert_eq!(journal.start_attempt(job, 0).await.unwrap(), started(1));
    journal.settled().await;
    assert_eq!(journal.job(job).await.unwrap().state, JobState::Running);
    // A second hand-over of the same job does not start it again.
    assert_eq!(journal.start_attempt(job, 0).await.unwrap(), None);
    journal
        .end_attempt(
            job,
            1,
            AttemptEnd::WillRetry {
                error: "flaky".into(),
                not_before: 0,
            },
        )
        .await
        .unwrap();
    let record = journal.job(job).await.unwrap();
    assert_eq!(
        (record.state, record.error.as_deref()),
        (JobState::Queued, Some("flaky"))
    );
    let queued = journal.queued(JobId(0), 10, usize::MAX).await.unwrap();
    assert_eq!(queued.jobs[0].attempts, 1);
    assert_eq!(
        journal.start_attempt(job, 0).await.unwrap(),
        None,
        "stale count"
    );
    assert_eq!(journal.start_attempt(job, 1).await.unwrap(), started(2));
    journal
        .end_attempt(
            job,
            2,
            AttemptEnd::Failed {
                error: "gave up".into(),
                verdict: switchyard_plugin_api::Verdict::Errored,
            },
        )
        .await
        .unwrap();
    let record = journal.job(job).await.unwrap();
    assert_eq!((record.state, record.attempts), (JobState::Failed, 2));
    assert_eq!(journal.unfinished_count().await.unwrap(), 0);
    assert!(
        journal
            .queued(JobId(0), 10, usize::MAX)
            .await
            .unwrap()
            .jobs
            .is_empty()
    );
    assert_eq!(journal.start_attempt(JobId(999), 0).await.unwrap(), None);
}

#[test]
fn a_failing_write_rolls_back_alone() {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch("CREATE TABLE t (x INTEGER UNIQUE); BEGIN;")
        .unwrap();
    let insert = |x: i64| {
        conn.execute("INSERT INTO t VALUES (?1)", [x])
            .map(drop)
            .map_err(JournalError::from)
    };
    // The second statement fails (duplicate), so the first must not stay either.
    let failed = all_or_nothing(&conn, || insert(1).and_then(|()| insert(1)));
    assert!(failed.is_err());
    all_or_nothing(&conn, || insert(2)).unwrap();
    conn.execute_batch("COMMIT").unwrap();
    let rows: Vec<i64> = conn
        .prepare("SELECT x FROM t")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, [2]);
}

#[tokio::test]
async fn concurrent_appends_all_commit() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(SqliteJournal::open(&dir.path().join("j.db")).unwrap());
    let appends = (0..200).map(|i| {
        let journal = Arc::clone(&journal);
        tokio::spawn(async move {
            journal
                .append(delivery(&format!("c{i}")), plugins(&["a"]), false)
                .await
        })
    });
    for append in appends {
        assert!(matches!(append.await.unwrap().unwrap(), Appended::New(_)));
    }
    assert_eq!(journal.unfinished_count().await.unwrap(), 200);
}

#[tokio::test]
async fn interrupted_jobs_are_requeued_with_their_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let journal = SqliteJournal::open(&dir.path().join("j.db")).unwrap();
    let jobs = new_jobs(&journal, "i1", &["a", "b"]).await;
    let (cut_off, never_started) = (jobs[0].id, jobs[1].id);
    journal.start_attempt(cut_off, 0).await.unwrap();

    assert_eq!(journal.requeue_interrupted().await.unwrap(), 1);
    let record = journal.job(cut_off).await.unwrap();
    assert_eq!((record.state, record.attempts), (JobState::Queued, 1));
    assert_eq!(journal.start_attempt(cut_off, 1).await.unwrap(), started(2));
    // A job that never started is left as it was. (Failing such jobs is the conformance
    // suite's `unstarted_jobs_can_fail_and_free_their_locks`, run on both backends.)
    assert_eq!(
        journal.job(never_started).await.unwrap().state,
        JobState::Queued
    );
}

/// A stand-in for the disk's sync: it waits until opened, then succeeds or fails as told.
#[derive(Clone, Default)]
struct Disk(Arc<(Mutex<DiskState>, std::sync::Condvar)>);

#[derive(Default)]
struct DiskState {
    open: bool,
    failing: bool,
    syncs: usize,
}

impl Disk {
    fn sync(&self) -> writer::Sync {
        let disk = self.clone();
        Box::new(move || {
            let (state, changed) = &*disk.0;
            let mut state = changed
                .wait_while(state.lock().unwrap(), |state| !state.open)
                .unwrap();
            state.syncs += 1;
            if state.failing {
                Err(std::io::Error::other("I/O error"))
            } else {
                Ok(())
            }
        })
    }

    fn set(&self, open: bool, failing: bool) {
        let (state, changed) = &*self.0;
        let mut state = state.lock().unwrap();
        state.open = open;
        state.failing = failing;
        changed.notify_all();
    }

    fn syncs(&self) -> usize {
        self.0.0.lock().unwrap().syncs
    }
}

/// Not done within a while: what a write waiting for a sync that is held back looks like.
async fn still_waiting<T>(task: &mut tokio::task::JoinHandle<T>) -> bool {
    tokio::time::timeout(std::time::Duration::from_millis(300), task)
        .await
        .is_err()
}

#[tokio::test]
async fn writes_are_answered_once_synced_while_the_writer_goes_on_and_a_failed_sync_stops_writes() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Disk::default();
    let journal =
        Arc::new(SqliteJournal::open_with(&dir.path().join("j.db"), |_| Ok(disk.sync())).unwrap());

    // Committed, so readers see it, but not answered until the sync is done.
    let mut append = {
        let journal = Arc::clone(&journal);
        tokio::spawn(async move {
            journal
                .append(delivery("d-1"), plugins(&["a"]), false)
                .await
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while journal.delivery("d-1").await.unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "never committed");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(still_waiting(&mut append).await, "answered before its sync");
    // A read-back does not hand over what is not durable yet either.
    let mut read_back = {
        let journal = Arc::clone(&journal);
        tokio::spawn(async move { journal.queued(JobId(0), 10, usize::MAX).await })
    };
    assert!(
        still_waiting(&mut read_back).await,
        "read back before the sync"
    );
    // The writer does not wait for the sync: a start runs meanwhile.
    let started = journal.start_attempt(JobId(1), 0).await.unwrap();
    assert_eq!(started.map(|s| s.number), Some(1));

    disk.set(true, false);
    assert!(matches!(append.await.unwrap().unwrap(), Appended::New(jobs) if jobs.len() == 1));
    assert_eq!(read_back.await.unwrap().unwrap().jobs.len(), 1);
    assert!(disk.syncs() >= 1);

    // A failed sync fails the writes it covered, and every write after it: what the disk kept
    // is unknown until a restart.
    disk.set(true, true);
    let error = journal
        .append(delivery("d-2"), plugins(&["a"]), false)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("failed to sync"), "{error}");
    disk.set(true, false);
    let syncs = disk.syncs();
    let error = journal
        .append(delivery("d-3"), plugins(&["a"]), false)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("restarted"), "{error}");
    assert!(
        journal.delivery("d-3").await.unwrap().is_none(),
        "committed after a failed sync"
    );
    assert!(journal.ping().await.is_err());
    assert_eq!(disk.syncs(), syncs, "synced again after a failed sync");
}

#[tokio::test]
async fn after_a_failed_sync_no_job_starts_readiness_fails_and_after_the_restart_each_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let disk = Disk::default();
    disk.set(true, false);
    let journal = SqliteJournal::open_with(&path, |_| Ok(disk.sync())).unwrap();
    let mut held = Vec::new();
    for n in 0..40 {
        held.extend(new_jobs(&journal, &format!("d-{n}"), &["a", "b"]).await);
    }
    let ran_before = held.remove(0).id;
    assert!(
        journal
            .start_attempt(ran_before, 0)
            .await
            .unwrap()
            .is_some()
    );
    journal.settled().await;

    disk.set(true, true);
    assert!(journal.ping().await.is_err(), "a sync failed");
    disk.set(true, false);
    // What the workers hold in memory: not one of them is answered as started, so no plugin is
    // called for a start the journal will not keep.
    for job in &held {
        let refused = journal.start_attempt(job.id, 0).await;
        assert!(
            matches!(&refused, Err(error) if error.to_string().contains("restarted")),
            "{}: {refused:?}",
            job.id
        );
    }
    assert!(
        journal.ping().await.is_err(),
        "readiness passes after a failed sync"
    );
    drop(journal);

    // After the restart every job that never ran starts once, and the one that ran is back
    // in the queue only as an interrupted attempt (the restart's recovery), not a new one.
    let journal = SqliteJournal::open(&path).unwrap();
    assert_eq!(journal.requeue_interrupted().await.unwrap(), 1);
    for job in &held {
        let started = journal.start_attempt(job.id, 0).await.unwrap();
        assert_eq!(started.map(|s| s.number), Some(1), "{}", job.id);
    }
    assert_eq!(journal.job(ran_before).await.unwrap().attempts, 1);
    journal.settled().await;
}

#[tokio::test]
async fn ids_of_a_migrated_journal_start_above_every_id_it_names_and_old_links_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v7.db");
    let v7 = Connection::open(&path).unwrap();
    for migration in &MIGRATIONS[..7] {
        v7.execute_batch(migration).unwrap();
    }
    // Job 2 is kept; jobs up to 12 were pruned, but their audit rows, posts and lines remain.
    v7.execute_batch(
        "PRAGMA user_version = 7;
         INSERT INTO deliveries (seq, id, event, received_at, payload)
             VALUES (3, 'kept', 'push', '2026-01-01T00:00:00Z', x'00');
         INSERT INTO recent_delivery_ids (seq, id) VALUES (3, 'kept');
         INSERT INTO delivery_ids (id, seq) VALUES ('pruned', 8);
         INSERT INTO jobs (id, delivery, plugin, state, created_at)
             VALUES (2, 3, 'a', 'succeeded', '2026-01-01T00:00:00Z');
         INSERT INTO audit (id, at, actor, action, job, outcome)
             VALUES (5, '2026-01-01T00:00:00Z', 'mona', 'cancel', 9, 'cancelled');
         INSERT INTO github_posts (id, job, at, kind, repository)
             VALUES (6, 12, '2026-01-01T00:00:00Z', 'deployment', 'octo/repo');
         INSERT INTO superseding (line, job, sha) VALUES ('ci:pr:1', 11, 'abc');",
    )
    .unwrap();
    drop(v7);

    let journal = SqliteJournal::open(&path).unwrap();
    let kept = journal.job(JobId(2)).await.unwrap();
    assert_eq!(kept.link_salt, LinkSalt(None), "a job stored before salts");
    let new = new_jobs(&journal, "new", &["a"]).await;
    assert_eq!(new[0].id, JobId(13), "above the posts' job 12");
    let seq = |journal: &SqliteJournal| {
        let reads = journal.reads.lock().unwrap();
        reads
            .query_row("SELECT max(seq) FROM deliveries", [], |row| {
                row.get::<_, i64>(0)
            })
            .unwrap()
    };
    assert_eq!(seq(&journal), 9, "above the pruned delivery's 8");
    let action = journal.record_action(NewAction::default()).await.unwrap();
    assert_eq!(action, 6);
    journal
        .record_post(GitHubPost {
            job: new[0].id,
            ..GitHubPost::default()
        })
        .await
        .unwrap();
    let filter = PostFilter {
        limit: 1,
        ..PostFilter::default()
    };
    assert_eq!(journal.posts(filter).await.unwrap()[0].id, 7);

    // The link job 2 was given before the upgrade still opens its log.
    let links = LogLinks::new("http://h", b"secret");
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(b"secret").unwrap();
    hmac::Mac::update(&mut mac, b"switchyard job log\0");
    hmac::Mac::update(&mut mac, &2i64.to_be_bytes());
    let issued = hex::encode(&hmac::Mac::finalize(mac).into_bytes()[..16]);
    let opened = links.opens(&journal, JobId(2), &issued).await.unwrap();
    assert_eq!(opened.map(|job| job.id), Some(JobId(2)));
}

#[tokio::test]
async fn a_journal_restored_from_a_backup_gives_no_logged_id_again_nor_opens_a_lost_jobs_link() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchyard.db");
    let copy = dir.path().join("backup.db");
    let logs = JobLogs::new(dir.path().join("logs"), Vec::<String>::new());
    let journal = SqliteJournal::open(&path).unwrap();
    let links = LogLinks::new("http://h", &journal.host_key(LINK_SECRET).await.unwrap());
    let kept = new_jobs(&journal, "kept", &["a"]).await.remove(0);
    backup(&path, &copy).unwrap();
    // Accepted after the backup: one ran and has a log, one never ran.
    let logged = new_jobs(&journal, "logged", &["a"]).await.remove(0);
    logs.append(logged.id, b"built\n").await.unwrap();
    let unlogged = new_jobs(&journal, "unlogged", &["a"]).await.remove(0);
    drop(journal);
    // Stopped: its last connection, on the writer's thread, has closed and removed the WAL.
    let wal = dir.path().join("switchyard.db-wal");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while wal.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the journal never closed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // Restored as docs/operations.md says: the copy in place, no WAL beside it, the logs kept.
    std::fs::copy(&copy, &path).unwrap();
    for stale in ["switchyard.db-wal", "switchyard.db-shm"] {
        let _ = std::fs::remove_file(dir.path().join(stale));
    }
    let journal = SqliteJournal::open(&path).unwrap();
    logs.skip_logged_ids(&journal).await.unwrap();
    let after = new_jobs(&journal, "after", &["a", "b"]).await;
    assert!(
        after.iter().all(|job| job.id > logged.id),
        "the id of a job with a log given again: {after:?}"
    );
    // The job that left no trace outside the journal had its id given again; its link, which
    // the restored journal's secret still signs, opens nothing.
    assert_eq!(after[0].id, unlogged.id);
    for lost in [&logged, &unlogged] {
        let link = links.url(lost.id, lost.link_salt);
        let key = link.rsplit('/').next().unwrap();
        assert_eq!(links.opens(&journal, lost.id, key).await.unwrap(), None);
    }
    let link = links.url(kept.id, kept.link_salt);
    let key = link.rsplit('/').next().unwrap();
    let opened = links.opens(&journal, kept.id, key).await.unwrap();
    assert_eq!(opened.map(|job| job.id), Some(kept.id));
}

#[tokio::test]
async fn the_dashboards_reads_by_place_use_the_deliveries_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let journal = SqliteJournal::open(&dir.path().join("journal.db")).unwrap();
    let of = |repository: bool, pull_request: bool, sha: bool| crate::journal::JobFilter {
        limit: 10,
        repository: repository.then(|| "octo/app".to_owned()),
        pull_request: pull_request.then_some(7),
        sha_prefix: sha.then(|| "abc1".to_owned()),
        ..Default::default()
    };
    let cases = [
        (of(true, false, false), "deliveries_by_repository"),
        (of(true, true, false), "deliveries_by_pull_request"),
        (of(false, true, false), "deliveries_by_pull_request"),
        (of(false, false, true), "deliveries_by_sha"),
    ];
    for (filter, index) in cases {
        let query = super::reads::jobs_query(&filter);
        let plan: Vec<String> = journal
            .read(move |conn| {
                let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {query}"))?;
                let rows = statement.query_map(
                    rusqlite::params![
                        None::<i64>,
                        None::<String>,
                        None::<String>,
                        filter.repository,
                        None::<i64>,
                        10,
                        false,
                        None::<String>,
                        None::<String>,
                        filter.pull_request,
                        filter.sha_prefix,
                        None::<String>
                    ],
                    |row| row.get::<_, String>(3),
                )?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await
            .unwrap();
        assert!(
            plan.iter().any(|step| step.contains(index)),
            "{index}: {plan:?}"
        );
    }
}

#[tokio::test]
async fn jobs_ended_before_verdicts_have_none_and_count_as_failed_by_their_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("before-verdicts.db");
    let old = Connection::open(&path).unwrap();
    // The journal as it was before the verdicts' migration (later ones apply at open too).
    let before = MIGRATIONS
        .iter()
        .position(|migration| migration.contains("ADD COLUMN verdict"))
        .expect("the verdicts' migration");
    for migration in &MIGRATIONS[..before] {
        old.execute_batch(migration).unwrap();
    }
    old.execute_batch(&format!(
        "PRAGMA user_version = {before};
         INSERT INTO deliveries (seq, id, event, received_at, payload)
             VALUES (1, 'old-ok', 'push', '2026-01-01T00:00:00Z', x'00'),
                    (2, 'old-bad', 'push', '2026-01-01T00:00:00Z', x'00');
         INSERT INTO jobs (id, delivery, plugin, state, created_at, finished_at)
             VALUES (1, 1, 'a', 'succeeded', '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z'),
                    (2, 2, 'a', 'failed', '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z');"
    ))
    .unwrap();
    drop(old);

    let journal = SqliteJournal::open(&path).unwrap();
    let (ok, bad) = (
        journal.job(JobId(1)).await.unwrap(),
        journal.job(JobId(2)).await.unwrap(),
    );
    assert_eq!((ok.verdict, bad.verdict), (None, None));
    assert_eq!((ok.is_failed(), bad.is_failed()), (false, true));
    let counts = journal
        .job_counts("2026-01-01T00:00:00Z", Visibility::All)
        .await
        .unwrap();
    assert_eq!((counts.bad, counts.failed_since), (1, 1));
    let failed = journal
        .recent(RecentFilter {
            limit: 10,
            failed: true,
            ..RecentFilter::default()
        })
        .await
        .unwrap();
    let ids: Vec<&str> = failed.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["old-bad"]);
    let listed = journal
        .jobs(JobFilter {
            limit: 10,
            verdict: Some(VerdictFilter::Failed),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].job.id, JobId(2));
}
