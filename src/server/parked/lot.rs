//! The parking lot: the parked connections by id, and their deadlines in order.
//!
//! A deadline index in a `BTreeSet` keyed by (deadline, id): parking and taking a connection
//! back cost O(log n), finding the next deadline O(log n), and each wake-up of the poller
//! touches only the connections whose event came or whose deadline passed, never all n.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use echopool_handlers::CloseReason;

use crate::server::serving::{Served, Spot};

/// Parked connections, each with the spot it waits in.
#[derive(Default)]
pub(crate) struct Lot {
    parked: HashMap<u64, (Served, Spot)>,
    deadlines: BTreeSet<(Instant, u64)>,
    /// When the poller plans to look at the deadlines next (`None`: not until woken).
    poller_wakes_at: Option<Instant>,
}

impl Lot {
    /// Parks `served`; returns whether its deadline comes before the poller's next look (the
    /// poller must wake to shorten its wait), and the connection, to arm its socket.
    pub(crate) fn insert(&mut self, served: Served, spot: Spot) -> (bool, &mut Served) {
        let id = served.info.id;
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

    /// Takes connection `id` out of the lot, if it is still there.
    pub(crate) fn take(&mut self, id: u64) -> Option<Served> {
        let (served, spot) = self.parked.remove(&id)?;
        if let Some(deadline) = spot.deadline {
            self.deadlines.remove(&(deadline, id));
        }
        Some(served)
    }

    /// Takes out a connection whose deadline is at or before `now`, with why it expires.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Option<(Served, CloseReason)> {
        let &(deadline, id) = self.deadlines.first()?;
        if deadline > now {
            return None;
        }
        self.deadlines.pop_first();
        let (served, spot) = self.parked.remove(&id)?;
        Some((served, spot.expires_as))
    }

    /// The earliest deadline in the lot.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }
}
