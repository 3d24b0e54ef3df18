"""Markdown tables for bench/compare.py: medians with min–max spread, ratios against echopool."""

import os
import platform
import statistics
import subprocess

IDLE_CONNECTIONS = 1000
UNIT_LABEL = {"msgs_per_s": "msg/s", "conns_per_s": "conn/s", "mb_per_s": "MB/s"}


def num(x):
    if x >= 10_000:
        return f"{x / 1000:.1f}k"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def spread(values):
    if not values:
        return "–"
    return f"{num(statistics.median(values))} ({num(min(values))}–{num(max(values))})"


def median_of(runs, key):
    values = [r[key] for r in runs if key in r]
    return statistics.median(values) if values else None


def ratio(a, b):
    return f"{a / b:.2f}×" if a and b else "–"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def machine():
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{model}, {os.cpu_count()} CPUs, Linux {platform.release()}, {rustc}"


def render(opts, cells, results, idle, loadgen, started, loads):
    servers = opts.servers
    out = [f"Run {started:%Y-%m-%d %H:%M} UTC on {machine()}; load average {loads[0]} before, "
           f"{loads[1]} after.",
           f"Settings: {opts.seconds} s measured + {opts.warmup} s warmup per run, {opts.rounds} "
           f"rounds, servers on CPU 0, load on CPU 1. Cells shown as median (min–max).", ""]
    cells = [c for c in cells if c[0] in results]
    if cells:
        header = ["cell", "unit"] + servers
        rows = [[c[0], UNIT_LABEL[c[4]]] + [spread([r["value"] for r in results[c[0]].get(s, [])])
                                             for s in servers] for c in cells]
        out += ["### Throughput", "", table(header, rows), ""]
        rows = [[c[0]] + [spread([r["cpu_us_per_op"] for r in results[c[0]].get(s, [])])
                          for s in servers] for c in cells]
        out += ["### Server CPU per operation (µs; an operation is a message, a connection in "
                "oneshot, a 64 KiB chunk in stream)", "", table(["cell"] + servers, rows), ""]
        peers = [s for s in servers if s != "echopool"]
        if "echopool" in servers and peers:
            rows = []
            for c in cells:
                mine = results[c[0]].get("echopool", [])
                row = [c[0]]
                for peer in peers:
                    theirs = results[c[0]].get(peer, [])
                    row.append(f"{ratio(median_of(mine, 'value'), median_of(theirs, 'value'))} / "
                               f"{ratio(median_of(theirs, 'cpu_us_per_op'), median_of(mine, 'cpu_us_per_op'))}"
                               if theirs else "–")
                rows.append(row)
            out += ["### echopool against each peer: throughput ratio / CPU-per-op ratio (above 1 "
                    "means echopool is faster / cheaper)", "", table(["cell"] + peers, rows), ""]
        rows = [[c[0]] + [num(median_of(results[c[0]][s], "p99_us")) if results[c[0]].get(s) else "–"
                          for s in servers] for c in cells]
        out += ["### p99 latency (µs, median of runs, as measured by echopool bench)", "",
                table(["cell"] + servers, rows), ""]
        def median_and_worst(key, fmt):
            """Rows of `median / worst run` of one per-run measure, per cell and server."""
            return [[c[0]] + [f"{median_of(results[c[0]][s], key):{fmt}} / "
                              f"{max(r[key] for r in results[c[0]][s]):{fmt}}"
                              if results[c[0]].get(s) else "–" for s in servers] for c in cells]

        rows = median_and_worst("foreign", ".0%")
        out += ["### Other work on the machine during the runs (share of the busier CPU taken by "
                "processes outside the benchmark: median / worst run)", "",
                table(["cell"] + servers, rows), ""]
        rows = median_and_worst("slowdown", ".2f")
        out += ["### Host speed during the runs (time of a fixed calibration job against its "
                "quickest in this session; 1.00 = full speed: median / worst run)", "",
                table(["cell"] + servers, rows), ""]
        errors = [f"{c[0]} {s}: {sum(r['errors'] for r in runs)}" for c in cells
                  for s, runs in results[c[0]].items() if sum(r["errors"] for r in runs)]
        out += ["Errors counted by the load generator: " + (", ".join(errors) or "none") + ".", ""]
    if idle:
        tokio = median_of(idle.get("tokio", []), "rss_kib")
        rows = [[s, spread([r["rss_kib"] / 1024 for r in runs]),
                 " / ".join(sorted({str(r["threads"]) for r in runs})),
                 ratio(median_of(runs, "rss_kib"), tokio) if tokio else "–"]
                for s, runs in idle.items()]
        out += [f"### {IDLE_CONNECTIONS} idle connections (pools with {IDLE_CONNECTIONS} workers)", "",
                table(["server", "VmRSS MiB", "threads", "RSS ÷ tokio"], rows), ""]
    if loadgen:
        rows = [[str(c), spread([r["value"] for r in runs["naive-client"]]),
                 spread([r["value"] for r in runs["echopool bench"]]),
                 spread([b["value"] / n["value"] for b, n in zip(runs["echopool bench"], runs["naive-client"])])]
                for c, runs in loadgen.items()]
        out += ["### Load generator check: rr 64 B against echopool serve (msg/s)", "",
                table(["connections", "naive std client loop", "echopool bench",
                             "bench ÷ naive, same server and round"], rows), ""]
    return "\n".join(out)
