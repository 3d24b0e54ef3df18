"""The open-loop idle cells of bench/compare.py: N connections held by `echopool bench --mode
idle`, 1% of them speaking per second, against one server.

The bench opens every connection first and sends afterwards, and prints nothing until it ends,
except its progress line, which it draws only on a terminal. So it runs here on a
pseudo-terminal, and the moment its line first names the `idle` phase (the measured window has
begun: the connect phase and the warmup are over) the server's threads are read: CPU time
(/proc/PID/task/*/schedstat, in nanoseconds: the window's few hundred messages cost a few
milliseconds, under the 10 ms resolution of /proc/PID/stat) and context switches. They are read
again, with VmRSS, VmHWM and Threads from /proc/PID/status, while the connections are still
held near the end of the window: END_MARGIN_S before it ends (the line is drawn up to ~0.1 s
late, and a bench that has its last echoes ends at once and closes every connection, which costs
the server work that is not sending; a run whose window was seen later than END_MARGIN_S is
retried as a failure). Per message is then the server's CPU per second of that
window over the answered messages per second of the bench's window (Poisson arrivals, so a
window 5% shorter holds 5% fewer messages on average). Standard library only."""

import fcntl
import json
import math
import os
import pty
import select
import struct
import subprocess
import termios
import time
from typing import NamedTuple

from compare_proc import OtherWork, process_cpu_seconds, threads_delta


class IdleCell(NamedTuple):
    """`connections` held open by `echopool bench --mode idle`."""

    name: str
    connections: int


IDLE_CELLS = [IdleCell("idle-open-1000", 1000), IdleCell("idle-open-10000", 10000)]
RATE = "1%"  # of the connections speaking per second: 10 msg/s at 1,000, 100 at 10,000
TIMEOUT_S = 5  # a message unanswered this long after its scheduled time counts as unanswered
# Workers for echopool in these cells (issue 8: 10,000 mostly idle clients on 16 workers).
WORKERS = 16
# The bench's defaults (64 connects in flight, 5 s each) suit a server that accepts everything.
# A pool that holds a worker per connection (`--park off`) takes 16 + 16 queued; the kernel's
# listen backlog completes about 1,000 more handshakes and then drops SYNs, so every further
# connect waits out its timeout: 9,000 of them, 64 at a time, 5 s each, would take 12 minutes.
# So those servers get short connects, many at once (about 10 s for 10,000). The others keep
# the defaults: 1,024 at once overflows even a fast server's backlog of 128 (tokio-echo lost 40%
# of its connects that way here), and a dropped SYN is only sent again after 1 s.
DEFAULT_CONNECT = {"timeout_s": 5, "concurrency": 64}
SHORT_CONNECT = {"timeout_s": 1, "concurrency": 1024}
# What the progress line shows once the measured window has begun (prefix `idle`, then its bar).
PHASE = b" idle ["
END_MARGIN_S = 0.5
TERMINAL_SIZE = struct.pack("HHHH", 24, 160, 0, 0)  # rows, columns: room for the whole line


def window_seconds(seconds):
    """The part of the bench's measured window in which the server is read."""
    return seconds - min(END_MARGIN_S, seconds / 4)


def bench_command(opts, addr, cell, connect):
    return [opts.echopool, "bench", "--json", "--addr", addr, "--mode", "idle",
            "-c", str(cell.connections), "--rate", RATE, "-d", f"{opts.idle_seconds}s",
            "-w", f"{opts.warmup}s", "--timeout", f"{TIMEOUT_S}s",
            "--connect-timeout", f"{connect['timeout_s']}s",
            "--connect-concurrency", str(connect["concurrency"])]


def time_limit(opts, cell, connect):
    """An upper bound on a healthy bench run: every connect timing out, the window, the drain."""
    connecting = math.ceil(cell.connections / connect["concurrency"]) * connect["timeout_s"]
    return connecting + opts.warmup + opts.idle_seconds + TIMEOUT_S + 60


class Edge(NamedTuple):
    """The server (and the bench) read at one edge of the window."""

    at: float  # time.monotonic(), the middle of the reading
    threads: dict
    load_cpu: float


def read_edge(server, bench):
    """Reads the server's threads and the bench's CPU time; None if the server has exited."""
    if server.proc.poll() is not None:
        return None
    started = time.monotonic()
    try:
        threads = server.threads()
        load_cpu = process_cpu_seconds(bench.pid)
    except (FileNotFoundError, ProcessLookupError):
        return None
    return Edge((started + time.monotonic()) / 2, threads, load_cpu)


def measure(opts, server, cell, connect, load_prefix):
    """One idle run against `server` (started fresh by the caller). Returns the run's record.
    Raises RuntimeError when the bench printed no summary, or its window was seen too late to
    trust the reading at its end; TimeoutExpired past its bound."""
    rss_start_kib = server.status("VmRSS")
    command = load_prefix + bench_command(opts, server.addr, cell, connect)
    limit = time_limit(opts, cell, connect)
    window = window_seconds(opts.idle_seconds)
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, TERMINAL_SIZE)
    spawned = time.monotonic()
    bench = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                             env={**os.environ, "TERM": "xterm"})
    os.close(slave)
    output = bytearray()
    in_window = False
    seen_at = start = other = None
    figures = NO_SERVER_FIGURES
    try:
        deadline = time.monotonic() + limit
        while True:
            now = time.monotonic()
            if now > deadline:
                raise subprocess.TimeoutExpired(command, limit)
            wait = start.at + window - now if start and figures is NO_SERVER_FIGURES else 0.5
            ready, _, _ = select.select([master], [], [], min(max(wait, 0), 0.5))
            if ready:
                try:
                    chunk = os.read(master, 1 << 16)
                except OSError:  # EIO: the bench has ended and closed the terminal
                    chunk = b""
                if not chunk:
                    break
                output += chunk
                if not in_window and PHASE in output[-(len(chunk) + len(PHASE)):]:
                    in_window, seen_at = True, time.monotonic()
                    other = OtherWork()
                    start = read_edge(server, bench)
            if start and figures is NO_SERVER_FIGURES and time.monotonic() >= start.at + window:
                end = read_edge(server, bench)
                if end is None:
                    start = None  # the server has exited: nothing more to read
                else:
                    figures = server_figures(server, start, end, other)
        bench.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        os.close(master)
    summary = parse_summary(output)
    server_exit = server.proc.poll()
    if not in_window and server_exit is None:
        raise RuntimeError(f"the bench's progress line never showed {PHASE.decode()!r} "
                           f"(has its format changed?)")
    # How long after the window began it was seen (at most; the bench's start-up counts too).
    late = seen_at - spawned - summary["idle"]["connect_s"] - opts.warmup if seen_at else 0
    if late > END_MARGIN_S:
        raise RuntimeError(f"the measured window was seen {late:.2f} s late (a busy host): the "
                           f"server may have been read after it ended")
    return {**record(summary, figures, rss_start_kib, server_exit, connect), "seen_late_s": late}


# What a run has of the server when it exited, or the bench never reached its window.
NO_SERVER_FIGURES = {"rss_kib": None, "rss_peak_kib": None, "threads": None, "window_s": None,
                     "cpu_s": None, "switches": None, "foreign": 0.0}


def server_figures(server, start, end, other):
    """What the server did in the window and holds at its end (the connections still open)."""
    delta = threads_delta(start.threads, end.threads)
    return {"rss_kib": server.status("VmRSS"), "rss_peak_kib": server.status("VmHWM"),
            "threads": server.status("Threads"), "window_s": end.at - start.at,
            "cpu_s": delta.cpu_s, "switches": delta.switches, "voluntary": delta.voluntary,
            "involuntary": delta.involuntary, "threads_gone": delta.gone,
            "foreign": other.share(delta.cpu_s, end.load_cpu - start.load_cpu)}


def parse_summary(output):
    text = output.decode(errors="replace")
    at = text.rfind('{"mode"')
    if at < 0:
        tail = text[-300:].replace("\r", "")
        raise RuntimeError(f"bench printed no summary: {tail.strip()!r}")
    return json.JSONDecoder().raw_decode(text[at:])[0]


def record(summary, figures, rss_start_kib, server_exit, connect):
    """The run as compare.py records it: the bench's counts and latency (ms), the server's
    figures, and its CPU and switches per answered message."""
    idle, latency = summary["idle"], summary["latency_us"]
    # Answered messages per second of the bench's window, against the server's work per second
    # of the (slightly shorter) window it was read in.
    rate = idle["answered"] / summary["duration_s"] if summary["duration_s"] else 0

    def per_message(key, scale=1):
        total = figures[key]
        return total * scale / figures["window_s"] / rate if total is not None and rate else None

    return {"p50_ms": latency["p50"] / 1000, "p99_ms": latency["p99"] / 1000,
            "p999_ms": latency["p999"] / 1000,
            **{key: idle[key] for key in ("sent", "answered", "unanswered", "unsent",
                                          "connect_failed", "connections_held", "connect_s")},
            "errors": summary["errors"]["total"], **figures,
            "cpu_us_per_msg": per_message("cpu_s", 1e6),
            "switches_per_msg": per_message("switches"),
            "rss_start_kib": rss_start_kib, "server_exit": server_exit, "connect": connect,
            "summary": summary}
