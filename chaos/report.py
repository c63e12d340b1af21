"""The chaos report: `report.json` for machines, `report.html` for people, a table for the CLI.

Owns how a history and its verdict are summarised and drawn: throughput (ok ops per
second) and latency (p50/p99 per second, invoke to ok) over time, with the nemesis'
fault windows shaded. The page is self-contained (inline SVG and CSS, no script, no
fetch), so it opens from a file anywhere. It must never judge a history (the checker
does) or run anything.
"""

from __future__ import annotations

import html
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.markup import escape
from rich.table import Table

from raftka.chaos.checker import CheckResult
from raftka.chaos.history import FAULT_START, NEMESIS, FaultWindow, History, OpType

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"

BUCKET_S = 1.0
CHART_WIDTH_PX = 960
CHART_HEIGHT_PX = 220
MARGIN_LEFT_PX = 64
MARGIN_RIGHT_PX = 16
MARGIN_TOP_PX = 22
MARGIN_BOTTOM_PX = 30
LATENCY_FLOOR_MS = 0.1
MAX_DETAILS_SHOWN = 20

SERIES_COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
FAULT_COLOURS = {
    "kill": "#d62728",
    "pause": "#ff7f0e",
    "partition": "#9467bd",
    "latency": "#bcbd22",
    "clock": "#17becf",
}
OTHER_FAULT_COLOUR = "#7f7f7f"


@dataclass(frozen=True, slots=True)
class Bucket:
    """One second of the run: ok ops per f, and latencies (ms) of ops invoked in it."""

    start_s: float
    ok_by_f: dict[str, int]
    latencies_ms: tuple[float, ...]

    @property
    def ok(self) -> int:
        return sum(self.ok_by_f.values())

    def percentile_ms(self, q: float) -> float | None:
        return percentile(self.latencies_ms, q)


def percentile(values: tuple[float, ...] | list[float], q: float) -> float | None:
    """The nearest-rank q-th percentile (0 < q <= 100), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def timeline(history: History, bucket_s: float = BUCKET_S) -> list[Bucket]:
    """Client ops per second: throughput by completion time, latency by invoke time."""
    oks: dict[int, Counter[str]] = defaultdict(Counter)
    latencies: dict[int, list[float]] = defaultdict(list)
    for done in history.completions():
        op = done.op
        if not op.is_client or op.type is not OpType.OK:
            continue
        oks[int(op.time // bucket_s)][op.f] += 1
        if done.invoke is not None:
            latencies[int(done.invoke.time // bucket_s)].append((op.time - done.invoke.time) * 1e3)
    count = int(history.end_time // bucket_s) + 1 if len(history) else 0
    return [
        Bucket(i * bucket_s, dict(oks.get(i, {})), tuple(latencies.get(i, ())))
        for i in range(count)
    ]


def fault_counts(history: History) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for op in history:
        if op.process == NEMESIS and op.f == FAULT_START:
            value = op.value if isinstance(op.value, dict) else {}
            counts[str(value.get("fault", "unknown"))] += 1
    return dict(sorted(counts.items()))


def ops_counts(history: History) -> dict[str, dict[str, int]]:
    """Ops per f and type, for clients and the final reader (not the nemesis or runner)."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for op in history:
        if op.process not in (NEMESIS, "runner"):
            counts[op.f][op.type.value] += 1
    return {f: dict(sorted(c.items())) for f, c in sorted(counts.items())}


def build_report(
    history: History,
    result: CheckResult,
    *,
    seed: Any = None,
    duration_s: float | None = None,
) -> dict[str, Any]:
    """The report.json document. `seed` defaults to the runner's run info, `duration_s` to
    the time of the last op."""
    if seed is None:
        seed = history.run_info().get("seed")
    verdict = result.to_json()
    return {
        "ok": verdict["ok"],
        "seed": seed,
        "duration_s": round(history.end_time if duration_s is None else duration_s, 3),
        "faults": fault_counts(history),
        "acked": verdict["acked"],
        "lost": verdict["lost"],
        "duplicated": verdict["duplicated"],
        "reordered": verdict["reordered"],
        "invariants": verdict["invariants"],
        "ops": ops_counts(history),
        "ops_total": len(history),
    }


def write_report(
    directory: Path,
    history: History,
    result: CheckResult,
    *,
    seed: Any = None,
    duration_s: float | None = None,
) -> dict[str, Any]:
    """Writes DIR/report.json and DIR/report.html; returns the JSON document."""
    report = build_report(history, result, seed=seed, duration_s=duration_s)
    (directory / REPORT_JSON).write_bytes(
        orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )
    (directory / REPORT_HTML).write_text(render_html(history, report), encoding="utf-8")
    return report


# --- the page -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Frame:
    """Maps run seconds and a value range onto one chart's pixels."""

    duration_s: float
    y_max: float
    log: bool = False

    @property
    def plot_width(self) -> float:
        return CHART_WIDTH_PX - MARGIN_LEFT_PX - MARGIN_RIGHT_PX

    @property
    def plot_height(self) -> float:
        return CHART_HEIGHT_PX - MARGIN_TOP_PX - MARGIN_BOTTOM_PX

    def x(self, t: float) -> float:
        return MARGIN_LEFT_PX + self.plot_width * min(max(t / self.duration_s, 0.0), 1.0)

    def y(self, v: float) -> float:
        if self.log:
            low = math.log10(LATENCY_FLOOR_MS)
            share = (math.log10(max(v, LATENCY_FLOOR_MS)) - low) / (math.log10(self.y_max) - low)
        else:
            share = v / self.y_max
        return MARGIN_TOP_PX + self.plot_height * (1 - min(max(share, 0.0), 1.0))


def _fault_colour(fault: str) -> str:
    return FAULT_COLOURS.get(fault, OTHER_FAULT_COLOUR)


def _fault_label(w: FaultWindow) -> str:
    target = "" if w.target is None else " " + orjson.dumps(w.target).decode()
    return f"{w.fault}{target}"


def _fault_rects(windows: list[FaultWindow], frame: _Frame, end_s: float) -> list[str]:
    rects = []
    for w in windows:
        x0, x1 = frame.x(w.start), frame.x(w.end(end_s))
        label = html.escape(_fault_label(w))
        stop = "never stopped" if w.stop is None else f"{w.stop:.2f}s"
        rects.append(
            f'<rect class="fault" data-fault="{html.escape(w.fault)}" x="{x0:.1f}" '
            f'y="{MARGIN_TOP_PX}" width="{max(x1 - x0, 1.0):.1f}" height="{frame.plot_height:.1f}" '
            f'fill="{_fault_colour(w.fault)}" fill-opacity="0.18">'
            f"<title>{label}: {w.start:.2f}s to {stop}</title></rect>"
            f'<text x="{x0 + 2:.1f}" y="{MARGIN_TOP_PX - 6}" font-size="10" '
            f'fill="{_fault_colour(w.fault)}">{label}</text>'
        )
    return rects


def _axes(frame: _Frame, y_ticks: list[tuple[float, str]], y_title: str) -> list[str]:
    bottom = MARGIN_TOP_PX + frame.plot_height
    parts = [
        f'<line x1="{MARGIN_LEFT_PX}" y1="{bottom}" x2="{CHART_WIDTH_PX - MARGIN_RIGHT_PX}" '
        f'y2="{bottom}" stroke="#444"/>',
        f'<line x1="{MARGIN_LEFT_PX}" y1="{MARGIN_TOP_PX}" x2="{MARGIN_LEFT_PX}" y2="{bottom}" '
        'stroke="#444"/>',
        f'<text x="12" y="{MARGIN_TOP_PX + frame.plot_height / 2:.0f}" font-size="11" '
        f'transform="rotate(-90 12 {MARGIN_TOP_PX + frame.plot_height / 2:.0f})" '
        f'text-anchor="middle">{html.escape(y_title)}</text>',
    ]
    for value, label in y_ticks:
        y = frame.y(value)
        parts.append(
            f'<line x1="{MARGIN_LEFT_PX}" y1="{y:.1f}" x2="{CHART_WIDTH_PX - MARGIN_RIGHT_PX}" '
            f'y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{MARGIN_LEFT_PX - 4}" y="{y + 3:.1f}" font-size="10" '
            f'text-anchor="end">{label}</text>'
        )
    step = _time_step(frame.duration_s)
    t = 0.0
    while t <= frame.duration_s + 1e-9:
        x = frame.x(t)
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 14}" font-size="10" text-anchor="middle">{t:g}s</text>'
        )
        t += step
    return parts


def _time_step(duration_s: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if duration_s / step <= 12:
            return float(step)
    return 7200.0


def _polyline(points: list[tuple[float, float]], colour: str, css: str) -> str:
    if not points:
        return ""
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return (
        f'<polyline class="{css}" points="{coords}" fill="none" stroke="{colour}" '
        'stroke-width="1.6"/>'
    )


def _legend(entries: list[tuple[str, str]]) -> str:
    x = MARGIN_LEFT_PX + 8
    parts = []
    for label, colour in entries:
        parts.append(
            f'<rect x="{x}" y="{MARGIN_TOP_PX + 4}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{MARGIN_TOP_PX + 13}" font-size="11">{html.escape(label)}</text>'
        )
        x += 24 + 7 * len(label)
    return "".join(parts)


def _svg(title: str, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{html.escape(title)}" '
        f'width="{CHART_WIDTH_PX}" height="{CHART_HEIGHT_PX}" '
        f'viewBox="0 0 {CHART_WIDTH_PX} {CHART_HEIGHT_PX}">' + "".join(body) + "</svg>"
    )


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 5, 10):
        if value <= factor * magnitude:
            return float(factor * magnitude)
    return 10.0 * magnitude


def throughput_svg(buckets: list[Bucket], windows: list[FaultWindow], end_s: float) -> str:
    duration = max(end_s, BUCKET_S)
    fs = sorted({f for b in buckets for f in b.ok_by_f})
    frame = _Frame(duration, _nice_max(max((b.ok for b in buckets), default=0) / BUCKET_S))
    ticks = [(frame.y_max * i / 4, f"{frame.y_max * i / 4:g}") for i in range(5)]
    body = _fault_rects(windows, frame, end_s) + _axes(frame, ticks, "ok ops/s")
    series = [
        (f, SERIES_COLOURS[i % len(SERIES_COLOURS)], [b.ok_by_f.get(f, 0) for b in buckets])
        for i, f in enumerate(fs)
    ]
    if len(fs) > 1:
        series.insert(0, ("all", "#000000", [b.ok for b in buckets]))
    for name, colour, counts in series:
        points = [
            (frame.x(b.start_s + BUCKET_S / 2), frame.y(n / BUCKET_S))
            for b, n in zip(buckets, counts, strict=True)
        ]
        body.append(_polyline(points, colour, f"throughput throughput-{name}"))
    body.append(_legend([(name, colour) for name, colour, _ in series]))
    return _svg("throughput: ok operations per second", body)


def latency_svg(buckets: list[Bucket], windows: list[FaultWindow], end_s: float) -> str:
    duration = max(end_s, BUCKET_S)
    highest = max((b.percentile_ms(99) or 0.0 for b in buckets), default=0.0)
    frame = _Frame(duration, max(_nice_max(highest), 10.0), log=True)
    ticks = [
        (10.0**e, f"{10.0**e:g} ms")
        for e in range(math.floor(math.log10(LATENCY_FLOOR_MS)), 7)
        if 10.0**e <= frame.y_max
    ]
    body = _fault_rects(windows, frame, end_s) + _axes(frame, ticks, "latency (log)")
    for q, colour in ((50, "#1f77b4"), (99, "#d62728")):
        points = [
            (frame.x(b.start_s + BUCKET_S / 2), frame.y(p))
            for b in buckets
            if (p := b.percentile_ms(q)) is not None
        ]
        body.append(_polyline(points, colour, f"latency latency-p{q}"))
    body.append(_legend([("p50", "#1f77b4"), ("p99", "#d62728")]))
    return _svg("latency p50 and p99 per second, invoke to ok", body)


_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1000px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
table { border-collapse: collapse; margin: 8px 0; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
.ok { color: #1a7f37; font-weight: 600; } .fail { color: #cf222e; font-weight: 600; }
.verdict { font-size: 18px; padding: 8px 12px; display: inline-block; border-radius: 4px; }
.verdict.ok { background: #dafbe1; } .verdict.fail { background: #ffebe9; }
ul.details { margin: 0; padding-left: 18px; font-family: ui-monospace, monospace; font-size: 12px; }
"""


def _cell(text: Any) -> str:
    return f"<td>{html.escape(str(text))}</td>"


def _invariants_table(report: dict[str, Any]) -> str:
    rows = []
    for name, r in report["invariants"].items():
        status = '<span class="ok">ok</span>' if r["ok"] else '<span class="fail">FAIL</span>'
        details = "".join(f"<li>{html.escape(d)}</li>" for d in r["details"][:MAX_DETAILS_SHOWN])
        more = r["count"] - min(len(r["details"]), MAX_DETAILS_SHOWN)
        if more > 0:
            details += f"<li>... and {more} more</li>"
        rows.append(
            f"<tr>{_cell(name)}<td>{status}</td>{_cell(r['count'])}"
            f'<td><ul class="details">{details}</ul></td></tr>'
        )
    return (
        "<table><tr><th>invariant</th><th>verdict</th><th>anomalies</th><th>details</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _faults_table(windows: list[FaultWindow]) -> str:
    if not windows:
        return "<p>No faults.</p>"
    rows = "".join(
        f'<tr><td><span style="color:{_fault_colour(w.fault)}">&#9632;</span> '
        f"{html.escape(w.fault)}</td>{_cell(orjson.dumps(w.target).decode())}"
        f"{_cell(f'{w.start:.2f}s')}"
        f"{_cell('never stopped' if w.stop is None else f'{w.stop:.2f}s')}"
        f"{_cell(orjson.dumps(w.value).decode())}</tr>"
        for w in windows
    )
    return (
        "<table><tr><th>fault</th><th>target</th><th>start</th><th>stop</th><th>value</th></tr>"
        + rows
        + "</table>"
    )


def _ops_table(ops: dict[str, dict[str, int]]) -> str:
    types = [t.value for t in OpType]
    header = "".join(f"<th>{t}</th>" for t in types)
    rows = "".join(
        "<tr>" + _cell(f) + "".join(_cell(counts.get(t, 0)) for t in types) + "</tr>"
        for f, counts in ops.items()
    )
    return f"<table><tr><th>f</th>{header}</tr>{rows}</table>"


def render_html(history: History, report: dict[str, Any]) -> str:
    """The whole page for one run: verdict, charts with fault windows, faults, op counts."""
    windows = history.fault_windows()
    buckets = timeline(history)
    end_s = max(history.end_time, BUCKET_S)
    verdict = "ok" if report["ok"] else "fail"
    words = "every invariant holds" if report["ok"] else "INVARIANTS VIOLATED"
    summary = "".join(
        f"<tr>{_cell(k)}{_cell(report[k])}</tr>"
        for k in ("seed", "duration_s", "acked", "lost", "duplicated", "reordered", "ops_total")
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>raftka chaos report</title>
<style>{_CSS}</style></head><body>
<h1>raftka chaos report</h1>
<p class="verdict {verdict}">{words}</p>
<table>{summary}</table>
<h2>Throughput (ok operations per second)</h2>
{throughput_svg(buckets, windows, end_s)}
<h2>Latency, invoke to ok (p50 and p99 of the ops invoked in each second)</h2>
{latency_svg(buckets, windows, end_s)}
<p>Shaded: fault windows, from the nemesis' start to its stop (hover for details).</p>
<h2>Invariants</h2>
{_invariants_table(report)}
<h2>Faults</h2>
{_faults_table(windows)}
<h2>Operations</h2>
{_ops_table(report["ops"])}
</body></html>
"""


def verdict_table(report: dict[str, Any]) -> Table:
    """The CLI's view of a report: one row per invariant, with its first anomalies."""
    table = Table(title=f"chaos check: {report['acked']} acked sends, seed {report['seed']}")
    table.add_column("invariant")
    table.add_column("verdict")
    table.add_column("anomalies", justify="right")
    table.add_column("first details")
    for name, r in report["invariants"].items():
        table.add_row(
            name,
            "[green]ok[/green]" if r["ok"] else "[bold red]FAIL[/bold red]",
            str(r["count"]),
            escape("\n".join(r["details"][:3])),
        )
    return table
