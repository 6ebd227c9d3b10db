//! Installation tokens, cached: one per installation, repository and permission set, kept
//! until a few minutes before GitHub expires it. However many jobs ask at once, one fetch per
//! key is in flight and the others wait for its token. The cache is bounded, and what an
//! uninstall or a removed repository concerns is evicted.

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use switchyard_plugin_api::{HostError, Permissions};

/// A token is fetched anew this long before it expires, so no call goes out with a token
/// about to expire (GitHub's last an hour).
pub const REFRESH_BEFORE_SECS: i64 = 5 * 60;

/// What a token is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenKey {
    pub installation: u64,
    /// `owner/repo`, lower case (GitHub's names are case-insensitive); `None` for a token
    /// over every repository of the installation (an event with no repository).
    pub repository: Option<String>,
    /// `None`: the installation's permissions (a plugin that declares none).
    pub permissions: Option<Permissions>,
}

/// A token GitHub minted. Its `Debug` never shows the token.
pub struct Minted {
    pub token: String,
    /// Unix seconds, on GitHub's clock.
    pub expires_at: i64,
    /// What GitHub granted, as it answered.
    pub permissions: Permissions,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("expires_at", &self.expires_at)
            .field("permissions", &self.permissions)
            .finish_non_exhaustive()
    }
}

struct Slot {
    /// Held while a fetch is in flight: the key's other askers wait on it.
    token: tokio::sync::Mutex<Option<Arc<Minted>>>,
    /// When it was made, for evicting the oldest.
    made: u64,
}

/// The cache.
pub struct TokenCache {
    slots: Mutex<HashMap<TokenKey, Arc<Slot>>>,
    max: usize,
    made: AtomicU64,
}

impl TokenCache {
    pub fn new(max: usize) -> Self {
        Self {
            slots: Mutex::default(),
            max: max.max(1),
            made: AtomicU64::new(0),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<TokenKey, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached token for `key` if it is good for more than [`REFRESH_BEFORE_SECS`] at
    /// `now` (Unix seconds on GitHub's clock), else the one `mint` fetches, which is cached.
    /// Concurrent askers for one key share one fetch; a failed fetch is not cached (the next
    /// asker tries again).
    pub async fn get<F, Fut>(
        &self,
        key: &TokenKey,
        now: impl Fn() -> i64,
        mint: F,
    ) -> Result<Arc<Minted>, HostError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Minted, HostError>>,
    {
        let slot = self.slot(key, &now);
        let mut token = slot.token.lock().await;
        if let Some(minted) = token.as_ref()
            && fresh(minted, now())
        {
            return Ok(Arc::clone(minted));
        }
        let minted = Arc::new(mint().await?);
        *token = Some(Arc::clone(&minted));
        Ok(minted)
    }

    /// The key's slot, made if need be, room made for it first.
    fn slot(&self, key: &TokenKey, now: &impl Fn() -> i64) -> Arc<Slot> {
        let mut slots = self.slots();
        if let Some(slot) = slots.get(key) {
            return Arc::clone(slot);
        }
        if slots.len() >= self.max {
            // Stale tokens first, then the oldest.
            let now = now();
            slots.retain(|_, slot| match slot.token.try_lock() {
                Ok(token) => token.as_ref().is_some_and(|m| fresh(m, now)),
                Err(_) => true,
            });
            while slots.len() >= self.max {
                let oldest = slots
                    .iter()
                    .min_by_key(|(_, slot)| slot.made)
                    .map(|(key, _)| key.clone());
                match oldest {
                    Some(oldest) => slots.remove(&oldest),
                    None => break,
                };
            }
        }
        let slot = Arc::new(Slot {
            token: tokio::sync::Mutex::new(None),
            made: self.made.fetch_add(1, Ordering::Relaxed),
        });
        slots.insert(key.clone(), Arc::clone(&slot));
        slot
    }

    /// Forgets `key`'s token if it is still `token` (GitHub refused it): the next asker
    /// fetches a new one.
    pub fn forget(&self, key: &TokenKey, token: &str) {
        let mut slots = self.slots();
        let holds = slots
            .get(key)
            .is_some_and(|slot| match slot.token.try_lock() {
                Ok(held) => held.as_ref().is_some_and(|m| m.token == token),
                // A fetch is in flight: it brings a new token anyway.
                Err(_) => false,
            });
        if holds {
            slots.remove(key);
        }
    }

    /// Forgets every token of an installation (uninstalled or suspended). Returns how many.
    pub fn evict_installation(&self, installation: u64) -> usize {
        self.evict(|key| key.installation == installation)
    }

    /// Forgets the installation's tokens for these repositories (`owner/repo`), and those over
    /// all its repositories (which covered them). Returns how many.
    pub fn evict_repositories(&self, installation: u64, repositories: &[String]) -> usize {
        self.evict(|key| {
            key.installation == installation
                && key
                    .repository
                    .as_ref()
                    .is_none_or(|repo| repositories.iter().any(|r| r.eq_ignore_ascii_case(repo)))
        })
    }

    fn evict(&self, concerned: impl Fn(&TokenKey) -> bool) -> usize {
        let mut slots = self.slots();
        let before = slots.len();
        slots.retain(|key, _| !concerned(key));
        before - slots.len()
    }

    /// Keys cached.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots().len()
    }
}

fn fresh(minted: &Minted, now: i64) -> bool {
    minted.expires_at - now > REFRESH_BEFORE_SECS
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn key(installation: u64, repository: &str) -> TokenKey {
        TokenKey {
            installation,
            repository: Some(repository.to_owned()),
            permissions: Some(Permissions::none().write("statuses")),
        }
    }

    fn minted(token: &str, expires_at: i64) -> Minted {
        Minted {
            token: token.to_owned(),
            expires_at,
            permissions: Permissions::none(),
        }
    }

    #[tokio::test]
    async fn many_askers_share_one_fetch() {
        let cache = Arc::new(TokenCache::new(10));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let askers: Vec<_> = (0..20)
            .map(|_| {
                let (cache, fetches, mut released) =
                    (Arc::clone(&cache), Arc::clone(&fetches), released.clone());
                tokio::spawn(async move {
                    let mint = || async move {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        // Held until every asker is waiting on it.
                        let _ = released.wait_for(|r| *r).await;
                        Ok(minted("ghs_one", 10_000))
                    };
                    cache
                        .get(&key(1, "o/r"), || 0, mint)
                        .await
                        .unwrap()
                        .token
                        .clone()
                })
            })
            .collect();
        tokio::task::yield_now().await;
        release.send(true).unwrap();
        for asker in askers {
            assert_eq!(asker.await.unwrap(), "ghs_one");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_token_near_its_expiry_is_fetched_anew() {
        let cache = TokenCache::new(10);
        let k = key(1, "o/r");
        let get = |now: i64, token: &'static str| {
            cache.get(
                &k,
                move || now,
                move || async move { Ok(minted(token, 3600)) },
            )
        };
        assert_eq!(get(0, "first").await.unwrap().token, "first");
        assert_eq!(
            get(3600 - REFRESH_BEFORE_SECS - 1, "second")
                .await
                .unwrap()
                .token,
            "first"
        );
        assert_eq!(
            get(3600 - REFRESH_BEFORE_SECS, "third")
                .await
                .unwrap()
                .token,
            "third"
        );
    }

    #[tokio::test]
    async fn failures_are_not_cached_and_refused_tokens_are_forgotten() {
        let cache = TokenCache::new(10);
        let k = key(1, "o/r");
        let failed = cache
            .get(
                &k,
                || 0,
                || async { Err(HostError::GitHubUnavailable("down".into())) },
            )
            .await;
        assert!(failed.is_err());
        let ok = cache
            .get(&k, || 0, || async { Ok(minted("a", 9999)) })
            .await;
        assert_eq!(ok.unwrap().token, "a");
        cache.forget(&k, "not-a");
        assert_eq!(cache.len(), 1);
        cache.forget(&k, "a");
        assert_eq!(cache.len(), 0);
    }

    #[tokio::test]
    async fn the_cache_is_bounded_and_evicts_what_an_uninstall_concerns() {
        let cache = TokenCache::new(3);
        for (installation, repo) in [(1, "o/a"), (1, "o/b"), (2, "p/c"), (2, "p/d")] {
            let k = key(installation, repo);
            cache
                .get(&k, || 0, || async { Ok(minted("t", 9999)) })
                .await
                .unwrap();
        }
        assert_eq!(cache.len(), 3, "the oldest went");
        assert_eq!(cache.evict_repositories(2, &["P/C".to_owned()]), 1);
        assert_eq!(cache.evict_installation(1), 1);
        assert_eq!(cache.evict_installation(2), 1);
        assert_eq!(cache.len(), 0);
    }
}
