//! The command line: `echopool serve | client | bench | completions | man`.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use echopool::handlers::{Handler, Registry};
use echopool::server::{Config, Overflow};
use ipnet::IpNet;

use crate::client::addr::{parse_host_port, resolve};
use crate::duration_arg::{parse_duration_arg, parse_duration_limit, DurationArg, Limit};
use crate::privileges::UserArg;
use crate::size_arg::{byte_size_in, parse_size_limit, ByteSize};

/// A blocking thread-pool TCP server with plugin handlers, its client and a load generator.
#[derive(Debug, Parser)]
#[command(name = "echopool", version, propagate_version = true)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: accept connections and serve each on a fixed pool of worker threads.
    Serve(Box<ServeArgs>),
    /// Send a message (or stdin) to a server and print the reply, like the textbook client.
    Client(crate::client::ClientArgs),
    /// Load-test a server and report throughput, latency percentiles and errors.
    Bench(crate::bench::BenchArgs),
    /// Print a shell completion script for bash, zsh, fish, elvish or powershell.
    Completions(crate::completions::CompletionsArgs),
    /// Print the man page, or write one per command into a directory.
    Man(crate::manpages::ManArgs),
}

/// The whole command line as clap sees it: [`Cli`] plus an `ECHOPOOL_*` variable for each
/// `serve` flag ([`crate::env_vars`]). Parsing, help, completions and man pages all use it.
pub fn command() -> clap::Command {
    crate::env_vars::add(Cli::command())
}

/// Parses `argv` (program name first) and the `ECHOPOOL_*` variables.
///
/// # Errors
///
/// A usage error, as clap reports it, except that a bad value from a variable names the
/// variable rather than its flag.
pub fn parse_from(argv: impl IntoIterator<Item = impl Into<OsString>>) -> Result<Cli, clap::Error> {
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let mut cmd = command();
    let matches = cmd
        .clone()
        .try_get_matches_from(&argv)
        .map_err(|err| crate::env_vars::blame(err, &cmd, &argv))?;
    let mut cli = Cli::from_arg_matches(&matches).map_err(|err| err.format(&mut cmd))?;
    if let (Command::Serve(args), Some(serve)) =
        (&mut cli.command, matches.subcommand_matches("serve"))
    {
        args.listen_is_default =
            serve.value_source("listen") == Some(clap::parser::ValueSource::DefaultValue);
    }
    Ok(cli)
}

/// The handlers `--handler` can name: the stock ones and `exec:PROGRAM [ARG...]`.
pub fn registry() -> Registry {
    let mut registry = Registry::stock();
    echopool::exec::register(&mut registry);
    registry
}

/// A configuration error that clap cannot see (an environment variable, a combination of
/// flags); the binary exits 2 with it, like a usage error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The server's defaults, which the flags' defaults are.
fn default() -> Config {
    Config::default()
}

/// Flags of `echopool serve`. Their defaults are the server's own (`Config::default()`); each
/// can also come from an `ECHOPOOL_<FLAG>` variable (see [`crate::env_vars`]).
#[derive(Debug, Clone, Args)]
#[command(after_long_help = serve_examples())]
pub struct ServeArgs {
    /// Address to listen on: IPv4, IPv6 (`[::1]:7007`) or a host name (every address it
    /// resolves to); repeat for several. Port 0 picks a free port; the real one is printed as
    /// `listening on IP:PORT`.
    #[arg(
        short,
        long = "listen",
        value_name = "ADDR",
        value_parser = parse_listen,
        default_values_t = default().listen.into_iter().map(ListenArg::from).collect::<Vec<_>>(),
    )]
    pub listen: Vec<ListenArg>,

    /// Whether `--listen` is its default, neither given nor set by `ECHOPOOL_LISTEN`: sockets
    /// passed by a service manager then replace it rather than add to it.
    #[arg(skip)]
    pub listen_is_default: bool,

    /// Worker threads: how many connections are being served at once. A connection with
    /// nothing to say leaves its worker (see `--park`), so workers bound the connections
    /// served at the same instant, not the connections held (see `--max-connections`).
    #[arg(short, long, value_name = "N", default_value_t = default().workers)]
    pub workers: NonZeroUsize,

    /// `on`: a connection with nothing to read while others wait for a worker (or quiet for
    /// `--park-after`), or whose client does not read its answer, leaves its worker for the
    /// parking lot and resumes on any worker when its socket is ready. `off`: the textbook
    /// pool, where a worker holds its connection to the end (for teaching and comparison).
    #[arg(long, value_enum, value_name = "on|off", default_value_t = Switch::from(default().park))]
    pub park: Switch,

    /// How long a worker waits on a quiet connection, when no other connection waits for a
    /// worker, before it parks it (`0` parks at once). While others wait, it parks at once.
    #[arg(long, value_name = "DUR", value_parser = parse_duration_arg,
          default_value_t = DurationArg(default().park_after))]
    pub park_after: DurationArg,

    /// The most connections held at once, served, queued and parked; at the cap `--overflow`
    /// applies (`block` stops accepting, `reject` accepts and closes). `0` = the descriptor
    /// limit (which `echopool serve` raises to its hard limit at start) less 64 kept for
    /// listeners, logs and the poller.
    #[arg(long, value_name = "N", value_parser = parse_count_limit,
          default_value_t = Limit(default().max_connections))]
    pub max_connections: Limit<NonZeroUsize>,

    /// Capacity of the queue between the accept loop and the workers [default: the number of
    /// workers].
    #[arg(long, value_name = "N")]
    pub queue: Option<NonZeroUsize>,

    /// What to do with a new connection when the queue (or `--max-connections`) is full: `block`
    /// stops accepting until there is room (the kernel's listen backlog holds new clients
    /// meanwhile); `reject` accepts and closes it at once.
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = default().overflow)]
    pub overflow: Overflow,

    /// The connection handler.
    #[arg(
        short = 'H',
        long,
        value_name = "SPEC",
        value_parser = parse_handler_spec,
        help = handler_help(),
        long_help = handler_long_help(),
    )]
    pub handler: Option<HandlerArg>,

    /// Close a connection that sends nothing for this long (`500ms`, `30s`, `5m`); `0` = never.
    /// Without it, a silent client holds a worker forever.
    #[arg(long, value_name = "DUR", value_parser = parse_duration_limit,
          default_value_t = Limit::of(default().idle_timeout))]
    pub idle_timeout: Limit<DurationArg>,

    /// Close a connection whose client does not read our output for this long (its echo fills
    /// the socket buffers and a write blocks); `0` = never.
    #[arg(long, value_name = "DUR", value_parser = parse_duration_limit,
          default_value_t = Limit::of(default().write_timeout))]
    pub write_timeout: Limit<DurationArg>,

    /// Close every connection this long after it opened, whatever it is doing; `0` = no limit.
    #[arg(long, value_name = "DUR", value_parser = parse_duration_limit,
          default_value_t = Limit::of(default().max_duration))]
    pub max_duration: Limit<DurationArg>,

    /// Close a connection once its client has sent this many bytes (`10MiB`); `0` = no limit.
    #[arg(long, value_name = "BYTES", value_parser = parse_size_limit,
          default_value_t = Limit(default().max_bytes.map(ByteSize)))]
    pub max_bytes: Limit<ByteSize>,

    /// Only clients in this range may connect (`10.0.0.0/8`, `::1/128`, or one address);
    /// repeatable. With any `--allow`, every other address is refused.
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    pub allow: Vec<IpNet>,

    /// Clients in this range may not connect, whatever `--allow` says; repeatable.
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    pub deny: Vec<IpNet>,

    /// How many connections (served plus queued) one client address may hold at once, so one
    /// host cannot take the whole pool; `0` = no cap.
    #[arg(long, value_name = "N", value_parser = parse_count_limit,
          default_value_t = Limit(default().max_per_ip))]
    pub max_per_ip: Limit<NonZeroUsize>,

    /// Linux only: let the kernel hold a new connection until its first bytes arrive, for up
    /// to DUR, so clients that connect and say nothing never reach a worker. Only for handlers
    /// whose clients speak first (all the stock ones). `0` = off.
    #[arg(long, value_name = "DUR", value_parser = parse_duration_limit,
          default_value_t = Limit::of(default().defer_accept))]
    pub defer_accept: Limit<DurationArg>,

    /// After SIGTERM or SIGINT, how long live connections may run before they are closed.
    #[arg(long, value_name = "DUR", value_parser = parse_duration_arg,
          default_value_t = DurationArg(default().shutdown_timeout))]
    pub shutdown_timeout: DurationArg,

    /// The most bytes a worker reads at a time (`16KiB`, `4096`). A worker's buffer starts at
    /// 512 bytes and doubles while reads fill it, so idle and chatty connections cost little.
    #[arg(long, value_name = "BYTES", value_parser = byte_size_in(1, 64 << 20),
          default_value_t = ByteSize(default().buffer_size as u64))]
    pub buffer_size: ByteSize,

    /// How many times a worker that has just answered polls its connection for the next
    /// message, yielding the core between polls, before it blocks. Spares a busy server a
    /// sleep and a wake-up per message; adapts per connection, so a quiet one costs a poll a
    /// message. `0` = always block at once (least CPU when the server shares its cores).
    #[arg(long, value_name = "N", default_value_t = default().read_spin,
          value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub read_spin: u32,

    /// Stack size of each worker thread. Only the pages a worker touches become resident, so
    /// this bounds address space rather than memory; handlers that recurse deeply may need
    /// more.
    #[arg(long, value_name = "BYTES", value_parser = byte_size_in(64 << 10, 1 << 30),
          default_value_t = ByteSize(default().stack_size as u64))]
    pub stack_size: ByteSize,

    /// Serve Prometheus metrics at `GET /metrics` on this address (`127.0.0.1:9100`), from a
    /// thread of its own. Port 0 picks a free port, printed as `metrics on IP:PORT` after the
    /// `listening on` lines.
    #[arg(long, value_name = "ADDR", value_parser = parse_socket_addr)]
    pub metrics: Option<SocketAddr>,

    /// Log one line per connection served, when it ends, at info (shown even with `-q`): id,
    /// peer, local address, handler, queue wait, time served, bytes in and out, end reason.
    #[arg(long)]
    pub access_log: bool,

    /// Require HAProxy's PROXY protocol header (v1 or v2) at the start of every connection:
    /// the client address it carries is the peer for the logs, `--allow`/`--deny`,
    /// `--max-per-ip` and the handler. A connection without a valid header within the idle
    /// timeout is closed. A `LOCAL` header (a health check) is served as the proxy itself.
    #[arg(long)]
    pub proxy_protocol: bool,

    /// With `--proxy-protocol`: the load balancers that may connect (`10.0.0.0/8`, or one
    /// address); repeatable. Others are refused. Without it, any address may send a header.
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr, requires = "proxy_protocol")]
    pub proxy_from: Vec<IpNet>,

    /// Set `SO_REUSEPORT`, so that several echopool processes listen on one port: to use more
    /// cores than one process does with a CPU-heavy handler, and to upgrade without a refused
    /// connect (start the new process, then SIGTERM the old). The kernel spreads new
    /// connections among the processes by a hash of their addresses, not by load.
    #[arg(long)]
    pub reuse_port: bool,

    /// Once the listeners are bound, stop being root: become user NAME (a name or a number)
    /// with its primary group, or GROUP, and its supplementary groups, in every thread, checked
    /// before any connection is accepted (failing that, exit 1). So a server can listen on a
    /// port below 1024 (7, echo) without serving as root; `exec:` programs run as NAME too.
    #[arg(long, value_name = "NAME[:GROUP]", value_parser = crate::privileges::parse_user)]
    pub user: Option<UserArg>,

    /// Log format on stderr.
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// More logs: `-v` debug (every chunk), `-vv` trace. `RUST_LOG` overrides both.
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Fewer logs: `-q` warnings and errors only, `-qq` errors only.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub quiet: u8,
}

/// An on/off flag value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

impl From<bool> for Switch {
    fn from(on: bool) -> Self {
        if on {
            Switch::On
        } else {
            Switch::Off
        }
    }
}

impl fmt::Display for Switch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Switch::On => "on",
            Switch::Off => "off",
        })
    }
}

/// The log format of `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A `--handler` value: the spec as typed and the handler it builds (built once, here, so a
/// bad spec is a usage error naming the flag).
#[derive(Clone)]
pub struct HandlerArg {
    /// The spec as typed (`logging:uppercase`).
    pub spec: String,
    /// The handler it names.
    pub handler: Arc<dyn Handler>,
}

impl fmt::Debug for HandlerArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec)
    }
}

fn parse_handler_spec(spec: &str) -> Result<HandlerArg, String> {
    let handler = registry().build(spec).map_err(|err| err.to_string())?;
    Ok(HandlerArg {
        spec: spec.to_string(),
        handler,
    })
}

/// A `--listen` value: the address as typed and every socket address it names. A host name
/// is resolved when the command line is read, so a name that resolves to nothing is a usage
/// error naming the flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenArg {
    text: String,
    /// The addresses to listen on, without repeats, in resolver order.
    pub addrs: Vec<SocketAddr>,
}

impl From<SocketAddr> for ListenArg {
    fn from(addr: SocketAddr) -> Self {
        ListenArg {
            text: addr.to_string(),
            addrs: vec![addr],
        }
    }
}

impl fmt::Display for ListenArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_listen(text: &str) -> Result<ListenArg, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(ListenArg::from(addr));
    }
    parse_host_port(text)?;
    let resolved = resolve(text).map_err(|err| format!("{err:#}"))?;
    let mut addrs: Vec<SocketAddr> = Vec::with_capacity(resolved.len());
    for addr in resolved {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    Ok(ListenArg {
        text: text.to_string(),
        addrs,
    })
}

fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| "expected IP:PORT, e.g. 127.0.0.1:9100 or [::1]:0".to_string())
}

fn parse_count_limit(text: &str) -> Result<Limit<NonZeroUsize>, String> {
    text.trim()
        .parse::<usize>()
        .map(|n| Limit(NonZeroUsize::new(n)))
        .map_err(|_| "expected a whole number (0 = no limit)".to_string())
}

/// Parses a range in CIDR form (`10.0.0.0/8`) or a single address (`192.0.2.7`, `::1`).
fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| {
            "expected an address range such as 10.0.0.0/8 or 2001:db8::/32, or one address"
                .to_string()
        })
}

fn handler_help() -> String {
    format!(
        "The connection handler [default: {}]",
        registry().default_name().unwrap_or_default()
    )
}

fn handler_long_help() -> String {
    let registry = registry();
    format!(
        "The connection handler, by name [default: {}]:\n{}\n\
         exec: PROGRAM is found on PATH at start (missing or not executable: exit 2). It runs in \
         a process group of its own, with PROTO=TCP, TCPREMOTEIP, TCPREMOTEPORT, TCPLOCALIP and \
         TCPLOCALPORT set; its stderr is logged; --max-duration and --shutdown-timeout end its \
         group (SIGTERM, SIGKILL 1s later). Its bytes are not counted and --max-bytes does not \
         apply.",
        registry.default_name().unwrap_or_default(),
        registry.describe()
    )
}

fn serve_examples() -> &'static str {
    "Examples:
  echopool serve                              # echo on 127.0.0.1:7007
  echopool serve -l 0.0.0.0:7007 -l [::]:7007 # every IPv4 and IPv6 address
  echopool serve -l 127.0.0.1:0 -H logging:uppercase --idle-timeout 30s
  echopool serve -w 1000 --queue 100 --overflow reject
  echopool serve -l [::]:7007 --allow 2001:db8::/32 --max-per-ip 8 --max-duration 10m
  echopool serve -l 0.0.0.0:7007 --metrics 127.0.0.1:9100 --access-log
  echopool serve -l 10.0.0.5:7007 --proxy-protocol --proxy-from 10.0.0.2 --reuse-port
  echopool serve -l 0.0.0.0:7 --user nobody   # the echo port, then drop root
  echopool serve -H 'exec:tr a-z A-Z' --max-duration 30s   # a program per connection

Service managers:
  Socket activation: started with LISTEN_PID (this process) and LISTEN_FDS, it serves the
  passed listening TCP sockets (fds 3...), each printed as `listening on IP:PORT` and logged
  with its LISTEN_FDNAMES name, instead of the default address; --listen adds to them.
  With NOTIFY_SOCKET set, it sends READY=1 once listening, STOPPING=1 when the graceful stop
  begins, and STATUS= with the counters. Programs run by exec: see none of these variables."
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn serve(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let argv = ["echopool", "serve"].iter().chain(args);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Command::Serve(serve) => *serve,
            other => panic!("parsed {other:?}"),
        })
    }

    #[test]
    fn defaults_follow_the_contract_and_are_the_servers() {
        let args = serve(&[]).unwrap();
        let listen: SocketAddr = "127.0.0.1:7007".parse().unwrap();
        assert_eq!(args.listen, vec![ListenArg::from(listen)]);
        assert_eq!(args.queue, None);
        assert_eq!(args.overflow, Overflow::Block);
        assert!(args.handler.is_none(), "the registry's default, echo");
        assert_eq!(args.shutdown_timeout.0, Duration::from_secs(10));
        let (config, _) = crate::serve_command::config_from(args);
        // The one thing the command line adds: the handler's name, for the access log.
        let named = Config {
            handler_name: "echo".to_string(),
            ..Config::default()
        };
        assert_eq!(config, named);
    }

    #[test]
    fn help_shows_the_defaults_as_they_are_typed() {
        let help = Cli::try_parse_from(["echopool", "serve", "--help"])
            .unwrap_err()
            .to_string();
        for shown in [
            "[default: 127.0.0.1:7007]",
            "[default: 256]",
            "[default: echo]",
            "[default: 60s]",
            "[default: 30s]",
            "[default: 10s]",
            "[default: 16KiB]",
            "[default: 256KiB]",
            "[default: 0]",
        ] {
            assert!(help.contains(shown), "{shown} is missing:\n{help}");
        }
    }

    #[test]
    fn a_listen_address_may_be_a_host_name() {
        let args = serve(&["--listen", "localhost:0"]).unwrap();
        let addrs = &args.listen[0].addrs;
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 0));
        let err = serve(&["--listen", "no-such-host.invalid:7007"]).unwrap_err();
        assert!(err.to_string().contains("--listen"), "{err}");
    }

    #[test]
    fn every_bad_value_names_its_flag() {
        for (args, flag) in [
            (&["--workers", "0"][..], "--workers"),
            (&["--queue", "0"], "--queue"),
            (&["--handler", "shout"], "--handler"),
            (&["--listen", "localhost"], "--listen"),
            (&["--listen", "[::1]"], "--listen"),
            (&["--idle-timeout", "soon"], "--idle-timeout"),
            (&["--shutdown-timeout", "10"], "--shutdown-timeout"),
            (&["--buffer-size", "0"], "--buffer-size"),
            (&["--stack-size", "1k"], "--stack-size"),
            (&["--overflow", "drop"], "--overflow"),
            (&["--allow", "10.0.0.0/33"], "--allow"),
            (&["--deny", "example.com"], "--deny"),
            (&["--max-bytes", "lots"], "--max-bytes"),
            (&["--write-timeout", "1"], "--write-timeout"),
            (&["--max-per-ip", "many"], "--max-per-ip"),
            (&["--metrics", "localhost"], "--metrics"),
            (&["--proxy-protocol", "--proxy-from", "lb"], "--proxy-from"),
            (&["--proxy-from", "10.0.0.2"], "--proxy-protocol"),
        ] {
            let err = serve(args).unwrap_err().to_string();
            assert!(err.contains(flag), "{args:?}: {err}");
        }
    }

    #[test]
    fn cidrs_take_ranges_and_single_addresses() {
        let args = serve(&[
            "--allow",
            "10.1.2.3/8",
            "--allow",
            "::1",
            "--deny",
            "10.9.0.0/16",
        ])
        .unwrap();
        let allow: Vec<String> = args.allow.iter().map(ToString::to_string).collect();
        assert_eq!(allow, ["10.0.0.0/8", "::1/128"]);
        assert_eq!(args.deny[0].to_string(), "10.9.0.0/16");
    }

    fn any_net() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            (any::<u32>(), 0u8..=32).prop_map(|(a, p)| {
                IpNet::new(std::net::IpAddr::from(a.to_be_bytes()), p).unwrap()
            }),
            (any::<u128>(), 0u8..=128).prop_map(|(a, p)| {
                IpNet::new(std::net::IpAddr::from(a.to_be_bytes()), p).unwrap()
            }),
        ]
    }

    proptest! {
        // Any text an operator (or a config template gone wrong) can pass to --allow/--deny:
        // an error or a range, never a panic.
        #[test]
        fn cidr_parser_never_panics(text in "\\PC{0,48}") {
            let _ = parse_cidr(&text);
        }

        // Valid ranges with one character inserted, removed or replaced: where a parser's
        // edge cases are (a stray dot, a missing colon, a prefix of 33). Whatever parses
        // must print as a range that parses back to itself.
        #[test]
        fn cidr_parser_never_panics_on_near_misses(
            net in any_net(),
            at in any::<usize>(),
            edit in 0u8..3,
            with in prop::sample::select(&b"0123456789abcdefABCDEF:./% -"[..]),
        ) {
            let mut text = net.to_string().into_bytes();
            let at = at % (text.len() + 1);
            match edit {
                0 => text.insert(at, with),
                1 if at < text.len() => { text.remove(at); }
                _ if at < text.len() => text[at] = with,
                _ => text.push(with),
            }
            let text = String::from_utf8(text).unwrap();
            if let Ok(parsed) = parse_cidr(&text) {
                prop_assert_eq!(parse_cidr(&parsed.to_string()), Ok(parsed));
            }
        }

        // A range, written in any host form, parses to its network address and prefix;
        // what it prints parses back to the same range; spaces around it do not matter.
        #[test]
        fn cidr_ranges_round_trip(net in any_net()) {
            let parsed = parse_cidr(&net.to_string()).unwrap();
            prop_assert_eq!(parsed, net.trunc());
            prop_assert_eq!(parse_cidr(&parsed.to_string()), Ok(parsed));
            prop_assert_eq!(parse_cidr(&format!(" {net} ")), Ok(parsed));
            prop_assert!(parsed.contains(&net.addr()), "{} lost {}", parsed, net.addr());
        }

        // One address is the range of just that address.
        #[test]
        fn single_addresses_are_host_ranges(net in any_net()) {
            let parsed = parse_cidr(&net.addr().to_string()).unwrap();
            prop_assert_eq!(parsed.addr(), net.addr());
            prop_assert_eq!(parsed.prefix_len(), parsed.max_prefix_len());
        }

        // A prefix longer than the address is refused, not clamped.
        #[test]
        fn overlong_prefixes_are_refused(net in any_net(), extra in 1u16..1000) {
            let too_long = u16::from(net.max_prefix_len()) + extra;
            let text = format!("{}/{}", net.addr(), too_long);
            prop_assert!(parse_cidr(&text).is_err(), "{} was accepted", text);
        }
    }

    #[test]
    fn exec_and_user_are_parsed_at_start() {
        let args = serve(&["-H", "logging:exec:sh -c 'cat'", "--user", "root:0"]).unwrap();
        assert_eq!(args.handler.unwrap().spec, "logging:exec:sh -c 'cat'");
        assert_eq!(args.user.unwrap().uid, 0);
        let err = serve(&["-H", "exec:no-such-program-here"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        let text = err.to_string();
        assert!(text.contains("--handler"), "{text}");
        assert!(
            text.contains("no program 'no-such-program-here' on PATH"),
            "{text}"
        );
        let err = serve(&["--user", "no-such-user-here"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--user") && err.contains("no such user"),
            "{err}"
        );
    }

    #[test]
    fn parse_from_tells_a_default_listen_from_a_given_one() {
        let parsed = |argv: &[&str]| match parse_from(argv).unwrap().command {
            Command::Serve(args) => args.listen_is_default,
            other => panic!("parsed {other:?}"),
        };
        assert!(parsed(&["echopool", "serve"]));
        assert!(!parsed(&["echopool", "serve", "-l", "127.0.0.1:7007"]));
    }

    #[test]
    fn listen_repeats_and_takes_ipv6() {
        let args = serve(&["-l", "127.0.0.1:0", "-l", "[::1]:0"]).unwrap();
        assert_eq!(args.listen.len(), 2);
        assert!(args.listen[1].addrs[0].is_ipv6());
    }
}
