//! The contract of the deployer's records: sticky locks with one holder until released, and
//! the deployments this host created, read back by id.

use super::super::{DeployRecordRow, DeploySuccessRow, Journal, StickyLockRow};

fn lock(environment: &str, owner: &str, reason: &str) -> StickyLockRow {
    StickyLockRow {
        repository: "o/r".to_owned(),
        environment: environment.to_owned(),
        owner: owner.to_owned(),
        owner_login: format!("login-of-{owner}"),
        reason: reason.to_owned(),
        at: "2026-01-01T00:00:00Z".to_owned(),
    }
}

pub(super) async fn sticky_locks_have_one_owner_until_released(journal: &dyn Journal) {
    let mona = lock("production", "github:1", "release 2.0");
    assert_eq!(journal.take_sticky_lock(mona.clone()).await.unwrap(), mona);
    // Someone else asking gets the lock that holds; the owner asking again gets theirs.
    let hubot = lock("production", "github:2", "testing");
    assert_eq!(journal.take_sticky_lock(hubot.clone()).await.unwrap(), mona);
    let staging = lock("staging", "github:2", "testing");
    assert_eq!(
        journal.take_sticky_lock(staging.clone()).await.unwrap(),
        staging
    );
    assert_eq!(
        journal.sticky_locks(Some("o/r")).await.unwrap(),
        [mona.clone(), staging.clone()]
    );
    assert!(journal.sticky_locks(Some("o/x")).await.unwrap().is_empty());
    assert_eq!(journal.sticky_locks(None).await.unwrap().len(), 2);

    let released = journal.release_sticky_lock("o/r", "production").await;
    assert_eq!(released.unwrap(), Some(mona));
    assert_eq!(
        journal
            .release_sticky_lock("o/r", "production")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        journal.take_sticky_lock(hubot.clone()).await.unwrap(),
        hubot
    );
}

pub(super) async fn deployments_created_here_are_read_back_by_id(journal: &dyn Journal) {
    let record = DeployRecordRow {
        repository: "o/r".to_owned(),
        deployment_id: 7_000_000_001,
        environment: "staging".to_owned(),
        sha: "a".repeat(40),
        requested_by: "github:1".to_owned(),
        requested_login: "mona".to_owned(),
        forced: true,
        rollback: false,
        at: "2026-01-01T00:00:00Z".to_owned(),
    };
    journal.record_deployment(record.clone()).await.unwrap();
    // A second record of one id keeps the first.
    let again = DeployRecordRow {
        requested_by: "github:2".to_owned(),
        ..record.clone()
    };
    journal.record_deployment(again).await.unwrap();
    assert_eq!(
        journal
            .deployment_record("o/r", 7_000_000_001)
            .await
            .unwrap(),
        Some(record)
    );
    assert_eq!(journal.deployment_record("o/r", 1).await.unwrap(), None);
    assert_eq!(
        journal
            .deployment_record("o/x", 7_000_000_001)
            .await
            .unwrap(),
        None
    );
}

pub(super) async fn an_automatic_deploy_is_claimed_once_until_given_back(journal: &dyn Journal) {
    assert!(journal.claim_deploy("o/r", "staging", "aaa").await.unwrap());
    assert!(!journal.claim_deploy("o/r", "staging", "aaa").await.unwrap());
    assert!(
        journal
            .claim_deploy("o/r", "production", "aaa")
            .await
            .unwrap()
    );
    assert!(journal.claim_deploy("o/r", "staging", "bbb").await.unwrap());
    journal
        .release_deploy_claim("o/r", "staging", "aaa")
        .await
        .unwrap();
    assert!(journal.claim_deploy("o/r", "staging", "aaa").await.unwrap());
}

pub(super) async fn deploy_successes_are_read_newest_first_per_environment(journal: &dyn Journal) {
    let success = |environment: &str, id: u64, sha: &str| DeploySuccessRow {
        repository: "o/r".to_owned(),
        environment: environment.to_owned(),
        deployment_id: id,
        sha: sha.to_owned(),
        deployed_for: "mona".to_owned(),
        pull_request: (id == 2).then_some(12),
        at: "2026-01-01T00:00:00Z".to_owned(),
    };
    for (environment, id, sha) in [
        ("staging", 1, "a"),
        ("staging", 2, "b"),
        ("production", 3, "c"),
    ] {
        journal
            .record_deploy_success(success(environment, id, sha))
            .await
            .unwrap();
    }
    let staging = journal
        .deploy_successes("o/r", Some("staging"), 10)
        .await
        .unwrap();
    assert_eq!(
        staging,
        [success("staging", 2, "b"), success("staging", 1, "a")]
    );
    let all = journal.deploy_successes("o/r", None, 2).await.unwrap();
    let ids: Vec<u64> = all.iter().map(|s| s.deployment_id).collect();
    assert_eq!(ids, [3, 2]);
    assert!(
        journal
            .deploy_successes("o/x", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
