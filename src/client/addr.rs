//! `HOST:PORT` arguments: checked when the command line is parsed, resolved when used.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context};

/// Checks that `text` has the shape `HOST:PORT` (`localhost:7007`, `10.0.0.1:7007`,
/// `[::1]:7007`) without resolving it; used as a clap `value_parser` so that a typo is a usage
/// error naming the flag, while name resolution waits until the address is used.
///
/// ```
/// use echopool::client::addr::parse_host_port;
///
/// assert!(parse_host_port("localhost:7007").is_ok());
/// assert!(parse_host_port("[::1]:7007").is_ok());
/// assert!(parse_host_port("::1:7007").is_err()); // IPv6 needs brackets
/// assert!(parse_host_port("localhost").is_err());
/// ```
pub fn parse_host_port(text: &str) -> Result<String, String> {
    let hint = "expected HOST:PORT, e.g. 127.0.0.1:7007, localhost:7007 or [::1]:7007";
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("no port; {hint}"));
    };
    if port.parse::<u16>().is_err() {
        return Err(format!(
            "port '{port}' is not a number from 0 to 65535; {hint}"
        ));
    }
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if host.is_empty() || (host.contains(':') && !bracketed) {
        return Err(format!("host '{host}' is not valid; {hint}"));
    }
    if bracketed
        && host[1..host.len() - 1]
            .parse::<std::net::Ipv6Addr>()
            .is_err()
    {
        return Err(format!("'{host}' is not an IPv6 address; {hint}"));
    }
    Ok(text.to_string())
}

/// Resolves `addr` (`HOST:PORT`) to every socket address it names, in resolver order.
///
/// # Errors
/// When the name does not resolve, or resolves to nothing.
pub fn resolve(addr: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let found: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {addr}"))?
        .collect();
    if found.is_empty() {
        bail!("cannot resolve {addr}: the name has no addresses");
    }
    Ok(found)
}

/// Connects to the first of `addrs` that accepts within `timeout` each, as `nc` does for a
/// name with several addresses (`localhost` is often `::1` and `127.0.0.1`).
///
/// The error is the last address's, and it names every address tried; it is turned into text
/// on purpose, so that a refused or reset connection can never pass for the broken *stdout*
/// pipe that `main` treats as success.
pub fn connect_any(
    name: &str,
    addrs: &[SocketAddr],
    timeout: Duration,
) -> anyhow::Result<TcpStream> {
    let mut last: Option<io::Error> = None;
    for addr in addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(err) => last = Some(err),
        }
    }
    let tried: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let reason = match last {
        Some(err) if err.kind() == io::ErrorKind::TimedOut => {
            format!(
                "no answer within {} (--connect-timeout)",
                humantime::format_duration(timeout)
            )
        }
        Some(err) => err.to_string(),
        None => "no address to try".to_string(),
    };
    bail!(
        "cannot connect to {name} (tried {}): {reason}",
        tried.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_that_parse() {
        for good in [
            "127.0.0.1:7007",
            "localhost:0",
            "[::1]:65535",
            "example.com:80",
        ] {
            assert_eq!(parse_host_port(good).as_deref(), Ok(good));
        }
    }

    #[test]
    fn shapes_that_do_not() {
        for bad in [
            "",
            "7007",
            ":7007",
            "host:",
            "host:65536",
            "host:x",
            "::1:7007",
            "[zz]:1",
        ] {
            assert!(parse_host_port(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn localhost_resolves_and_refusal_names_the_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let addrs = resolve(&addr.to_string()).unwrap();
        let err = connect_any("x", &addrs, Duration::from_secs(2)).unwrap_err();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
        assert!(resolve("localhost:1").is_ok());
    }
}
