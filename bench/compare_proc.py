"""What bench/compare.py reads from /proc: a server process (started pinned to CPU 0) and its
threads, the busy time of the two CPUs, and the harness's own CPU time. Standard library only."""

import os
import resource
import signal
import subprocess
import time
from typing import NamedTuple

TICKS = os.sysconf("SC_CLK_TCK")


class ThreadCounts(NamedTuple):
    """One thread's CPU time and context switches so far."""

    cpu_ns: int  # sum_exec_runtime from /proc/PID/task/TID/schedstat (nanoseconds)
    voluntary: int
    involuntary: int


class ThreadsDelta(NamedTuple):
    """What a process's threads did between two snapshots (see `Server.threads`)."""

    cpu_s: float
    switches: int  # voluntary + involuntary
    voluntary: int
    involuntary: int
    gone: int  # threads in the first snapshot but not the second: their work is lost


def threads_delta(before, after):
    """Sums, over the threads alive at `after`, what each did since `before` (a thread born in
    between counts from zero). A thread that ended in between is lost: the kernel keeps no
    process-wide context-switch count a second process can read (/proc/PID/status shows the
    main thread's own; only getrusage in the process itself, or wait4 at its exit, has the
    total), so its work is counted in `gone` instead."""
    cpu = voluntary = involuntary = 0
    for tid, now in after.items():
        then = before.get(tid, ThreadCounts(0, 0, 0))
        cpu += now.cpu_ns - then.cpu_ns
        voluntary += now.voluntary - then.voluntary
        involuntary += now.involuntary - then.involuntary
    gone = sum(1 for tid in before if tid not in after)
    return ThreadsDelta(cpu / 1e9, voluntary + involuntary, voluntary, involuntary, gone)


def process_cpu_seconds(pid):
    """utime + stime of a whole process, ended threads included, from /proc/PID/stat (in clock
    ticks, usually 10 ms, as the kernel rounds them)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class Server:
    """A server process, started with `prefix` (pinning, priority) before its command; its
    address read from its `listening on` line."""

    def __init__(self, prefix, command, log, env):
        self.proc = subprocess.Popen(prefix + command, stdin=subprocess.DEVNULL,
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
        return process_cpu_seconds(self.proc.pid)

    def status(self, key):
        """A number from /proc/PID/status (`VmRSS` in KiB, `Threads`, ...): process-wide."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise KeyError(key)

    def threads(self):
        """{tid: ThreadCounts} of every thread alive now. A thread that ends while this reads
        is left out."""
        tasks = f"/proc/{self.proc.pid}/task"
        counts = {}
        for tid in os.listdir(tasks):
            try:
                with open(f"{tasks}/{tid}/schedstat") as f:
                    cpu_ns = int(f.read().split()[0])
                switches = {}
                with open(f"{tasks}/{tid}/status") as f:
                    for line in f:
                        if "ctxt_switches:" in line:  # voluntary_... and nonvoluntary_...
                            key, value = line.split(":")
                            switches[key] = int(value)
            except (FileNotFoundError, ProcessLookupError):
                continue
            counts[tid] = ThreadCounts(cpu_ns, switches["voluntary_ctxt_switches"],
                                       switches["nonvoluntary_ctxt_switches"])
        return counts

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)  # a server with 10,000 threads takes a moment to die


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
    """CPU time of the harness's children that have ended (the load generator's runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_cpu_seconds():
    """The harness's own CPU time (it reads /proc, and a server with 10,000 threads has 20,000
    files to read)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class OtherWork:
    """Measures how much of CPU 0 (the server's) and CPU 1 (the load's) went to processes
    outside the benchmark during a window: each CPU's busy time less what the server, the load
    and this harness took. Start it when the window opens, call `share` when it closes."""

    def __init__(self):
        self.started = time.monotonic()
        self.cores = busy_seconds()
        self.own = own_cpu_seconds()

    def share(self, server_cpu, load_cpu):
        """The larger of the two CPUs' foreign share of the window, given the server's and the
        load's CPU seconds in it. The harness may run on either CPU, so its own time is taken
        off the larger of the two."""
        wall = time.monotonic() - self.started
        cores = [after - first for after, first in zip(busy_seconds(), self.cores)]
        own = own_cpu_seconds() - self.own
        return max(max(cores[0] - server_cpu, cores[1] - load_cpu) - own, 0) / wall
