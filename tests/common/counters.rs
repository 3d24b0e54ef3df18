//! The server's counters as its logs show them: `stats=accepted=3 active=0 queued=0
//! rejected[denied=1] closed[eof=2] bytes_in=10 bytes_out=10`, on SIGUSR1 and at shutdown.

use std::thread;
use std::time::{Duration, Instant};

use super::{Server, TIMEOUT};

/// One `stats=` summary from the server's stderr.
#[derive(Debug, Clone)]
pub struct Counters(String);

impl Counters {
    /// Parses the summary in a log line; `None` when the line has none.
    pub fn from_line(line: &str) -> Option<Counters> {
        let start = line.find("stats=")? + "stats=".len();
        Some(Counters(line[start..].to_string()))
    }

    /// A counter: `accepted`, `active`, `queued`, `bytes_in`, `bytes_out`, or a reason in
    /// brackets as `closed.eof`, `rejected.denied`. Zero counts are left out of the line, so a
    /// missing reason is 0.
    pub fn get(&self, key: &str) -> u64 {
        let text = &self.0;
        let (scope, name) = match key.split_once('.') {
            Some((group, name)) => {
                let open = format!("{group}[");
                let start = text
                    .find(&open)
                    .unwrap_or_else(|| panic!("no {open} in {text}"))
                    + open.len();
                let end = start + text[start..].find(']').expect("a closing bracket");
                (&text[start..end], name)
            }
            None => (text.as_str(), key),
        };
        let prefix = format!("{name}=");
        scope
            .split_whitespace()
            .find_map(|token| token.strip_prefix(&prefix))
            .map_or(0, |n| n.parse().expect("a count"))
    }

    /// The summary as logged.
    pub fn line(&self) -> &str {
        &self.0
    }
}

impl Server {
    /// Sends SIGUSR1 and returns the summary it logs.
    pub fn counters_now(&self) -> Counters {
        let before = self.stderr().matches("stats=").count();
        self.signal(libc::SIGUSR1);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let text = self.stderr();
            if text.matches("stats=").count() > before {
                let line = text.lines().rev().find(|l| l.contains("stats=")).unwrap();
                return Counters::from_line(line).unwrap();
            }
            assert!(Instant::now() < deadline, "no stats after SIGUSR1:\n{text}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Polls with SIGUSR1 until `done` holds for the counters, for up to [`TIMEOUT`]; returns
    /// the counters that satisfied it.
    pub fn wait_for_counters(&self, what: &str, done: impl Fn(&Counters) -> bool) -> Counters {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let counters = self.counters_now();
            if done(&counters) {
                return counters;
            }
            assert!(
                Instant::now() < deadline,
                "counters never showed {what}: {}",
                counters.line()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The summary logged at a graceful stop (`stopped stats=...`); call after the exit.
    pub fn final_counters(&self) -> Counters {
        // The exit may come before the reader thread has taken the last lines.
        let text = self.wait_for_log(" stopped stats=");
        text.lines()
            .find(|l| l.contains(" stopped stats="))
            .and_then(Counters::from_line)
            .unwrap_or_else(|| panic!("no final stats in:\n{text}"))
    }
}
