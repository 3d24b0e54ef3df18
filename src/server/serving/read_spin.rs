//! A short, adaptive poll of the socket before a worker blocks waiting for its client.
//!
//! A worker that blocks in `recv` sleeps, and the next message must wake it: on a busy server
//! that is a context switch and, when the message arrives from another core, an inter-processor
//! interrupt per message. An event loop avoids both while it has work. A worker that has just
//! answered polls its socket a few times instead, yielding the core between polls so the other
//! workers run meanwhile; a client that answers quickly (a request-response conversation) then
//! finds its worker awake. The number of polls adapts per connection: it doubles while polls
//! find data and halves while they do not, so a quiet connection soon costs one poll a message.
//!
//! Polling pays only while a worker's turn on the core comes round before its client answers.
//! It starts with a connection's second message (a one-message connection never polls), and
//! it stops while more than 16 connections per core are active (measured on one core: 8
//! connections gain, 64 lose without this): there, every yield hands the core to another
//! worker, and the polls would only add context switches.

use std::io;

use super::transport::Transport;

/// Connections being served per core above which workers stop polling (see the module's
/// documentation for the measurement).
const MAX_ACTIVE_PER_CORE: u64 = 16;

/// How many connections may be served at once before polling stops paying: 16 per core.
pub(crate) fn crowd_threshold() -> u64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    MAX_ACTIVE_PER_CORE * cores as u64
}

/// The adaptive poll budget of one connection.
#[derive(Debug)]
pub(crate) struct ReadSpin {
    max: u32,
    budget: u32,
    /// Whether a first message has come: polling starts with the second.
    conversing: bool,
}

impl ReadSpin {
    /// A budget that grows to at most `max` polls; `0` never polls.
    pub(crate) fn new(max: u32) -> Self {
        ReadSpin {
            max,
            budget: 0,
            conversing: false,
        }
    }

    /// Polls `stream` without blocking up to the current budget, yielding the core before each
    /// poll, except before the first when `more_waiting` (the last read filled the buffer).
    /// `Some` is what a read returned (data, end of stream or an error); `None` means nothing
    /// came and the caller should block. A `crowded` server does not poll.
    pub(crate) fn poll(
        &mut self,
        transport: &mut impl Transport,
        buf: &mut [u8],
        crowded: bool,
        more_waiting: bool,
    ) -> Option<io::Result<usize>> {
        if crowded {
            return None;
        }
        for poll in 0..self.budget {
            // A client mid-conversation is still reading our answer: let the other workers run
            // first. But when the last read filled the buffer, more is surely waiting (a bulk
            // stream): take it at once rather than hand the core away for every chunk.
            if poll > 0 || !more_waiting {
                std::thread::yield_now();
            }
            match transport.read_now(buf) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                result => {
                    self.budget = (self.budget * 2).min(self.max);
                    return Some(result);
                }
            }
        }
        self.budget /= 2;
        None
    }

    /// A blocking read returned: from the second message on, try polling again next time,
    /// even after a quiet spell.
    pub(crate) fn blocked_read_returned(&mut self) {
        if self.conversing {
            self.budget = self.budget.max(self.max.min(1));
        }
        self.conversing = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (served, _) = listener.accept().unwrap();
        (client, served)
    }

    #[test]
    fn finds_waiting_data_and_grows_its_budget() {
        let (mut client, served) = pair();
        let mut spin = ReadSpin::new(8);
        client.write_all(b"ping").unwrap();
        let mut buf = [0; 16];
        // The bytes may take a moment to cross loopback; a budget of 1 may miss them.
        let mut found = None;
        spin.blocked_read_returned(); // the first message came by a blocking read
        for _ in 0..1000 {
            spin.blocked_read_returned();
            if let Some(result) = spin.poll(&mut &served, &mut buf, false, false) {
                found = Some(result.unwrap());
                break;
            }
        }
        assert_eq!(found, Some(4));
        assert_eq!(&buf[..4], b"ping");
        assert_eq!(spin.budget, 2);
    }

    #[test]
    fn a_quiet_socket_shrinks_the_budget_to_nothing_without_blocking() {
        let (_client, served) = pair();
        let mut spin = ReadSpin::new(8);
        spin.budget = 8;
        let mut buf = [0; 16];
        for expected in [4, 2, 1, 0, 0] {
            assert!(spin.poll(&mut &served, &mut buf, false, false).is_none());
            assert_eq!(spin.budget, expected);
        }
        spin.blocked_read_returned();
        assert_eq!(spin.budget, 0, "the first message does not start polling");
        spin.blocked_read_returned();
        assert_eq!(spin.budget, 1);
    }

    #[test]
    fn zero_never_polls() {
        let (mut client, served) = pair();
        client.write_all(b"x").unwrap();
        let mut spin = ReadSpin::new(0);
        spin.blocked_read_returned();
        spin.blocked_read_returned();
        assert!(spin.poll(&mut &served, &mut [0; 4], false, false).is_none());
    }

    #[test]
    fn a_crowded_server_does_not_poll() {
        let (mut client, served) = pair();
        client.write_all(b"x").unwrap();
        let mut spin = ReadSpin::new(8);
        spin.budget = 8;
        assert!(spin.poll(&mut &served, &mut [0; 4], true, false).is_none());
        assert_eq!(spin.budget, 8, "not polling is not a miss");
    }
}
