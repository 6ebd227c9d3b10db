//! The journal's contract, as test functions over `&dyn Journal`, run against both backends
//! (SQLite in a temporary folder; PostgreSQL on the private test server, a database each).
//! Below them, what only several hosts sharing PostgreSQL can show: leases, fencing, locks
//! and logs across hosts, migrations.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;

use super::{
    ActionFilter, Appended, AttemptEnd, DeliveryRecord, GitHubPost, JobFilter, JobId, JobState,
    Journal, JournalError, LogChunk, NewAction, NewHead, PendingJob, PostFilter, PostgresJournal,
    PostgresSettings, RecentFilter, SqliteJournal, Started, Supersede, Visibility, prelude::*,
    started, unix_millis,
};
use switchyard_testkit::TestPostgres;

use crate::event::{Delivery, DeliveryId, EventKind, PayloadFacts, now_rfc3339};
use crate::job_log::{LINK_SECRET, LogLinks};

mod deploys;
mod places;
use deploys::{
    an_automatic_deploy_is_claimed_once_until_given_back,
    deploy_successes_are_read_newest_first_per_environment,
    deployments_created_here_are_read_back_by_id, sticky_locks_have_one_owner_until_released,
};
use places::jobs_are_found_by_pull_request_sha_prefix_and_branch;
use switchyard_plugin_api::CancelReason;

/// A `pull_request.opened` delivery with id `id`, for tests.
pub(crate) fn delivery(id: &str) -> Arc<Delivery> {
    Arc::new(Delivery {
        id: DeliveryId::parse(id).unwrap(),
        kind: EventKind::parse("pull_request").unwrap(),
        facts: PayloadFacts {
            action: Some("opened".into()),
            repository: Some("octo/repo".into()),
            sender: Some("mona".into()),
            private: None,
        },
        payload: Bytes::from_static(br#"{"action":"opened"}"#),
        received_at: now_rfc3339(),
        headers: vec![("x-github-event".into(), "pull_request".into())],
    })
}

pub(crate) fn plugins(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Appends a new delivery and returns its jobs.
pub(crate) async fn new_jobs(journal: &dyn Journal, id: &str, names: &[&str]) -> Vec<PendingJob> {
    match journal
        .append(delivery(id), plugins(names), false)
        .await
        .unwrap()
    {
        Appended::New(jobs) => jobs,
        Appended::Duplicate => panic!("{id} must be new"),
    }
}

/// Every write before it is committed (SQLite answers a start before its batch commits).
async fn settle(journal: &dyn Journal) {
    journal.ping().await.unwrap();
}

async fn appends_are_stored_once_and_reruns_add_jobs(journal: &dyn Journal) {
    let jobs = new_jobs(journal, "d1", &["a", "b"]).await;
    assert_eq!(jobs.len(), 2);
    assert_eq!(
        jobs.iter().map(|j| j.plugin.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let again = journal.append(delivery("d1"), plugins(&["a", "b"]), false);
    assert!(matches!(again.await.unwrap(), Appended::Duplicate));
    let Appended::New(rerun) = journal
        .append(delivery("d1"), plugins(&["a"]), true)
        .await
        .unwrap()
    else {
        panic!("a rerun adds jobs");
    };
    assert_eq!(rerun.len(), 1);
    let queued = journal.queued(JobId(0), 100, usize::MAX).await.unwrap();
    assert_eq!(queued.jobs.len(), 3);
    assert_eq!(
        queued.jobs[0].delivery.payload,
        &br#"{"action":"opened"}"#[..]
    );
    assert_eq!(queued.jobs[0].delivery.facts, delivery("d1").facts);
    assert_eq!(journal.unfinished_count().await.unwrap(), 3);
    let stored = journal.delivery("d1").await.unwrap().unwrap();
    assert_eq!(stored.facts.sender.as_deref(), Some("mona"));
    assert!(journal.delivery("nope").await.unwrap().is_none());
    // A delivery no plugin wants is stored all the same.
    assert!(matches!(
        journal.append(delivery("d2"), Vec::new(), false).await.unwrap(),
        Appended::New(jobs) if jobs.is_empty()
    ));
    assert!(journal.delivery("d2").await.unwrap().is_some());
}

async fn concurrent_appends_of_one_id_store_it_once(journal: Arc<dyn Journal>) {
    let appends = (0..20).map(|_| {
        let journal = Arc::clone(&journal);
        tokio::spawn(async move {
            journal
                .append(delivery("same"), plugins(&["a"]), false)
                .await
        })
    });
    let mut new = 0;
    for append in appends {
        if let Appended::New(_) = append.await.unwrap().unwrap() {
            new += 1;
        }
    }
    assert_eq!(new, 1);
    assert_eq!(journal.jobs_of("same").await.unwrap().len(), 1);
    let many = (0..100).map(|i| {
        let journal = Arc::clone(&journal);
        tokio::spawn(async move {
            journal
                .append(delivery(&format!("c{i}")), plugins(&["a"]), false)
                .await
        })
    });
    for append in many {
        assert!(matches!(append.await.unwrap().unwrap(), Appended::New(_)));
    }
    assert_eq!(journal.unfinished_count().await.unwrap(), 101);
}

async fn attempts_move_jobs_through_their_states_and_ends_are_fenced(journal: &dyn Journal) {
    let job = new_jobs(journal, "d2", &["a"]).await[0].id;
    assert_eq!(journal.start_attempt(job, 0).await.unwrap(), started(1));
    settle(journal).await;
    assert_eq!(journal.job(job).await.unwrap().state, JobState::Running);
    assert_eq!(
        journal.start_attempt(job, 0).await.unwrap(),
        None,
        "started"
    );
    let retry = AttemptEnd::WillRetry {
        error: "flaky".into(),
        not_before: 0,
    };
    journal.end_attempt(job, 1, retry).await.unwrap();
    let record = journal.job(job).await.unwrap();
    // A retry has no verdict yet: the job has not ended.
    assert_eq!(
        (record.state, record.error.as_deref(), record.verdict),
        (JobState::Queued, Some("flaky"), None)
    );
    assert_eq!(
        journal.start_attempt(job, 0).await.unwrap(),
        None,
        "stale count"
    );
    assert_eq!(journal.start_attempt(job, 1).await.unwrap(), started(2));
    // The first attempt's end, late: refused, whatever it says.
    let late = journal.end_attempt(
        job,
        1,
        AttemptEnd::Succeeded {
            note: None,
            verdict: switchyard_plugin_api::Verdict::Passed,
        },
    );
    assert!(matches!(
        late.await,
        Err(JournalError::NotRunning { attempt: 1, .. })
    ));
    let failed = AttemptEnd::Failed {
        error: "gave up".into(),
        verdict: switchyard_plugin_api::Verdict::TimedOut,
    };
    journal.end_attempt(job, 2, failed).await.unwrap();
    let record = journal.job(job).await.unwrap();
    // The verdict is stored with the end, as given.
    assert_eq!(
        (record.state, record.attempts, record.verdict),
        (
            JobState::Failed,
            2,
            Some(switchyard_plugin_api::Verdict::TimedOut)
        )
    );
    let again = journal.end_attempt(
        job,
        2,
        AttemptEnd::Succeeded {
            note: None,
            verdict: switchyard_plugin_api::Verdict::Passed,
        },
    );
    assert!(matches!(again.await, Err(JournalError::NotRunning { .. })));
    assert_eq!(journal.unfinished_count().await.unwrap(), 0);
    assert_eq!(
        journal.start_attempt(JobId(999_999), 0).await.unwrap(),
        None
    );
    assert!(matches!(
        journal.job(JobId(999_999)).await,
        Err(JournalError::NoSuchJob(_))
    ));
}

async fn a_retry_is_neither_started_nor_read_back_before_its_backoff(journal: &dyn Journal) {
    let jobs = new_jobs(journal, "r1", &["later", "due"]).await;
    for (job, not_before) in [
        (jobs[0].id, unix_millis() + 600_000),
        (jobs[1].id, unix_millis() - 1),
    ] {
        assert_eq!(journal.start_attempt(job, 0).await.unwrap(), started(1));
        let retry = AttemptEnd::WillRetry {
            error: "flaky".into(),
            not_before,
        };
        journal.end_attempt(job, 1, retry).await.unwrap();
    }
    let queued = journal.queued(JobId(0), 10, usize::MAX).await.unwrap();
    let ids: Vec<JobId> = queued.jobs.iter().map(|job| job.id).collect();
    assert_eq!(ids, [jobs[1].id]);
    assert_eq!(journal.start_attempt(jobs[0].id, 1).await.unwrap(), None);
    assert_eq!(
        journal.start_attempt(jobs[1].id, 1).await.unwrap(),
        started(2)
    );
}

async fn queued_pages_stop_at_their_limit_or_byte_budget(journal: &dyn Journal) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(new_jobs(journal, &format!("p{i}"), &["a"]).await[0].id);
    }
    let page = journal.queued(JobId(0), 2, usize::MAX).await.unwrap();
    let listed: Vec<JobId> = page.jobs.iter().map(|job| job.id).collect();
    assert_eq!(
        (listed, page.next),
        (ids[..2].to_vec(), Some(JobId(ids[1].0 + 1)))
    );
    // Each payload is 19 bytes: a budget of 30 holds one, and a page holds at least one.
    let page = journal.queued(ids[2], 10, 30).await.unwrap();
    assert_eq!((page.jobs.len(), page.next), (1, Some(ids[3])));
    let page = journal.queued(ids[3], 10, 0).await.unwrap();
    assert_eq!((page.jobs[0].id, page.next), (ids[3], Some(ids[4])));
    journal.start_attempt(ids[4], 0).await.unwrap();
    settle(journal).await;
    let page = journal.queued(ids[3], 10, usize::MAX).await.unwrap();
    assert_eq!((page.jobs.len(), page.next), (1, None));
}

async fn unstarted_jobs_can_fail_and_free_their_locks(journal: &dyn Journal) {
    let jobs = new_jobs(journal, "u1", &["a", "b"]).await;
    let (running, never) = (jobs[0].id, jobs[1].id);
    assert_eq!(journal.start_attempt(running, 0).await.unwrap(), started(1));
    let error = "plugin gone".to_owned();
    assert!(
        !journal
            .fail_unstarted(running, 1, error.clone())
            .await
            .unwrap(),
        "running"
    );
    assert!(
        journal
            .fail_unstarted(never, 0, error.clone())
            .await
            .unwrap()
    );
    let record = journal.job(never).await.unwrap();
    assert_eq!(
        (record.state, record.error, record.verdict),
        (
            JobState::Failed,
            Some(error.clone()),
            Some(switchyard_plugin_api::Verdict::Errored)
        )
    );
    assert!(
        !journal.fail_unstarted(never, 0, error).await.unwrap(),
        "ended"
    );
}

async fn an_attempt_handed_back_is_queued_again_as_an_interruption(journal: &dyn Journal) {
    let jobs = new_jobs(journal, "h1", &["deployer", "other"]).await;
    let (job, other) = (jobs[0].id, jobs[1].id);
    assert_eq!(journal.start_attempt(job, 0).await.unwrap(), started(1));
    assert_eq!(journal.start_attempt(other, 0).await.unwrap(), started(1));
    let production = "deploy:o/r:production";
    assert!(journal.try_lock(production, job, 1).await.unwrap());
    journal.hand_back(job, 1).await.unwrap();
    // Handed back twice (the workers and the shutdown's backstop): counted once.
    journal.hand_back(job, 1).await.unwrap();
    let record = journal.job(job).await.unwrap();
    assert_eq!((record.state, record.attempts), (JobState::Queued, 1));
    let page = journal.queued(JobId(0), 10, usize::MAX).await.unwrap();
    let queued = page.jobs.iter().find(|queued| queued.id == job).unwrap();
    assert_eq!((queued.attempts, queued.interruptions), (1, 1));
    assert_eq!(
        queued.counted_attempts(),
        0,
        "an interruption is not an attempt"
    );
    // Its lock is free, and it runs again as attempt 2.
    assert!(journal.try_lock(production, other, 1).await.unwrap());
    assert!(journal.release_lock(production, other).await.unwrap());
    assert_eq!(journal.start_attempt(job, 1).await.unwrap(), started(2));
    // An attempt that is not the running one is not handed back.
    journal.hand_back(job, 1).await.unwrap();
    assert_eq!(journal.job(job).await.unwrap().state, JobState::Running);
    journal
        .end_attempt(
            job,
            2,
            AttemptEnd::Succeeded {
                note: None,
                verdict: switchyard_plugin_api::Verdict::Passed,
            },
        )
        .await
        .unwrap();
}

async fn a_lock_has_one_holder_until_its_attempt_ends(journal: &dyn Journal) {
    let jobs = new_jobs(journal, "l1", &["a", "b"]).await;
    let (first, second) = (jobs[0].id, jobs[1].id);
    let production = "deploy:o/r:production";
    assert_eq!(journal.start_attempt(first, 0).await.unwrap(), started(1));
    assert_eq!(journal.start_attempt(second, 0).await.unwrap(), started(1));
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
    let end = AttemptEnd::Succeeded {
        note: None,
        verdict: switchyard_plugin_api::Verdict::Passed,
    };
    journal.end_attempt(first, 1, end).await.unwrap();
    assert!(journal.try_lock(production, second, 1).await.unwrap());
}

async fn a_lock_is_released_only_from_the_job_named_as_its_holder(journal: &dyn Journal) {
    let jobs = new_jobs(journal, "r1", &["a", "b"]).await;
    let (holder, other) = (jobs[0].id, jobs[1].id);
    let production = "deploy:o/r:production";
    assert_eq!(journal.start_attempt(holder, 0).await.unwrap(), started(1));
    assert_eq!(journal.start_attempt(other, 0).await.unwrap(), started(1));
    assert!(journal.try_lock(production, holder, 1).await.unwrap());
    // A release naming another holder (the lock changed hands since the page was read) frees
    // nothing.
    assert!(!journal.release_lock(production, other).await.unwrap());
    assert_eq!(journal.locks().await.unwrap().len(), 1);
    assert!(journal.release_lock(production, holder).await.unwrap());
    assert!(journal.locks().await.unwrap().is_empty());
    assert!(!journal.release_lock(production, holder).await.unwrap());
    assert!(journal.try_lock(production, other, 1).await.unwrap());
}

async fn the_audit_trail_keeps_who_did_what_newest_first(journal: &dyn Journal) {
    let job = new_jobs(journal, "a1", &["ci"]).await[0].id;
    let replay = NewAction {
        actor: "alice".into(),
        action: "replay".into(),
        delivery: Some("a1".into()),
        outcome: "new jobs #2".into(),
        ..NewAction::default()
    };
    let first = journal.record_action(replay).await.unwrap();
    let cancel = NewAction {
        actor: "bob".into(),
        action: "cancel".into(),
        delivery: Some("a1".into()),
        job: Some(job),
        outcome: "cancelled".into(),
        ..NewAction::default()
    };
    let second = journal.record_action(cancel).await.unwrap();
    let release = NewAction {
        actor: "alice".into(),
        action: "release".into(),
        lock: Some("deploy:o/r:production".into()),
        outcome: "released".into(),
        ..NewAction::default()
    };
    journal.record_action(release).await.unwrap();
    assert!(second > first);
    let all = |filter: ActionFilter| async move {
        let actions = journal
            .actions(ActionFilter {
                limit: 10,
                ..filter
            })
            .await
            .unwrap();
        actions
            .iter()
            .map(|a| format!("{} {} {}", a.actor, a.action, a.outcome))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        all(ActionFilter::default()).await,
        [
            "alice release released",
            "bob cancel cancelled",
            "alice replay new jobs #2"
        ]
    );
    assert_eq!(
        all(ActionFilter {
            delivery: Some("a1".into()),
            ..ActionFilter::default()
        })
        .await,
        ["bob cancel cancelled", "alice replay new jobs #2"]
    );
    assert_eq!(
        all(ActionFilter {
            job: Some(job),
            ..ActionFilter::default()
        })
        .await,
        ["bob cancel cancelled"]
    );
    assert_eq!(
        all(ActionFilter {
            action: Some("release".into()),
            ..ActionFilter::default()
        })
        .await,
        ["alice release released"]
    );
    let one = journal
        .actions(ActionFilter {
            limit: 1,
            id: Some(first),
            ..ActionFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(
        (
            one[0].delivery.as_deref(),
            one[0].job,
            one[0].lock.as_deref()
        ),
        (Some("a1"), None, None)
    );
    assert!(
        one[0].at.ends_with('Z') || one[0].at.contains('+'),
        "{}",
        one[0].at
    );
}

async fn github_posts_are_kept_per_job_and_deployments_outlive_their_jobs(journal: &dyn Journal) {
    let jobs = new_jobs(journal, "g1", &["deployer", "ci"]).await;
    let (deployer, ci) = (jobs[0].id, jobs[1].id);
    let repository = "octo/app".to_owned();
    let deployment = GitHubPost {
        job: deployer,
        kind: "deployment".into(),
        repository: repository.clone(),
        sha: Some("abc123".into()),
        environment: Some("production".into()),
        deployment: Some(42),
        state: Some("created".into()),
        ..GitHubPost::default()
    };
    journal.record_post(deployment).await.unwrap();
    let status = GitHubPost {
        job: ci,
        kind: "status".into(),
        repository: repository.clone(),
        sha: Some("abc123".into()),
        state: Some("success".into()),
        context: Some("ci/switchyard".into()),
        url: Some("https://ci.example/jobs/2/log/k".into()),
        ..GitHubPost::default()
    };
    journal.record_post(status.clone()).await.unwrap();
    // A deployment status names only its deployment: sha and environment come from it.
    let success = GitHubPost {
        job: deployer,
        kind: "deployment_status".into(),
        repository: repository.clone(),
        deployment: Some(42),
        state: Some("success".into()),
        ..GitHubPost::default()
    };
    journal.record_post(success).await.unwrap();
    let posts = |filter: PostFilter| async move {
        journal
            .posts(PostFilter {
                limit: 10,
                ..filter
            })
            .await
            .unwrap()
    };
    let of_ci = posts(PostFilter {
        job: Some(ci),
        ..PostFilter::default()
    })
    .await;
    assert_eq!(of_ci.len(), 1);
    assert_eq!(of_ci[0].post, status);
    let deployments = posts(PostFilter {
        deployments: true,
        ..PostFilter::default()
    })
    .await;
    let kinds: Vec<_> = deployments.iter().map(|p| p.post.kind.as_str()).collect();
    assert_eq!(kinds, ["deployment_status", "deployment"]);
    let filled = &deployments[0].post;
    assert_eq!(
        (filled.sha.as_deref(), filled.environment.as_deref()),
        (Some("abc123"), Some("production"))
    );
    assert!(deployments[0].id > deployments[1].id);
    // Pruned jobs take their statuses with them; deployments stay.
    for job in [deployer, ci] {
        journal.start_attempt(job, 0).await.unwrap();
        let end = AttemptEnd::Succeeded {
            note: None,
            verdict: switchyard_plugin_api::Verdict::Passed,
        };
        journal.end_attempt(job, 1, end).await.unwrap();
    }
    let pruned = journal
        .prune_jobs("9999-01-01T00:00:00Z", 10)
        .await
        .unwrap();
    assert_eq!(pruned.len(), 2);
    assert!(
        posts(PostFilter::default())
            .await
            .iter()
            .all(|p| p.post.kind != "status")
    );
    assert_eq!(posts(PostFilter::default()).await.len(), 2);
}

async fn recent_deliveries_filter_by_event_and_failure_newest_first(journal: &dyn Journal) {
    for id in ["d1", "d2", "d3"] {
        new_jobs(journal, id, &["a"]).await;
    }
    let failed = journal.jobs_of("d2").await.unwrap()[0].id;
    journal.start_attempt(failed, 0).await.unwrap();
    let end = AttemptEnd::Failed {
        error: "boom".into(),
        verdict: switchyard_plugin_api::Verdict::Errored,
    };
    journal.end_attempt(failed, 1, end).await.unwrap();
    // A build that ran to its end and failed counts as failed; a cancelled job does not.
    let ends = [
        (
            "d1",
            AttemptEnd::Succeeded {
                note: Some("failed: exit 3".into()),
                verdict: switchyard_plugin_api::Verdict::Failed,
            },
        ),
        (
            "d3",
            AttemptEnd::Failed {
                error: "cancelled by ana".into(),
                verdict: switchyard_plugin_api::Verdict::Cancelled,
            },
        ),
    ];
    for (delivery, end) in ends {
        let job = journal.jobs_of(delivery).await.unwrap()[0].id;
        journal.start_attempt(job, 0).await.unwrap();
        journal.end_attempt(job, 1, end).await.unwrap();
    }
    let filter = |limit, failed, event: Option<&str>| RecentFilter {
        limit,
        failed,
        event: event.map(str::to_owned),
        repository: None,
        before: None,
        ..RecentFilter::default()
    };
    let all = journal.recent(filter(10, false, None)).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["d3", "d2", "d1"]);
    assert_eq!(all[0].jobs.len(), 1);
    assert_eq!(
        journal.recent(filter(1, false, None)).await.unwrap().len(),
        1
    );
    let failed_only = journal.recent(filter(10, true, None)).await.unwrap();
    let ids: Vec<&str> = failed_only.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["d2", "d1"]);
    assert_eq!(failed_only[0].jobs[0].error.as_deref(), Some("boom"));
    assert!(
        journal
            .recent(filter(10, false, Some("push")))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        journal
            .recent(filter(10, false, Some("pull_request")))
            .await
            .unwrap()
            .len(),
        3
    );
}

async fn nonces_are_claimed_once_until_they_expire(journal: &dyn Journal) {
    assert!(journal.claim_nonce("n-1", 160, 100).await.unwrap());
    assert!(!journal.claim_nonce("n-1", 160, 100).await.unwrap());
    assert!(journal.claim_nonce("n-2", 160, 100).await.unwrap());
    assert!(!journal.claim_nonce("n-1", 170, 110).await.unwrap());
    assert!(journal.claim_nonce("n-1", 261, 201).await.unwrap());
}

async fn host_keys_are_made_once(journal: &dyn Journal) {
    let key = journal.host_key("links").await.unwrap();
    assert_eq!(key.len(), 32);
    assert_eq!(journal.host_key("links").await.unwrap(), key);
    assert_ne!(journal.host_key("other").await.unwrap(), key);
}

async fn catch_up_marks_move_only_from_where_they_were_and_held_ids_are_known(
    journal: &dyn Journal,
) {
    assert_eq!(journal.catch_up_mark("app").await.unwrap(), None);
    assert!(journal.move_catch_up_mark("app", None, 10).await.unwrap());
    // A second host starting its first round at once loses: the round is the first one's.
    assert!(!journal.move_catch_up_mark("app", None, 12).await.unwrap());
    assert_eq!(journal.catch_up_mark("app").await.unwrap(), Some(10));
    assert!(
        !journal
            .move_catch_up_mark("app", Some(9), 20)
            .await
            .unwrap()
    );
    assert!(
        journal
            .move_catch_up_mark("app", Some(10), 20)
            .await
            .unwrap()
    );
    assert_eq!(journal.catch_up_mark("app").await.unwrap(), Some(20));
    // Each hook keeps its own.
    let hook = "repos/octo/repo/hooks/7";
    assert_eq!(journal.catch_up_mark(hook).await.unwrap(), None);
    assert!(journal.move_catch_up_mark(hook, None, 3).await.unwrap());
    assert_eq!(journal.catch_up_mark("app").await.unwrap(), Some(20));

    new_jobs(journal, "held-1", &["a"]).await;
    new_jobs(journal, "held-2", &[]).await;
    let asked = ["held-1", "missing", "held-2"].map(String::from).to_vec();
    let held = journal.held_deliveries(asked).await.unwrap();
    let mut held: Vec<_> = held.into_iter().collect();
    held.sort();
    assert_eq!(held, ["held-1", "held-2"]);
    assert!(
        journal
            .held_deliveries(Vec::new())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn pruning_goes_in_batches_and_keeps_unfinished_jobs(journal: &dyn Journal) {
    let mut ended = Vec::new();
    for i in 0..5 {
        let job = new_jobs(journal, &format!("old{i}"), &["a"]).await[0].id;
        journal.start_attempt(job, 0).await.unwrap();
        let end = AttemptEnd::Succeeded {
            note: None,
            verdict: switchyard_plugin_api::Verdict::Passed,
        };
        journal.end_attempt(job, 1, end).await.unwrap();
        ended.push(job);
    }
    let queued = new_jobs(journal, "pending", &["a"]).await[0].id;
    let future = "9999-01-01T00:00:00Z";
    let first = journal.prune_jobs(future, 3).await.unwrap();
    assert_eq!(first, ended[..3]);
    let rest = journal.prune_jobs(future, 3).await.unwrap();
    assert_eq!(rest, ended[3..]);
    assert!(journal.prune_jobs(future, 3).await.unwrap().is_empty());
    assert_eq!(journal.job(queued).await.unwrap().state, JobState::Queued);
    // Deliveries without jobs go, in batches; the one with a queued job stays.
    assert_eq!(journal.prune_deliveries(future, 3).await.unwrap(), 3);
    assert_eq!(journal.prune_deliveries(future, 3).await.unwrap(), 2);
    assert_eq!(journal.prune_deliveries(future, 3).await.unwrap(), 0);
    assert!(journal.delivery("pending").await.unwrap().is_some());
    assert!(journal.delivery("old0").await.unwrap().is_none());
    // Nothing ended before the epoch.
    assert!(
        journal
            .prune_jobs("1970-01-01T00:00:00Z", 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Runs `job` to success.
async fn finish(journal: &dyn Journal, job: JobId) {
    assert_eq!(journal.start_attempt(job, 0).await.unwrap(), started(1));
    let end = AttemptEnd::Succeeded {
        note: None,
        verdict: switchyard_plugin_api::Verdict::Passed,
    };
    journal.end_attempt(job, 1, end).await.unwrap();
}

/// Prunes every finished job, and every delivery left without jobs, as retention does after a
/// quiet `keep_days`; returns the jobs pruned.
async fn prune_everything(journal: &dyn Journal) -> Vec<JobId> {
    let future = "9999-01-01T00:00:00Z";
    let pruned = journal.prune_jobs(future, 1000).await.unwrap();
    journal.prune_deliveries(future, 1000).await.unwrap();
    pruned
}

/// The key a link carries.
fn key_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

/// No id is given twice once what held it is pruned: not a job's (on its log link, its log
/// file, its audit rows and posts), a delivery's, an audit row's or a post's.
async fn ids_are_never_given_twice_after_pruning(journal: &dyn Journal) {
    let recent = || RecentFilter {
        limit: 10,
        ..RecentFilter::default()
    };
    let posts = || PostFilter {
        limit: 10,
        ..PostFilter::default()
    };
    let links = LogLinks::new("http://h", &journal.host_key(LINK_SECRET).await.unwrap());
    let old = new_jobs(journal, "gone", &["a", "b"]).await;
    for job in &old {
        finish(journal, job.id).await;
    }
    let old_delivery = journal.recent(recent()).await.unwrap()[0].seq;
    let old_action = journal
        .record_action(NewAction {
            actor: "mona".into(),
            action: "cancel".into(),
            job: Some(old[1].id),
            outcome: "ended already".into(),
            ..NewAction::default()
        })
        .await
        .unwrap();
    let status = |job: JobId| GitHubPost {
        job,
        kind: "status".into(),
        repository: "octo/repo".into(),
        sha: Some("abc".into()),
        state: Some("success".into()),
        ..GitHubPost::default()
    };
    journal.record_post(status(old[1].id)).await.unwrap();
    let old_post = journal.posts(posts()).await.unwrap()[0].id;
    assert_eq!(
        prune_everything(journal).await,
        old.iter().map(|job| job.id).collect::<Vec<_>>()
    );
    assert!(journal.posts(posts()).await.unwrap().is_empty());

    let new = new_jobs(journal, "new", &["a"]).await;
    assert!(new[0].id > old[1].id, "{} given again", new[0].id);
    assert!(journal.recent(recent()).await.unwrap()[0].seq > old_delivery);
    journal.record_post(status(new[0].id)).await.unwrap();
    assert!(journal.posts(posts()).await.unwrap()[0].id > old_post);
    let filter = ActionFilter {
        job: Some(new[0].id),
        limit: 10,
        ..ActionFilter::default()
    };
    // The new job's trail is its own: the pruned job's cancel is not shown on it.
    assert!(journal.actions(filter).await.unwrap().is_empty());
    let action = journal
        .record_action(NewAction {
            actor: "mona".into(),
            action: "replay".into(),
            outcome: "replayed".into(),
            ..NewAction::default()
        })
        .await
        .unwrap();
    assert!(action > old_action);

    // A link of a pruned job never opens another; the new job's opens it.
    for job in &old {
        let link = links.url(job.id, job.link_salt);
        let opened = links.opens(journal, job.id, key_of(&link)).await.unwrap();
        assert_eq!(opened, None, "{link}");
    }
    let link = links.url(new[0].id, new[0].link_salt);
    let opened = links
        .opens(journal, new[0].id, key_of(&link))
        .await
        .unwrap();
    assert_eq!(opened.map(|job| job.id), Some(new[0].id));
}

/// Ids known to be taken elsewhere (a log file on disk) are skipped; skipping never lowers.
async fn ids_named_elsewhere_are_skipped(journal: &dyn Journal) {
    let first = new_jobs(journal, "d1", &["a"]).await[0].id;
    journal
        .skip_job_ids_through(JobId(first.0 + 100))
        .await
        .unwrap();
    journal.skip_job_ids_through(JobId(1)).await.unwrap();
    journal.skip_job_ids_through(first).await.unwrap();
    let next = new_jobs(journal, "d2", &["a"]).await[0].id;
    assert_eq!(next, JobId(first.0 + 101));
}

/// Every job gets its own random link salt, handed over with it, read back and shown with it.
async fn each_job_has_its_own_link_salt(journal: &dyn Journal) {
    let jobs = new_jobs(journal, "d1", &["a", "b"]).await;
    assert!(jobs.iter().all(|job| job.link_salt.0.is_some()));
    assert_ne!(jobs[0].link_salt, jobs[1].link_salt);
    let read_back = journal.queued(JobId(0), 10, usize::MAX).await.unwrap();
    let record = journal.job(jobs[1].id).await.unwrap();
    let rows = journal.jobs(JobFilter {
        limit: 10,
        ..JobFilter::default()
    });
    let rows = rows.await.unwrap();
    for job in &jobs {
        let salt = |id| Some(job.link_salt).filter(|_| id == job.id);
        assert!(
            read_back
                .jobs
                .iter()
                .any(|j| salt(j.id) == Some(j.link_salt))
        );
        assert!(
            rows.iter()
                .any(|row| salt(row.job.id) == Some(row.job.link_salt))
        );
    }
    assert_eq!(record.link_salt, jobs[1].link_salt);
}

/// Ids stay given across a restart of the host (a new journal on the same store).
async fn ids_are_never_given_twice_across_a_restart(open: impl AsyncFn() -> Box<dyn Journal>) {
    let journal = open().await;
    let old = new_jobs(&*journal, "before", &["a"]).await[0].id;
    finish(&*journal, old).await;
    assert_eq!(prune_everything(&*journal).await, [old]);
    drop(journal);
    let journal = open().await;
    let new = new_jobs(&*journal, "after", &["a"]).await[0].id;
    assert!(new > old, "{new} given again");
}

/// One test per contract function, per backend.
/// What the dashboard reads: a delivery's headers, jobs by filter and page, counts, locks.
async fn the_dashboards_reads_filter_page_and_count(journal: &dyn Journal) {
    let jobs = new_jobs(journal, "w1", &["a", "b"]).await;
    new_jobs(journal, "w2", &["a"]).await;
    let stored = journal.delivery("w1").await.unwrap().unwrap();
    assert_eq!(stored.headers, delivery("w1").headers);
    let begun = journal.start_attempt(jobs[0].id, 0).await.unwrap();
    assert_eq!(begun, started(1));
    assert!(journal.try_lock("deploy:x", jobs[0].id, 1).await.unwrap());
    settle(journal).await;

    let all = journal
        .jobs(JobFilter {
            limit: 10,
            ..JobFilter::default()
        })
        .await
        .unwrap();
    let ids: Vec<i64> = all.iter().map(|row| row.job.id.0).collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert_eq!(all[2].repository.as_deref(), Some("octo/repo"));
    let page = journal
        .jobs(JobFilter {
            limit: 10,
            plugin: Some("a".into()),
            before: Some(JobId(ids[0])),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].job.id, jobs[0].id);
    let running = journal
        .jobs(JobFilter {
            limit: 10,
            state: Some(JobState::Running),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(running.len(), 1);
    assert!(running[0].started_at.is_some());

    let counts = journal
        .job_counts("1970-01-01T00:00:00Z", Visibility::All)
        .await
        .unwrap();
    assert_eq!((counts.queued, counts.running, counts.failed), (2, 1, 0));
    let locks = journal.locks().await.unwrap();
    assert_eq!(locks.len(), 1);
    assert_eq!(
        (locks[0].name.as_str(), locks[0].job),
        ("deploy:x", jobs[0].id)
    );

    let recent = journal
        .recent(RecentFilter {
            limit: 1,
            failed: false,
            event: None,
            repository: Some("octo/repo".into()),
            before: None,
            ..RecentFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(recent[0].id, "w2");
    assert_eq!(recent[0].sender.as_deref(), Some("mona"));
    let older = journal
        .recent(RecentFilter {
            limit: 10,
            failed: false,
            event: None,
            repository: None,
            before: Some(recent[0].seq),
            ..RecentFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(
        older.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["w1"]
    );
}

/// A delivery `id` of `repository`, whose payload says `private` (or nothing).
fn delivery_of(id: &str, repository: &str, private: Option<bool>) -> Arc<Delivery> {
    let mut delivery = (*delivery(id)).clone();
    delivery.facts.repository = Some(repository.to_owned());
    delivery.facts.private = private;
    Arc::new(delivery)
}

async fn visitors_see_only_repositories_whose_newest_delivery_is_public(journal: &dyn Journal) {
    for (id, repository, private) in [
        ("v1", "octo/open", Some(false)),
        ("v2", "octo/secret", Some(true)),
        ("v3", "octo/flipped", Some(false)),
        ("v4", "octo/unsaid", None),
        // Made private: its older, public delivery is hidden too.
        ("v5", "octo/flipped", Some(true)),
        ("v6", "octo/open", None),
    ] {
        let appended = journal.append(delivery_of(id, repository, private), plugins(&["a"]), false);
        assert!(matches!(appended.await.unwrap(), Appended::New(_)));
    }
    let ids = |records: Vec<DeliveryRecord>| records.into_iter().map(|d| d.id).collect::<Vec<_>>();
    let recent = |visibility, id: Option<&str>| RecentFilter {
        limit: 10,
        visibility,
        id: id.map(str::to_owned),
        ..RecentFilter::default()
    };
    // A delivery that does not say keeps what the newest one that did said.
    let public = journal
        .recent(recent(Visibility::Public, None))
        .await
        .unwrap();
    assert_eq!(ids(public), ["v6", "v1"]);
    let all = journal.recent(recent(Visibility::All, None)).await.unwrap();
    assert_eq!(all.len(), 6);
    for (id, shown) in [("v1", true), ("v2", false), ("v3", false), ("v4", false)] {
        let one = journal
            .recent(recent(Visibility::Public, Some(id)))
            .await
            .unwrap();
        assert_eq!(ids(one) == [id], shown, "{id}");
        let signed_in = journal
            .recent(recent(Visibility::All, Some(id)))
            .await
            .unwrap();
        assert_eq!(ids(signed_in), [id]);
    }

    let jobs = |visibility| JobFilter {
        limit: 10,
        visibility,
        ..JobFilter::default()
    };
    let public_jobs = journal.jobs(jobs(Visibility::Public)).await.unwrap();
    let repositories: Vec<_> = public_jobs
        .iter()
        .map(|row| row.repository.as_deref())
        .collect();
    assert_eq!(repositories, [Some("octo/open"); 2]);
    assert_eq!(journal.jobs(jobs(Visibility::All)).await.unwrap().len(), 6);
    let since = "1970-01-01T00:00:00Z";
    let counts = journal.job_counts(since, Visibility::Public).await.unwrap();
    assert_eq!(counts.queued, 2);
    let counts = journal.job_counts(since, Visibility::All).await.unwrap();
    assert_eq!(counts.queued, 6);

    // Posts by the repository posted to; actions by their job's, else their delivery's.
    let secret_job = journal.jobs_of("v2").await.unwrap()[0].id;
    let open_job = journal.jobs_of("v1").await.unwrap()[0].id;
    for (job, repository) in [(secret_job, "octo/secret"), (open_job, "octo/open")] {
        let post = GitHubPost {
            job,
            kind: "deployment".into(),
            repository: repository.into(),
            ..GitHubPost::default()
        };
        journal.record_post(post).await.unwrap();
    }
    let posts = |visibility| PostFilter {
        limit: 10,
        visibility,
        ..PostFilter::default()
    };
    let shown = journal.posts(posts(Visibility::Public)).await.unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].post.repository, "octo/open");
    assert_eq!(
        journal.posts(posts(Visibility::All)).await.unwrap().len(),
        2
    );
    for (delivery, job) in [
        ("v2", Some(secret_job)),
        ("v1", Some(open_job)),
        ("v2", None),
        ("v1", None),
    ] {
        let action = NewAction {
            actor: "alice".into(),
            action: "replay".into(),
            delivery: Some(delivery.into()),
            job,
            outcome: "done".into(),
            ..NewAction::default()
        };
        journal.record_action(action).await.unwrap();
    }
    let actions = |visibility| ActionFilter {
        limit: 10,
        visibility,
        ..ActionFilter::default()
    };
    let shown = journal.actions(actions(Visibility::Public)).await.unwrap();
    let shown: Vec<_> = shown
        .iter()
        .map(|a| (a.delivery.as_deref(), a.job))
        .collect();
    assert_eq!(shown, [(Some("v1"), None), (Some("v1"), Some(open_job))]);
    assert_eq!(
        journal
            .actions(actions(Visibility::All))
            .await
            .unwrap()
            .len(),
        4
    );
}

async fn sign_outs_end_sessions_and_only_move_forward(journal: &dyn Journal) {
    assert_eq!(journal.sessions_ended("alice").await.unwrap(), None);
    journal.end_sessions("alice", 2000).await.unwrap();
    journal.end_sessions("alice", 1000).await.unwrap();
    assert_eq!(journal.sessions_ended("alice").await.unwrap(), Some(2000));
    assert_eq!(journal.sessions_ended("bob").await.unwrap(), None);
    journal.end_sessions("alice", 3000).await.unwrap();
    assert_eq!(journal.sessions_ended("alice").await.unwrap(), Some(3000));
}

async fn cancels_reach_queued_jobs_as_they_start_and_leave_ended_ones(journal: &dyn Journal) {
    let jobs = new_jobs(journal, "c1", &["ci", "ci", "ci"]).await;
    let (queued, ended, running) = (jobs[0].id, jobs[1].id, jobs[2].id);
    let by_mona = CancelReason::User { by: "mona".into() };
    let asked = journal.request_cancel(queued, &by_mona).await.unwrap();
    assert_eq!(asked, Some(JobState::Queued));
    // A second request keeps the first reason.
    let by_hubot = CancelReason::User { by: "hubot".into() };
    journal.request_cancel(queued, &by_hubot).await.unwrap();
    let cancelled = Some(Started {
        number: 1,
        cancel: Some(by_mona.clone()),
    });
    assert_eq!(journal.start_attempt(queued, 0).await.unwrap(), cancelled);

    assert_eq!(journal.start_attempt(ended, 0).await.unwrap(), started(1));
    let done = AttemptEnd::Succeeded {
        note: None,
        verdict: switchyard_plugin_api::Verdict::Passed,
    };
    journal.end_attempt(ended, 1, done).await.unwrap();
    let asked = journal.request_cancel(ended, &by_mona).await.unwrap();
    assert_eq!(asked, Some(JobState::Succeeded));
    assert_eq!(journal.job(ended).await.unwrap().state, JobState::Succeeded);

    assert_eq!(journal.start_attempt(running, 0).await.unwrap(), started(1));
    settle(journal).await;
    let asked = journal.request_cancel(running, &by_mona).await.unwrap();
    assert_eq!(asked, Some(JobState::Running));
    // The attempt is cut off (a crash) and queued again: the next one starts cancelled.
    let retry = AttemptEnd::WillRetry {
        error: "host died".into(),
        not_before: 0,
    };
    journal.end_attempt(running, 1, retry).await.unwrap();
    let again = journal.start_attempt(running, 1).await.unwrap();
    assert_eq!(
        again.and_then(|started| started.cancel),
        Some(by_mona.clone())
    );

    let unknown = journal.request_cancel(JobId(999_999), &by_mona).await;
    assert_eq!(unknown.unwrap(), None);
}

async fn the_latest_job_of_a_line_is_read_back_with_its_sha(journal: &dyn Journal) {
    let jobs = new_jobs(journal, "l1", &["ci", "ci"]).await;
    let line = "ci\no/r#9";
    assert_eq!(journal.latest_of_line(line).await.unwrap(), None);
    journal.supersede(line, jobs[0].id, "aaa").await.unwrap();
    journal.supersede(line, jobs[1].id, "bbb").await.unwrap();
    assert_eq!(
        journal.latest_of_line(line).await.unwrap(),
        Some((jobs[1].id, "bbb".to_owned()))
    );
}

async fn pull_request_heads_are_kept_in_order_with_who_approved_them(journal: &dyn Journal) {
    let jobs = new_jobs(journal, "h1", &["ci", "ci", "ci"]).await;
    let head = |job: JobId, sha: &str, by: Option<&str>| NewHead {
        repository: "o/r".to_owned(),
        number: 3,
        sha: sha.to_owned(),
        job,
        approved_by: by.map(str::to_owned),
    };
    assert!(
        journal
            .record_head(head(jobs[0].id, "aaa", None))
            .await
            .unwrap()
    );
    let by = Some("github:1 (mona)");
    assert!(
        !journal
            .record_head(head(jobs[1].id, "aaa", by))
            .await
            .unwrap()
    );
    assert!(
        !journal
            .record_head(head(jobs[2].id, "bbb", None))
            .await
            .unwrap()
    );
    let heads = journal.heads("o/r", 3).await.unwrap();
    let read: Vec<(&str, JobId, Option<&str>)> = heads
        .iter()
        .map(|h| (h.sha.as_str(), h.job, h.approved_by.as_deref()))
        .collect();
    assert_eq!(
        read,
        [
            ("aaa", jobs[0].id, None),
            ("aaa", jobs[1].id, by),
            ("bbb", jobs[2].id, None)
        ]
    );
    assert!(journal.heads("o/r", 4).await.unwrap().is_empty());
    assert!(journal.heads("o/other", 3).await.unwrap().is_empty());
}

async fn the_latest_job_of_a_line_supersedes_older_ones(journal: &dyn Journal) {
    let jobs = new_jobs(journal, "s1", &["ci", "ci", "ci", "ci"]).await;
    let [old, new, newest, elsewhere] = [0, 1, 2, 3].map(|i| jobs[i].id);
    let (line, other_line) = ("ci\no/r#1", "ci\no/r#2");
    let latest = |replaced| Supersede::Latest { replaced };
    assert_eq!(
        journal.supersede(line, old, "aaa").await.unwrap(),
        latest(None)
    );
    // A retry of the latest job is still the latest.
    assert_eq!(
        journal.supersede(line, old, "aaa").await.unwrap(),
        latest(None)
    );
    assert_eq!(journal.start_attempt(old, 0).await.unwrap(), started(1));
    let replaced = journal.supersede(line, new, "bbb").await.unwrap();
    assert_eq!(replaced, latest(Some(old)));
    // The older job, asked again (a retry after a restart), is told it is stale.
    let stale = journal.supersede(line, old, "aaa").await.unwrap();
    assert_eq!(
        stale,
        Supersede::Stale {
            newer_sha: "bbb".into()
        }
    );
    // Lines are apart.
    let apart = journal.supersede(other_line, elsewhere, "ccc").await;
    assert_eq!(apart.unwrap(), latest(None));
    // A job superseded while queued starts cancelled, saying by what.
    let replaced = journal.supersede(line, newest, "ddd").await.unwrap();
    assert_eq!(replaced, latest(Some(new)));
    let begun = journal.start_attempt(new, 0).await.unwrap().unwrap();
    let by_newest = CancelReason::Superseded { sha: "ddd".into() };
    assert_eq!(begun.cancel, Some(by_newest));
    // A replaced job that already ended is not asked to cancel.
    journal
        .end_attempt(
            new,
            1,
            AttemptEnd::Succeeded {
                note: None,
                verdict: switchyard_plugin_api::Verdict::Passed,
            },
        )
        .await
        .unwrap();
    let later = new_jobs(journal, "s2", &["ci"]).await[0].id;
    let replaced = journal.supersede(other_line, later, "eee").await.unwrap();
    assert_eq!(replaced, latest(Some(elsewhere)));
    let after_end = new_jobs(journal, "s3", &["ci"]).await[0].id;
    journal.start_attempt(later, 0).await.unwrap();
    journal
        .end_attempt(
            later,
            1,
            AttemptEnd::Succeeded {
                note: None,
                verdict: switchyard_plugin_api::Verdict::Passed,
            },
        )
        .await
        .unwrap();
    let replaced = journal.supersede(other_line, after_end, "fff").await;
    assert_eq!(replaced.unwrap(), latest(None));
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let journal = super::SqliteJournal::open(&dir.path().join("j.db")).unwrap();
                    super::$name(&journal).await;
                }
            )*
            #[tokio::test]
            async fn concurrent_appends_of_one_id_store_it_once() {
                let dir = tempfile::tempdir().unwrap();
                let journal = super::SqliteJournal::open(&dir.path().join("j.db")).unwrap();
                super::concurrent_appends_of_one_id_store_it_once(std::sync::Arc::new(journal)).await;
            }
            #[tokio::test]
            async fn ids_are_never_given_twice_across_a_restart() {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("j.db");
                super::ids_are_never_given_twice_across_a_restart(async || {
                    Box::new(super::SqliteJournal::open(&path).unwrap()) as Box<dyn super::Journal>
                })
                .await;
            }
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(journal) = super::postgres(None).await else { return };
                    super::$name(&journal).await;
                }
            )*
            #[tokio::test]
            async fn concurrent_appends_of_one_id_store_it_once() {
                let Some(journal) = super::postgres(None).await else { return };
                super::concurrent_appends_of_one_id_store_it_once(std::sync::Arc::new(journal)).await;
            }
            #[tokio::test]
            async fn ids_are_never_given_twice_across_a_restart() {
                let Some(server) = super::TestPostgres::get() else { return };
                let url = server.database();
                super::ids_are_never_given_twice_across_a_restart(async || {
                    let journal = super::postgres(Some(url.clone())).await.unwrap();
                    Box::new(journal) as Box<dyn super::Journal>
                })
                .await;
            }
        }
    };
}

conformance!(
    appends_are_stored_once_and_reruns_add_jobs,
    attempts_move_jobs_through_their_states_and_ends_are_fenced,
    a_retry_is_neither_started_nor_read_back_before_its_backoff,
    queued_pages_stop_at_their_limit_or_byte_budget,
    unstarted_jobs_can_fail_and_free_their_locks,
    an_attempt_handed_back_is_queued_again_as_an_interruption,
    a_lock_has_one_holder_until_its_attempt_ends,
    a_lock_is_released_only_from_the_job_named_as_its_holder,
    the_audit_trail_keeps_who_did_what_newest_first,
    github_posts_are_kept_per_job_and_deployments_outlive_their_jobs,
    recent_deliveries_filter_by_event_and_failure_newest_first,
    nonces_are_claimed_once_until_they_expire,
    host_keys_are_made_once,
    catch_up_marks_move_only_from_where_they_were_and_held_ids_are_known,
    pruning_goes_in_batches_and_keeps_unfinished_jobs,
    the_dashboards_reads_filter_page_and_count,
    cancels_reach_queued_jobs_as_they_start_and_leave_ended_ones,
    the_latest_job_of_a_line_supersedes_older_ones,
    the_latest_job_of_a_line_is_read_back_with_its_sha,
    pull_request_heads_are_kept_in_order_with_who_approved_them,
    ids_are_never_given_twice_after_pruning,
    ids_named_elsewhere_are_skipped,
    each_job_has_its_own_link_salt,
    visitors_see_only_repositories_whose_newest_delivery_is_public,
    sign_outs_end_sessions_and_only_move_forward,
    jobs_are_found_by_pull_request_sha_prefix_and_branch,
    sticky_locks_have_one_owner_until_released,
    deployments_created_here_are_read_back_by_id,
    an_automatic_deploy_is_claimed_once_until_given_back,
    deploy_successes_are_read_newest_first_per_environment,
);

fn settings(url: String, lease: Duration, poll: Duration) -> PostgresSettings {
    PostgresSettings {
        url,
        origin: "the test".into(),
        pool_size: 8,
        tls: None,
        lease,
        poll,
    }
}

/// A journal on a fresh database of the test server (`None`: PostgreSQL is not installed), or
/// on `url`'s.
async fn postgres(url: Option<String>) -> Option<PostgresJournal> {
    let url = match url {
        Some(url) => url,
        None => TestPostgres::get()?.database(),
    };
    let settings = settings(url, Duration::from_secs(30), Duration::from_secs(1));
    Some(PostgresJournal::open(settings).await.unwrap())
}

/// A host's journal on `url` with a short lease, polling often.
pub(crate) async fn host(url: &str, lease_ms: u64) -> PostgresJournal {
    let lease = Duration::from_millis(lease_ms);
    let settings = settings(url.to_owned(), lease, Duration::from_millis(100));
    PostgresJournal::open(settings).await.unwrap()
}

/// Polls `check` until it holds; panics after 30 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_dead_hosts_job_is_run_again_after_its_lease_and_its_late_end_is_refused() {
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    let dead = host(&url, 1000).await;
    let job = new_jobs(&dead, "lease-1", &["a"]).await[0].id;
    let production = "deploy:o/r:production";
    assert_eq!(dead.start_attempt(job, 0).await.unwrap(), started(1));
    assert!(dead.try_lock(production, job, 1).await.unwrap());
    // The host dies: its journal stops renewing.
    drop(dead);
    let other = host(&url, 1000).await;
    eventually(
        "the lease to expire and the job to be queued again",
        async || other.job(job).await.unwrap().state == JobState::Queued,
    )
    .await;
    let queued = other.queued(JobId(0), 10, usize::MAX).await.unwrap();
    assert_eq!(queued.jobs[0].attempts, 1, "the dead attempt is counted");
    assert_eq!(other.start_attempt(job, 1).await.unwrap(), started(2));
    // What the dead attempt held is free for the re-run.
    assert!(other.try_lock(production, job, 2).await.unwrap());
    // The first host was only slow: it comes back and reports its attempt. Refused.
    let slow = host(&url, 1000).await;
    let late = slow.end_attempt(
        job,
        1,
        AttemptEnd::Failed {
            error: "late".into(),
            verdict: switchyard_plugin_api::Verdict::Errored,
        },
    );
    assert!(matches!(late.await, Err(JournalError::NotRunning { .. })));
    other
        .end_attempt(
            job,
            2,
            AttemptEnd::Succeeded {
                note: None,
                verdict: switchyard_plugin_api::Verdict::Passed,
            },
        )
        .await
        .unwrap();
    let record = other.job(job).await.unwrap();
    assert_eq!(
        (record.state, record.attempts, record.error),
        (JobState::Succeeded, 2, None)
    );
}

#[tokio::test]
async fn a_live_hosts_lease_is_renewed_and_its_lock_held_across_hosts() {
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    let (a, b) = (host(&url, 600).await, host(&url, 600).await);
    let jobs = new_jobs(&a, "renew-1", &["deployer", "deployer"]).await;
    assert_eq!(a.start_attempt(jobs[0].id, 0).await.unwrap(), started(1));
    assert_eq!(b.start_attempt(jobs[1].id, 0).await.unwrap(), started(1));
    let production = "deploy:o/r:production";
    assert!(a.try_lock(production, jobs[0].id, 1).await.unwrap());
    // Five leases long: renewed all along, so never rescued, and the lock stays A's.
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!b.try_lock(production, jobs[1].id, 1).await.unwrap());
        assert_eq!(b.job(jobs[0].id).await.unwrap().state, JobState::Running);
    }
    a.end_attempt(
        jobs[0].id,
        1,
        AttemptEnd::Succeeded {
            note: None,
            verdict: switchyard_plugin_api::Verdict::Passed,
        },
    )
    .await
    .unwrap();
    assert!(b.try_lock(production, jobs[1].id, 1).await.unwrap());
}

#[tokio::test]
async fn another_host_is_woken_by_notify_without_polling() {
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    let writer = postgres(Some(url.clone())).await.unwrap();
    // Polls once an hour: only a NOTIFY can wake it in time.
    let settings = settings(url, Duration::from_secs(7200), Duration::from_secs(3600));
    let listener = PostgresJournal::open(settings).await.unwrap();
    // The first wake-up is the listener's own, once it listens (and an initial poll).
    tokio::time::timeout(Duration::from_secs(30), listener.queue_changed())
        .await
        .expect("listening");
    tokio::time::timeout(Duration::from_secs(30), listener.queue_changed())
        .await
        .expect("the initial poll");
    let woken = listener.queue_changed();
    tokio::pin!(woken);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut woken)
            .await
            .is_err(),
        "woken with nothing new"
    );
    let jobs = new_jobs(&writer, "notify-1", &["a", "b"]).await;
    let from = tokio::time::timeout(Duration::from_secs(30), woken)
        .await
        .expect("woken by the other host's NOTIFY");
    // It reads from the first new job, not the queue's head.
    assert_eq!(from, jobs[0].id);

    // Its own deliveries' jobs were handed to its workers: its own NOTIFY wakes nobody here.
    new_jobs(&listener, "notify-own", &["a"]).await;
    let woken = listener.queue_changed();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), woken)
            .await
            .is_err(),
        "woken by its own NOTIFY"
    );
}

#[tokio::test]
async fn a_cancel_asked_on_one_host_reaches_the_attempt_running_on_another() {
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    let asker = postgres(Some(url.clone())).await.unwrap();
    // Renews once an hour: only the NOTIFY can make it read the request in time.
    let settings = settings(url, Duration::from_secs(7200), Duration::from_secs(3600));
    let runner = PostgresJournal::open(settings).await.unwrap();
    let job = new_jobs(&asker, "cancel-1", &["ci"]).await[0].id;
    assert_eq!(runner.start_attempt(job, 0).await.unwrap(), started(1));
    let by_mona = CancelReason::User { by: "mona".into() };
    let asked = asker.request_cancel(job, &by_mona).await.unwrap();
    assert_eq!(asked, Some(JobState::Running));
    let told = tokio::time::timeout(Duration::from_secs(30), runner.cancel_requested())
        .await
        .expect("the running host is told");
    assert!(told.contains(&(job, by_mona)), "{told:?}");
}

#[tokio::test]
async fn a_pending_cancel_is_passed_on_once_not_at_every_renewal() {
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    // Renewed every 100 ms.
    let runner = host(&url, 600).await;
    let job = new_jobs(&runner, "cancel-once", &["ci"]).await[0].id;
    assert_eq!(runner.start_attempt(job, 0).await.unwrap(), started(1));
    let by_mona = CancelReason::User { by: "mona".into() };
    runner.request_cancel(job, &by_mona).await.unwrap();
    let told = tokio::time::timeout(Duration::from_secs(30), runner.cancel_requested())
        .await
        .expect("told once");
    assert_eq!(told, vec![(job, by_mona)]);
    // Ten renewals later, still running and still asked to cancel: not told again.
    let again = tokio::time::timeout(Duration::from_secs(1), runner.cancel_requested()).await;
    assert!(again.is_err(), "told again: {again:?}");
    assert_eq!(runner.job(job).await.unwrap().state, JobState::Running);
}

#[tokio::test]
async fn an_attempt_whose_job_was_taken_from_this_host_is_reported_lost_at_once() {
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    let runner = host(&url, 600).await;
    let jobs = new_jobs(&runner, "taken-1", &["deployer", "ci"]).await;
    let (taken, kept) = (jobs[0].id, jobs[1].id);
    assert_eq!(runner.start_attempt(taken, 0).await.unwrap(), started(1));
    assert_eq!(runner.start_attempt(kept, 0).await.unwrap(), started(1));
    // As a host that found its lease expired would: queued again behind this host's back.
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .execute(
            "UPDATE jobs SET state = 'queued', lease_until = NULL WHERE id = $1",
            &[&taken.0],
        )
        .await
        .unwrap();
    let lost = tokio::time::timeout(Duration::from_secs(30), runner.leases_lost())
        .await
        .expect("reported");
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!((lost[0].job, lost[0].attempt), (taken, 1));
    assert!(lost[0].until <= std::time::Instant::now());
    // The other lease is renewed on, and never reported.
    let more = tokio::time::timeout(Duration::from_secs(1), runner.leases_lost()).await;
    assert!(more.is_err(), "{more:?}");
    assert_eq!(runner.job(kept).await.unwrap().state, JobState::Running);
}

#[tokio::test]
async fn job_logs_are_shared_gapless_and_pruned_with_their_jobs() {
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    let a = Arc::new(host(&url, 30_000).await);
    let b = host(&url, 30_000).await;
    let job = new_jobs(&*a, "log-1", &["a"]).await[0].id;
    let writers = (0..4).map(|w| {
        let a = Arc::clone(&a);
        tokio::spawn(async move {
            for line in 0..25 {
                a.append_log(job, format!("w{w} l{line}\n").into_bytes(), u64::MAX)
                    .await
                    .unwrap();
            }
        })
    });
    // Read from the other host while they write: chunks come in order, none missed.
    let mut read = Vec::new();
    let mut next = 0;
    for writer in writers {
        writer.await.unwrap();
        let chunks = b.read_log(job, next, 7).await.unwrap();
        next += chunks.len() as u64;
        read.extend(chunks);
    }
    loop {
        let chunks = b.read_log(job, next, 7).await.unwrap();
        if chunks.is_empty() {
            break;
        }
        next += chunks.len() as u64;
        read.extend(chunks);
    }
    assert_eq!(read.len(), 100);
    let text = String::from_utf8(read.concat()).unwrap();
    assert_eq!(b.log_len(job).await.unwrap(), text.len() as u64);
    for w in 0..4 {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("w{w} ")))
            .collect();
        let expected: Vec<String> = (0..25).map(|l| format!("w{w} l{l}")).collect();
        assert_eq!(lines, expected, "one writer's lines in order");
    }
    a.start_attempt(job, 0).await.unwrap();
    a.end_attempt(
        job,
        1,
        AttemptEnd::Succeeded {
            note: None,
            verdict: switchyard_plugin_api::Verdict::Passed,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        b.prune_jobs("9999-01-01T00:00:00Z", 10).await.unwrap(),
        [job]
    );
    assert_eq!(b.log_len(job).await.unwrap(), 0);
}

#[tokio::test]
async fn job_log_chunks_know_their_place_and_time_and_appends_stop_at_the_limit() {
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    let a = host(&url, 30_000).await;
    let job = new_jobs(&a, "log-2", &["a"]).await[0].id;
    // (text appended, the log's length after)
    for (text, length) in [("one\ntwo\n", 8), ("thr", 11), ("ee\nfour\n", 19)] {
        let appended = a.append_log(job, text.into(), 100).await.unwrap();
        assert_eq!(appended, Some(length), "{text:?}");
    }
    let place = |chunks: Vec<LogChunk>| -> Vec<(u64, u64)> {
        assert!(chunks.iter().all(|c| c.written_ms.is_some()), "{chunks:?}");
        chunks
            .iter()
            .map(|c| (c.start, c.newlines_before))
            .collect()
    };
    // (bytes from, to, the chunks holding them: their start and newlines before)
    type Places = &'static [(u64, u64)];
    let cases: [(u64, u64, Places); 4] = [
        (0, 1, &[(0, 0)]),
        (9, 12, &[(8, 2), (11, 2)]),
        (0, 19, &[(0, 0), (8, 2), (11, 2)]),
        (30, 31, &[(11, 2)]),
    ];
    for (from, to, expected) in cases {
        let found = place(a.log_chunks(job, from, to).await.unwrap());
        assert_eq!(found, expected, "{from}..{to}");
    }
    // (a newline, the start of the chunk holding it, or of the last)
    for (newline, start) in [(1, 0), (2, 0), (3, 11), (4, 11), (9, 11)] {
        let chunk = a.log_chunk_with_newline(job, newline).await.unwrap();
        assert_eq!(chunk.map(|c| c.start), Some(start), "{newline}");
    }
    assert_eq!(a.log_len(job).await.unwrap(), 19);
    // Past the limit, an append adds nothing and says so.
    assert_eq!(
        a.append_log(job, vec![b'x'; 10], 20).await.unwrap(),
        Some(29)
    );
    assert_eq!(a.append_log(job, b"more".to_vec(), 20).await.unwrap(), None);
    assert_eq!(a.log_len(job).await.unwrap(), 29);
    let other = new_jobs(&a, "log-3", &["a"]).await[0].id;
    assert_eq!(a.log_chunk_with_newline(other, 1).await.unwrap(), None);
    assert!(a.log_chunks(other, 0, 10).await.unwrap().is_empty());
}

/// Statements run so far on the database at `url` whose text holds `text` (each counted once
/// it ended); `None` when the server has no `pg_stat_statements` to count them.
pub(crate) async fn statements_run(url: &str, text: &str) -> Option<i64> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await
        .ok()?;
    // The pattern is a parameter, so this query's own text does not match it.
    let row = client
        .query_one(
            "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND query LIKE $1",
            &[&format!("%{text}%")],
        )
        .await
        .ok()?;
    Some(row.get(0))
}

#[tokio::test]
async fn a_log_append_is_one_statement_at_any_length_of_the_log() {
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    let journal: Arc<PostgresJournal> = Arc::new(host(&url, 30_000).await);
    let job = new_jobs(&*journal, "long-log", &["a"]).await[0].id;
    let logs = crate::job_log::JobLogs::new(std::path::PathBuf::new(), [])
        .kept_in(journal.clone())
        .with_limit(1 << 20);
    let Some(_) = statements_run(&url, "job_logs").await else {
        eprintln!("no pg_stat_statements: skipping the statement count");
        return;
    };
    // (chunks already in the log, appends)
    for (before, appends) in [(0, 20), (5_000, 20)] {
        for n in 0..before {
            logs.append(job, format!("filler {n}\n").as_bytes())
                .await
                .unwrap();
        }
        let ran = statements_run(&url, "job_logs").await.unwrap();
        for n in 0..appends {
            logs.append(job, format!("line {n}\n").as_bytes())
                .await
                .unwrap();
        }
        let appended = statements_run(&url, "job_logs").await.unwrap() - ran;
        assert_eq!(appended, appends, "after {before} chunks");
    }
    // Reaching the limit adds its note: one statement more, once; then nothing is added.
    let big = vec![b'x'; 1 << 20];
    let ran = statements_run(&url, "job_logs").await.unwrap();
    logs.append(job, &big).await.unwrap();
    logs.append(job, b"dropped\n").await.unwrap();
    assert_eq!(statements_run(&url, "job_logs").await.unwrap() - ran, 3);
    let length = journal.log_len(job).await.unwrap();
    let tail = journal.log_chunks(job, length - 200, length).await.unwrap();
    let tail = String::from_utf8_lossy(&tail.last().unwrap().data).into_owned();
    assert!(tail.contains("reached its limit of 1 MiB"), "{tail}");
}

#[tokio::test]
async fn migrations_apply_once_to_an_empty_database_even_from_hosts_starting_at_once() {
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    let settings = settings(url.clone(), Duration::from_secs(30), Duration::from_secs(1));
    assert_eq!(super::migrate_only(&settings, false).await.unwrap(), (0, 0));
    let starting = (0..6).map(|_| {
        let settings = settings.clone();
        tokio::spawn(async move { PostgresJournal::open(settings).await.map(drop) })
    });
    for start in starting {
        start.await.unwrap().unwrap();
    }
    let current = super::schema_version();
    assert_eq!(
        super::migrate_only(&settings, false).await.unwrap(),
        (current, current)
    );
    // A current database: nothing to apply, and its contents stay.
    let journal = PostgresJournal::open(settings.clone()).await.unwrap();
    new_jobs(&journal, "kept", &["a"]).await;
    assert_eq!(
        super::migrate_only(&settings, true).await.unwrap(),
        (current, current)
    );
    assert!(journal.delivery("kept").await.unwrap().is_some());
}

#[tokio::test]
async fn a_bad_url_names_the_setting_and_never_shows_the_password() {
    let mut bad = settings(
        "postgres://app:hunter2@127.0.0.1:1/x?connect_timeout=x".into(),
        Duration::from_secs(30),
        Duration::from_secs(1),
    );
    bad.origin = "[store] url_env (SWITCHYARD_DATABASE_URL)".into();
    let error = PostgresJournal::open(bad.clone())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("url_env"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
    // A server that is not there: unreachable, and still no password.
    bad.url = "postgres://app:hunter2@127.0.0.1:1/x".into();
    let error = PostgresJournal::open(bad).await.err().unwrap();
    assert!(error.is_unavailable(), "{error}");
    assert!(!error.to_string().contains("hunter2"), "{error}");
    assert!(!format!("{error:?}").contains("hunter2"));
}

/// Deliveries sent to two hosts at once, each id several times on each: every id is stored
/// once (one answer says new, every other says duplicate), every job is started by one host
/// only, and every attempt ends once, however the batches fell.
#[tokio::test]
async fn two_hosts_batching_at_once_store_each_id_once_and_start_and_end_each_job_once() {
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    let a = Arc::new(postgres(Some(url.clone())).await.unwrap());
    let b = Arc::new(postgres(Some(url)).await.unwrap());
    let ids: Vec<String> = (0..60).map(|n| format!("batched-{n}")).collect();
    let mut appends = Vec::new();
    for id in ids.iter().chain(&ids) {
        for journal in [&a, &b] {
            let (journal, id) = (Arc::clone(journal), id.clone());
            appends.push(tokio::spawn(async move {
                journal
                    .append(delivery(&id), plugins(&["ci", "chat"]), false)
                    .await
                    .unwrap()
            }));
        }
    }
    let mut jobs = Vec::new();
    let mut duplicates = 0;
    for appended in futures_util::future::join_all(appends).await {
        match appended.unwrap() {
            Appended::New(new) => {
                assert_eq!(new.len(), 2, "{new:?}");
                jobs.extend(new);
            }
            Appended::Duplicate => duplicates += 1,
        }
    }
    assert_eq!(
        jobs.len(),
        ids.len() * 2,
        "each id stored once, with its jobs"
    );
    assert_eq!(duplicates, ids.len() * 3);
    for id in &ids {
        assert!(a.delivery(id).await.unwrap().is_some(), "{id}");
    }

    // Both hosts start every job at once: one start each.
    let mut starts = Vec::new();
    for job in &jobs {
        for journal in [&a, &b] {
            let (journal, id) = (Arc::clone(journal), job.id);
            starts.push(tokio::spawn(async move {
                (id, journal.start_attempt(id, 0).await.unwrap())
            }));
        }
    }
    let mut started = std::collections::HashMap::new();
    for start in futures_util::future::join_all(starts).await {
        let (id, start) = start.unwrap();
        if let Some(start) = start {
            assert_eq!(start.number, 1);
            assert!(started.insert(id, ()).is_none(), "job {id} started twice");
        }
    }
    assert_eq!(started.len(), jobs.len(), "every job started");

    // Every attempt ends once; the same end again is fenced.
    let ends = jobs.iter().map(|job| {
        let (a, id) = (Arc::clone(&a), job.id);
        tokio::spawn(async move {
            let end = AttemptEnd::Succeeded {
                note: None,
                verdict: switchyard_plugin_api::Verdict::Passed,
            };
            a.end_attempt(id, 1, end).await
        })
    });
    for ended in futures_util::future::join_all(ends).await {
        ended.unwrap().unwrap();
    }
    let again = a
        .end_attempt(
            jobs[0].id,
            1,
            AttemptEnd::Succeeded {
                note: None,
                verdict: switchyard_plugin_api::Verdict::Passed,
            },
        )
        .await;
    assert!(
        matches!(again, Err(JournalError::NotRunning { .. })),
        "{again:?}"
    );
    assert_eq!(a.unfinished_count().await.unwrap(), 0);
}

/// A delivery PostgreSQL cannot store (a NUL in a text column) fails alone: the others that
/// arrived in its batch are stored.
#[tokio::test]
async fn one_delivery_postgres_refuses_fails_alone_and_its_batch_is_stored() {
    let Some(journal) = postgres(None).await else {
        return;
    };
    let journal = Arc::new(journal);
    let appends = (0..20).map(|n| {
        let journal = Arc::clone(&journal);
        tokio::spawn(async move {
            let mut delivery = (*delivery(&format!("nul-{n}"))).clone();
            if n == 7 {
                delivery.facts.sender = Some("mo\0na".into());
            }
            journal
                .append(Arc::new(delivery), plugins(&["ci"]), false)
                .await
        })
    });
    let answers = futures_util::future::join_all(appends).await;
    for (n, answer) in answers.into_iter().enumerate() {
        match (n, answer.unwrap()) {
            (7, Err(JournalError::Postgres(message))) => {
                assert!(message.contains("22021"), "{message}")
            }
            (7, other) => panic!("the NUL was stored: {other:?}"),
            (_, Ok(Appended::New(jobs))) => assert_eq!(jobs.len(), 1),
            (n, other) => panic!("nul-{n}: {other:?}"),
        }
    }
}

/// A start that finds its job's row locked for a moment (a cancel or a supersede in another
/// transaction) asks again rather than leaving the job to the next poll.
#[tokio::test]
async fn a_start_that_meets_a_briefly_locked_row_starts_once_it_is_free() {
    let Some(server) = TestPostgres::get() else {
        return;
    };
    let url = server.database();
    // Polls once an hour: only the retry can start it in time.
    let settings = settings(
        url.clone(),
        Duration::from_secs(7200),
        Duration::from_secs(3600),
    );
    let journal = PostgresJournal::open(settings).await.unwrap();
    let job = new_jobs(&journal, "locked-1", &["ci"]).await[0].id;
    let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let holder = client.transaction().await.unwrap();
    holder
        .execute("SELECT id FROM jobs WHERE id = $1 FOR UPDATE", &[&job.0])
        .await
        .unwrap();
    let starting = journal.start_attempt(job, 0);
    tokio::pin!(starting);
    // Still locked: the start keeps asking.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), &mut starting)
            .await
            .is_err(),
        "the start gave up or claimed a locked row"
    );
    holder.commit().await.unwrap();
    assert_eq!(starting.await.unwrap(), started(1));
}
