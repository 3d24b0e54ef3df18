//! The loop of a byte session: send what is pending, read a chunk, hand it to the session,
//! until the connection ends or leaves its worker for the parking lot.

use echopool_handlers::{CloseReason, Session};

use super::byte_conn::{ByteConn, Policy, Spot, Wait};
use super::read_buffer::ReadBuffer;
use super::transport::Transport;

/// What becomes of the connection when the loop stops.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// It is over: close it.
    Close(CloseReason),
    /// It is quiet (or its client does not read): park it.
    Park(Spot),
}

/// Serves `session` on `conn` until the connection ends or is to be parked; a parked
/// connection resumes here later, on any worker, exactly where it stopped. `eof` is called
/// only when the peer half-closed, not when the graceful stop's deadline shut the socket down.
pub(crate) fn run<T: Transport>(
    session: &mut dyn Session,
    conn: &mut ByteConn<T>,
    buf: &mut ReadBuffer,
    policy: &Policy<'_>,
) -> Next {
    conn.resumed();
    loop {
        if conn.has_pending() {
            if let Err(wait) = conn.flush_pending(policy) {
                return conclude(conn, wait, policy);
            }
        }
        // The end of input, or `--max-bytes`: close once the answer is sent.
        if let Some(reason) = conn.finishing {
            return Next::Close(reason);
        }
        let read = match conn.read(buf.space(), policy) {
            Ok(read) => read,
            Err(wait) => return conclude(conn, wait, policy),
        };
        if read == 0 {
            if policy.shutdown.is_forced() {
                return Next::Close(CloseReason::Shutdown);
            }
            if let Err(err) = session.eof(conn) {
                return conclude(conn, Wait::Over(err), policy);
            }
            conn.finishing = Some(CloseReason::Eof);
            continue;
        }
        if let Err(err) = session.data(&buf.space()[..read], conn) {
            return conclude(conn, Wait::Over(err), policy);
        }
        // `--max-bytes`: what was allowed is answered, the rest is not read.
        conn.finishing = conn.books.ended();
        buf.filled(read);
    }
}

fn conclude<T: Transport>(conn: &ByteConn<T>, wait: Wait, policy: &Policy<'_>) -> Next {
    match wait {
        Wait::Park(spot) => Next::Park(spot),
        Wait::Over(err) => {
            let served = Err(err);
            if conn.books.ended().is_none() {
                if let Err(err) = &served {
                    tracing::debug!(error = %err, "connection failed");
                }
            }
            Next::Close(
                conn.books
                    .close_reason(&served, policy.shutdown.is_forced()),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, ErrorKind, Write};
    use std::time::{Duration, Instant};

    use echopool_handlers::{ConnInfo, Echo, Handler};

    use super::*;
    use crate::server::serving::books::Moved;
    use crate::server::serving::byte_conn::Interest;
    use crate::server::serving::limits::ConnLimits;
    use crate::server::serving::read_spin::ReadSpin;
    use crate::server::serving::transport::script::{Script, Step};
    use crate::server::ShutdownHandle;

    const LIMITS: ConnLimits = ConnLimits {
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

    /// How the worker may wait, as a test sets it.
    struct Setting {
        park_after: Option<Duration>,
        someone_waiting: bool,
        forced: bool,
    }

    const TEXTBOOK: Setting = Setting {
        park_after: None,
        someone_waiting: false,
        forced: false,
    };

    struct Outcome {
        next: Next,
        calls: Vec<String>,
        script: Script,
        moved: Moved,
    }

    fn run_with(limits: ConnLimits, started: Instant, script: Script, setting: Setting) -> Outcome {
        let mut session = Recorder::default();
        let mut conn = ByteConn::new(script, &limits, started, ReadSpin::new(0));
        let shutdown = ShutdownHandle::new(Duration::ZERO);
        if setting.forced {
            shutdown.force();
        }
        let waiting = || setting.someone_waiting;
        let not_crowded = || false;
        let policy = Policy {
            park_after: setting.park_after,
            someone_waiting: &waiting,
            crowded: &not_crowded,
            shutdown: &shutdown,
            parking: None,
        };
        let next = run(
            &mut session,
            &mut conn,
            &mut ReadBuffer::new(16 << 10),
            &policy,
        );
        let moved = conn.moved();
        Outcome {
            next,
            calls: session.calls,
            script: conn.into_transport(),
            moved,
        }
    }

    fn run_script(script: Script) -> Outcome {
        run_with(LIMITS, Instant::now(), script, TEXTBOOK)
    }

    #[test]
    fn chunks_then_eof_in_order_and_every_byte_counted() {
        let out = run_script(Script::new([
            Step::Data(b"ab"),
            Step::Data(b"cd"),
            Step::Eof,
        ]));
        assert_eq!(out.next, Next::Close(CloseReason::Eof));
        assert_eq!(out.calls, ["data ab", "data cd", "eof"]);
        assert_eq!(out.script.written, b"abcd!");
        assert_eq!((out.moved.bytes_in, out.moved.bytes_out), (4, 5));
    }

    #[test]
    fn silence_is_an_idle_timeout_and_eof_is_not_called() {
        let mut script = Script::new([Step::Data(b"hi"), Step::WaitOut]);
        // The socket's timeout, as the listener gave it: no system call to set it.
        script.inherited_timeout = Some(Duration::from_millis(20));
        let out = run_with(
            ConnLimits {
                idle_timeout: Some(Duration::from_millis(20)),
                ..LIMITS
            },
            Instant::now(),
            script,
            TEXTBOOK,
        );
        assert!(out.script.timeouts_set.is_empty());
        assert_eq!(out.next, Next::Close(CloseReason::IdleTimeout));
        assert_eq!(out.calls, ["data hi"]);
    }

    #[test]
    fn a_connection_past_its_max_duration_ends_before_reading() {
        let limits = ConnLimits {
            max_duration: Some(Duration::from_secs(1)),
            ..LIMITS
        };
        let long_ago = Instant::now() - Duration::from_secs(2);
        let out = run_with(
            limits,
            long_ago,
            Script::new([Step::Data(b"late")]),
            TEXTBOOK,
        );
        assert_eq!(out.next, Next::Close(CloseReason::MaxDuration));
        assert!(out.calls.is_empty());
        assert_eq!(out.script.reads.len(), 1, "nothing was read");
    }

    #[test]
    fn near_its_max_duration_a_read_waits_only_until_the_end_which_is_max_duration() {
        let limits = ConnLimits {
            max_duration: Some(Duration::from_secs(60)),
            ..LIMITS
        };
        let started = Instant::now() - Duration::from_millis(59_970);
        let out = run_with(limits, started, Script::new([Step::WaitOut]), TEXTBOOK);
        let [Some(timeout)] = out.script.timeouts_set[..] else {
            panic!("set {:?}", out.script.timeouts_set);
        };
        assert!(timeout <= Duration::from_millis(30), "{timeout:?}");
        assert_eq!(out.next, Next::Close(CloseReason::MaxDuration));
    }

    #[test]
    fn max_bytes_answers_exactly_what_is_allowed_then_closes() {
        let limits = ConnLimits {
            max_bytes: Some(5),
            ..LIMITS
        };
        let script = Script::new([Step::Data(b"abc"), Step::Data(b"defgh"), Step::Data(b"ij")]);
        let out = run_with(limits, Instant::now(), script, TEXTBOOK);
        assert_eq!(out.next, Next::Close(CloseReason::MaxBytes));
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
            ..LIMITS
        };
        let script = Script::new([Step::Data(b"abc"), Step::Data(b"d")]);
        let out = run_with(limits, Instant::now(), script, TEXTBOOK);
        assert_eq!(out.next, Next::Close(CloseReason::MaxBytes));
        assert_eq!(out.calls, ["data abc"], "no eof: the client did not finish");
    }

    #[test]
    fn a_client_that_stops_reading_is_a_write_timeout_and_failures_are_errors() {
        let mut script = Script::new([Step::Data(b"abcdef"), Step::Eof]);
        script.writable = 4;
        let limits = ConnLimits {
            write_timeout: Some(Duration::from_millis(20)),
            ..LIMITS
        };
        let out = run_with(limits, Instant::now(), script, TEXTBOOK);
        assert_eq!(out.next, Next::Close(CloseReason::WriteTimeout));
        assert_eq!(out.moved.bytes_out, 4);

        let mut script = Script::new([Step::Data(b"abc"), Step::Eof]);
        script.writable = 0;
        script.write_error = ErrorKind::BrokenPipe;
        assert_eq!(run_script(script).next, Next::Close(CloseReason::Error));

        let script = Script::new([Step::Fail(ErrorKind::ConnectionReset)]);
        assert_eq!(run_script(script).next, Next::Close(CloseReason::Error));
    }

    #[test]
    fn an_interrupted_read_is_retried() {
        let script = Script::new([
            Step::Fail(ErrorKind::Interrupted),
            Step::Data(b"x"),
            Step::Eof,
        ]);
        let out = run_script(script);
        assert_eq!(out.next, Next::Close(CloseReason::Eof));
        assert_eq!(out.calls, ["data x", "eof"]);
    }

    #[test]
    fn after_the_shutdown_deadline_the_end_of_input_is_a_shutdown_without_eof() {
        let forced = Setting {
            forced: true,
            ..TEXTBOOK
        };
        let script = Script::new([Step::Data(b"a"), Step::Eof]);
        let out = run_with(LIMITS, Instant::now(), script, forced);
        assert_eq!(out.next, Next::Close(CloseReason::Shutdown));
        assert_eq!(out.calls, ["data a"]);

        let forced = Setting {
            forced: true,
            ..TEXTBOOK
        };
        let script = Script::new([Step::Fail(ErrorKind::NotConnected)]);
        let out = run_with(LIMITS, Instant::now(), script, forced);
        assert_eq!(out.next, Next::Close(CloseReason::Shutdown));
    }

    #[test]
    fn a_quiet_connection_is_parked_at_once_while_someone_waits() {
        let waiting = Setting {
            park_after: Some(Duration::from_secs(10)),
            someone_waiting: true,
            forced: false,
        };
        let before = Instant::now();
        let out = run_with(
            LIMITS,
            before,
            Script::new([Step::Data(b"hi"), Step::WaitOut]),
            waiting,
        );
        let Next::Park(spot) = out.next else {
            panic!("{:?}", out.next)
        };
        assert_eq!(spot.interest, Interest::Read);
        assert_eq!(spot.expires_as, CloseReason::IdleTimeout);
        let deadline = spot.deadline.expect("an idle deadline");
        assert!(deadline >= before + Duration::from_secs(60));
        assert!(
            out.script.timeouts_set.is_empty(),
            "it did not wait on the socket"
        );
        assert_eq!(out.script.reads.len(), 1, "the wait was not read");
    }

    #[test]
    fn with_nobody_waiting_a_worker_waits_park_after_then_parks() {
        let quiet = Setting {
            park_after: Some(Duration::from_millis(20)),
            someone_waiting: false,
            forced: false,
        };
        let out = run_with(LIMITS, Instant::now(), Script::new([Step::WaitOut]), quiet);
        assert_eq!(out.script.timeouts_set, [Some(Duration::from_millis(20))]);
        assert!(matches!(out.next, Next::Park(spot) if spot.interest == Interest::Read));
    }

    /// Serves `script` (which begins with a quiet spell) with `--park-after 20ms` and nobody
    /// waiting until it parks; then, after `between` (what the poller's event said), once more.
    fn park_then_resume(
        script: Script,
        between: impl FnOnce(&mut ByteConn<Script>),
    ) -> (Next, Vec<String>, Script) {
        let mut session = Recorder::default();
        let mut conn = ByteConn::new(script, &LIMITS, Instant::now(), ReadSpin::new(0));
        let shutdown = ShutdownHandle::new(Duration::ZERO);
        let policy = Policy {
            park_after: Some(Duration::from_millis(20)),
            someone_waiting: &|| false,
            crowded: &|| false,
            shutdown: &shutdown,
            parking: None,
        };
        let mut buf = ReadBuffer::new(64);
        let first = run(&mut session, &mut conn, &mut buf, &policy);
        assert!(matches!(first, Next::Park(_)), "{first:?}");
        between(&mut conn);
        let second = run(&mut session, &mut conn, &mut buf, &policy);
        (second, session.calls, conn.into_transport())
    }

    #[test]
    fn a_client_quiet_once_is_parked_at_once_the_next_time() {
        let script = Script::new([Step::WaitOut, Step::Data(b"back"), Step::WaitOut]);
        // Resumed with input: answered, then parked again without a second wait.
        let (second, _, script) = park_then_resume(script, |_| {});
        assert!(matches!(second, Next::Park(_)), "{second:?}");
        assert_eq!(script.written, b"back");
        assert_eq!(
            script.reads.len(),
            1,
            "the second quiet spell was not waited out"
        );
    }

    #[test]
    fn a_client_whose_end_came_with_its_data_is_read_to_the_end_not_parked() {
        // An edge-triggered poller reports data and FIN as one event: after the short read
        // that took the data, no new event would come for the FIN.
        let script = Script::new([Step::WaitOut, Step::Data(b"last"), Step::Eof]);
        let (second, calls, script) = park_then_resume(script, |conn| conn.woken(true));
        assert_eq!(second, Next::Close(CloseReason::Eof));
        assert_eq!(calls, ["data last", "eof"]);
        assert_eq!(script.written, b"last!");
    }

    #[test]
    fn a_blocked_write_parks_with_its_output_and_a_write_deadline() {
        let mut script = Script::new([Step::Data(b"abcdef"), Step::Eof]);
        script.writable = 2;
        let waiting = Setting {
            park_after: Some(Duration::from_secs(10)),
            someone_waiting: true,
            forced: false,
        };
        let started = Instant::now();
        let mut session = Recorder::default();
        let mut conn = ByteConn::new(script, &LIMITS, started, ReadSpin::new(0));
        let shutdown = ShutdownHandle::new(Duration::ZERO);
        let policy = Policy {
            park_after: waiting.park_after,
            someone_waiting: &|| true,
            crowded: &|| false,
            shutdown: &shutdown,
            parking: None,
        };
        let mut buf = ReadBuffer::new(64);
        let Next::Park(spot) = run(&mut session, &mut conn, &mut buf, &policy) else {
            panic!("not parked");
        };
        assert_eq!(spot.interest, Interest::Write);
        assert_eq!(spot.expires_as, CloseReason::WriteTimeout);
        assert!(spot.deadline.is_some());
        // The client reads again: the rest goes out, then the loop goes on where it stopped.
        conn.transport_mut().writable = usize::MAX;
        let next = run(&mut session, &mut conn, &mut buf, &policy);
        assert_eq!(next, Next::Close(CloseReason::Eof));
        assert_eq!(session.calls, ["data abcdef", "eof"]);
        assert_eq!(conn.into_transport().written, b"abcdef!");
    }

    #[test]
    fn a_stock_handler_runs_in_the_loop() {
        let mut session = Echo
            .open(&ConnInfo::example())
            .into_session()
            .expect("a byte session");
        let script = Script::new([Step::Data(b"ping"), Step::Eof]);
        let mut conn = ByteConn::new(script, &LIMITS, Instant::now(), ReadSpin::new(0));
        let shutdown = ShutdownHandle::new(Duration::ZERO);
        let policy = Policy {
            park_after: None,
            someone_waiting: &|| false,
            crowded: &|| false,
            shutdown: &shutdown,
            parking: None,
        };
        let next = run(
            session.as_mut(),
            &mut conn,
            &mut ReadBuffer::new(64),
            &policy,
        );
        assert_eq!(next, Next::Close(CloseReason::Eof));
        assert_eq!(conn.into_transport().written, b"ping");
    }
}
