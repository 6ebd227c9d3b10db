//! The open connections, for the cap on how many are served at once. At the cap, room is made
//! by closing the connection that has waited longest without a request in flight: a silent or
//! slow client loses its place to a new one, while a request being answered is never cut off.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Every open connection, oldest first.
#[derive(Default)]
pub(super) struct Connections {
    open: Mutex<Registry>,
    /// Woken each time a connection closes.
    closed: Notify,
}

#[derive(Default)]
struct Registry {
    next: u64,
    by_age: BTreeMap<u64, Arc<Slot>>,
}

/// One connection's entry.
#[derive(Default)]
pub(super) struct Slot {
    /// Requests being answered, their response bodies included.
    in_flight: AtomicUsize,
    /// Asks the connection to finish what it is answering and close.
    pub close: CancellationToken,
}

/// Keeps a connection counted; dropped when its task ends.
pub(super) struct Registered {
    connections: Arc<Connections>,
    id: u64,
    pub slot: Arc<Slot>,
}

/// Marks a request in flight on its connection until dropped (with the response body).
pub(super) struct InFlight(Arc<Slot>);

impl Connections {
    pub fn register(self: &Arc<Self>) -> Registered {
        let slot = Arc::new(Slot::default());
        let mut open = self.lock();
        let id = open.next;
        open.next += 1;
        open.by_age.insert(id, Arc::clone(&slot));
        Registered {
            connections: Arc::clone(self),
            id,
            slot,
        }
    }

    pub fn count(&self) -> usize {
        self.lock().by_age.len()
    }

    /// Asks the oldest connection with no request in flight, and not already asked, to close.
    /// Returns false when there is none: every connection is answering a request.
    pub fn evict_oldest_waiting(&self) -> bool {
        let open = self.lock();
        let oldest = open
            .by_age
            .values()
            .find(|slot| slot.in_flight.load(Ordering::Acquire) == 0 && !slot.close.is_cancelled());
        match oldest {
            Some(slot) => {
                slot.close.cancel();
                true
            }
            None => false,
        }
    }

    /// Asks every connection to close once its current request is answered.
    pub fn close_all(&self) {
        for slot in self.lock().by_age.values() {
            slot.close.cancel();
        }
    }

    /// Waits until some connection closes.
    pub async fn one_closed(&self) {
        self.closed.notified().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // The registry holds no invariant a panic could break halfway.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.connections.lock().by_age.remove(&self.id);
        // `notify_one` keeps the wake-up for a waiter that is not waiting yet.
        self.connections.closed.notify_one();
    }
}

impl Slot {
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_connection_without_a_request_is_evicted_first() {
        let connections = Arc::new(Connections::default());
        let first = connections.register();
        let second = connections.register();
        let third = connections.register();
        let _busy = first.slot.request_started();
        assert_eq!(connections.count(), 3);

        assert!(connections.evict_oldest_waiting());
        assert!(
            !first.slot.close.is_cancelled(),
            "a request in flight is never evicted"
        );
        assert!(second.slot.close.is_cancelled());
        // Already asked: the next eviction takes the next one.
        assert!(connections.evict_oldest_waiting());
        assert!(third.slot.close.is_cancelled());
        assert!(
            !connections.evict_oldest_waiting(),
            "only the busy one is left"
        );

        drop(second);
        assert_eq!(connections.count(), 2);
    }

    #[test]
    fn a_connection_is_evictable_again_once_its_response_ends() {
        let connections = Arc::new(Connections::default());
        let only = connections.register();
        let busy = only.slot.request_started();
        assert!(!connections.evict_oldest_waiting());
        drop(busy);
        assert!(connections.evict_oldest_waiting());
    }

    #[tokio::test]
    async fn a_close_wakes_a_waiter_even_one_that_comes_later() {
        let connections = Arc::new(Connections::default());
        drop(connections.register());
        tokio::time::timeout(std::time::Duration::from_secs(5), connections.one_closed())
            .await
            .expect("woken");
    }
}
