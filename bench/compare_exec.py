#!/usr/bin/env python3
"""A program per connection: `echopool serve -H exec:cat` against tcpserver + cat (ucspi-tcp) and
xinetd + cat, the servers operators run today (see BENCHMARKS.md, run by `SUITE=exec
bench/compare.sh`).

Each server runs pinned to CPU 0 (the programs it starts inherit that), the load to CPU 1; rounds
interleave the servers, each run on a fresh server: an unmeasured warmup, then a measured bench.
Server CPU counts the server process and every program it started: utime + stime + cutime +
cstime from /proc/PID/stat, read once all programs of the run have exited and been reaped
(each server reaps its own children, so their CPU lands in cutime/cstime). That is the cost
of serving a connection with a program, whoever forks it: fork or posix_spawn, exec, cat's own
work, the reaping. Standard library only.
"""

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

NICE = ["nice", "-n", os.environ.get("NICE", "-10")]
SERVER = NICE + ["taskset", "-c", "0"]
LOAD = NICE + ["taskset", "-c", "1"]
TICKS = os.sysconf("SC_CLK_TCK")
# The same cap on programs running at once for every server.
CONCURRENCY = 64
SERVERS = ["echopool", "tcpserver", "xinetd"]
# (name, mode, connections, size, unit)
CELLS = [
    ("oneshot-1", "oneshot", 1, 64, "conns_per_s"),
    ("oneshot-8", "oneshot", 8, 64, "conns_per_s"),
    ("rr-8x64", "rr", 8, 64, "msgs_per_s"),
]
UNIT = {"conns_per_s": "conn/s", "msgs_per_s": "msg/s"}
XINETD_CONF = """defaults
{{
    instances = {concurrency}
    per_source = UNLIMITED
    cps = 1000000 1
    log_type = FILE {log}
    log_on_success =
    log_on_failure =
}}
service echopool-bench-cat
{{
    type = UNLISTED
    socket_type = stream
    protocol = tcp
    wait = no
    user = root
    bind = 127.0.0.1
    port = {port}
    server = /bin/cat
    flags = REUSE NOLIBWRAP
}}
"""


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_connectable(port, proc, deadline_s=10):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server never accepted a connection")


class Server:
    """One server on a free loopback port, pinned to CPU 0."""

    def __init__(self, opts, name, log, workdir):
        # Only the flags below configure echopool, whatever the caller's environment holds.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECHOPOOL_")}
        if name == "echopool":
            command = [opts.echopool, "serve", "-q", "-w", str(CONCURRENCY),
                       "-l", "127.0.0.1:0", "-H", "exec:cat"]
            self.proc = subprocess.Popen(SERVER + command, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=log, text=True, env=env)
            line = self.proc.stdout.readline()
            if not line.startswith("listening on "):
                self.stop()
                raise RuntimeError(f"echopool printed {line!r}")
            self.addr = line.split()[-1]
            return
        port = free_port()
        if name == "tcpserver":
            # -H -R -l 0: no DNS, ident or local host name lookups (echopool does none).
            command = ["tcpserver", "-c", str(CONCURRENCY), "-H", "-R", "-l", "0",
                       "127.0.0.1", str(port), "cat"]
        else:
            conf = os.path.join(workdir, f"xinetd-{port}.conf")
            with open(conf, "w") as f:
                f.write(XINETD_CONF.format(concurrency=CONCURRENCY, port=port,
                                           log=os.path.join(workdir, "xinetd.log")))
            command = ["xinetd", "-dontfork", "-f", conf,
                       "-pidfile", os.path.join(workdir, f"xinetd-{port}.pid")]
        self.proc = subprocess.Popen(SERVER + command, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log, env=env)
        self.addr = f"127.0.0.1:{port}"
        wait_connectable(port, self.proc)

    def cpu_seconds(self):
        """utime + stime + cutime + cstime: the server and the programs it has reaped."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS

    def children(self):
        found = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                found += 1
        return found

    def settle(self, seconds=5):
        """Waits until every program of the run has exited and been reaped."""
        deadline = time.monotonic() + seconds
        while self.children() and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.children():
            raise RuntimeError("programs still running after the bench")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


def bench(opts, addr, mode, connections, size, seconds):
    command = LOAD + [opts.echopool, "bench", "--json", "--addr", addr, "--mode", mode,
                      "-c", str(connections), "-s", str(size), "-d", f"{seconds}s",
                      "--timeout", "3s"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    if not done.stdout.strip():
        raise RuntimeError(f"bench printed nothing: {done.stderr.strip()}")
    return json.loads(done.stdout)


def cpu0_busy():
    with open("/proc/stat") as f:
        for line in f:
            name, *ticks = line.split()
            if name == "cpu0":
                t = [int(x) for x in ticks]
                return (sum(t[:8]) - t[3] - t[4]) / TICKS
    raise KeyError("cpu0")


def run_once(opts, cell, name, log, workdir):
    _, mode, connections, size, unit = cell
    server = Server(opts, name, log, workdir)
    try:
        bench(opts, server.addr, mode, connections, size, opts.warmup)
        server.settle()
        before, busy_before = server.cpu_seconds(), cpu0_busy()
        started = time.monotonic()
        summary = bench(opts, server.addr, mode, connections, size, opts.seconds)
        server.settle()
        wall = time.monotonic() - started
        cpu = server.cpu_seconds() - before
        busy = cpu0_busy() - busy_before
    finally:
        server.stop()
    ops = max(summary["messages"], 1)
    return {"value": summary[unit], "cpu_us_per_op": cpu * 1e6 / ops, "cpu_s": cpu,
            "errors": summary["errors"]["total"], "p99_us": summary["latency_us"]["p99"],
            "foreign": max(busy - cpu, 0) / wall}


def say(text):
    print(f"[{datetime.now():%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def render(results, opts, started):
    lines = [
        f"Measured {started:%Y-%m-%d} with `SUITE=exec CELL_SECONDS={opts.seconds:g} "
        f"ROUNDS={opts.rounds} bench/compare.sh`: medians of {opts.rounds} interleaved runs of "
        f"{opts.seconds:g} s, servers on CPU 0 (with their programs), load on CPU 1, "
        f"at most {CONCURRENCY} programs at once.",
        "",
        "| cell | server | throughput | server CPU per op (with its programs) | p99 | errors "
        "| other work on CPU 0 |",
        "|---|---|---|---|---|---|---|",
    ]
    for cell in CELLS:
        for name in SERVERS:
            runs = results.get(cell[0], {}).get(name, [])
            if not runs:
                continue
            med = lambda key: statistics.median(r[key] for r in runs)
            lines.append(
                f"| {cell[0]} | {name} | {med('value'):,.0f} {UNIT[cell[4]]} "
                f"| {med('cpu_us_per_op'):,.0f} µs | {med('p99_us') / 1000:.2f} ms "
                f"| {sum(r['errors'] for r in runs)} | {max(r['foreign'] for r in runs):.0%} |")
    return "\n".join(lines)


def main():
    import argparse
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--echopool", required=True)
    parser.add_argument("--out-dir", required=True)
    opts = parser.parse_args()
    opts.seconds = float(os.environ.get("CELL_SECONDS", "3"))
    opts.warmup = float(os.environ.get("WARMUP_SECONDS", "1"))
    opts.rounds = int(os.environ.get("ROUNDS", "3"))
    max_foreign = float(os.environ.get("MAX_FOREIGN", "0.05"))
    tries = int(os.environ.get("TRIES", "3"))
    wanted = os.environ.get("CELLS", "all")
    cells = [c for c in CELLS if wanted == "all" or c[0] in wanted.split(",")]
    os.makedirs(opts.out_dir, exist_ok=True)
    started = datetime.now(timezone.utc)
    raw = open(os.path.join(opts.out_dir, "exec-runs.jsonl"), "w")
    log = open(os.path.join(opts.out_dir, "exec-servers.log"), "w")
    results = {}
    with tempfile.TemporaryDirectory(prefix="echopool-exec-bench-") as workdir:
        for cell in cells:
            for round_ in range(opts.rounds):
                for name in SERVERS:
                    run = None
                    for attempt in range(tries):
                        try:
                            run = run_once(opts, cell, name, log, workdir)
                        except (RuntimeError, OSError, subprocess.TimeoutExpired,
                                json.JSONDecodeError) as err:
                            say(f"{cell[0]} {name}: FAILED: {err}")
                            run = None
                            continue
                        if run["foreign"] <= max_foreign or attempt + 1 == tries:
                            break
                        say(f"{cell[0]} {name}: other work took {run['foreign']:.0%} of CPU 0; "
                            "again")
                        time.sleep(2)
                    if run is None:
                        continue
                    results.setdefault(cell[0], {}).setdefault(name, []).append(run)
                    raw.write(json.dumps({"cell": cell[0], "server": name, "round": round_,
                                          **run}) + "\n")
                    raw.flush()
                    say(f"{cell[0]} round {round_ + 1} {name}: {run['value']:,.0f} "
                        f"{UNIT[cell[4]]}, {run['cpu_us_per_op']:,.0f} CPU-µs/op, "
                        f"{run['errors']} errors, {run['foreign']:.0%} foreign")
    text = render(results, opts, started)
    with open(os.path.join(opts.out_dir, "compare-exec.md"), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
