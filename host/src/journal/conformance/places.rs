//! The contract of the dashboard's reads by place: a repository's, a pull request's and a
//! commit's jobs, found by what each delivery's payload said as it was stored.

use std::sync::Arc;

use bytes::Bytes;

use super::super::{Appended, JobFilter, Journal, Visibility};
use crate::event::{Delivery, DeliveryId, EventKind, PayloadFacts, now_rfc3339};

const SHA_A: &str = "aaaa0000aaaa0000aaaa0000aaaa0000aaaa0000";
const SHA_B: &str = "aaab1111aaab1111aaab1111aaab1111aaab1111";

fn delivery(id: &str, event: &str, repository: &str, payload: String) -> Arc<Delivery> {
    Arc::new(Delivery {
        id: DeliveryId::parse(id).unwrap(),
        kind: EventKind::parse(event).unwrap(),
        facts: PayloadFacts {
            repository: Some(repository.into()),
            private: Some(false),
            ..PayloadFacts::default()
        },
        payload: Bytes::from(payload),
        received_at: now_rfc3339(),
        headers: Vec::new(),
    })
}

fn pull_request(number: i64, sha: &str) -> String {
    format!(
        r#"{{"action":"synchronize","pull_request":{{"number":{number},"head":{{"sha":"{sha}","ref":"pr-{number}"}}}}}}"#
    )
}

async fn append(journal: &dyn Journal, delivery: Arc<Delivery>, plugin: &str) {
    let plugins = vec![plugin.to_owned()];
    assert!(matches!(
        journal.append(delivery, plugins, false).await.unwrap(),
        Appended::New(_)
    ));
}

pub(super) async fn jobs_are_found_by_pull_request_sha_prefix_and_branch(journal: &dyn Journal) {
    let (repo, other) = ("octo/app", "octo/other");
    append(
        journal,
        delivery("p1", "pull_request", repo, pull_request(7, SHA_A)),
        "ci",
    )
    .await;
    append(
        journal,
        delivery("p2", "pull_request", repo, pull_request(7, SHA_B)),
        "ci",
    )
    .await;
    append(
        journal,
        delivery("p3", "pull_request", other, pull_request(7, SHA_A)),
        "ci",
    )
    .await;
    let push = format!(r#"{{"ref":"refs/heads/main","after":"{SHA_B}"}}"#);
    append(journal, delivery("p4", "push", repo, push), "ci").await;
    let deploy = format!(r#"{{"deployment":{{"sha":"{SHA_B}","ref":"main"}}}}"#);
    append(
        journal,
        delivery("p5", "deployment", repo, deploy),
        "deployer",
    )
    .await;
    let found = async |filter: JobFilter| -> Vec<String> {
        let filter = JobFilter {
            limit: 10,
            ..filter
        };
        let rows = journal.jobs(filter).await.unwrap();
        rows.into_iter().map(|row| row.job.delivery).collect()
    };
    let of_repo = |repository: &str| JobFilter {
        repository: Some(repository.into()),
        ..JobFilter::default()
    };
    // A pull request's, newest first, of its repository only.
    let pr = JobFilter {
        pull_request: Some(7),
        ..of_repo(repo)
    };
    assert_eq!(found(pr).await, ["p2", "p1"]);
    // A sha prefix finds every delivery about a commit it starts, whatever the event.
    let prefix = |p: &str| JobFilter {
        sha_prefix: Some(p.into()),
        ..JobFilter::default()
    };
    assert_eq!(found(prefix("aaab")).await, ["p5", "p4", "p2"]);
    assert_eq!(found(prefix("aaa")).await, ["p5", "p4", "p3", "p2", "p1"]);
    assert_eq!(found(prefix(SHA_A)).await, ["p3", "p1"]);
    assert!(found(prefix("ab")).await.is_empty());
    let branch = JobFilter {
        git_ref: Some("main".into()),
        ..of_repo(repo)
    };
    assert_eq!(found(branch).await, ["p5", "p4"]);
    let deploys = JobFilter {
        event: Some("deployment".into()),
        ..of_repo(repo)
    };
    assert_eq!(found(deploys).await, ["p5"]);
    // The place comes back with each row.
    let rows = journal
        .jobs(JobFilter {
            limit: 1,
            ..of_repo(other)
        })
        .await
        .unwrap();
    let place = &rows[0].place;
    assert_eq!(
        (
            place.pull_request,
            place.head_sha.as_deref(),
            place.git_ref.as_deref()
        ),
        (Some(7), Some(SHA_A), Some("pr-7"))
    );
    // A repository never said to be public is not shown to visitors, however it is found.
    append(
        journal,
        Arc::new(Delivery {
            facts: PayloadFacts {
                repository: Some("octo/secret".into()),
                private: Some(true),
                ..PayloadFacts::default()
            },
            ..(*delivery("p6", "pull_request", "x/x", pull_request(8, SHA_A))).clone()
        }),
        "ci",
    )
    .await;
    let public = JobFilter {
        visibility: Visibility::Public,
        ..prefix(SHA_A)
    };
    assert_eq!(found(public).await, ["p3", "p1"]);
    assert_eq!(found(prefix(SHA_A)).await, ["p6", "p3", "p1"]);
}
