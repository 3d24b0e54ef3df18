//! `echo`: the default handler, the textbook echo.

use std::io::{self, Write};

use crate::{ConnInfo, Handler, Opened, Session};

/// Writes every byte back as it arrives: one write per chunk read, straight from the read
/// buffer, no copy.
///
/// ```
/// use echopool_handlers::{ConnInfo, Echo, Handler};
///
/// let mut session = Echo.open(&ConnInfo::example()).into_session().unwrap();
/// let mut out = Vec::new();
/// session.data(b"Echo this!", &mut out).unwrap();
/// assert_eq!(out, b"Echo this!");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Echo;

/// The session of [`Echo`]; it holds nothing.
#[derive(Debug, Default)]
struct EchoSession;

impl Handler for Echo {
    fn open(&self, _conn: &ConnInfo) -> Opened {
        Opened::session(EchoSession)
    }
}

impl Session for EchoSession {
    fn data(&mut self, input: &[u8], out: &mut dyn Write) -> io::Result<()> {
        out.write_all(input)
    }
}
