//! What the service remembers between jobs, in this host's memory and bounded: commenters'
//! permissions for at most 60 s (a refusal no longer than an acceptance, so a person given
//! access is let through within a minute), and the replies it gave, so that one person
//! repeating a refused command costs GitHub one reply per pull request and command in 10
//! minutes, not one per comment (GitHub's secondary limits allow about 80 writes a minute, shared
//! with statuses and check runs).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use switchyard_plugin_api::Role;

/// How long a permission GitHub gave is used without asking again.
pub(crate) const PERMISSION_TTL: Duration = Duration::from_secs(60);
/// How long after a reply the same person, thread and command get no other.
pub(crate) const REPLY_WINDOW: Duration = Duration::from_secs(600);
/// Entries each map holds at most: past it, the expired ones are dropped, then the oldest.
const MAX_ENTRIES: usize = 10_000;

/// A level read from GitHub, and when.
type Read = (Option<Role>, Instant);
/// Whom a permission is about: `(repository, person's numeric id)`.
type Key = (String, u64);
/// A lookup under way, which jobs asking about the same person wait on.
type Lookup = Arc<tokio::sync::Mutex<()>>;

/// `(repository, person's numeric id)` to their level and when it was read.
#[derive(Default)]
pub(crate) struct PermissionCache {
    entries: Mutex<HashMap<Key, Read>>,
    /// The lookups under way, so that jobs asking about one person at once (two entries taking
    /// one command) wait for one answer instead of each asking GitHub.
    lookups: Mutex<HashMap<Key, Weak<tokio::sync::Mutex<()>>>>,
}

impl PermissionCache {
    /// The lock a lookup of `person` on `repository` holds: the second to take it finds the
    /// first's answer in the cache. Only lookups under way are kept.
    pub(crate) fn lookup(&self, repository: &str, person: u64) -> Lookup {
        let mut lookups = self.lookups.lock().unwrap_or_else(|p| p.into_inner());
        lookups.retain(|_, lookup| lookup.strong_count() > 0);
        let key = (repository.to_ascii_lowercase(), person);
        if let Some(lookup) = lookups.get(&key).and_then(Weak::upgrade) {
            return lookup;
        }
        let lookup = Arc::default();
        lookups.insert(key, Arc::downgrade(&lookup));
        lookup
    }

    /// The level read for `person` on `repository` less than [`PERMISSION_TTL`] ago.
    pub(crate) fn get(&self, repository: &str, person: u64) -> Option<Option<Role>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let key = (repository.to_ascii_lowercase(), person);
        entries
            .get(&key)
            .filter(|(_, at)| at.elapsed() < PERMISSION_TTL)
            .map(|(level, _)| *level)
    }

    pub(crate) fn put(&self, repository: &str, person: u64, level: Option<Role>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        make_room(&mut entries, PERMISSION_TTL);
        entries.insert(
            (repository.to_ascii_lowercase(), person),
            (level, Instant::now()),
        );
    }
}

/// The replies given, by person, thread and command.
#[derive(Default)]
pub(crate) struct ReplyBudget {
    given: Mutex<HashMap<(u64, String, String), Instant>>,
}

impl ReplyBudget {
    /// Whether a reply to `person` about `command` in `thread` (`owner/repo#12`) may go now;
    /// when it may, it is counted as given.
    pub(crate) fn take(&self, person: u64, thread: &str, command: &str) -> bool {
        let mut given = self.given.lock().unwrap_or_else(|p| p.into_inner());
        let key = (person, thread.to_ascii_lowercase(), command.to_owned());
        if given
            .get(&key)
            .is_some_and(|at| at.elapsed() < REPLY_WINDOW)
        {
            return false;
        }
        make_room(&mut given, REPLY_WINDOW);
        given.insert(key, Instant::now());
        true
    }
}

/// Keeps a map under [`MAX_ENTRIES`]: drops what expired, then the oldest.
fn make_room<K: Clone + Eq + std::hash::Hash, V: Timed>(map: &mut HashMap<K, V>, ttl: Duration) {
    if map.len() < MAX_ENTRIES {
        return;
    }
    map.retain(|_, value| value.at().elapsed() < ttl);
    while map.len() >= MAX_ENTRIES {
        let oldest = map
            .iter()
            .min_by_key(|(_, value)| value.at())
            .map(|(key, _)| key.clone());
        match oldest {
            Some(key) => map.remove(&key),
            None => break,
        };
    }
}

trait Timed {
    fn at(&self) -> Instant;
}

impl Timed for Instant {
    fn at(&self) -> Instant {
        *self
    }
}

impl Timed for Read {
    fn at(&self) -> Instant {
        self.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_reply_per_person_thread_and_command() {
        let budget = ReplyBudget::default();
        assert!(budget.take(1, "octo/app#3", "retest"));
        assert!(!budget.take(1, "Octo/App#3", "retest"));
        assert!(budget.take(1, "octo/app#3", "test"));
        assert!(budget.take(1, "octo/app#4", "retest"));
        assert!(budget.take(2, "octo/app#3", "retest"));
    }

    #[test]
    fn permissions_are_kept_per_repository_and_person() {
        let cache = PermissionCache::default();
        assert_eq!(cache.get("octo/app", 1), None);
        cache.put("octo/app", 1, Some(Role::Write));
        cache.put("octo/app", 2, None);
        assert_eq!(cache.get("Octo/App", 1), Some(Some(Role::Write)));
        assert_eq!(cache.get("octo/app", 2), Some(None));
        assert_eq!(cache.get("octo/lib", 1), None);
    }

    #[test]
    fn lookups_of_one_person_share_a_lock_kept_only_while_used() {
        let cache = PermissionCache::default();
        let first = cache.lookup("octo/app", 1);
        assert!(Arc::ptr_eq(&first, &cache.lookup("Octo/App", 1)));
        assert!(!Arc::ptr_eq(&first, &cache.lookup("octo/app", 2)));
        drop(first);
        let _other = cache.lookup("octo/app", 3);
        assert_eq!(cache.lookups.lock().unwrap().len(), 1);
    }

    #[test]
    fn the_maps_stay_bounded() {
        let budget = ReplyBudget::default();
        for person in 0..(MAX_ENTRIES as u64 + 50) {
            assert!(budget.take(person, "octo/app#1", "retest"));
        }
        assert!(budget.given.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
