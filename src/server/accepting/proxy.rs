//! `--proxy-protocol`: behind a load balancer, the client is who the PROXY header says.
//!
//! The accept thread only checks that the socket comes from a load balancer (`--proxy-from`);
//! it never reads. A worker reads the header before the handler's session opens, takes the
//! client's address from it, and only then applies the address rules (`--allow`, `--deny`,
//! `--max-per-ip`) and records the address as the connection's `peer`, so that the logs, the
//! access log and the handler's `ConnInfo` all see the client, not the load balancer.
//!
//! The header is read without taking a byte of what follows it (a stream handler may hand the
//! socket to a child process): each read peeks, and only the header's own bytes are consumed.
//! The header must arrive within the connection's first read timeout (`--idle-timeout`, or
//! `--max-duration` when shorter), on the worker: a load balancer sends it with the connection,
//! and `--proxy-from` keeps anyone else from making a worker wait for one.

use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use echopool_handlers::{CloseReason, ConnInfo};
use ipnet::IpNet;
use tracing::{info, Span};

use super::proxy_header::{parse, Parsed};
use super::PerIpSlot;
use crate::server::serving::limits::is_timeout;
use crate::server::stats::{RejectReason, Ticket};
use crate::server::Shared;

/// How many bytes one peek looks at: a v1 header and the usual v2 one fit.
const PEEK: usize = 536;

/// The PROXY protocol's settings.
#[derive(Debug)]
pub(crate) struct ProxyProtocol {
    /// The load balancers that may connect; empty: any address.
    from: Vec<IpNet>,
}

/// Why a connection with the PROXY protocol is refused on its worker.
#[derive(Debug)]
pub(crate) struct Refusal {
    reason: RejectReason,
    detail: Option<String>,
}

impl ProxyProtocol {
    pub(crate) fn new(from: Vec<IpNet>) -> Self {
        ProxyProtocol { from }
    }

    /// Whether a socket from `ip` may send a header: it is one of the `--proxy-from` ranges.
    pub(crate) fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.from.is_empty() || self.from.iter().any(|net| net.contains(&ip))
    }

    /// Reads the header on `stream` and applies the address rules to the client it names;
    /// `info` and the span's `peer` become the client's. Returns the client's `--max-per-ip`
    /// slot.
    ///
    /// # Errors
    ///
    /// A [`Refusal`]: no valid header in time, or an address the rules refuse.
    pub(crate) fn admit(
        &self,
        stream: &TcpStream,
        info: &mut ConnInfo,
        span: &Span,
        shared: &Shared,
    ) -> Result<Option<PerIpSlot>, Refusal> {
        let wait = shared.limits.first_read_timeout();
        let addresses = read_header(stream, wait.map(|wait| Instant::now() + wait))
            .map_err(|detail| Refusal::header(detail, wait))?;
        if let Some((source, destination)) = addresses {
            info.peer = source;
            info.local = destination;
        }
        span.record("peer", tracing::field::display(info.peer));
        let ip = info.peer.ip();
        if !shared.access.permits(ip) {
            return Err(Refusal::because(RejectReason::Denied));
        }
        match &shared.per_ip {
            Some(limit) => match limit.acquire(ip) {
                Some(slot) => Ok(Some(slot)),
                None => Err(Refusal::because(RejectReason::PerIpLimit)),
            },
            None => Ok(None),
        }
    }
}

impl Refusal {
    fn because(reason: RejectReason) -> Self {
        Refusal {
            reason,
            detail: None,
        }
    }

    fn header(problem: HeaderProblem, wait: Option<Duration>) -> Self {
        let detail = match problem {
            HeaderProblem::Invalid(why) => why.to_string(),
            HeaderProblem::Closed { after: 0 } => "the connection closed before any header".into(),
            HeaderProblem::Closed { after } => {
                format!("the connection closed after {after} bytes of a header")
            }
            HeaderProblem::TooSlow { after } => format!(
                "no whole header within {} ({after} bytes came)",
                wait.map_or_else(|| "the first read timeout".into(), |w| format!("{w:?}"))
            ),
            HeaderProblem::Failed(err) => format!("reading the header failed: {err}"),
        };
        Refusal {
            reason: RejectReason::ProxyHeader,
            detail: Some(detail),
        }
    }

    /// Counts and logs the refusal (the caller drops the socket, which closes it). A header
    /// cut short by the shutdown's deadline is a close for `shutdown`, not a refusal.
    pub(crate) fn spend(self, ticket: Ticket, span: &Span, shared: &Shared) {
        if shared.shutdown.is_forced() {
            let _entered = span.enter();
            info!("closed before its PROXY header came: the shutdown timeout passed");
            return ticket.close(CloseReason::Shutdown, 0, 0);
        }
        shared
            .rejections
            .reject(ticket, self.reason, span, self.detail.as_deref());
    }
}

/// Why no header could be read.
#[derive(Debug)]
enum HeaderProblem {
    Invalid(&'static str),
    Closed { after: usize },
    TooSlow { after: usize },
    Failed(io::Error),
}

/// Reads the PROXY header at the start of `stream` and nothing after it, waiting until
/// `deadline` (`None`: as long as it takes). Returns the addresses it carries, `None` for a
/// header that says to use the connection's own.
fn read_header(
    stream: &TcpStream,
    deadline: Option<Instant>,
) -> Result<Option<(SocketAddr, SocketAddr)>, HeaderProblem> {
    let mut peeked = [0u8; PEEK];
    // The header's bytes taken from the socket so far, while it arrives in pieces.
    let mut taken: Vec<u8> = Vec::new();
    // The socket's read timeout, while a later peek waits only for what is left of the wait.
    let mut timeout_before: Option<Option<Duration>> = None;
    let result = loop {
        let n = match stream.peek(&mut peeked) {
            Ok(0) => break Err(HeaderProblem::Closed { after: taken.len() }),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) if is_timeout(&err) => {
                break Err(HeaderProblem::TooSlow { after: taken.len() })
            }
            Err(err) => break Err(HeaderProblem::Failed(err)),
        };
        let parsed = if taken.is_empty() {
            parse(&peeked[..n])
        } else {
            let mut whole = taken.clone();
            whole.extend_from_slice(&peeked[..n]);
            parse(&whole)
        };
        match parsed {
            Parsed::Header { len, addresses } => {
                let rest = len - taken.len();
                break consume(stream, &mut peeked[..rest]).map(|()| addresses);
            }
            Parsed::Invalid(why) => break Err(HeaderProblem::Invalid(why)),
            // Take what came, so that the next peek waits for more rather than returning it.
            Parsed::Incomplete => {
                if let Err(problem) = consume(stream, &mut peeked[..n]) {
                    break Err(problem);
                }
                taken.extend_from_slice(&peeked[..n]);
            }
        }
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Err(HeaderProblem::TooSlow { after: taken.len() });
            }
            if timeout_before.is_none() {
                timeout_before = Some(stream.read_timeout().map_err(HeaderProblem::Failed)?);
            }
            stream
                .set_read_timeout(Some(left))
                .map_err(HeaderProblem::Failed)?;
        }
    };
    // The connection goes on with the read timeout it had (its limits count on it).
    if let Some(before) = timeout_before {
        stream
            .set_read_timeout(before)
            .map_err(HeaderProblem::Failed)?;
    }
    result
}

/// Reads exactly `buf.len()` bytes that a peek has shown are there.
fn consume(mut stream: &TcpStream, buf: &mut [u8]) -> Result<(), HeaderProblem> {
    stream.read_exact(buf).map_err(HeaderProblem::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{Shutdown, TcpListener};

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (served, _) = listener.accept().unwrap();
        served
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        (client, served)
    }

    #[test]
    fn takes_the_header_and_not_a_byte_more() {
        let (mut client, mut served) = pair();
        client
            .write_all(b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 7007\r\nhello")
            .unwrap();
        let addresses = read_header(&served, None).unwrap();
        assert_eq!(
            addresses,
            Some((
                "203.0.113.7:40000".parse().unwrap(),
                "192.0.2.1:7007".parse().unwrap()
            ))
        );
        client.shutdown(Shutdown::Write).unwrap();
        let mut rest = String::new();
        served.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "hello");
    }

    #[test]
    fn a_header_in_pieces_is_put_together_and_the_timeout_restored() {
        let (mut client, mut served) = pair();
        let writer = std::thread::spawn(move || {
            for piece in [
                &b"PROXY TCP6 2001:db8::7 "[..],
                b"2001:db8::1 4",
                b"0000 7007\r",
                b"\ndata",
            ] {
                client.write_all(piece).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
            client
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let addresses = read_header(&served, Some(deadline)).unwrap();
        assert_eq!(addresses.unwrap().0, "[2001:db8::7]:40000".parse().unwrap());
        assert_eq!(
            served.read_timeout().unwrap(),
            Some(Duration::from_secs(10))
        );
        writer.join().unwrap().shutdown(Shutdown::Write).unwrap();
        let mut rest = String::new();
        served.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "data");
    }

    #[test]
    fn garbage_a_cut_header_and_a_slow_one_are_problems() {
        let (mut client, served) = pair();
        client.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(matches!(
            read_header(&served, None),
            Err(HeaderProblem::Invalid("not a PROXY header"))
        ));

        let (mut client, served) = pair();
        client.write_all(b"PROXY TCP4 1.2.3.4").unwrap();
        client.shutdown(Shutdown::Write).unwrap();
        assert!(matches!(
            read_header(&served, None),
            Err(HeaderProblem::Closed { after: 18 })
        ));

        let (mut client, served) = pair();
        client.write_all(b"\r\n\r\n\0\r\nQUIT\n").unwrap();
        let started = Instant::now();
        let slow = read_header(&served, Some(started + Duration::from_millis(100)));
        assert!(
            matches!(slow, Err(HeaderProblem::TooSlow { after: 12 })),
            "{slow:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn only_the_listed_load_balancers_are_trusted() {
        let anyone = ProxyProtocol::new(vec![]);
        assert!(anyone.trusts("192.0.2.9".parse().unwrap()));
        let listed = ProxyProtocol::new(vec!["10.0.0.0/8".parse().unwrap()]);
        assert!(listed.trusts("10.1.2.3".parse().unwrap()));
        assert!(listed.trusts("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!listed.trusts("192.0.2.9".parse().unwrap()));
    }
}
