//! The parking lot: the parked connections by id, their deadlines in order, and which watched
//! connections are with a worker now.
//!
//! A deadline index in a `BTreeSet` keyed by (deadline, id): parking and taking a connection
//! back cost O(log n), finding the next deadline O(log n), and each wake-up of the poller
//! touches only the connections whose event came or whose deadline passed, never all n.
//!
//! A socket is watched edge-triggered from its first park to its close, so parking it again
//! costs no system call. An event can therefore come while its connection is with a worker:
//! the lot remembers it, and the next park of that connection does not happen (the worker goes
//! on with it). Every event is either taken with its connection or remembered this way, under
//! the lot's lock, so none is lost, and a connection is never in two places.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use echopool_handlers::CloseReason;

use crate::server::serving::{Interest, Served, Spot};

/// What an event said a socket is ready for (a hang-up or an error counts as both).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ready {
    pub(crate) read: bool,
    pub(crate) write: bool,
    /// The peer has finished sending (or the socket failed): a read returns 0 (or an error)
    /// after the data, however short the read before it.
    pub(crate) closed: bool,
}

impl Ready {
    /// Whether a connection parked for `interest` should go back to a worker.
    fn serves(self, interest: Interest) -> bool {
        match interest {
            Interest::Read => self.read,
            Interest::Write => self.write,
        }
    }
}

/// A map by connection id. The ids are the server's own sequence numbers, never chosen by a
/// client, so they need no flood-resistant hash: the default (SipHash) took 0.7% of the
/// server's CPU time (a fourteenth of its time outside the kernel) where every message parks
/// (`-w 1 --park-after 0`, 64 connections; BENCHMARKS.md).
type ById<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Spreads a `u64` id over the hash's bits with one multiplication (Fibonacci hashing).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, _bytes: &[u8]) {
        unreachable!("connection ids are hashed as u64");
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Parked connections, each with the spot it waits in.
#[derive(Default)]
pub(crate) struct Lot {
    parked: ById<(Box<Served>, Spot)>,
    deadlines: BTreeSet<(Instant, u64)>,
    /// Watched connections with a worker now, and the events that came for one meanwhile.
    with_worker: ById<Ready>,
    /// When the poller plans to look at the deadlines next (`None`: not until woken).
    poller_wakes_at: Option<Instant>,
}

impl Lot {
    /// Whether an event that `spot` waits for came while `served` was with its worker (then
    /// it must not be parked: its socket is ready); forgets the events either way.
    pub(crate) fn ready_already(&mut self, served: &mut Served, spot: &Spot) -> bool {
        let Some(came) = self.with_worker.get_mut(&served.info.id) else {
            return false;
        };
        let came = std::mem::take(came);
        if came.closed {
            served.woken(true);
        }
        came.serves(spot.interest)
    }

    /// Parks `served`; returns whether its deadline comes before the poller's next look (the
    /// poller must wake to shorten its wait), and the connection, to watch its socket.
    pub(crate) fn insert(&mut self, served: Box<Served>, spot: Spot) -> (bool, &mut Served) {
        let id = served.info.id;
        self.with_worker.remove(&id);
        let sooner = match spot.deadline {
            Some(deadline) => {
                self.deadlines.insert((deadline, id));
                let sooner = self.poller_wakes_at.is_none_or(|at| deadline < at);
                if sooner {
                    self.poller_wakes_at = Some(deadline);
                }
                sooner
            }
            None => false,
        };
        let (served, _) = self
            .parked
            .entry(id)
            .insert_entry((served, spot))
            .into_mut();
        (sooner, served)
    }

    /// The poller is about to wait: records and returns when it must look again.
    pub(crate) fn plan_wake(&mut self) -> Option<Instant> {
        self.poller_wakes_at = self.next_deadline();
        self.poller_wakes_at
    }

    /// `ready` came for connection `id`: takes it out of the lot if it is parked waiting for
    /// that, else remembers it if the connection is with a worker (an event for a closed one,
    /// or one a parked connection does not wait for, is dropped: input waits in the socket
    /// while output is pending, and room to write is no news to a quiet connection).
    pub(crate) fn take(&mut self, id: u64, ready: Ready) -> Option<Box<Served>> {
        let Some((_, spot)) = self.parked.get(&id) else {
            if let Some(came) = self.with_worker.get_mut(&id) {
                came.read |= ready.read;
                came.write |= ready.write;
                came.closed |= ready.closed;
            }
            return None;
        };
        if !ready.serves(spot.interest) {
            return None;
        }
        let (mut served, spot) = self.parked.remove(&id).expect("looked up above");
        if let Some(deadline) = spot.deadline {
            self.deadlines.remove(&(deadline, id));
        }
        self.with_worker.insert(id, Ready::default());
        served.woken(ready.closed);
        Some(served)
    }

    /// Connection `id` is closed: forget it.
    pub(crate) fn forget(&mut self, id: u64) {
        self.with_worker.remove(&id);
    }

    /// Takes out a connection whose deadline is at or before `now`, with why it expires.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Option<(Box<Served>, CloseReason)> {
        let &(deadline, id) = self.deadlines.first()?;
        if deadline > now {
            return None;
        }
        self.deadlines.pop_first();
        let (served, spot) = self.parked.remove(&id)?;
        self.with_worker.insert(id, Ready::default());
        Some((served, spot.expires_as))
    }

    /// The earliest deadline in the lot.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }
}
