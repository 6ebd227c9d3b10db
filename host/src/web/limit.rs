//! A limit on failed sign-ins: an address that gave [`MAX_FAILURES`] wrong tokens within
//! [`WINDOW`] is answered `429` until the oldest of them is older than that, whatever token it
//! sends. Kept in memory (a restart forgets it); a right token clears the address's count.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Wrong tokens an address may send within [`WINDOW`].
pub const MAX_FAILURES: usize = 5;

/// How long a wrong token counts against its address.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Addresses remembered at most; past it, those whose failures all expired are forgotten.
const MAX_ADDRESSES: usize = 10_000;

#[derive(Default)]
pub struct SignInLimit {
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl SignInLimit {
    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, VecDeque<Instant>>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(wait)` when `address` must wait before trying again.
    pub fn check(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut failures = self.failures();
        let Some(times) = failures.get_mut(&address) else {
            return Ok(());
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            times.pop_front();
        }
        match times.front() {
            Some(oldest) if times.len() >= MAX_FAILURES => {
                Err(WINDOW.saturating_sub(now.duration_since(*oldest)))
            }
            _ => Ok(()),
        }
    }

    /// Counts a wrong token from `address`.
    pub fn failed(&self, address: IpAddr, now: Instant) {
        let mut failures = self.failures();
        if failures.len() >= MAX_ADDRESSES {
            failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < WINDOW)
            });
        }
        let times = failures.entry(address).or_default();
        times.push_back(now);
        while times.len() > MAX_FAILURES {
            times.pop_front();
        }
    }

    /// A right token from `address`: its count starts over.
    pub fn succeeded(&self, address: IpAddr) {
        self.failures().remove(&address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_waits_after_too_many_wrong_tokens_and_others_do_not() {
        let limit = SignInLimit::default();
        let (guesser, other) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let start = Instant::now();
        for n in 0..MAX_FAILURES as u64 {
            let at = start + Duration::from_secs(n);
            assert_eq!(limit.check(guesser, at), Ok(()));
            limit.failed(guesser, at);
        }
        let later = start + Duration::from_secs(10);
        assert_eq!(limit.check(guesser, later), Err(Duration::from_secs(50)));
        assert_eq!(limit.check(other, later), Ok(()));
        // Once the first failure is a window old, one more try is allowed.
        assert_eq!(limit.check(guesser, start + WINDOW), Ok(()));
        limit.succeeded(guesser);
        assert_eq!(limit.check(guesser, later), Ok(()));
    }
}
