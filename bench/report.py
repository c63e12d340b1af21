"""The suite's verdict: each workload's figure, its ratio to what it is compared with,
and its goal (issue 15), as one markdown table; and the marked section of
docs/benchmarks.md that the table replaces.

Pure: round figures in, rows and text out. Ratios are medians of each round's own ratio
(two figures measured minutes apart on a shared machine drift; one round's pair does not).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from raftka.bench.figures import Latency, median

SECTION_START = "<!-- bench suite -->"
SECTION_END = "<!-- /bench suite -->"
SECTION_HEADING = "## The standard suite: `raftka bench suite`"
E2E_P99_GOAL_MS = 50.0


@dataclass(frozen=True, slots=True)
class RoundFigures:
    """One round's measurements, records/s unless named otherwise."""

    round: int
    order: tuple[str, ...]  # the clusters, in the order they ran
    # Each produce figure with the bare aiohttp server's, measured right before or after
    # it with the same load (`connections`, or `fsync_connections` for fsync always).
    produce_rf1: float
    baseline_rf1: float
    produce_rf3: float
    baseline_rf3: float
    produce_fsync_always: float
    baseline_fsync_always: float
    consume_rf1: float
    consumed: int  # records the consume pass read
    direct: float  # produce RF=1 straight to the leader, on the 3-broker cluster
    forwarded: float  # the same through a broker that is not the leader
    e2e: Latency  # due time -> read by the consumer
    e2e_ack: Latency  # due time -> acknowledged to the producer
    e2e_sent_per_s: float
    errors: int  # error answers the load client retried, all workloads


@dataclass(frozen=True, slots=True)
class Goal:
    workload: str
    figure: str  # a RoundFigures field
    reference: str  # the field it is compared with
    reference_name: str
    min_ratio: float


@dataclass(frozen=True, slots=True)
class Row:
    workload: str
    value: float  # records/s; the e2e row: p99 ms
    detail: str  # how `value` reads in the table
    reference: str  # what it is compared with, with its value
    ratio: float | None
    goal: str
    met: bool


def goals(connections: int, fsync_connections: int) -> tuple[Goal, ...]:
    base = f"baseline, {connections} connections"
    return (
        Goal(
            f"produce RF=1 acks=1, {connections} connections",
            "produce_rf1",
            "baseline_rf1",
            base,
            0.6,
        ),
        Goal(
            f"produce RF=3 acks=all, {connections} connections, 3 brokers",
            "produce_rf3",
            "baseline_rf3",
            base,
            0.3,
        ),
        Goal(
            f'produce RF=1 acks=1, fsync = "always", {fsync_connections} connections',
            "produce_fsync_always",
            "baseline_fsync_always",
            f"baseline, {fsync_connections} connections",
            0.3,
        ),
        Goal(
            "consume RF=1, 1 MiB per fetch, 1 connection",
            "consume_rf1",
            "produce_rf1",
            "produce RF=1 acks=1",
            5.0,
        ),
        Goal(
            f"produce through a non-leader (forwarded), {connections} connections",
            "forwarded",
            "direct",
            "direct to the leader",
            0.5,
        ),
    )


def ratio_rows(
    rounds: Sequence[RoundFigures], connections: int, fsync_connections: int
) -> list[Row]:
    rows = []
    for g in goals(connections, fsync_connections):
        value = median([getattr(r, g.figure) for r in rounds])
        reference = median([getattr(r, g.reference) for r in rounds])
        ratio = median([getattr(r, g.figure) / getattr(r, g.reference) for r in rounds])
        rows.append(
            Row(
                workload=g.workload,
                value=value,
                detail=f"{value:,.0f} records/s",
                reference=f"{g.reference_name}: {reference:,.0f} records/s",
                ratio=ratio,
                goal=f">= {g.min_ratio:g}",
                met=ratio >= g.min_ratio,
            )
        )
    return rows


def e2e_row(rounds: Sequence[RoundFigures], rate: int) -> Row:
    p50 = median([r.e2e.p50_ms for r in rounds])
    p99 = median([r.e2e.p99_ms for r in rounds])
    p999 = median([r.e2e.p999_ms for r in rounds])
    ack_p99 = median([r.e2e_ack.p99_ms for r in rounds])
    sent = median([r.e2e_sent_per_s for r in rounds])
    return Row(
        workload=f"e2e latency RF=3 acks=all, {rate:,} records/s",
        value=p99,
        detail=(
            f"p99 {p99:.1f} ms (p50 {p50:.1f}, p999 {p999:.1f}; acknowledged p99 "
            f"{ack_p99:.1f}; sent at {sent:,.0f} records/s)"
        ),
        reference="-",
        ratio=None,
        goal=f"p99 <= {E2E_P99_GOAL_MS:g} ms",
        met=p99 <= E2E_P99_GOAL_MS,
    )


def verdict(
    rounds: Sequence[RoundFigures], connections: int, fsync_connections: int, e2e_rate: int
) -> list[Row]:
    """The table's rows, in the issue's order."""
    rows = ratio_rows(rounds, connections, fsync_connections)
    return [*rows[:4], e2e_row(rounds, e2e_rate), rows[4]]


def format_table(rows: Sequence[Row]) -> str:
    lines = [
        "| workload | figure | compared with | ratio | goal | met |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        lines.append(
            f"| {r.workload} | {r.detail} | {r.reference} | {ratio} | {r.goal} | "
            f"{'yes' if r.met else 'no'} |"
        )
    return "\n".join(lines)


def format_rounds(rounds: Sequence[RoundFigures]) -> str:
    """Every round's own ratios, to show the spread behind the medians."""
    lines = [
        "| round | clusters in order | RF=1 / base | RF=3 / base | fsync / base | "
        "consume / RF=1 | forwarded / direct | e2e p99 ms | errors |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rounds:
        lines.append(
            f"| {r.round} | {' / '.join(r.order)} | {r.produce_rf1 / r.baseline_rf1:.2f} | "
            f"{r.produce_rf3 / r.baseline_rf3:.2f} | "
            f"{r.produce_fsync_always / r.baseline_fsync_always:.2f} | "
            f"{r.consume_rf1 / r.produce_rf1:.1f} | {r.forwarded / r.direct:.2f} | "
            f"{r.e2e.p99_ms:.1f} | {r.errors} |"
        )
    return "\n".join(lines)


def replace_section(document: str, section: str) -> str:
    """`document` with the lines between the suite's marker lines replaced by `section`;
    without them, a new section with them is appended. A marker counts only as a line of
    its own, so prose may quote it."""
    lines = document.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.strip() == SECTION_START]
    ends = [i for i, line in enumerate(lines) if line.strip() == SECTION_END]
    block = f"{SECTION_START}\n{section.strip()}\n{SECTION_END}\n"
    if not starts and not ends:
        return document.rstrip("\n") + f"\n\n{SECTION_HEADING}\n\n{block}"
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise ValueError(f"expected one {SECTION_START} line, then one {SECTION_END} line")
    return "".join(lines[: starts[0]]) + block + "".join(lines[ends[0] + 1 :])
