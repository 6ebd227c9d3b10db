//! Places for streams that follow a log: at most so many at once, and at most so many per
//! client address, so one client cannot take every place. The log links GitHub shows and the
//! dashboard's follow streams each have their own (see `wiring`), so dashboard readers never
//! starve the links in statuses and check runs.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One kind of log stream's places.
#[derive(Clone)]
pub struct LogReaders {
    places: Arc<Semaphore>,
    per_client: Arc<PerClient>,
}

struct PerClient {
    max: usize,
    open: Mutex<HashMap<ClientKey, usize>>,
}

/// Who a place is counted against: an IPv4 address, or an IPv6 /64 (one host's share of a
/// network, which hands out whole /64s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(u128);

impl From<IpAddr> for ClientKey {
    fn from(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(v4) => Self(u128::from(u32::from(v4))),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(u128::from(u32::from(v4))),
                // The /64 prefix, and a bit past any IPv4 address's 32 to keep them apart.
                None => Self((u128::from(v6) >> 64 << 64) | 1 << 32),
            },
        }
    }
}

/// Why a stream got no place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPlace {
    /// Every place is taken.
    Full,
    /// This client holds its share already.
    ClientFull,
}

/// A stream's place, given back when dropped (with the response's body).
pub struct Place {
    _place: OwnedSemaphorePermit,
    client: Option<(ClientKey, Arc<PerClient>)>,
}

impl LogReaders {
    pub fn new(max: usize, max_per_client: usize) -> Self {
        Self {
            places: Arc::new(Semaphore::new(max)),
            per_client: Arc::new(PerClient {
                max: max_per_client,
                open: Mutex::default(),
            }),
        }
    }

    /// A place for a stream of `client` (none when the address is unknown: counted only in
    /// the total), or why not.
    pub fn admit(&self, client: Option<IpAddr>) -> Result<Place, NoPlace> {
        let client = client.map(ClientKey::from);
        if let Some(key) = client {
            let mut open = self.per_client.lock();
            let count = open.entry(key).or_default();
            if *count >= self.per_client.max {
                return Err(NoPlace::ClientFull);
            }
            *count += 1;
        }
        let place = Place {
            _place: match Arc::clone(&self.places).try_acquire_owned() {
                Ok(place) => place,
                Err(_) => {
                    if let Some(key) = client {
                        self.per_client.release(key);
                    }
                    return Err(NoPlace::Full);
                }
            },
            client: client.map(|key| (key, Arc::clone(&self.per_client))),
        };
        Ok(place)
    }

    /// Places free now.
    pub fn available(&self) -> usize {
        self.places.available_permits()
    }
}

impl PerClient {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClientKey, usize>> {
        // Counts only: nothing a panic could leave half-done.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn release(&self, key: ClientKey) {
        let mut open = self.lock();
        if let Some(count) = open.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&key);
            }
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some((key, per_client)) = &self.client {
            per_client.release(*key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_share_and_no_more_and_the_total_holds() {
        let readers = LogReaders::new(3, 2);
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let first = readers.admit(Some(one)).unwrap();
        let _second = readers.admit(Some(one)).unwrap();
        assert_eq!(readers.admit(Some(one)).err(), Some(NoPlace::ClientFull));
        let _third = readers.admit(Some(other)).unwrap();
        assert_eq!(readers.admit(Some(other)).err(), Some(NoPlace::Full));
        // A refusal for want of places gives the client's count back.
        drop(first);
        assert_eq!(readers.available(), 1);
        let _again = readers.admit(Some(other)).unwrap();
        assert_eq!(readers.admit(None).err(), Some(NoPlace::Full));
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() {
        // (one address, another, the same client)
        let cases = [
            ("2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true),
            ("2001:db8:1:2::1", "2001:db8:1:3::1", false),
            ("::ffff:192.0.2.1", "192.0.2.1", true),
            ("192.0.2.1", "192.0.2.2", false),
            ("::1", "0.0.0.1", false),
        ];
        for (a, b, same) in cases {
            let key = |s: &str| ClientKey::from(s.parse::<IpAddr>().unwrap());
            assert_eq!(key(a) == key(b), same, "{a} {b}");
        }
    }
}
