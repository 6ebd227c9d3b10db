//! What a person signed in with GitHub may read: public repositories, and the private ones the
//! journal knows where GitHub says they have at least `read`
//! (`repos/get-collaborator-permission-level`, asked with the host's own identity and read as
//! the comment commands read it). The set is computed per person, kept for
//! `github_refresh_secs` (at most 5 minutes) and computed again at their first request after:
//! losing access on GitHub loses it here within minutes.
//!
//! Each computation asks about at most `github_lookups_per_refresh` private repositories, the
//! most recently active first, [`CONCURRENT`] at a time: that is the person's call budget (see
//! docs/dashboard.md). A repository GitHub could not answer about (a rate limit, an outage)
//! counts as unreadable until the next computation: hidden, never shown on a guess.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};

use futures_util::{StreamExt as _, stream};
use switchyard_plugin_api::Role;

use super::{GitHubSignIn, Person, permission};
use crate::{
    commands::PermissionCache,
    github::GitHub,
    journal::{Journal, Visibility},
};

/// Lookups of one computation under way at once.
pub const CONCURRENT: usize = 8;

/// People whose sets are kept at most; past it, the expired ones are dropped, then all.
const MAX_PEOPLE: usize = 10_000;

/// A person's readable private repositories, and when they were asked.
type Readable = (Arc<[String]>, Instant);

/// The sets computed, by person's numeric id, and a lock per person so that their requests at
/// once compute it once.
#[derive(Default)]
pub struct ReadableSets {
    sets: Mutex<HashMap<u64, Readable>>,
    computing: Mutex<HashMap<u64, Arc<tokio::sync::Mutex<()>>>>,
}

impl GitHubSignIn {
    /// What `person` is shown: everything for an admin, else public repositories and the
    /// private ones they can read.
    pub(in crate::web) async fn visibility(
        &self,
        github: &dyn GitHub,
        journal: &dyn Journal,
        person: &Person,
    ) -> Visibility {
        if self.is_admin(person) {
            return Visibility::All;
        }
        if let Some(names) = self.fresh_set(person) {
            return Visibility::Readable(names);
        }
        let lock = {
            let mut computing = self
                .readable
                .computing
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            computing.retain(|_, lock| Arc::strong_count(lock) > 1);
            Arc::clone(computing.entry(person.id).or_default())
        };
        let _computing = lock.lock().await;
        if let Some(names) = self.fresh_set(person) {
            return Visibility::Readable(names);
        }
        let names = self.compute(github, journal, person).await;
        let mut sets = self.readable.sets.lock().unwrap_or_else(|p| p.into_inner());
        if sets.len() >= MAX_PEOPLE {
            let refresh = self.refresh;
            sets.retain(|_, (_, at)| at.elapsed() < refresh);
            if sets.len() >= MAX_PEOPLE {
                sets.clear();
            }
        }
        sets.insert(person.id, (Arc::clone(&names), Instant::now()));
        Visibility::Readable(names)
    }

    /// `person`'s set, when computed less than the refresh ago.
    fn fresh_set(&self, person: &Person) -> Option<Arc<[String]>> {
        let sets = self.readable.sets.lock().unwrap_or_else(|p| p.into_inner());
        sets.get(&person.id)
            .filter(|(_, at)| at.elapsed() < self.refresh)
            .map(|(names, _)| Arc::clone(names))
    }

    /// Forgets `person`'s set (signed out, or no longer allowed).
    pub(super) fn forget_readable(&self, person: &Person) {
        let mut sets = self.readable.sets.lock().unwrap_or_else(|p| p.into_inner());
        sets.remove(&person.id);
    }

    /// Asks GitHub about the most recently active private repositories, within the budget.
    async fn compute(
        &self,
        github: &dyn GitHub,
        journal: &dyn Journal,
        person: &Person,
    ) -> Arc<[String]> {
        let private = match journal.private_repositories(self.lookups_per_refresh).await {
            Ok(private) => private,
            Err(error) => {
                tracing::error!(
                    error = error.to_string(),
                    "cannot read the private repositories"
                );
                return Arc::from(Vec::new());
            }
        };
        // A cache of its own, so that every computation asks afresh.
        let cache = PermissionCache::default();
        let asked = private.len();
        let answers: Vec<(String, Result<Option<Role>, String>)> = stream::iter(private)
            .map(|repository| {
                let cache = &cache;
                async move {
                    let level = permission::level(github, cache, person, &repository).await;
                    (repository, level)
                }
            })
            .buffer_unordered(CONCURRENT)
            .collect()
            .await;
        let mut readable = Vec::new();
        let mut unknown = 0;
        for (repository, level) in answers {
            match level {
                Ok(level) if level.is_some_and(|have| have >= Role::Read) => {
                    readable.push(repository)
                }
                Ok(_) => {}
                Err(_) => unknown += 1,
            }
        }
        if unknown > 0 {
            tracing::warn!(
                person = person.id,
                unknown,
                asked,
                "GitHub could not say whether a person can read some private repositories: hidden until the next refresh"
            );
        }
        readable.sort();
        Arc::from(readable)
    }
}
