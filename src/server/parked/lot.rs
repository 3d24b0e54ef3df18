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
}

impl Lot {
    /// Parks `served`; returns whether its deadline is now the earliest (the poller must wake
    /// to shorten its wait), and the connection, to arm its socket.
    pub(crate) fn insert(&mut self, served: Served, spot: Spot) -> (bool, &mut Served) {
        let id = served.info.id;
        let earliest = match spot.deadline {
            Some(deadline) => {
                let earliest = self.next_deadline().is_none_or(|next| deadline < next);
                self.deadlines.insert((deadline, id));
                earliest
            }
            None => false,
        };
        let (served, _) = self
            .parked
            .entry(id)
            .insert_entry((served, spot))
            .into_mut();
        (earliest, served)
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
