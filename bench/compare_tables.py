"""Markdown tables for bench/compare.py: medians with min–max spread, ratios against echopool."""

import os
import platform
import statistics
import subprocess

import compare_idle

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
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def ratio(a, b):
    if not (a and b):
        return "–"
    return f"{a / b:.2f}×" if a / b >= 0.1 else f"{a / b:.2g}×"


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


def render(opts, cells, results, held, idle, plots, loadgen, started, loads):
    """The whole compare.md: a heading paragraph, then the sections of the cells that ran."""
    out = [f"Run {started:%Y-%m-%d %H:%M} UTC on {machine()}; load average {loads[0]} before, "
           f"{loads[1]} after.",
           f"Settings: {opts.rounds} rounds, servers on CPU 0, load on CPU 1, open-file limit "
           f"{opts.nofile}. Cells shown as median (min–max).", ""]
    out += variants_section(opts)
    cells = [c for c in cells if c.name in results]
    if cells:
        out += [f"Throughput cells: {opts.seconds} s measured after {opts.warmup} s warmup per "
                f"run.", ""]
        out += throughput_sections(opts.servers, cells, results)
    if held:
        out += held_section(opts.held_connections, held)
    if idle:
        out += idle_sections(opts, idle, plots)
    if loadgen:
        out += loadgen_section(loadgen)
    if opts.failures:
        out += ["Runs that failed every try (left out of the tables above):", ""]
        out += [f"- {failure}" for failure in opts.failures] + [""]
    return "\n".join(out)


def variants_section(opts):
    """What each echopool server in the run was given beyond the common flags."""
    shown = [(name, binary, flags) for name, (binary, flags) in opts.echopools.items()
             if name in opts.servers and (flags or name != "echopool")]
    if not shown:
        return []
    lines = [f"- `{name}`: " + (f"`{' '.join(flags)}`" if flags else "echopool's flags")
             + ("" if binary == opts.echopool else f", binary `{binary}`")
             for name, binary, flags in shown]
    return ["echopool servers beside `echopool` (same flags, plus):", ""] + lines + [""]


def cell_rows(cells, results, servers, show):
    """A row per cell: its name, then `show(runs)` per server (– where the server did not run)."""
    return [[c.name] + [show(results[c.name][s]) if results[c.name].get(s) else "–"
                        for s in servers] for c in cells]


def throughput_sections(servers, cells, results):
    header = ["cell"] + servers
    rows = [[c.name, UNIT_LABEL[c.unit]] + [spread([r["value"] for r in results[c.name].get(s, [])])
                                             for s in servers] for c in cells]
    out = ["### Throughput", "", table(["cell", "unit"] + servers, rows), ""]
    rows = cell_rows(cells, results, servers,
                     lambda runs: spread([r["cpu_us_per_op"] for r in runs]))
    out += ["### Server CPU per operation (µs; an operation is a message, a connection in "
            "oneshot, a 64 KiB chunk in stream)", "", table(header, rows), ""]
    rows = cell_rows(cells, results, servers, switches)
    out += ["### Server context switches per operation (voluntary + involuntary, summed over "
            "the server's threads)", "", table(header, rows), ""]
    if any("†" in text for row in rows for text in row):
        out += ["† Threads ended during the run (thread-per-conn ends one per connection) and "
                "took their counts along: where the threads still alive did less than 90% of "
                "the server's CPU time, the run's count is left out.", ""]
    out += peer_ratio_section(servers, cells, results)
    rows = cell_rows(cells, results, servers, lambda runs: num(median_of(runs, "p99_us")))
    out += ["### p99 latency (µs, median of runs, as measured by echopool bench)", "",
            table(header, rows), ""]
    out += disturbance_sections(header, lambda key, fmt: cell_rows(
        cells, results, servers, lambda runs: median_and_worst(runs, key, fmt)))
    errors = [f"{c.name} {s}: {sum(r['errors'] for r in runs)}" for c in cells
              for s, runs in results[c.name].items() if sum(r["errors"] for r in runs)]
    out += ["Errors counted by the load generator: " + (", ".join(errors) or "none") + ".", ""]
    return out


def switches(runs):
    """Median (min–max) context switches per operation, or † where threads took theirs along."""
    values = [r["switches_per_op"] for r in runs if r.get("switches_per_op") is not None]
    return spread(values) + ("" if len(values) == len(runs) else " †") if values else "†"


def peer_ratio_section(servers, cells, results):
    peers = [s for s in servers if s != "echopool"]
    if "echopool" not in servers or not peers:
        return []
    rows = []
    for c in cells:
        mine = results[c.name].get("echopool", [])
        row = [c.name]
        for peer in peers:
            theirs = results[c.name].get(peer, [])
            rate = ratio(median_of(mine, "value"), median_of(theirs, "value"))
            cost = ratio(median_of(theirs, "cpu_us_per_op"), median_of(mine, "cpu_us_per_op"))
            row.append(f"{rate} / {cost}" if theirs else "–")
        rows.append(row)
    return ["### echopool against each peer: throughput ratio / CPU-per-op ratio (above 1 "
            "means echopool is faster / cheaper)", "", table(["cell"] + peers, rows), ""]


def median_and_worst(runs, key, fmt):
    """`median / worst run` of one per-run measure."""
    return f"{median_of(runs, key):{fmt}} / {max(r[key] for r in runs):{fmt}}"


def disturbance_sections(header, rows_of):
    """The two tables that say how disturbed the runs were; `rows_of(key, fmt)` makes rows."""
    return ["### Other work on the machine during the runs (share of the busier CPU taken by "
            "processes outside the benchmark: median / worst run)", "",
            table(header, rows_of("foreign", ".0%")), "",
            "### Host speed during the runs (time of a fixed calibration job against its "
            "quickest in this session; 1.00 = full speed: median / worst run)", "",
            table(header, rows_of("slowdown", ".2f")), ""]


def held_section(connections, held):
    tokio = median_of(held.get("tokio", []), "rss_kib")
    rows = [[s, spread([r["rss_kib"] / 1024 for r in runs]),
             " / ".join(sorted({str(r["threads"]) for r in runs})),
             ratio(median_of(runs, "rss_kib"), tokio) if tokio else "–"]
            for s, runs in held.items()]
    return [f"### {connections} idle connections (pools with {connections} workers)", "",
            table(["server", "VmRSS MiB", "threads", "RSS ÷ tokio"], rows), ""]


def total(runs, key):
    return f"{sum(r[key] for r in runs):,}"


def idle_row(server, runs, tokio):
    """One server's row of an idle cell's table."""
    exited = sorted({r["server_exit"] for r in runs if r["server_exit"] is not None})
    rss = spread([r["rss_kib"] / 1024 for r in runs if r["rss_kib"] is not None])
    if exited:
        rss += f" (exited: {', '.join(map(str, exited))})"
    threads = sorted({r["threads"] for r in runs if r["threads"] is not None})
    p99, mem = median_of(runs, "p99_ms"), median_of(runs, "rss_kib")
    return [server,
            spread([r["p50_ms"] for r in runs]), spread([r["p99_ms"] for r in runs]),
            spread([r["p999_ms"] for r in runs]),
            f"{total(runs, 'answered')} / {total(runs, 'sent')}", total(runs, "unanswered"),
            total(runs, "unsent"), total(runs, "connect_failed"), rss,
            " / ".join(map(str, threads)) or "–",
            spread([r["cpu_us_per_msg"] for r in runs if r["cpu_us_per_msg"] is not None]),
            spread([r["switches_per_msg"] for r in runs if r["switches_per_msg"] is not None]),
            f"{median_and_worst(runs, 'foreign', '.0%')}, "
            f"{max(r['slowdown'] for r in runs):.2f}×"] + (
        [ratio(p99, tokio[0]), ratio(mem, tokio[1])] if tokio else [])


def idle_sections(opts, idle, plots):
    out = []
    for cell in compare_idle.IDLE_CELLS:
        if cell.name not in idle:
            continue
        runs_by_server = idle[cell.name]
        tokio_runs = runs_by_server.get("tokio")
        tokio = tokio_runs and (median_of(tokio_runs, "p99_ms"), median_of(tokio_runs, "rss_kib"))
        header = ["server", "p50 ms", "p99 ms", "p99.9 ms", "answered / sent", "unanswered",
                  "unsent", "failed connects", "RSS MiB", "threads", "CPU µs / msg",
                  "switches / msg", "other work (median / worst), host slowdown (worst)"]
        header += ["p99 ÷ tokio", "RSS ÷ tokio"] if tokio else []
        rows = [idle_row(s, runs_by_server[s], tokio) for s in opts.servers
                if s in runs_by_server]
        rate = cell.connections / 100
        out += [f"### {cell.name}: {cell.connections:,} connections held, "
                f"{compare_idle.RATE} speaking per second ({rate:g} msg/s), "
                f"{opts.idle_seconds} s measured after {opts.warmup} s warmup; echopool servers "
                f"with --workers {compare_idle.WORKERS}", "", table(header, rows), ""]
    short, default = compare_idle.SHORT_CONNECT, compare_idle.DEFAULT_CONNECT
    out += [f"Latency from each message's scheduled send time; an unanswered message counts as "
            f"at least the {compare_idle.TIMEOUT_S} s timeout. Counts are totals over the runs, "
            f"the rest median (min–max). RSS and threads are read near the end of the measured "
            f"window, with the connections held; CPU and switches per message are the server's "
            f"(all its threads) in that window over the answered messages. Connects: "
            f"{default['concurrency']} at once, {default['timeout_s']} s each; for echopool "
            f"with --park off {short['concurrency']} at once, {short['timeout_s']} s each "
            f"(its pool cannot take them; see bench/compare_idle.py).", ""]
    for caption, name in plots:
        out += [f"![{caption}]({name})", ""]
    return out


def loadgen_section(loadgen):
    rows = []
    for connections, runs in loadgen.items():
        pairs = zip(runs["echopool bench"], runs["naive-client"])
        rows.append([str(connections), spread([r["value"] for r in runs["naive-client"]]),
                     spread([r["value"] for r in runs["echopool bench"]]),
                     spread([b["value"] / n["value"] for b, n in pairs])])
    return ["### Load generator check: rr 64 B against echopool serve (msg/s)", "",
            table(["connections", "naive std client loop", "echopool bench",
                   "bench ÷ naive, same server and round"], rows), ""]
