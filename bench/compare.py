#!/usr/bin/env python3
"""Runs the side-by-side benchmark (see bench/compare.sh) and writes markdown tables and plots.

Each server runs pinned to CPU 0 (taskset -c 0), the load to CPU 1. For every cell, rounds
interleave the servers (A B C ... A B C ...), each run on a freshly started server: an unmeasured
warmup bench, then a measured one, with the server's CPU time (utime+stime from /proc/PID/stat)
read before and after, so that CPU per operation compares servers even where the load
generator is the limit; its threads' context switches likewise. The idle cells are described in
compare_idle.py. Standard library only.
"""

import argparse
import json
import os
import re
import resource
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from typing import NamedTuple

import compare_idle
import compare_plots
from compare_idle import IDLE_CELLS
from compare_proc import OtherWork, Server, children_cpu_seconds, threads_delta
from compare_tables import UNIT_LABEL, num, render


class Cell(NamedTuple):
    """A throughput cell: `echopool bench --mode MODE -c CONNECTIONS -s SIZE`; `unit` is the
    JSON field its table shows."""

    name: str
    mode: str
    connections: int
    size: int
    unit: str


THROUGHPUT_CELLS = [
    Cell("rr-1x64", "rr", 1, 64, "msgs_per_s"),
    Cell("rr-8x64", "rr", 8, 64, "msgs_per_s"),
    Cell("rr-64x64", "rr", 64, 64, "msgs_per_s"),
    Cell("rr-1x4k", "rr", 1, 4096, "msgs_per_s"),
    Cell("rr-8x4k", "rr", 8, 4096, "msgs_per_s"),
    Cell("rr-64x4k", "rr", 64, 4096, "msgs_per_s"),
    Cell("oneshot-1", "oneshot", 1, 64, "conns_per_s"),
    Cell("oneshot-8", "oneshot", 8, 64, "conns_per_s"),
    Cell("stream-1x64k", "stream", 1, 65536, "mb_per_s"),
    Cell("stream-4x64k", "stream", 4, 65536, "mb_per_s"),
]
THROUGHPUT_WORKERS = 128  # for echopool and mutex-pool
# The held-idle cell: bench/peers' idle-conns opens this many connections, one round trip each,
# and holds them silent; pools get a worker per connection.
HELD_CONNECTIONS = 1000
HELD_CELL = f"idle-{HELD_CONNECTIONS}"
LOADGEN_CELL = "loadgen"

# On a shared machine, a higher priority than other work (nice 0, or niced test runs) keeps
# their bursts from landing inside a measurement; the same for every server, so it is fair.
NICE = ["nice", "-n", os.environ.get("NICE", "-10")]
SERVER = NICE + ["taskset", "-c", "0"]
LOAD = NICE + ["taskset", "-c", "1"]

# echopool with extra flags, as servers of their own (VARIANTS adds more; see compare.sh).
BUILTIN_VARIANTS = "echopool-parkoff=--park off"
OTHER_SERVERS = ["thread-per-conn", "mutex-pool", "tokio", "iterative"]


def fail(message):
    print(f"compare.py: {message}", file=sys.stderr)
    sys.exit(2)


def env_number(name, default, parse=float, minimum=0):
    text = os.environ.get(name, default)
    try:
        value = parse(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        fail(f"{name}={text!r}: expected a number of at least {minimum}")
    return value


def parse_variants(text, taken):
    """`name=flags;name2=flags` (flags split as a shell would) as {name: [flag, ...]}."""
    variants = {}
    for entry in filter(None, (e.strip() for e in text.split(";"))):
        name, equals, flags = entry.partition("=")
        name = name.strip()
        if not equals or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            fail(f"VARIANTS: {entry!r} is not NAME=FLAGS (NAME of letters, digits, . _ -)")
        if name in taken:
            fail(f"VARIANTS: {name!r} is already a server")
        try:
            variants[name] = shlex.split(flags)
        except ValueError as err:
            fail(f"VARIANTS: {entry!r}: {err}")
    return variants


def echopool_servers(echopool):
    """{name: (binary, extra flags)} of every echopool server: echopool itself, BASELINE's
    build as `echopool-baseline` (a code change measured beside the code before it), then the
    built-in variants and those VARIANTS adds (which may redefine a built-in one)."""
    servers = {"echopool": (echopool, [])}
    if os.environ.get("BASELINE"):
        servers["echopool-baseline"] = (os.environ["BASELINE"], [])
    taken = set(servers) | set(OTHER_SERVERS)
    variants = parse_variants(BUILTIN_VARIANTS, taken)
    variants.update(parse_variants(os.environ.get("VARIANTS", ""), taken))
    servers.update((name, (echopool, flags)) for name, flags in variants.items())
    return servers


def sets_workers(flags):
    return any(re.fullmatch(r"-w|--workers|-w=?\d+|--workers=\d+", f) for f in flags)


def holds_a_worker_per_connection(flags):
    """A pool without parking: what it does not serve waits in its queue and the backlog."""
    return "--park=off" in flags or any(
        a == "--park" and b == "off" for a, b in zip(flags, flags[1:]))


def server_command(opts, name, workers):
    """The command line of server `name`, listening on a free loopback port. The blocking peers
    are the root package's examples (docs/from-the-textbook.md teaches with them); tokio is in
    bench/peers, so that no async runtime enters the root package. An echopool variant's own
    `--workers` wins over `workers`."""
    if name in opts.echopools:
        binary, flags = opts.echopools[name]
        pool = [] if sets_workers(flags) else ["-w", str(workers)]
        return [binary, "serve", "-q", "-l", "127.0.0.1:0"] + pool + flags
    examples, peers = opts.examples, opts.peers
    return {
        "thread-per-conn": [f"{examples}/thread-per-conn", "127.0.0.1:0"],
        "mutex-pool": [f"{examples}/mutex-pool", "127.0.0.1:0", str(workers)],
        "tokio": [f"{peers}/tokio-echo", "127.0.0.1:0"],
        "iterative": [f"{examples}/iterative", "127.0.0.1:0"],
    }[name]


def server_env():
    """The servers' environment: no backtraces (the mutex-pool's workers panic, as the Book's
    do, when a stream run ends with data in flight, and symbolizing a backtrace would cost CPU
    in the next run), and no ECHOPOOL_* variables, so that only the flags here (and VARIANTS)
    configure echopool."""
    return {k: v for k, v in os.environ.items()
            if k != "RUST_BACKTRACE" and not k.startswith("ECHOPOOL_")}


def start_server(opts, name, workers, log):
    return Server(SERVER, server_command(opts, name, workers), log, server_env())


def serves_throughput(name, cell):
    """The iterative server serves one client at a time: persistent connections beyond the first
    would only wait (and time out), so it runs only where clients take turns."""
    return name != "iterative" or cell.connections == 1 or cell.mode == "oneshot"


def serves_held(name):
    return name != "iterative"  # it would serve the first connection and leave 999 waiting


def serves_idle(name, opts):
    """The idle cells compare what issue 8 asks for: echopool (parking on and off) against
    tokio and thread-per-connection; a pool of 16 in the mutex-pool would starve as
    `--park off` does, and the iterative server would serve one connection."""
    return name in opts.echopools or name in ("tokio", "thread-per-conn")


def bench(opts, addr, mode, connections, size, seconds):
    command = LOAD + [opts.echopool, "bench", "--json", "--addr", addr, "--mode", mode,
                      "-c", str(connections), "-s", str(size), "-d", f"{seconds}s",
                      "--timeout", "3s"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    if not done.stdout.strip():
        raise RuntimeError(f"bench printed nothing: {done.stderr.strip()}")
    return json.loads(done.stdout)


class HostSpeed:
    """How much slower a fixed piece of work (bench/peers' `calibrate`) runs on each CPU now
    than at its quickest in this session (1.0 = as fast as ever)."""

    def __init__(self, calibrate):
        self.calibrate = calibrate
        self.fastest = {}

    def slowdown(self):
        """The larger of the two CPUs' slowdown, measured now."""
        worst = 1.0
        for cpu in ("0", "1"):
            out = subprocess.run(NICE + ["taskset", "-c", cpu, self.calibrate],
                                 capture_output=True, text=True, timeout=30)
            nanos = int(out.stdout.split()[0])
            self.fastest[cpu] = min(self.fastest.get(cpu, nanos), nanos)
            worst = max(worst, nanos / self.fastest[cpu])
        return worst


# Below this share of the server's CPU time spent by threads still alive at the end, the
# context switches of the run are not shown (the ended threads took theirs along).
MIN_THREAD_COVERAGE = 0.9


def run_throughput(opts, cell, name, log):
    """One measured run on a fresh server. Also measures how much of each CPU went to other
    work on this (shared) machine during the run: `foreign` is the larger of the two shares."""
    server = start_server(opts, name, THROUGHPUT_WORKERS, log)
    try:
        bench(opts, server.addr, cell.mode, cell.connections, cell.size, opts.warmup)
        slow_before = opts.host.slowdown()
        other = OtherWork()
        before, threads_before = server.cpu_seconds(), server.threads()
        load_before = children_cpu_seconds()
        summary = bench(opts, server.addr, cell.mode, cell.connections, cell.size, opts.seconds)
        cpu = server.cpu_seconds() - before
        threads = threads_delta(threads_before, server.threads())
        foreign = other.share(cpu, children_cpu_seconds() - load_before)
        slowdown = max(slow_before, opts.host.slowdown())
    finally:
        server.stop()
    ops = max(summary["messages"], 1)
    # Threads that ended during the run (thread-per-conn's, one per connection) took their
    # switches along; the share of the CPU time the survivors account for says how much is seen.
    coverage = min(threads.cpu_s / cpu, 1.0) if cpu >= 0.05 else 1.0
    return {"value": summary[cell.unit], "cpu_us_per_op": cpu * 1e6 / ops, "cpu_s": cpu,
            "switches_per_op": threads.switches / ops if coverage >= MIN_THREAD_COVERAGE
            else None,
            "voluntary": threads.voluntary, "involuntary": threads.involuntary,
            "thread_coverage": coverage,
            "p99_us": summary["latency_us"]["p99"], "errors": summary["errors"]["total"],
            "foreign": foreign, "slowdown": slowdown, "summary": summary}


def run_held(opts, name, log):
    """The held-idle cell: the server's memory and threads with HELD_CONNECTIONS silent
    connections."""
    server = start_server(opts, name, HELD_CONNECTIONS, log)
    holder = None
    try:
        rss_before = server.status("VmRSS")
        holder = subprocess.Popen(
            LOAD + [f"{opts.peers}/idle-conns", server.addr, str(HELD_CONNECTIONS)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=server_env())
        ready = holder.stdout.readline()
        if not ready.startswith("ready"):
            holder.wait(timeout=10)
            why = holder.stderr.read().strip().splitlines()
            raise RuntimeError(f"idle-conns did not get ready: {why[-1] if why else ready!r}")
        time.sleep(1)
        return {"rss_kib": server.status("VmRSS"), "rss_start_kib": rss_before,
                "threads": server.status("Threads")}
    finally:
        if holder:
            holder.stdin.close()
            holder.wait(timeout=10)
        server.stop()


def run_idle(opts, cell, name, log):
    """An open-loop idle run (compare_idle.py) on a fresh server with `--workers 16`."""
    server = start_server(opts, name, compare_idle.WORKERS, log)
    try:
        flags = opts.echopools.get(name, (None, []))[1]
        connect = (compare_idle.SHORT_CONNECT if holds_a_worker_per_connection(flags)
                   else compare_idle.DEFAULT_CONNECT)
        slow_before = opts.host.slowdown()
        run = compare_idle.measure(opts, server, cell, connect, LOAD)
        run["slowdown"] = max(slow_before, opts.host.slowdown())
    finally:
        server.stop()
    return run


def run_loadgen(opts, connections, client, server_addr):
    if client == "naive-client":
        out = subprocess.run(LOAD + [f"{opts.peers}/naive-client", server_addr,
                                     str(connections), "64", str(opts.seconds)],
                             capture_output=True, text=True, timeout=opts.seconds + 30)
        return float(out.stdout.split()[0])
    return bench(opts, server_addr, "rr", connections, 64, opts.seconds)["msgs_per_s"]


def loadgen_pair(opts, connections, round_, log):
    """Both clients, one after the other, against one fresh echopool server; with the share of
    the CPUs that other processes took meanwhile."""
    server = start_server(opts, "echopool", THROUGHPUT_WORKERS, log)
    try:
        bench(opts, server.addr, "rr", connections, 64, opts.warmup)
        other = OtherWork()
        cpu, load = server.cpu_seconds(), children_cpu_seconds()
        pair = {}
        # Alternate which client goes first, so neither always meets a warmer server.
        order = ["naive-client", "echopool bench"]
        for client in order if round_ % 2 == 0 else order[::-1]:
            pair[client] = run_loadgen(opts, connections, client, server.addr)
        pair["foreign"] = other.share(server.cpu_seconds() - cpu, children_cpu_seconds() - load)
    finally:
        server.stop()
    return pair


# ---------------------------------------------------------------------------------------------
# Driving


def say(text):
    print(f"[{datetime.now():%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def with_retries(opts, label, attempt, disturbed=lambda result: None):
    """Runs `attempt` up to TRIES times in all: again after a failure, and again while
    `disturbed(result)` names a reason the run cannot be trusted (other work, a slow host).
    Returns the last result (flagged in the tables if disturbed), or None if every try failed
    (the last error is then in opts.failures, for the tables); one failed run never ends a
    comparison."""
    result = None
    for attempt_number in range(opts.tries):
        last = attempt_number + 1 == opts.tries
        try:
            result = attempt()
        except (RuntimeError, OSError, subprocess.TimeoutExpired, json.JSONDecodeError) as err:
            say(f"{label}: FAILED: {err}{'' if last else '; again'}")
            result = None
            if last:
                opts.failures.append(f"{label}: {err}")
            continue
        why = disturbed(result)
        if why is None:
            break
        say(f"{label}: {why}; {'kept, flagged' if last else 'again'}")
        if not last:
            time.sleep(opts.pause)
    return result


def disturbed(opts):
    """The rule for a run that measured the server's cost: other work and the host's speed."""
    return lambda run: (
        None if run["foreign"] <= opts.max_foreign and run["slowdown"] <= opts.max_slowdown
        else f"other work took {run['foreign']:.0%} of a CPU, the host ran "
             f"{run['slowdown']:.2f}× slower than its best")


def run_cell(opts, cell_name, servers, attempt, describe, record, rule=None):
    """Rounds of `attempt(server)` over `servers`, interleaved (A B C A B C ...), each run
    retried by `rule`; returns {server: [run, ...]}."""
    runs = {}
    for round_ in range(opts.rounds):
        for name in servers:
            run = with_retries(opts, f"{cell_name} {name}", lambda: attempt(name),
                               rule or (lambda result: None))
            if run is None:
                continue
            runs.setdefault(name, []).append(run)
            record(cell=cell_name, server=name, round=round_, **run)
            say(f"{cell_name} round {round_ + 1} {name}: {describe(run)}")
    return runs


def describe_throughput(cell):
    return lambda run: (
        f"{num(run['value'])} {UNIT_LABEL[cell.unit]}, {run['cpu_us_per_op']:.2f} CPU-µs/op, "
        f"{run['errors']} errors, {run['foreign']:.0%} foreign, "
        f"{run['slowdown']:.2f}× slowdown")


def describe_idle(run):
    rss = f"{run['rss_kib'] / 1024:.1f} MiB" if run["rss_kib"] is not None else "no RSS"
    return (f"p99 {run['p99_ms']:.2f} ms, {run['answered']}/{run['sent']} answered, "
            f"{run['unsent']} unsent, {run['connect_failed']} failed connects, {rss}, "
            f"{run['threads']} threads, {run['foreign']:.0%} foreign, "
            f"{run['slowdown']:.2f}× slowdown")


def settings():
    """The command line (paths) and the environment (see compare.sh), checked."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--echopool", required=True)
    parser.add_argument("--examples", required=True)
    parser.add_argument("--peers", required=True)
    parser.add_argument("--out-dir", required=True)
    opts = parser.parse_args()
    opts.seconds = env_number("CELL_SECONDS", "5", minimum=0.1)
    opts.warmup = env_number("WARMUP_SECONDS", "1")
    opts.rounds = env_number("ROUNDS", "3", int, minimum=1)
    # 1% of 1,000 connections is 10 messages a second: 10 s gives 100 of them.
    opts.idle_seconds = env_number("IDLE_SECONDS", str(max(opts.seconds, 10)), minimum=1)
    # A run during which other processes took more than this share of either CPU is repeated
    # (up to TRIES times in all; the last try is kept and its share shown in the tables).
    opts.max_foreign = env_number("MAX_FOREIGN", "0.05")
    # ... and so is a run during which the calibration work ran this much slower than its best.
    opts.max_slowdown = env_number("MAX_SLOWDOWN", "1.25", minimum=1)
    opts.tries = env_number("TRIES", "4", int, minimum=1)
    opts.pause = env_number("PAUSE_SECONDS", "3")
    opts.echopools = echopool_servers(opts.echopool)
    known = list(opts.echopools) + OTHER_SERVERS
    opts.servers = pick("SERVERS", known)
    opts.cells = pick("CELLS", [c.name for c in THROUGHPUT_CELLS] + [HELD_CELL]
                      + [c.name for c in IDLE_CELLS] + [LOADGEN_CELL])
    opts.host = HostSpeed(f"{opts.peers}/calibrate")
    opts.held_connections = HELD_CONNECTIONS
    opts.failures = []  # "cell server: error" of every run that failed each try
    return opts


def pick(variable, known):
    """The names `variable` lists (comma-separated; `all`, the default, for every one), in the
    order of `known`."""
    text = os.environ.get(variable, "all")
    if text == "all":
        return known
    wanted = [w.strip() for w in text.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in known]
    if unknown or not wanted:
        problem = f"unknown {', '.join(unknown)}" if unknown else "names nothing"
        fail(f"{variable}={text!r}: {problem}; known: {', '.join(known)}")
    return [k for k in known if k in wanted]


def raise_descriptor_limit():
    """Lets the servers (children inherit it) hold 10,000 connections: the soft open-file limit
    raised to the hard one. echopool and the bench raise their own; tokio-echo and the blocking
    peers do not. Returns the limit, for the report."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def run_loadgen_cell(opts, connections, log, record):
    runs = {"naive-client": [], "echopool bench": []}
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
            record(connections=connections, client=client, round=round_, **run)
            say(f"loadgen {connections} round {round_ + 1} {client}: {num(run['value'])} "
                f"msg/s, {pair['foreign']:.0%} foreign")
    return runs


def main():
    opts = settings()
    opts.nofile = raise_descriptor_limit()
    os.makedirs(opts.out_dir, exist_ok=True)
    started = datetime.now(timezone.utc)
    load_before = os.getloadavg()[0]
    with open(os.path.join(opts.out_dir, "runs.jsonl"), "w") as raw, \
            open(os.path.join(opts.out_dir, "servers.log"), "w") as log:
        def record(kind):
            def write(**fields):
                raw.write(json.dumps({"kind": kind, **fields}) + "\n")
                raw.flush()
            return write

        results = {}
        for cell in THROUGHPUT_CELLS:
            if cell.name in opts.cells:
                servers = [s for s in opts.servers if serves_throughput(s, cell)]
                results[cell.name] = run_cell(
                    opts, cell.name, servers,
                    lambda name: run_throughput(opts, cell, name, log),
                    describe_throughput(cell), record("throughput"), disturbed(opts))

        held = {}
        if HELD_CELL in opts.cells:
            held = run_cell(
                opts, HELD_CELL, [s for s in opts.servers if serves_held(s)],
                lambda name: run_held(opts, name, log),
                lambda run: f"{run['rss_kib'] / 1024:.1f} MiB, {run['threads']} threads",
                record("idle"))

        idle = {}
        for cell in IDLE_CELLS:
            if cell.name in opts.cells:
                idle[cell.name] = run_cell(
                    opts, cell.name, [s for s in opts.servers if serves_idle(s, opts)],
                    lambda name: run_idle(opts, cell, name, log), describe_idle,
                    record("idle-open"), disturbed(opts))

        loadgen = {}
        if LOADGEN_CELL in opts.cells:
            for connections in (1, 8, 64):
                loadgen[connections] = run_loadgen_cell(opts, connections, log,
                                                        record("loadgen"))

    loads = (f"{load_before:.2f}", f"{os.getloadavg()[0]:.2f}")
    plots = compare_plots.write(opts.out_dir, IDLE_CELLS, idle, opts.servers)
    text = render(opts, THROUGHPUT_CELLS, results, held, idle, plots, loadgen, started, loads)
    with open(os.path.join(opts.out_dir, "compare.md"), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
