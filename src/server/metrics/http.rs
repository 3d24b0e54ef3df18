//! Just enough HTTP/1.x for a scraper: one request per connection, `GET /metrics` answered with
//! the metrics, anything else with `404`, and every wait bounded.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use tracing::debug;

use super::Exposition;

/// The content type of the Prometheus text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The most of a request (line and headers) read; the rest is not looked at.
const MAX_REQUEST: usize = 8 << 10;

/// Reads one request from `stream` and answers it, all within `timeout`.
pub(super) fn answer(mut stream: TcpStream, timeout: Duration, exposition: &Exposition) {
    let deadline = Instant::now() + timeout;
    let Some(head) = read_head(&stream, deadline) else {
        return;
    };
    let response = match request_line(&head) {
        Some(("GET", "/metrics")) => respond("200 OK", CONTENT_TYPE, &exposition.render()),
        Some(_) => respond(
            "404 Not Found",
            "text/plain",
            "not found: try GET /metrics\n",
        ),
        None => respond("400 Bad Request", "text/plain", "not an HTTP request\n"),
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let written = stream
        .set_write_timeout(Some(left.max(Duration::from_millis(1))))
        .and_then(|()| stream.write_all(response.as_bytes()));
    if let Err(err) = written {
        debug!(error = %err, "metrics: the scraper did not take the answer");
    }
    let _ = stream.shutdown(Shutdown::Write);
}

/// Answers a scraper past the cap at once, without waiting for its request.
pub(super) fn busy(stream: &TcpStream) {
    let response = respond(
        "503 Service Unavailable",
        "text/plain",
        "too many scrapes\n",
    );
    // Non-blocking: the answer fits the socket's buffer, and a full one is not waited for.
    let _ = stream.set_nonblocking(true);
    let _ = (&*stream).write(response.as_bytes());
    let _ = stream.shutdown(Shutdown::Both);
}

/// The request line and headers, up to the blank line; `None` when the client sent none in
/// time.
fn read_head(mut stream: &TcpStream, deadline: Instant) -> Option<String> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return None;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => {
                debug!(error = %err, "metrics: no request");
                return None;
            }
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// The method and the path (without a query) of the first line, if it is a request line.
fn request_line(head: &str) -> Option<(&str, &str)> {
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return None;
    }
    let path = target.split('?').next().unwrap_or(target);
    Some((method, path))
}

fn respond(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_give_method_and_path() {
        assert_eq!(
            request_line("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(
            request_line("GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(request_line("POST / HTTP/1.1\r\n\r\n"), Some(("POST", "/")));
        assert_eq!(request_line("hello\r\n\r\n"), None);
        assert_eq!(request_line(""), None);
    }
}
