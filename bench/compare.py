#!/usr/bin/env python3
"""Runs the side-by-side benchmark (see bench/compare.sh) and writes markdown tables.

Each server runs pinned to CPU 0 (taskset -c 0), the load to CPU 1. For every cell, rounds
interleave the servers (A B C ... A B C ...), each run on a freshly started server: an unmeasured
warmup bench, then a measured one, with the server's CPU time (utime+stime from /proc/PID/stat)
read before and after, so that CPU per operation compares servers even where the load
generator is the limit. Standard library only.
"""

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone

from compare_tables import IDLE_CONNECTIONS, UNIT_LABEL, num, render

# On a shared machine, a higher priority than other work (nice 0, or niced test runs) keeps
# their bursts from landing inside a measurement; the same for every server, so it is fair.
NICE = ["nice", "-n", os.environ.get("NICE", "-10")]
SERVER = NICE + ["taskset", "-c", "0"]
LOAD = NICE + ["taskset", "-c", "1"]
TICKS = os.sysconf("SC_CLK_TCK")
ALL_SERVERS = ["echopool", "thread-per-conn", "mutex-pool", "tokio", "iterative"]
# BASELINE=path/to/another/echopool adds that build as `echopool-baseline`, with echopool's
# flags: a code change measured side by side with the code before it.
if os.environ.get("BASELINE"):
    ALL_SERVERS.insert(1, "echopool-baseline")

# (name, mode, connections, size, unit): unit is the JSON field the table shows.
THROUGHPUT_CELLS = [
    ("rr-1x64", "rr", 1, 64, "msgs_per_s"),
    ("rr-8x64", "rr", 8, 64, "msgs_per_s"),
    ("rr-64x64", "rr", 64, 64, "msgs_per_s"),
    ("rr-1x4k", "rr", 1, 4096, "msgs_per_s"),
    ("rr-8x4k", "rr", 8, 4096, "msgs_per_s"),
    ("rr-64x4k", "rr", 64, 4096, "msgs_per_s"),
    ("oneshot-1", "oneshot", 1, 64, "conns_per_s"),
    ("oneshot-8", "oneshot", 8, 64, "conns_per_s"),
    ("stream-1x64k", "stream", 1, 65536, "mb_per_s"),
    ("stream-4x64k", "stream", 4, 65536, "mb_per_s"),
]


def server_command(opts, name, workers):
    """The command line of server `name`, listening on a free loopback port. The blocking peers
    are the root package's examples (docs/from-the-textbook.md teaches with them); tokio is in
    bench/peers, so that no async runtime enters the root package."""
    examples, peers = opts.examples, opts.peers
    return {
        "echopool": [opts.echopool, "serve", "-q", "-w", str(workers), "-l", "127.0.0.1:0"],
        "echopool-baseline": [os.environ.get("BASELINE", ""), "serve", "-q", "-w", str(workers),
                              "-l", "127.0.0.1:0"],
        "thread-per-conn": [f"{examples}/thread-per-conn", "127.0.0.1:0"],
        "mutex-pool": [f"{examples}/mutex-pool", "127.0.0.1:0", str(workers)],
        "tokio": [f"{peers}/tokio-echo", "127.0.0.1:0"],
        "iterative": [f"{examples}/iterative", "127.0.0.1:0"],
    }[name]


def serves(name, mode, connections):
    """The iterative server serves one client at a time: persistent connections beyond the first
    would only wait (and time out), so it runs only where clients take turns."""
    return name != "iterative" or connections == 1 or mode == "oneshot"


class Server:
    """A server process pinned to CPU 0; its address read from its `listening on` line."""

    def __init__(self, command, log):
        # No backtraces: the mutex-pool's workers panic, as the Book's do, when a stream run ends
        # with data in flight, and symbolizing a backtrace would cost CPU in the next run.
        env = {k: v for k, v in os.environ.items() if k != "RUST_BACKTRACE"}
        self.proc = subprocess.Popen(SERVER + command, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        deadline = time.monotonic() + 10
        line = ""
        while time.monotonic() < deadline and not line.startswith("listening on "):
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {self.proc.returncode}")
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"{command[0]} printed no `listening on` line")
        self.addr = line.split()[-1]

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime

    def status(self, key):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise KeyError(key)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


def bench(opts, addr, mode, connections, size, seconds):
    command = LOAD + [opts.echopool, "bench", "--json", "--addr", addr, "--mode", mode,
                      "-c", str(connections), "-s", str(size), "-d", f"{seconds}s", "--timeout", "3s"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    if not done.stdout.strip():
        raise RuntimeError(f"bench printed nothing: {done.stderr.strip()}")
    return json.loads(done.stdout)


def busy_seconds():
    """Busy time of CPU 0 and CPU 1 so far (everything but idle and iowait), from /proc/stat."""
    busy = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *ticks = line.split()
            if name in ("cpu0", "cpu1"):
                t = [int(x) for x in ticks]
                busy[name] = (sum(t[:8]) - t[3] - t[4]) / TICKS
    return busy["cpu0"], busy["cpu1"]


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


FASTEST = {}  # the quickest calibration seen on each CPU in this session


def host_slowdown(opts):
    """How much slower a fixed piece of work runs on each CPU now than at its quickest in this
    session (1.0 = as fast as ever); the larger of the two CPUs."""
    worst = 1.0
    for cpu in ("0", "1"):
        out = subprocess.run(NICE + ["taskset", "-c", cpu, f"{opts.peers}/calibrate"],
                             capture_output=True, text=True, timeout=30)
        nanos = int(out.stdout.split()[0])
        FASTEST[cpu] = min(FASTEST.get(cpu, nanos), nanos)
        worst = max(worst, nanos / FASTEST[cpu])
    return worst


def run_throughput(opts, cell, name, log):
    """One measured run on a fresh server. Also measures how much of each CPU went to other
    work on this (shared) machine during the run: `foreign` is the larger of the two shares."""
    _, mode, connections, size, unit = cell
    server = Server(server_command(opts, name, 128), log)
    try:
        bench(opts, server.addr, mode, connections, size, opts.warmup)
        slow_before = host_slowdown(opts)
        before, cores_before, load_before = server.cpu_seconds(), busy_seconds(), children_cpu_seconds()
        started = time.monotonic()
        summary = bench(opts, server.addr, mode, connections, size, opts.seconds)
        wall = time.monotonic() - started
        cpu = server.cpu_seconds() - before
        load_cpu = children_cpu_seconds() - load_before
        cores = [after - first for after, first in zip(busy_seconds(), cores_before)]
        slowdown = max(slow_before, host_slowdown(opts))
    finally:
        server.stop()
    foreign = max(cores[0] - cpu, cores[1] - load_cpu, 0) / wall
    ops = max(summary["messages"], 1)
    return {"value": summary[unit], "cpu_us_per_op": cpu * 1e6 / ops, "cpu_s": cpu,
            "p99_us": summary["latency_us"]["p99"], "errors": summary["errors"]["total"],
            "foreign": foreign, "slowdown": slowdown, "summary": summary}


def run_idle(opts, name, log):
    server = Server(server_command(opts, name, IDLE_CONNECTIONS), log)
    holder = None
    try:
        rss_before = server.status("VmRSS")
        holder = subprocess.Popen(LOAD + [f"{opts.peers}/idle-conns", server.addr, str(IDLE_CONNECTIONS)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = holder.stdout.readline()
        if not ready.startswith("ready"):
            raise RuntimeError(f"idle-conns did not get ready: {ready!r}")
        time.sleep(1)
        return {"rss_kib": server.status("VmRSS"), "rss_start_kib": rss_before,
                "threads": server.status("Threads")}
    finally:
        if holder:
            holder.stdin.close()
            holder.wait(timeout=10)
        server.stop()


def run_loadgen(opts, connections, client, server_addr):
    if client == "naive-client":
        out = subprocess.run(LOAD + [f"{opts.peers}/naive-client", server_addr, str(connections), "64",
                                     str(opts.seconds)], capture_output=True, text=True,
                             timeout=opts.seconds + 30)
        return {"value": float(out.stdout.split()[0])}
    return {"value": bench(opts, server_addr, "rr", connections, 64, opts.seconds)["msgs_per_s"]}


def loadgen_pair(opts, connections, round_, log):
    """Both clients, one after the other, against one fresh echopool server; with the share of
    the CPUs that other processes took meanwhile."""
    server = Server(server_command(opts, "echopool", 128), log)
    try:
        bench(opts, server.addr, "rr", connections, 64, opts.warmup)
        cpu, cores, load = server.cpu_seconds(), busy_seconds(), children_cpu_seconds()
        started = time.monotonic()
        pair = {}
        # Alternate which client goes first, so neither always meets a warmer server.
        order = ["naive-client", "echopool bench"]
        for client in order if round_ % 2 == 0 else order[::-1]:
            pair[client] = run_loadgen(opts, connections, client, server.addr)["value"]
        wall = time.monotonic() - started
        cpu = server.cpu_seconds() - cpu
        load = children_cpu_seconds() - load
        cores = [after - first for after, first in zip(busy_seconds(), cores)]
    finally:
        server.stop()
    pair["foreign"] = max(cores[0] - cpu, cores[1] - load, 0) / wall
    return pair


# ---------------------------------------------------------------------------------------------
# Driving


def say(text):
    print(f"[{datetime.now():%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def with_retries(opts, label, attempt, disturbed=lambda result: None):
    """Runs `attempt` up to TRIES times in all: again after a failure, and again while
    `disturbed(result)` names a reason the run cannot be trusted (other work, a slow host).
    Returns the last result (flagged in the tables if disturbed), or None if every try failed;
    one failed run never ends a comparison."""
    result = None
    for attempt_number in range(opts.tries):
        last = attempt_number + 1 == opts.tries
        try:
            result = attempt()
        except (RuntimeError, OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as err:
            say(f"{label}: FAILED: {err}{'' if last else '; again'}")
            result = None
            continue
        why = disturbed(result)
        if why is None:
            break
        say(f"{label}: {why}; {'kept, flagged' if last else 'again'}")
        if not last:
            time.sleep(opts.pause)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--echopool", required=True)
    parser.add_argument("--examples", required=True)
    parser.add_argument("--peers", required=True)
    parser.add_argument("--out-dir", required=True)
    opts = parser.parse_args()
    opts.seconds = float(os.environ.get("CELL_SECONDS", "5"))
    opts.warmup = float(os.environ.get("WARMUP_SECONDS", "1"))
    opts.rounds = int(os.environ.get("ROUNDS", "3"))
    # A run during which other processes took more than this share of either CPU is repeated
    # (up to TRIES times in all; the last try is kept and its share shown in the tables).
    opts.max_foreign = float(os.environ.get("MAX_FOREIGN", "0.05"))
    # ... and so is a run during which the calibration work ran this much slower than its best.
    opts.max_slowdown = float(os.environ.get("MAX_SLOWDOWN", "1.25"))
    opts.tries = int(os.environ.get("TRIES", "4"))
    opts.pause = float(os.environ.get("PAUSE_SECONDS", "3"))
    wanted_cells = os.environ.get("CELLS", "all")
    wanted = None if wanted_cells == "all" else set(wanted_cells.split(","))
    servers = os.environ.get("SERVERS", "all")
    opts.servers = ALL_SERVERS if servers == "all" else [s for s in ALL_SERVERS if s in servers.split(",")]
    os.makedirs(opts.out_dir, exist_ok=True)
    started = datetime.now(timezone.utc)
    load_before = os.getloadavg()[0]
    raw = open(os.path.join(opts.out_dir, "runs.jsonl"), "w")
    log = open(os.path.join(opts.out_dir, "servers.log"), "w")

    def record(kind, **fields):
        raw.write(json.dumps({"kind": kind, **fields}) + "\n")
        raw.flush()

    results = {}
    for cell in THROUGHPUT_CELLS:
        if wanted and cell[0] not in wanted:
            continue
        results[cell[0]] = {}
        for round_ in range(opts.rounds):
            for name in opts.servers:
                if not serves(name, cell[1], cell[2]):
                    continue
                run = with_retries(
                    opts, f"{cell[0]} {name}", lambda: run_throughput(opts, cell, name, log),
                    lambda run: None if run["foreign"] <= opts.max_foreign
                    and run["slowdown"] <= opts.max_slowdown else
                    f"other work took {run['foreign']:.0%} of a CPU, the host ran "
                    f"{run['slowdown']:.2f}× slower than its best")
                if run is None:
                    continue
                results[cell[0]].setdefault(name, []).append(run)
                record("throughput", cell=cell[0], server=name, round=round_, **run)
                say(f"{cell[0]} round {round_ + 1} {name}: {num(run['value'])} "
                    f"{UNIT_LABEL[cell[4]]}, {run['cpu_us_per_op']:.2f} CPU-µs/op, "
                    f"{run['errors']} errors, {run['foreign']:.0%} foreign, "
                    f"{run['slowdown']:.2f}× slowdown")

    idle = {}
    if not wanted or f"idle-{IDLE_CONNECTIONS}" in wanted:
        for round_ in range(opts.rounds):
            for name in opts.servers:
                if name == "iterative":
                    continue  # it would serve the first connection and leave 999 waiting
                run = with_retries(opts, f"idle {name}", lambda: run_idle(opts, name, log))
                if run is None:
                    continue
                idle.setdefault(name, []).append(run)
                record("idle", server=name, round=round_, **run)
                say(f"idle round {round_ + 1} {name}: {run['rss_kib'] / 1024:.1f} MiB, "
                    f"{run['threads']} threads")

    loadgen = {}
    if not wanted or "loadgen" in wanted:
        for connections in (1, 8, 64):
            runs = loadgen.setdefault(connections, {"naive-client": [], "echopool bench": []})
            for round_ in range(opts.rounds):
                pair = with_retries(
                    opts, f"loadgen {connections}",
                    lambda: loadgen_pair(opts, connections, round_, log),
                    lambda pair: None if pair["foreign"] <= opts.max_foreign else
                    f"other work took {pair['foreign']:.0%} of a CPU")
                if pair is None:
                    continue
                for client in ("naive-client", "echopool bench"):
                    run = {"value": pair[client], "foreign": pair["foreign"]}
                    runs[client].append(run)
                    record("loadgen", connections=connections, client=client, round=round_, **run)
                    say(f"loadgen {connections} round {round_ + 1} {client}: {num(run['value'])} "
                        f"msg/s, {pair['foreign']:.0%} foreign")

    loads = (f"{load_before:.2f}", f"{os.getloadavg()[0]:.2f}")
    text = render(opts, THROUGHPUT_CELLS, results, idle, loadgen, started, loads)
    with open(os.path.join(opts.out_dir, "compare.md"), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
