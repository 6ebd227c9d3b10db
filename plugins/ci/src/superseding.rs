//! Newer builds supersede older ones: the latest build of each line (a pull request, or a
//! branch for pushes) is remembered, and an older build still running is told which sha
//! replaced it. Builds are ordered by job id, which follows the order deliveries arrived in,
//! so a late-starting older build sees it is stale even after the newer one ended.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::watch;

use crate::target::Line;

/// The latest build of every line seen since the plugin started (one small entry per line).
#[derive(Default)]
pub struct Lines {
    latest: Mutex<HashMap<Line, Latest>>,
}

struct Latest {
    job: i64,
    sha: String,
    /// Carries the sha of the build that replaced this one.
    superseded: Arc<watch::Sender<Option<String>>>,
}

/// Whether a build should run.
pub enum Registration {
    /// The latest of its line: build, and stop if [`Current::superseded`] fires.
    Current(Current),
    /// A newer build of the line already started.
    Stale { newer_sha: String },
}

pub struct Current {
    superseded: watch::Receiver<Option<String>>,
}

impl Current {
    /// Completes with the newer build's sha once one supersedes this build.
    pub async fn superseded(&mut self) -> String {
        let newer = match self.superseded.wait_for(Option::is_some).await {
            Ok(sha) => sha.clone(),
            // The sender lives as long as the entry, which is only ever replaced after it fired.
            Err(_) => None,
        };
        match newer {
            Some(sha) => sha,
            None => std::future::pending().await,
        }
    }
}

impl Lines {
    /// The sha of `line`'s latest build, if any was registered.
    pub fn latest_sha(&self, line: &Line) -> Option<String> {
        let latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        latest.get(line).map(|entry| entry.sha.clone())
    }

    /// Records build `job` of `sha` as the latest of `line`, superseding an older one.
    pub fn register(&self, line: Line, job: i64, sha: &str) -> Registration {
        let mut latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = latest.get(&line) {
            if entry.job > job {
                return Registration::Stale {
                    newer_sha: entry.sha.clone(),
                };
            }
            // A retried attempt of the same job is not a newer build.
            if entry.job < job {
                entry.superseded.send_replace(Some(sha.to_owned()));
            }
        }
        let (sender, receiver) = watch::channel(None);
        latest.insert(
            line,
            Latest {
                job,
                sha: sha.to_owned(),
                superseded: Arc::new(sender),
            },
        );
        Registration::Current(Current {
            superseded: receiver,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn line(number: u64) -> Line {
        Line::PullRequest {
            repo: "octo/app".into(),
            number,
        }
    }

    fn current(registration: Registration) -> Current {
        match registration {
            Registration::Current(current) => current,
            Registration::Stale { newer_sha } => panic!("unexpectedly stale, by {newer_sha}"),
        }
    }

    async fn fired(current: &mut Current) -> Option<String> {
        tokio::time::timeout(Duration::from_millis(50), current.superseded())
            .await
            .ok()
    }

    #[tokio::test]
    async fn a_newer_build_supersedes_the_running_one_of_its_line_only() {
        let lines = Lines::default();
        let mut first = current(lines.register(line(1), 10, "aaa"));
        let mut other_pr = current(lines.register(line(2), 11, "bbb"));
        let mut second = current(lines.register(line(1), 12, "ccc"));
        assert_eq!(fired(&mut first).await.as_deref(), Some("ccc"));
        assert_eq!(fired(&mut other_pr).await, None);
        assert_eq!(fired(&mut second).await, None);
    }

    #[tokio::test]
    async fn an_older_build_arriving_late_is_stale() {
        let lines = Lines::default();
        let _newer = current(lines.register(line(1), 12, "ccc"));
        match lines.register(line(1), 10, "aaa") {
            Registration::Stale { newer_sha } => assert_eq!(newer_sha, "ccc"),
            Registration::Current(_) => panic!("an older job must be stale"),
        }
    }

    #[tokio::test]
    async fn a_retried_attempt_is_not_superseded_by_itself() {
        let lines = Lines::default();
        let mut first_attempt = current(lines.register(line(1), 10, "aaa"));
        let _second_attempt = current(lines.register(line(1), 10, "aaa"));
        assert_eq!(fired(&mut first_attempt).await, None);
    }
}
