//! Clients that keep opening short conversations (a few echoed messages, then a half-close)
//! until told to stop, checking every byte: the load that restarts and upgrades must not
//! disturb.

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::clients::try_connect_from;

/// Messages per conversation, the pause between them, and the pause between conversations.
const MESSAGES: usize = 3;
const BETWEEN_MESSAGES: Duration = Duration::from_millis(20);
const BETWEEN_CONVERSATIONS: Duration = Duration::from_millis(150);

/// What the clients saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Conversations that ended with every byte echoed and the server's close.
    pub conversations: u64,
    /// What went wrong, one line each (a refused connect, a reset, a short echo).
    pub failures: Vec<String>,
    /// The longest a connect took (a connect the server did not answer is retried by the
    /// client's kernel a second later).
    pub slowest_connect: Duration,
    /// The longest a whole conversation took (a load balancer that retried its connect to a
    /// server shows here).
    pub slowest_conversation: Duration,
}

/// The running clients.
pub struct Churn {
    stop: Arc<AtomicBool>,
    clients: Vec<thread::JoinHandle<Outcome>>,
}

impl Churn {
    /// Starts one client per source address, each talking to `target` until stopped.
    pub fn start(target: SocketAddr, sources: impl IntoIterator<Item = IpAddr>) -> Churn {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = sources
            .into_iter()
            .enumerate()
            .map(|(n, source)| {
                let stop = Arc::clone(&stop);
                thread::Builder::new()
                    .stack_size(128 << 10)
                    .spawn(move || talk(n, source, target, &stop))
                    .expect("a client thread")
            })
            .collect();
        Churn { stop, clients }
    }

    /// Stops the clients after their current conversation and adds up what they saw.
    pub fn stop(self) -> Outcome {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Outcome::default();
        for client in self.clients {
            let outcome = client.join().expect("a client panicked");
            all.conversations += outcome.conversations;
            all.failures.extend(outcome.failures);
            all.slowest_connect = all.slowest_connect.max(outcome.slowest_connect);
            all.slowest_conversation = all.slowest_conversation.max(outcome.slowest_conversation);
        }
        all
    }
}

fn talk(n: usize, source: IpAddr, target: SocketAddr, stop: &AtomicBool) -> Outcome {
    let mut outcome = Outcome::default();
    let mut round = 0u64;
    // Spread the first connects over a conversation's pause.
    thread::sleep(BETWEEN_CONVERSATIONS * (n % 16) as u32 / 16);
    while !stop.load(Ordering::SeqCst) {
        round += 1;
        let started = Instant::now();
        match conversation(n, round, source, target, &mut outcome.slowest_connect) {
            Ok(()) => {
                outcome.conversations += 1;
                outcome.slowest_conversation = outcome.slowest_conversation.max(started.elapsed());
            }
            Err(why) => outcome.failures.push(format!("client {source}: {why}")),
        }
        thread::sleep(BETWEEN_CONVERSATIONS);
    }
    outcome
}

fn conversation(
    n: usize,
    round: u64,
    source: IpAddr,
    target: SocketAddr,
    slowest_connect: &mut Duration,
) -> Result<(), String> {
    let started = Instant::now();
    let mut stream =
        try_connect_from(source, target).map_err(|err| format!("connect failed: {err}"))?;
    *slowest_connect = (*slowest_connect).max(started.elapsed());
    for m in 0..MESSAGES {
        let message: Vec<u8> = (0..40 + (n + m) % 100)
            .map(|i| (round as usize + n + i) as u8)
            .collect();
        stream
            .write_all(&message)
            .map_err(|err| format!("send {m}: {err}"))?;
        let mut echo = vec![0; message.len()];
        stream
            .read_exact(&mut echo)
            .map_err(|err| format!("echo {m}: {err}"))?;
        if echo != message {
            return Err(format!("echo {m} differs from what was sent"));
        }
        thread::sleep(BETWEEN_MESSAGES);
    }
    stream
        .shutdown(Shutdown::Write)
        .map_err(|err| format!("half-close: {err}"))?;
    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .map_err(|err| format!("close: {err}"))?;
    match rest.is_empty() {
        true => Ok(()),
        false => Err(format!("{} bytes nobody sent", rest.len())),
    }
}
