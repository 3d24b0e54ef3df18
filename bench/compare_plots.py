"""SVG line plots of the idle cells for bench/compare.py, written by hand (standard library only):
p99 latency and server RSS against the number of connections held, one line per server, both
axes on a log scale (p99 runs from a fraction of a millisecond to the 5 s timeout)."""

import math
import os
import statistics
from xml.sax.saxutils import escape

import compare_idle

WIDTH, HEIGHT = 720, 420
LEFT, RIGHT, TOP, BOTTOM = 80, 190, 48, 56  # margins around the plotting area
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#17becf", "#bcbd22"]


class LogAxis:
    """A log-scale axis mapping [low, high] onto pixels [start, end]."""

    def __init__(self, low, high, start, end):
        self.low, self.high = math.log10(low), math.log10(high)
        self.start, self.end = start, end

    def __call__(self, value):
        share = (math.log10(value) - self.low) / (self.high - self.low)
        return self.start + share * (self.end - self.start)


def decades(values):
    """Powers of ten around `values`: [10^a, 10^b] with a < b."""
    low = math.floor(math.log10(min(values)))
    high = math.ceil(math.log10(max(values)))
    return 10.0 ** low, 10.0 ** max(high, low + 1)


def y_ticks(low, high):
    """Every power of ten; with 2 and 5 between them when the axis spans at most 2 decades."""
    ticks = []
    exponent = round(math.log10(low))
    while 10.0 ** exponent <= high * 1.0001:
        steps = (1, 2, 5) if high / low <= 100 else (1,)
        ticks += [s * 10.0 ** exponent for s in steps if s * 10.0 ** exponent <= high * 1.0001]
        exponent += 1
    return ticks


def label(value):
    """A tick label: 0.01, 0.5, 20, 1,000, 10k."""
    if value >= 10_000:
        return f"{value / 1000:,.0f}k"
    if value >= 1:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def plot(title, y_label, series, reference=None):
    """The SVG text of one plot. `series` is [(name, note, color, [(connections, value)])];
    `reference` an optional (value, text) drawn as a dashed horizontal line."""
    xs = sorted({x for *_, points in series for x, _ in points})
    ys = [y for *_, points in series for _, y in points]
    if reference:
        ys.append(reference[0])
    x_low, x_high = (xs[0] / 2.5, xs[-1] * 2.5)
    x = LogAxis(x_low, x_high, LEFT, WIDTH - RIGHT)
    y_low, y_high = decades(ys)
    y = LogAxis(y_low, y_high, HEIGHT - BOTTOM, TOP)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
           f'<text x="{WIDTH / 2:.0f}" y="24" text-anchor="middle" font-size="15">'
           f'{escape(title)}</text>']
    for tick in y_ticks(y_low, y_high):
        py = y(tick)
        out.append(f'<line x1="{LEFT}" y1="{py:.1f}" x2="{WIDTH - RIGHT}" y2="{py:.1f}" '
                   f'stroke="#e4e4e4"/>')
        out.append(f'<text x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{label(tick)}</text>')
    for tick in xs:
        px = x(tick)
        out.append(f'<line x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{HEIGHT - BOTTOM}" '
                   f'stroke="#e4e4e4"/>')
        out.append(f'<text x="{px:.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle">'
                   f'{tick:,}</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
               f'height="{HEIGHT - TOP - BOTTOM}" fill="none" stroke="#333"/>')
    out.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{HEIGHT - 14}" '
               f'text-anchor="middle">connections held (log scale)</text>')
    out.append(f'<text transform="translate(20 {(TOP + HEIGHT - BOTTOM) / 2:.0f}) rotate(-90)" '
               f'text-anchor="middle">{escape(y_label)} (log scale)</text>')
    if reference:
        py = y(reference[0])
        out.append(f'<line x1="{LEFT}" y1="{py:.1f}" x2="{WIDTH - RIGHT}" y2="{py:.1f}" '
                   f'stroke="#888" stroke-dasharray="6 4"/>')
        below = py - TOP < 20  # no room above the line inside the frame
        out.append(f'<text x="{WIDTH - RIGHT - 4}" y="{py + (14 if below else -5):.1f}" '
                   f'text-anchor="end" fill="#555">{escape(reference[1])}</text>')
    for row, (name, note, color, points) in enumerate(series):
        path = " ".join(f"{x(px):.1f},{y(py):.1f}" for px, py in points)
        if len(points) > 1:
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" '
                       f'stroke-width="2"/>')
        for px, py in points:
            out.append(f'<circle cx="{x(px):.1f}" cy="{y(py):.1f}" r="4" fill="{color}">'
                       f'<title>{escape(name)}: {py:.3g} at {px:,}</title></circle>')
        ly = TOP + 10 + row * 30
        lx = WIDTH - RIGHT + 16
        out.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 24}" y2="{ly}" stroke="{color}" '
                   f'stroke-width="2"/><circle cx="{lx + 12}" cy="{ly}" r="4" fill="{color}"/>')
        out.append(f'<text x="{lx + 32}" y="{ly + 4}">{escape(name)}</text>')
        if note:
            out.append(f'<text x="{lx + 32}" y="{ly + 17}" font-size="10" fill="#555">'
                       f'{escape(note)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def series_of(cells, idle, servers, key, scale=1.0):
    """[(server, note, color, [(connections, median of key × scale)])] for the servers with
    data; the note names the cells that ran without a figure for the server (it could not serve
    them, or failed every try)."""
    series = []
    ran = [cell for cell in cells if cell.name in idle]
    for index, server in enumerate(servers):
        points, missing = [], []
        for cell in ran:
            values = [r[key] for r in idle[cell.name].get(server, [])
                      if r.get(key) is not None and r[key] > 0]
            if values:
                points.append((cell.connections, statistics.median(values) * scale))
            else:
                missing.append(f"{cell.connections:,}")
        if points:
            note = f"no figure at {', '.join(missing)}" if missing else ""
            series.append((server, note, COLORS[index % len(COLORS)], points))
    return series


def write(out_dir, cells, idle, servers):
    """Writes idle-p99.svg and idle-rss.svg into `out_dir` when the idle cells ran; returns
    [(caption, file name)] of the plots written."""
    written = []
    p99 = series_of(cells, idle, servers, "p99_ms")
    rss = series_of(cells, idle, servers, "rss_kib", 1 / 1024)
    timeout = (compare_idle.TIMEOUT_S * 1000,
               f"timeout ({compare_idle.TIMEOUT_S} s): unanswered messages count as this")
    for name, caption, series, y_label, reference in (
            ("idle-p99.svg", "p99 latency against connections held", p99, "p99 latency, ms",
             timeout),
            ("idle-rss.svg", "Server RSS against connections held", rss, "server RSS, MiB",
             None)):
        if not series:
            continue
        with open(os.path.join(out_dir, name), "w") as f:
            f.write(plot(caption, y_label, series, reference))
        written.append((caption, name))
    return written
