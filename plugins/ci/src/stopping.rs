//! The Cancel button: a check run's `check_run.requested_action` reaches the build of that run
//! when it runs in this plugin instance. Builds register when they start and learn their check
//! run's id once it is created; the Cancel event's job finds the build by that id.
//!
//! Only a build of this plugin instance (this host) is reached: with several hosts sharing a
//! PostgreSQL journal the Cancel event may land on another host than the build. Stopping one's
//! own job on any host is the host's to offer (a journal-backed cancel service); this registry
//! gives way to it once it exists.

use std::{collections::HashMap, sync::Mutex};

use tokio::sync::watch;

/// The builds running here, by job id.
#[derive(Default)]
pub struct Stops {
    builds: Mutex<HashMap<i64, Build>>,
}

struct Build {
    run: Option<u64>,
    /// Carries who pressed Cancel.
    stop: watch::Sender<Option<String>>,
}

/// A build's end of its Cancel button; the build is forgotten when it is dropped (however the
/// build ended, its future dropped at a timeout included).
pub struct Stop<'a> {
    receiver: watch::Receiver<Option<String>>,
    stops: &'a Stops,
    job: i64,
}

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.stops.builds().remove(&self.job);
    }
}

impl Stop<'_> {
    /// Completes with who pressed Cancel.
    pub async fn requested(&mut self) -> String {
        let by = match self.receiver.wait_for(Option::is_some).await {
            Ok(by) => by.clone(),
            // The sender lives until the build closes, after this future is dropped.
            Err(_) => None,
        };
        match by {
            Some(by) => by,
            None => std::future::pending().await,
        }
    }
}

impl Stops {
    fn builds(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Build>> {
        self.builds.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers job `job`'s build.
    pub fn open(&self, job: i64) -> Stop<'_> {
        let (stop, receiver) = watch::channel(None);
        self.builds().insert(job, Build { run: None, stop });
        Stop {
            receiver,
            stops: self,
            job,
        }
    }

    /// Job `job`'s build reports to check run `run`.
    pub fn attach(&self, job: i64, run: u64) {
        if let Some(build) = self.builds().get_mut(&job) {
            build.run = Some(run);
        }
    }

    /// Asks the build reporting to check run `run` to stop; false when none runs here.
    pub fn request(&self, run: u64, by: &str) -> bool {
        let builds = self.builds();
        let build = builds.values().find(|build| build.run == Some(run));
        build.is_some_and(|build| {
            build.stop.send_replace(Some(by.to_owned()));
            true
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn cancel_reaches_the_build_of_its_check_run_only() {
        let stops = Stops::default();
        let mut first = stops.open(1);
        let mut second = stops.open(2);
        assert!(!stops.request(77, "mona"), "no build reports to run 77 yet");
        stops.attach(1, 77);
        stops.attach(2, 78);
        assert!(stops.request(77, "mona"));
        assert_eq!(first.requested().await, "mona");
        let untouched = tokio::time::timeout(Duration::from_millis(50), second.requested()).await;
        assert!(untouched.is_err());
        drop(first);
        assert!(
            !stops.request(77, "mona"),
            "ended builds cannot be cancelled"
        );
    }
}
