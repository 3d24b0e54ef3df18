//! The sending phase of `idle`: the open loop over the connections opened before. One thread,
//! one readiness poller (level-triggered), non-blocking sockets; it sleeps until the next
//! message is due, the oldest message would time out, or a socket is ready.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::TcpStream;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use anyhow::bail;
use polling::{Event, Events, PollMode, Poller};

use super::super::args::BenchArgs;
use super::super::payload::Payload;
use super::super::progress::Progress;
use super::super::tally::ErrorKind;
use super::messages::{Ledger, Messages};
use super::schedule::{Schedule, SEED};

/// How often the progress bar is redrawn.
const TICK: Duration = Duration::from_millis(50);

/// How long before a message is due the thread stops sleeping and polls without blocking
/// instead: a sleeping thread wakes up late (50-150 µs on a small VM, even with the timer slack
/// at 1 ns), and every microsecond late is a microsecond of measured latency that is not the
/// server's. Costs at most this much CPU per message (2 % of a core at 100 messages/s).
const SPIN: Duration = Duration::from_micros(200);

/// Bytes read from a socket at a time; one buffer for the whole run.
const READ_BUFFER: usize = 64 << 10;

/// A connection that is open, with its messages.
struct Conn {
    stream: TcpStream,
    messages: Messages,
    /// Its place in [`Run::live`].
    live_index: usize,
    /// Whether the poller also watches it for writability (a write would have blocked).
    writing: bool,
}

/// How long the schedule ran, measured, and how long the last echoes took after it.
pub struct Window {
    /// From the end of the warmup to the end of the schedule.
    pub measured: Duration,
    /// From the end of the schedule to the last echo or give-up.
    pub drain: Duration,
}

/// The state of the sending phase.
pub struct Run<'p> {
    poller: &'p Poller,
    /// One slot per connection asked for, `None` once it failed (or never opened).
    slots: Vec<Option<Conn>>,
    /// The open slots, in no order, for picking one at random in O(1).
    live: Vec<usize>,
    ledger: Ledger,
    /// Scratch for the message being written, stamped with its id.
    outgoing: Payload,
    /// What an echo is checked against (the same pattern as `outgoing`).
    expected: Payload,
    /// (deadline, slot, id) of every message sent, in order of deadline: the deadline is the
    /// scheduled time plus `--timeout`, and messages are sent in scheduled order, so the
    /// queue is sorted by construction and the next expiry is always at its front (O(1) per
    /// message, whatever the number of connections).
    deadlines: VecDeque<(Instant, usize, u64)>,
    read_buffer: Vec<u8>,
}

impl<'p> Run<'p> {
    /// Takes over the connections (`None` for those that failed to open), registered with
    /// `poller` under their index.
    pub fn new(
        poller: &'p Poller,
        streams: Vec<Option<TcpStream>>,
        ledger: Ledger,
        size: usize,
    ) -> Self {
        let mut live = Vec::with_capacity(streams.len());
        let slots = streams
            .into_iter()
            .enumerate()
            .map(|(slot, stream)| {
                stream.map(|stream| {
                    live.push(slot);
                    Conn {
                        stream,
                        messages: Messages::default(),
                        live_index: live.len() - 1,
                        writing: false,
                    }
                })
            })
            .collect();
        let payload = Payload::new(size, SEED);
        Run {
            poller,
            slots,
            live,
            ledger,
            outgoing: payload.clone(),
            expected: payload,
            deadlines: VecDeque::new(),
            read_buffer: vec![0; READ_BUFFER],
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.live.len()
    }

    /// Runs the schedule (warmup, then measuring) and waits for the last echoes.
    ///
    /// # Errors
    /// A failure of the poller.
    pub fn send(&mut self, args: &BenchArgs) -> anyhow::Result<Window> {
        let rate = args.rate().total(args.connections.get());
        let limit = args.time_limit();
        let goal = args.requests.map(|n| n.get());
        let mut schedule = Schedule::new(rate, SEED).peekable();
        let start = Instant::now();
        let measure_from = start + args.warmup;
        let stop_at = measure_from + limit;
        let mut window_end: Option<Instant> = None;
        let (mut next_id, mut measured) = (0u64, 0u64);
        let mut events = Events::with_capacity(NonZeroUsize::new(1024).expect("nonzero"));
        let progress = match goal {
            Some(n) => Progress::new(n, "messages"),
            None => Progress::new(limit.as_millis() as u64, "ms"),
        };
        loop {
            let now = Instant::now();
            while window_end.is_none() {
                let due = start + schedule.peek().expect("an endless schedule").at;
                if due >= stop_at {
                    window_end = Some(stop_at);
                } else if goal.is_some_and(|n| measured >= n) {
                    window_end = Some(now.min(due));
                } else if due <= now {
                    let pick = schedule.next().expect("an endless schedule").pick;
                    next_id += 1;
                    let in_window = due >= measure_from;
                    measured += u64::from(in_window);
                    self.dispatch(next_id, due, in_window, pick, now);
                } else {
                    break;
                }
            }
            self.expire(now);
            if let Some(end) = window_end {
                if self.ledger.owed == 0 {
                    progress.finish();
                    return Ok(Window {
                        measured: end.saturating_duration_since(measure_from),
                        drain: now.saturating_duration_since(end),
                    });
                }
            }
            if now < measure_from {
                progress.update("warmup", 0, 0, now - start);
            } else {
                let position = goal
                    .map_or(now.duration_since(measure_from).as_millis() as u64, |_| {
                        measured
                    });
                progress.update(
                    "idle",
                    position,
                    self.ledger.tally.messages,
                    now - measure_from,
                );
            }

            let mut wake = now + TICK;
            if window_end.is_none() {
                let due = start + schedule.peek().expect("an endless schedule").at;
                wake = wake.min(due.checked_sub(SPIN).unwrap_or(due));
            }
            if let Some(&(deadline, _, _)) = self.deadlines.front() {
                wake = wake.min(deadline);
            }
            events.clear();
            match self
                .poller
                .wait(&mut events, Some(wake.saturating_duration_since(now)))
            {
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => bail!("waiting for the connections: {err}"),
            }
            for event in events.iter() {
                if event.readable {
                    self.receive(event.key);
                }
                if event.writable {
                    self.flush(event.key, Instant::now());
                }
            }
        }
    }

    /// Gives the message due at `due` to a random open connection and writes it at once.
    fn dispatch(&mut self, id: u64, due: Instant, measured: bool, pick: u64, now: Instant) {
        if self.live.is_empty() {
            self.ledger.unsent(due, measured, now);
            return;
        }
        let slot = self.live[(pick % self.live.len() as u64) as usize];
        let conn = self.slots[slot].as_mut().expect("a live slot is open");
        conn.messages.push(id, due, measured, &mut self.ledger);
        self.deadlines
            .push_back((due + self.ledger.timeout, slot, id));
        self.flush(slot, now);
    }

    /// Gives up the messages whose deadline has passed.
    fn expire(&mut self, now: Instant) {
        while let Some(&(deadline, slot, id)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if let Some(conn) = self.slots[slot].as_mut() {
                conn.messages.expire(id, now, &mut self.ledger);
            }
        }
    }

    /// Writes what `slot` has to write; watches for writability while the socket is full.
    fn flush(&mut self, slot: usize, now: Instant) {
        let Some(conn) = self.slots[slot].as_mut() else {
            return;
        };
        let written =
            conn.messages
                .write(&mut &conn.stream, &mut self.outgoing, now, &mut self.ledger);
        let wants_writable = match written {
            Ok(done) => !done,
            Err(err) => return self.end(slot, ErrorKind::of(&err)),
        };
        if wants_writable != conn.writing {
            let interest = Event::new(slot, true, wants_writable);
            match self
                .poller
                .modify_with_mode(&conn.stream, interest, PollMode::Level)
            {
                Ok(()) => conn.writing = wants_writable,
                Err(_) => self.end(slot, ErrorKind::Reset),
            }
        }
    }

    /// Reads and checks what `slot` has received.
    fn receive(&mut self, slot: usize) {
        loop {
            let Some(conn) = self.slots[slot].as_mut() else {
                return;
            };
            let read = (&conn.stream).read(&mut self.read_buffer);
            let now = Instant::now();
            match read {
                Ok(0) => return self.end(slot, ErrorKind::Closed),
                Ok(n) => {
                    let echo = &self.read_buffer[..n];
                    if conn
                        .messages
                        .take_echo(echo, now, &self.expected, &mut self.ledger)
                        .is_err()
                    {
                        return self.end(slot, ErrorKind::Mismatch);
                    }
                    if n < self.read_buffer.len() {
                        return;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return self.end(slot, ErrorKind::of(&err)),
            }
        }
    }

    /// The connection in `slot` is over: counts why, gives up its messages, closes it. It is
    /// not replaced; later messages go to the connections still open.
    fn end(&mut self, slot: usize, why: ErrorKind) {
        let Some(mut conn) = self.slots[slot].take() else {
            return;
        };
        self.ledger.tally.error(why);
        conn.messages.fail(Instant::now(), &mut self.ledger);
        self.unlist(conn.live_index);
        let _ = self.poller.delete(&conn.stream);
    }

    fn unlist(&mut self, index: usize) {
        self.live.swap_remove(index);
        if let Some(&moved) = self.live.get(index) {
            self.slots[moved]
                .as_mut()
                .expect("a live slot is open")
                .live_index = index;
        }
    }

    /// Closes every connection still open; returns how many there were, and the ledger.
    pub fn close(mut self) -> (usize, Ledger) {
        let open = self.live.len();
        for conn in self.slots.drain(..).flatten() {
            let _ = self.poller.delete(&conn.stream);
        }
        (open, self.ledger)
    }
}
