//! One connection's messages on their way (written or waiting to be, echo not yet complete),
//! and the [`Ledger`] every message ends in: answered, with its latency from the *scheduled*
//! send time, or unanswered. Nothing here touches a socket, so the accounting is tested with
//! in-memory writers and hand-made instants.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::super::payload::Payload;
use super::super::tally::{ErrorKind, Tally};

/// How every message of a run ended, and how late the load generator itself was.
#[derive(Debug)]
pub struct Ledger {
    /// Answered messages (its `messages`), their latency and the unanswered ones' (see
    /// [`Ledger::timeout`]), bytes echoed, errors.
    pub tally: Tally,
    /// From a message's scheduled time to the start of its write, in nanoseconds: the load
    /// generator's own lateness (already inside every latency; reported to show it is small).
    pub send_lag: Histogram<u64>,
    /// `--timeout`: a message not answered by then is given up; an unanswered message enters
    /// the latency histogram as at least this, so that a failing server cannot look fast.
    pub timeout: Duration,
    /// Bytes per message.
    pub size: usize,
    /// Measured messages given to a connection.
    pub sent: u64,
    /// Measured messages sent but not answered (timed out, or their connection ended).
    pub unanswered: u64,
    /// Measured messages due while no connection was open.
    pub unsent: u64,
    /// Messages (measured or not) sent and neither answered nor given up yet.
    pub owed: u64,
}

impl Ledger {
    /// An empty ledger for messages of `size` bytes given up after `timeout`.
    pub fn new(size: usize, timeout: Duration) -> Ledger {
        Ledger {
            tally: Tally::new(),
            send_lag: Histogram::new_with_bounds(1, 1 << 36, 3).expect("valid histogram bounds"),
            timeout,
            size,
            sent: 0,
            unanswered: 0,
            unsent: 0,
            owed: 0,
        }
    }

    /// Counts a message that was due at `scheduled` when no connection was open to take it.
    pub fn unsent(&mut self, scheduled: Instant, measured: bool, now: Instant) {
        if measured {
            self.unsent += 1;
            self.tally.unanswered(self.waited(scheduled, now));
        }
    }

    fn waited(&self, scheduled: Instant, now: Instant) -> Duration {
        now.saturating_duration_since(scheduled).max(self.timeout)
    }

    fn answered(&mut self, message: &InFlight, now: Instant) {
        self.owed -= 1;
        if message.measured {
            let latency = now.saturating_duration_since(message.scheduled);
            self.tally.message(latency, self.size);
        }
    }

    fn given_up(&mut self, message: &InFlight, now: Instant) {
        self.owed -= 1;
        if message.measured {
            self.unanswered += 1;
            self.tally.unanswered(self.waited(message.scheduled, now));
        }
    }
}

/// A message on its way.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    /// Stamped into the message, unique in the run: an echo from another connection or of
    /// another message does not match.
    id: u64,
    scheduled: Instant,
    measured: bool,
    /// Given up (past `--timeout`); its echo is still read and checked when it comes.
    expired: bool,
}

/// The echo did not match what was sent (or came for nothing that was sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch;

/// One connection's messages, oldest first; the echo comes back in the order they were written.
#[derive(Debug, Default)]
pub struct Messages {
    queue: VecDeque<InFlight>,
    /// Index in `queue` of the first message not completely written.
    unwritten: usize,
    /// Bytes of `queue[unwritten]` written.
    write_offset: usize,
    /// Bytes of `queue[0]`'s echo read and checked.
    read_offset: usize,
    /// How many messages at the front of `queue` were given up (they are the oldest).
    expired: usize,
}

impl Messages {
    /// Adds a message due at `scheduled`, to be written after those already here: a second
    /// message for a busy connection waits behind the first, its latency still counted from its
    /// own scheduled time.
    pub fn push(&mut self, id: u64, scheduled: Instant, measured: bool, ledger: &mut Ledger) {
        self.queue.push_back(InFlight {
            id,
            scheduled,
            measured,
            expired: false,
        });
        ledger.owed += 1;
        if measured {
            ledger.sent += 1;
        }
    }

    /// Whether some message is not completely written yet.
    #[cfg(test)]
    pub fn wants_write(&self) -> bool {
        self.unwritten < self.queue.len()
    }

    /// Whether some message still counts on an echo (sent, neither answered nor given up).
    #[cfg(test)]
    pub fn owes(&self) -> bool {
        self.queue.len() > self.expired
    }

    /// Writes what is not written yet, until done (`Ok(true)`) or the socket is full
    /// (`Ok(false)`); `payload` is scratch, stamped with each message's id.
    ///
    /// # Errors
    /// The write's, other than would-block and interrupted; the connection is then broken.
    pub fn write(
        &mut self,
        out: &mut impl Write,
        payload: &mut Payload,
        now: Instant,
        ledger: &mut Ledger,
    ) -> io::Result<bool> {
        while let Some(message) = self.queue.get(self.unwritten) {
            payload.stamp(message.id);
            match out.write(&payload.bytes()[self.write_offset..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    if self.write_offset == 0 && message.measured {
                        let lag = now.saturating_duration_since(message.scheduled);
                        let nanos = u64::try_from(lag.as_nanos()).unwrap_or(u64::MAX).max(1);
                        ledger.send_lag.saturating_record(nanos);
                    }
                    self.write_offset += n;
                    if self.write_offset == ledger.size {
                        self.unwritten += 1;
                        self.write_offset = 0;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(true)
    }

    /// Checks `echo` (the next bytes read) against the messages in order; each message whose
    /// echo is now complete is answered at `now`, unless it was given up already.
    ///
    /// # Errors
    /// [`Mismatch`] at the first byte that differs from what was sent, or that was never sent.
    pub fn take_echo(
        &mut self,
        mut echo: &[u8],
        now: Instant,
        payload: &Payload,
        ledger: &mut Ledger,
    ) -> Result<(), Mismatch> {
        let size = ledger.size;
        while !echo.is_empty() {
            let Some(front) = self.queue.front() else {
                return Err(Mismatch);
            };
            let n = (size - self.read_offset).min(echo.len());
            // The echo cannot be ahead of what was written.
            let written = if self.unwritten == 0 {
                self.write_offset
            } else {
                size
            };
            if self.read_offset + n > written
                || !payload.matches_part(front.id, self.read_offset, &echo[..n])
            {
                return Err(Mismatch);
            }
            echo = &echo[n..];
            self.read_offset += n;
            if self.read_offset == size {
                self.read_offset = 0;
                self.unwritten -= 1;
                let message = self.queue.pop_front().expect("the front message");
                if message.expired {
                    self.expired -= 1;
                } else {
                    ledger.answered(&message, now);
                }
            }
        }
        Ok(())
    }

    /// Gives up message `id` if it is the oldest one still owed here (messages expire in the
    /// order they were sent), counting it unanswered and a `timeout` error; returns whether it
    /// was. A message already answered, or lost with its connection, is left alone.
    pub fn expire(&mut self, id: u64, now: Instant, ledger: &mut Ledger) -> bool {
        match self.queue.get_mut(self.expired) {
            Some(message) if message.id == id => {
                message.expired = true;
                let message = *message;
                self.expired += 1;
                ledger.given_up(&message, now);
                ledger.tally.error(ErrorKind::Timeout);
                true
            }
            _ => false,
        }
    }

    /// The connection ended: every message still owed is unanswered.
    pub fn fail(&mut self, now: Instant, ledger: &mut Ledger) {
        for message in self.queue.drain(..).filter(|m| !m.expired) {
            ledger.given_up(&message, now);
        }
        *self = Messages::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: usize = 16;
    const TIMEOUT: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    fn setup() -> (Messages, Ledger, Payload, Instant) {
        let ledger = Ledger::new(SIZE, TIMEOUT);
        (
            Messages::default(),
            ledger,
            Payload::new(SIZE, 1),
            Instant::now(),
        )
    }

    /// What the server would echo for messages `ids`.
    fn echo_of(payload: &Payload, ids: &[u64]) -> Vec<u8> {
        let mut p = payload.clone();
        ids.iter()
            .flat_map(|&id| {
                p.stamp(id);
                p.bytes().to_vec()
            })
            .collect()
    }

    /// Asserts that the latency histogram holds exactly `expected_ms`, each to the histogram's
    /// precision (three significant digits).
    fn assert_latencies(ledger: &mut Ledger, expected_ms: &[u64]) {
        let h = ledger.tally.latency();
        let recorded: Vec<f64> = h
            .iter_recorded()
            .flat_map(|v| {
                let ms = h.median_equivalent(v.value_iterated_to()) as f64 / 1e6;
                std::iter::repeat_n(ms, v.count_at_value() as usize)
            })
            .collect();
        assert_eq!(recorded.len(), expected_ms.len(), "{recorded:?}");
        for (got, &want) in recorded.iter().zip(expected_ms) {
            assert!(
                (got - want as f64).abs() <= want as f64 / 500.0,
                "{recorded:?}"
            );
        }
    }

    #[test]
    fn latency_counts_from_the_scheduled_time_not_the_write() {
        let (mut m, mut ledger, mut payload, t0) = setup();
        m.push(1, t0, true, &mut ledger);
        // The load generator was 3 ms late writing; the echo is back 5 ms after the schedule.
        let mut wire = Vec::new();
        assert!(m
            .write(&mut wire, &mut payload, t0 + 3 * MS, &mut ledger)
            .unwrap());
        m.take_echo(&wire, t0 + 5 * MS, &payload, &mut ledger)
            .unwrap();
        assert_latencies(&mut ledger, &[5]);
        assert_eq!(ledger.send_lag.max() / 1_000_000, 3);
        assert_eq!((ledger.sent, ledger.tally.messages, ledger.owed), (1, 1, 0));
    }

    #[test]
    fn a_message_queued_behind_another_counts_its_own_wait() {
        let (mut m, mut ledger, mut payload, t0) = setup();
        m.push(1, t0, true, &mut ledger);
        m.push(2, t0 + MS, true, &mut ledger);
        let mut wire = Vec::new();
        m.write(&mut wire, &mut payload, t0 + MS, &mut ledger)
            .unwrap();
        assert_eq!(wire, echo_of(&payload, &[1, 2]));
        // Both echoes arrive at 10 ms, in pieces split anywhere.
        let (a, b) = wire.split_at(SIZE + 5);
        m.take_echo(&a[..3], t0 + 10 * MS, &payload, &mut ledger)
            .unwrap();
        m.take_echo(&a[3..], t0 + 10 * MS, &payload, &mut ledger)
            .unwrap();
        assert!(m.owes());
        m.take_echo(b, t0 + 10 * MS, &payload, &mut ledger).unwrap();
        assert!(!m.owes());
        assert_latencies(&mut ledger, &[9, 10]);
    }

    /// Takes at most `room` bytes, then would block.
    struct Narrow {
        taken: Vec<u8>,
        room: usize,
    }

    impl Write for Narrow {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.room - self.taken.len());
            if n == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.taken.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_socket_keeps_the_rest_for_later() {
        let (mut m, mut ledger, mut payload, t0) = setup();
        m.push(7, t0, true, &mut ledger);
        m.push(8, t0, true, &mut ledger);
        let mut out = Narrow {
            taken: Vec::new(),
            room: SIZE + 3,
        };
        assert!(!m.write(&mut out, &mut payload, t0, &mut ledger).unwrap());
        assert!(m.wants_write());
        // Echo ahead of what was written is not an echo.
        let whole = echo_of(&payload, &[7, 8]);
        let mut early = Messages::default();
        early.push(7, t0, false, &mut ledger);
        assert_eq!(
            early.take_echo(&whole[..1], t0, &payload, &mut ledger),
            Err(Mismatch)
        );
        out.room = 2 * SIZE;
        assert!(m.write(&mut out, &mut payload, t0, &mut ledger).unwrap());
        assert_eq!(out.taken, whole);
        m.take_echo(&whole, t0 + MS, &payload, &mut ledger).unwrap();
        assert_eq!(ledger.tally.messages, 2);
    }

    #[test]
    fn a_late_echo_stays_unanswered_and_the_next_one_counts() {
        let (mut m, mut ledger, mut payload, t0) = setup();
        m.push(1, t0, true, &mut ledger);
        m.push(2, t0 + 100 * MS, true, &mut ledger);
        let mut wire = Vec::new();
        m.write(&mut wire, &mut payload, t0, &mut ledger).unwrap();
        // Message 2 is not the oldest owed, so it cannot expire before message 1.
        assert!(!m.expire(2, t0 + TIMEOUT, &mut ledger));
        assert!(m.expire(1, t0 + TIMEOUT, &mut ledger));
        assert!(!m.expire(1, t0 + TIMEOUT, &mut ledger), "only once");
        assert_eq!((ledger.unanswered, ledger.tally.errors.timeout), (1, 1));
        m.take_echo(&wire, t0 + 1500 * MS, &payload, &mut ledger)
            .unwrap();
        // The given-up message is in the histogram at the timeout, the other at its latency.
        assert_latencies(&mut ledger, &[1000, 1400]);
        assert_eq!((ledger.tally.messages, ledger.owed), (1, 0));
    }

    #[test]
    fn a_broken_connection_leaves_its_messages_unanswered_at_the_timeout_or_more() {
        let (mut m, mut ledger, mut payload, t0) = setup();
        m.push(1, t0, true, &mut ledger);
        m.push(2, t0, false, &mut ledger); // warmup: counted nowhere
        m.write(&mut Vec::new(), &mut payload, t0, &mut ledger)
            .unwrap();
        m.fail(t0 + 2 * MS, &mut ledger);
        assert!(!m.owes() && !m.wants_write());
        assert_eq!((ledger.sent, ledger.unanswered, ledger.owed), (1, 1, 0));
        assert_latencies(&mut ledger, &[1000]);
        ledger.unsent(t0, true, t0 + 3 * TIMEOUT);
        assert_latencies(&mut ledger, &[1000, 3000]);
        assert_eq!(ledger.tally.messages, 0);
    }

    #[test]
    fn wrong_or_unasked_bytes_are_a_mismatch() {
        let (mut m, mut ledger, mut payload, t0) = setup();
        assert_eq!(m.take_echo(b"x", t0, &payload, &mut ledger), Err(Mismatch));
        m.push(1, t0, true, &mut ledger);
        let mut wire = Vec::new();
        m.write(&mut wire, &mut payload, t0, &mut ledger).unwrap();
        wire[SIZE - 1] ^= 0x20;
        assert_eq!(m.take_echo(&wire, t0, &payload, &mut ledger), Err(Mismatch));
    }
}
