//! The open connections, for the cap on how many are served at once. At the cap, room is made
//! by closing the connection that has kept the host waiting longest: waiting for a request's
//! headers (a silent or slow-header client, or an idle keep-alive one) or for a request's body
//! (a slow-body client; GitHub sends a delivery at once). A request whose body is in and is
//! being answered is never cut off, unless its client stopped reading the answer (a write
//! blocked on it, see `write_timeout`); a connection that just arrived is the last to go, so a
//! flood of new sockets pushes out the older ones, not GitHub's.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Every open connection, oldest first.
pub(super) struct Connections {
    open: Mutex<Registry>,
    /// Woken each time a connection closes.
    closed: Notify,
    /// Where body-reading times are counted from.
    epoch: Instant,
}

#[derive(Default)]
struct Registry {
    next: u64,
    by_age: BTreeMap<u64, Arc<Slot>>,
}

/// One connection's entry.
pub(super) struct Slot {
    /// Since when (nanoseconds after the registry's epoch, plus one) the host has been waiting
    /// on this client, for a request or for its body; 0 while a request is being answered.
    waiting_since: AtomicU64,
    /// Since when (stamped as `waiting_since`) a write of the answer has been blocked on a
    /// client that does not read it; 0 while none is.
    write_blocked_since: AtomicU64,
    epoch: Instant,
    /// Closes the connection at once: it was evicted to make room.
    pub evict: CancellationToken,
    /// Asks the connection to finish what it is answering and close: the server is stopping.
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

/// The connection a request came on, put in the request's extensions so that reading a body
/// can mark it (see [`Connection::reading_body`]).
#[derive(Clone)]
pub struct Connection(pub(super) Arc<Slot>);

/// Marks a request body as being read on its connection until dropped.
pub struct ReadingBody(Arc<Slot>);

impl Default for Connections {
    fn default() -> Self {
        Self {
            open: Mutex::default(),
            closed: Notify::new(),
            epoch: Instant::now(),
        }
    }
}

impl Connections {
    pub fn register(self: &Arc<Self>) -> Registered {
        let slot = Arc::new(Slot {
            waiting_since: AtomicU64::new(stamp(self.epoch)),
            write_blocked_since: AtomicU64::new(0),
            epoch: self.epoch,
            evict: CancellationToken::new(),
            close: CancellationToken::new(),
        });
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

    /// Evicts the connection the host has been waiting on longest. Returns false when every
    /// connection is answering a request.
    pub fn evict_one(&self) -> bool {
        let open = self.lock();
        let longest = open
            .by_age
            .values()
            .filter(|slot| !slot.evict.is_cancelled())
            .filter_map(|slot| {
                let waiting = slot.waiting_since.load(Ordering::Acquire);
                let blocked = slot.write_blocked_since.load(Ordering::Acquire);
                match (waiting, blocked) {
                    (0, 0) => None,
                    (0, since) | (since, 0) => Some((since, slot)),
                    (waiting, blocked) => Some((waiting.min(blocked), slot)),
                }
            })
            .min_by_key(|(since, _)| *since)
            .map(|(_, slot)| slot);
        match longest {
            Some(slot) => {
                slot.evict.cancel();
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

/// Now, as a `waiting_since` stamp: never 0.
fn stamp(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64 + 1
}

impl Slot {
    /// A request's headers are in: it is being answered until the guard drops.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.waiting_since.store(0, Ordering::Release);
        InFlight(Arc::clone(self))
    }

    /// A write of the answer is blocked: the host waits on the client to read.
    pub fn write_blocked(&self) {
        self.write_blocked_since
            .store(stamp(self.epoch), Ordering::Release);
    }

    /// The client took what was written.
    pub fn write_unblocked(&self) {
        self.write_blocked_since.store(0, Ordering::Release);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Answered: waiting for the client's next request from now on.
        let slot = &self.0;
        slot.waiting_since
            .store(stamp(slot.epoch), Ordering::Release);
    }
}

impl Connection {
    /// Marks this connection as sending a request body until the guard is dropped: while it
    /// is, the connection may be evicted to make room, as a silent one may.
    pub fn reading_body(&self) -> ReadingBody {
        let slot = &self.0;
        slot.waiting_since
            .store(stamp(slot.epoch), Ordering::Release);
        ReadingBody(Arc::clone(slot))
    }
}

impl Drop for ReadingBody {
    fn drop(&mut self) {
        // The body is in (or the request failed): the request is being answered.
        self.0.waiting_since.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_waited_on_longest_goes_first_never_one_being_answered() {
        let connections = Arc::new(Connections::default());
        let pause = || std::thread::sleep(std::time::Duration::from_millis(2));
        let answering = connections.register();
        let _answering = answering.slot.request_started();
        let idle = connections.register();
        pause();
        let slow_body = connections.register();
        let _slow = slow_body.slot.request_started();
        let _reading = Connection(Arc::clone(&slow_body.slot)).reading_body();
        pause();
        let just_arrived = connections.register();
        assert_eq!(connections.count(), 4);

        // (evicted, in this order)
        for evicted in [&idle, &slow_body, &just_arrived] {
            assert!(connections.evict_one());
            assert!(evicted.slot.evict.is_cancelled());
        }
        assert!(
            !connections.evict_one(),
            "only the one being answered is left"
        );
        assert!(!answering.slot.evict.is_cancelled());

        drop(idle);
        assert_eq!(connections.count(), 3);
    }

    #[test]
    fn a_connection_is_evictable_again_once_its_response_ends() {
        let connections = Arc::new(Connections::default());
        let only = connections.register();
        let busy = only.slot.request_started();
        assert!(!connections.evict_one());
        drop(busy);
        assert!(connections.evict_one());
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
