//! The read loop of a byte session: read a chunk, hand it to the session, until the peer
//! half-closes or a limit ends the connection.

use std::io::{self, Read};

use echopool_handlers::{CloseReason, Session};

use super::connection::Connection;
use super::read_buffer::ReadBuffer;
use super::transport::Transport;
use crate::server::ShutdownHandle;

/// Serves `session` on `conn` to the end of the connection and says why it ended. The session
/// writes its replies to `conn` itself. `eof` is called only when the peer half-closed, not
/// when the graceful stop's deadline shut the socket down.
pub(crate) fn drive<T: Transport>(
    session: &mut dyn Session,
    conn: &mut Connection<'_, T>,
    buf: &mut ReadBuffer,
    shutdown: &ShutdownHandle,
) -> CloseReason {
    let served = serve_chunks(session, conn, buf, shutdown);
    if let (Err(err), None) = (&served, conn.ended()) {
        tracing::debug!(error = %err, "connection failed");
    }
    conn.close_reason(&served, shutdown.is_forced())
}

fn serve_chunks<T: Transport>(
    session: &mut dyn Session,
    conn: &mut Connection<'_, T>,
    buf: &mut ReadBuffer,
    shutdown: &ShutdownHandle,
) -> io::Result<()> {
    loop {
        let read = conn.read(buf.space())?;
        if read == 0 {
            break;
        }
        session.data(&buf.space()[..read], conn)?;
        if conn.ended().is_some() {
            // `--max-bytes`: what was allowed is answered, the rest is not read.
            return Ok(());
        }
        buf.filled(read);
    }
    if shutdown.is_forced() {
        return Ok(());
    }
    session.eof(conn)
}

#[cfg(test)]
mod tests {
    use std::io::{ErrorKind, Write};
    use std::time::{Duration, Instant};

    use echopool_handlers::{ConnInfo, Echo, Handler};

    use super::*;
    use crate::server::serving::connection::Moved;
    use crate::server::serving::limits::ConnLimits;
    use crate::server::serving::read_spin::ReadSpin;
    use crate::server::serving::transport::script::{Script, Step};

    const NO_LIMITS: ConnLimits = ConnLimits {
        idle_timeout: Some(Duration::from_secs(60)),
        write_timeout: Some(Duration::from_secs(30)),
        max_duration: None,
        max_bytes: None,
    };

    /// Records what the loop asks of it, and echoes.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
    }

    impl Session for Recorder {
        fn data(&mut self, input: &[u8], out: &mut dyn Write) -> io::Result<()> {
            self.calls
                .push(format!("data {}", String::from_utf8_lossy(input)));
            out.write_all(input)
        }

        fn eof(&mut self, out: &mut dyn Write) -> io::Result<()> {
            self.calls.push("eof".into());
            out.write_all(b"!")
        }
    }

    struct Outcome {
        reason: CloseReason,
        calls: Vec<String>,
        script: Script,
        moved: Moved,
    }

    fn run(limits: ConnLimits, started: Instant, mut script: Script) -> Outcome {
        run_with(
            limits,
            started,
            &mut script,
            &ShutdownHandle::new(Duration::ZERO),
        )
    }

    fn run_with(
        limits: ConnLimits,
        started: Instant,
        script: &mut Script,
        shutdown: &ShutdownHandle,
    ) -> Outcome {
        let mut session = Recorder::default();
        let mut moved = Moved::default();
        let not_crowded = || false;
        let mut conn = Connection::new(
            &mut *script,
            &limits,
            started,
            ReadSpin::new(0),
            &not_crowded,
            &mut moved,
        );
        let mut buf = ReadBuffer::new(16 << 10);
        let reason = drive(&mut session, &mut conn, &mut buf, shutdown);
        Outcome {
            reason,
            calls: session.calls,
            script: std::mem::replace(script, Script::new([])),
            moved,
        }
    }

    #[test]
    fn chunks_then_eof_in_order_and_every_byte_counted() {
        let out = run(
            NO_LIMITS,
            Instant::now(),
            Script::new([Step::Data(b"ab"), Step::Data(b"cd"), Step::Eof]),
        );
        assert_eq!(out.reason, CloseReason::Eof);
        assert_eq!(out.calls, ["data ab", "data cd", "eof"]);
        assert_eq!(out.script.written, b"abcd!");
        assert_eq!((out.moved.bytes_in, out.moved.bytes_out), (4, 5));
    }

    #[test]
    fn silence_is_an_idle_timeout_and_eof_is_not_called() {
        let out = run(
            NO_LIMITS,
            Instant::now(),
            Script::new([Step::Data(b"hi"), Step::Silence]),
        );
        assert_eq!(out.reason, CloseReason::IdleTimeout);
        assert_eq!(out.calls, ["data hi"]);
    }

    #[test]
    fn a_connection_past_its_max_duration_ends_before_reading() {
        let limits = ConnLimits {
            max_duration: Some(Duration::from_secs(1)),
            ..NO_LIMITS
        };
        let long_ago = Instant::now() - Duration::from_secs(2);
        let out = run(limits, long_ago, Script::new([Step::Data(b"late")]));
        assert_eq!(out.reason, CloseReason::MaxDuration);
        assert!(out.calls.is_empty());
        assert_eq!(out.script.reads.len(), 1, "nothing was read");
    }

    #[test]
    fn near_its_max_duration_a_read_waits_only_until_the_end_which_is_max_duration() {
        let limits = ConnLimits {
            max_duration: Some(Duration::from_secs(60)),
            ..NO_LIMITS
        };
        let started = Instant::now() - Duration::from_millis(59_970);
        let out = run(limits, started, Script::new([Step::WaitOut]));
        let [Some(timeout)] = out.script.timeouts_set[..] else {
            panic!("set {:?}", out.script.timeouts_set);
        };
        assert!(timeout <= Duration::from_millis(30), "{timeout:?}");
        assert_eq!(out.reason, CloseReason::MaxDuration);
    }

    #[test]
    fn max_bytes_answers_exactly_what_is_allowed_then_closes() {
        let limits = ConnLimits {
            max_bytes: Some(5),
            ..NO_LIMITS
        };
        let out = run(
            limits,
            Instant::now(),
            Script::new([Step::Data(b"abc"), Step::Data(b"defgh"), Step::Data(b"ij")]),
        );
        assert_eq!(out.reason, CloseReason::MaxBytes);
        assert_eq!(out.calls, ["data abc", "data de"]);
        assert_eq!(out.script.written, b"abcde");
        assert_eq!(out.moved.bytes_in, 5);
        assert_eq!(
            out.script.reads.len(),
            1,
            "nothing after the limit was read"
        );
    }

    #[test]
    fn more_bytes_at_the_limit_are_not_taken_for_the_end_of_input() {
        let limits = ConnLimits {
            max_bytes: Some(3),
            ..NO_LIMITS
        };
        let out = run(
            limits,
            Instant::now(),
            Script::new([Step::Data(b"abc"), Step::Data(b"d")]),
        );
        assert_eq!(out.reason, CloseReason::MaxBytes);
        assert_eq!(out.calls, ["data abc"], "no eof: the client did not finish");
    }

    #[test]
    fn a_write_that_times_out_is_a_write_timeout_and_other_failures_are_errors() {
        let mut script = Script::new([Step::Data(b"abcdef"), Step::Eof]);
        script.writable = 4;
        let out = run(NO_LIMITS, Instant::now(), script);
        assert_eq!(out.reason, CloseReason::WriteTimeout);
        assert_eq!(out.moved.bytes_out, 4);

        let mut script = Script::new([Step::Data(b"abc"), Step::Eof]);
        script.writable = 0;
        script.write_error = ErrorKind::BrokenPipe;
        assert_eq!(
            run(NO_LIMITS, Instant::now(), script).reason,
            CloseReason::Error
        );

        let script = Script::new([Step::Fail(ErrorKind::ConnectionReset)]);
        assert_eq!(
            run(NO_LIMITS, Instant::now(), script).reason,
            CloseReason::Error
        );
    }

    #[test]
    fn an_interrupted_read_is_retried() {
        let out = run(
            NO_LIMITS,
            Instant::now(),
            Script::new([
                Step::Fail(ErrorKind::Interrupted),
                Step::Data(b"x"),
                Step::Eof,
            ]),
        );
        assert_eq!(out.reason, CloseReason::Eof);
        assert_eq!(out.calls, ["data x", "eof"]);
    }

    #[test]
    fn after_the_shutdown_deadline_the_end_of_input_is_a_shutdown_without_eof() {
        let shutdown = ShutdownHandle::new(Duration::ZERO);
        shutdown.force();
        let mut script = Script::new([Step::Data(b"a"), Step::Eof]);
        let out = run_with(NO_LIMITS, Instant::now(), &mut script, &shutdown);
        assert_eq!(out.reason, CloseReason::Shutdown);
        assert_eq!(out.calls, ["data a"]);

        let mut script = Script::new([Step::Fail(ErrorKind::NotConnected)]);
        let out = run_with(NO_LIMITS, Instant::now(), &mut script, &shutdown);
        assert_eq!(out.reason, CloseReason::Shutdown);
    }

    #[test]
    fn a_stock_handler_runs_in_the_loop() {
        let mut session = Echo
            .open(&ConnInfo::example())
            .into_session()
            .expect("a byte session");
        let mut script = Script::new([Step::Data(b"ping"), Step::Eof]);
        let mut moved = Moved::default();
        let not_crowded = || false;
        let mut conn = Connection::new(
            &mut script,
            &NO_LIMITS,
            Instant::now(),
            ReadSpin::new(0),
            &not_crowded,
            &mut moved,
        );
        let reason = drive(
            session.as_mut(),
            &mut conn,
            &mut ReadBuffer::new(64),
            &ShutdownHandle::new(Duration::ZERO),
        );
        assert_eq!(reason, CloseReason::Eof);
        assert_eq!(script.written, b"ping");
    }
}
