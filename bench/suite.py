"""`raftka bench suite`: the standard workloads of issue 15 against the bare aiohttp
baseline, in the same run, on clusters the suite starts itself.

A round starts the baseline (bench/baseline.py) and keeps it running, idle but for
the moments it is measured; then three clusters one after the other, each fresh in a
temporary directory and stopped by PID when its workloads are done (also on errors and
Ctrl-C):
- one broker (the broker's default settings): produce RF=1 acks=1, then, after topping
  the log up to `consume_records`, one consume pass with 1 MiB fetches;
- one broker with `fsync = "always"`: produce RF=1 acks=1 with `fsync_connections`;
- three brokers: produce RF=3 acks=all; produce RF=1 straight to the leader and through a
  broker that is not the leader (in alternating order); e2e latency at a fixed rate.
Each produce workload that has a baseline goal is measured right next to the same load on
the baseline, so that both figures of a ratio see the same minute of a shared machine.
The clusters' order alternates between rounds (forwards, then backwards). With 2 or more
CPUs every server runs pinned to one CPU and the load client to another, as in `raftka
bench http`. The load client is load.py's (produce, consume) and the Python client (e2e).
A round is not started when the rounds so far say it would end past the time budget.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from raftka.bench.clusters import create_topic, running_cluster, targets_of, url
from raftka.bench.cpu import CpuPlan, client_pinned, plan_cpus
from raftka.bench.e2e import E2ESpec, end_to_end
from raftka.bench.errors import BenchError
from raftka.bench.figures import Latency
from raftka.bench.http import baseline_server
from raftka.bench.load import ProduceSpec, consume, produce
from raftka.bench.machine import Machine, this_machine
from raftka.bench.report import RoundFigures, Row, format_rounds, format_table, verdict
from raftka.bench.targets import Endpoint, Target, describe

HOST = "127.0.0.1"
BASELINE_TOPIC = "t"  # the baseline serves any topic; its readiness probe writes to t-0
RF3_PARTITIONS = 3  # with 3 brokers, each leads one
CLUSTERS = ("1 broker", "1 broker fsync=always", "3 brokers")


@dataclass(frozen=True, slots=True)
class SuiteOptions:
    rounds: int = 5
    window_s: float = 1.0
    warmup_s: float = 0.3
    slices: int = 3  # alternating window pairs per ratio workload and round
    connections: int = 8
    fsync_connections: int = 32
    records_per_request: int = 200
    record_size: int = 100
    consume_records: int = 500_000
    e2e_rate: int = 10_000
    e2e_duration_s: float = 5.0
    time_budget_s: float = 420.0

    def __post_init__(self) -> None:
        for name in (
            "rounds",
            "slices",
            "connections",
            "fsync_connections",
            "records_per_request",
            "record_size",
            "consume_records",
            "e2e_rate",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.window_s <= 0 or self.warmup_s < 0 or self.e2e_duration_s <= 0:
            raise ValueError("windows and durations must be positive, the warm-up >= 0")
        if self.time_budget_s <= 0:
            raise ValueError("the time budget must be positive")


QUICK = {
    "rounds": 1,
    "slices": 1,
    "window_s": 1.0,
    "warmup_s": 0.3,
    "consume_records": 100_000,
    "e2e_duration_s": 2.0,
}


@dataclass(frozen=True, slots=True)
class SuiteReport:
    options: SuiteOptions
    machine: Machine
    cpu_note: str
    started_utc: str
    elapsed_s: float
    rounds: tuple[RoundFigures, ...]
    rows: tuple[Row, ...]
    stopped_early: bool  # the time budget ended the run before `options.rounds`


@dataclass
class SuiteProgress:
    """What the command shows while the suite runs (stderr)."""

    stage: Callable[[str], None] = lambda text: None
    line: Callable[[str], None] = lambda text: None


@dataclass
class Measurements:
    """One round's figures as they come in."""

    values: dict[str, float] = field(default_factory=dict)
    e2e: Latency | None = None
    e2e_ack: Latency | None = None
    e2e_sent_per_s: float = 0.0
    consumed: int = 0
    errors: int = 0


# -- workloads -------------------------------------------------------------------------


class Round:
    """One round: runs each server's workloads, fills `Measurements`."""

    def __init__(self, index: int, root: Path, cpu: CpuPlan, options: SuiteOptions) -> None:
        self.index = index
        self.root = root / f"round-{index + 1}"
        self.cpu = cpu.server_cpu
        self.options = options
        self.m = Measurements()
        self.baseline: list[Target] = []  # set while the round's baseline server runs

    def window(self, concurrency: int, acks: str = "1") -> ProduceSpec:
        o = self.options
        return ProduceSpec(
            records=None,
            record_size=o.record_size,
            batch=o.records_per_request,
            acks=acks,
            concurrency=concurrency,
            window_s=o.window_s,
            warmup_s=o.warmup_s,
        )

    def side_by_side(self, name: str, targets: list[Target], spec: ProduceSpec) -> None:
        """The workload next to the same load on the baseline."""
        self.alternate({name: targets, f"baseline_{name}": self.baseline}, spec)

    def alternate(self, sides: dict[str, list[Target]], spec: ProduceSpec) -> None:
        """Two loads in `slices` alternating pairs of windows (A, B, B, A, ...; B first in
        odd rounds), so that a burst of another job's load hits both alike. Each side's
        figure is its records over its windows' time."""
        totals = {key: [0.0, 0.0] for key in sides}  # records, seconds
        order = list(sides) if self.index % 2 == 0 else list(sides)[::-1]
        for i in range(self.options.slices):
            for key in order if i % 2 == 0 else order[::-1]:
                result = asyncio.run(produce(sides[key], spec))
                totals[key][0] += result.records
                totals[key][1] += result.elapsed_s
                self.m.errors += result.errors
        for key, (records, seconds) in totals.items():
            self.m.values[key] = records / seconds

    def one_broker(self) -> None:
        with running_cluster(self.root / "one", 1, self.cpu) as (cluster, controller):
            create_topic(cluster, controller, "rf1", 1, 1)
            targets = targets_of(cluster, controller, "rf1")
            spec = self.window(self.options.connections)
            self.side_by_side("rf1", targets, spec)
            (view,) = asyncio.run(describe(url(cluster, controller), "rf1"))
            missing = self.options.consume_records - view.high_watermark
            if missing > 0:
                top_up = ProduceSpec(
                    missing, spec.record_size, spec.batch, "1", self.options.connections
                )
                asyncio.run(produce(targets, top_up))
            (view,) = asyncio.run(describe(url(cluster, controller), "rf1"))
            bounds = [(view.log_start_offset, view.high_watermark)]
            result = asyncio.run(consume(targets, bounds))
            if result.records != result.expected:
                raise BenchError(f"consume read {result.records} of {result.expected} records")
            self.m.values["consume_rf1"] = result.records_per_s
            self.m.consumed = result.records

    def fsync_always(self) -> None:
        root = self.root / "fsync-always"
        with running_cluster(root, 1, self.cpu, fsync="always") as (cluster, controller):
            create_topic(cluster, controller, "fsync", 1, 1)
            targets = targets_of(cluster, controller, "fsync")
            spec = self.window(self.options.fsync_connections)
            self.side_by_side("fsync_always", targets, spec)

    def three_brokers(self) -> None:
        o = self.options
        with running_cluster(self.root / "three", 3, self.cpu) as (cluster, controller):
            create_topic(cluster, controller, "rf3", RF3_PARTITIONS, 3)
            create_topic(cluster, controller, "forwarded", 1, 1)
            create_topic(cluster, controller, "e2e", RF3_PARTITIONS, 3)
            rf3 = targets_of(cluster, controller, "rf3")
            self.side_by_side("rf3", rf3, self.window(o.connections, acks="all"))

            leader = cluster.get(controller, "/v1/topics/forwarded")["partitions"][0]["leader"]
            other = next(b for b in sorted(cluster.brokers) if b != leader)
            paths = {
                "direct": targets_of(cluster, controller, "forwarded"),
                "forwarded": targets_of(cluster, controller, "forwarded", via=url(cluster, other)),
            }
            self.alternate(paths, self.window(o.connections))

            e2e_spec = E2ESpec(o.e2e_rate, o.e2e_duration_s, o.record_size, "all")
            result = asyncio.run(end_to_end(url(cluster, controller), "e2e", e2e_spec))
            self.m.e2e = result.latency
            self.m.e2e_ack = result.ack_latency
            self.m.e2e_sent_per_s = result.sent_per_s

    def run(self, progress: SuiteProgress) -> RoundFigures:
        with baseline_server(self.root / "baseline", self.cpu) as server:
            self.baseline = [Target(Endpoint(HOST, server.port), BASELINE_TOPIC, 0)]
            order = self.run_clusters(progress)
        return self.figures(order)

    def run_clusters(self, progress: SuiteProgress) -> tuple[str, ...]:
        steps = {
            "1 broker": self.one_broker,
            "1 broker fsync=always": self.fsync_always,
            "3 brokers": self.three_brokers,
        }
        order = CLUSTERS if self.index % 2 == 0 else CLUSTERS[::-1]
        for name in order:
            progress.stage(f"round {self.index + 1}: {name}")
            steps[name]()
        return order

    def figures(self, order: tuple[str, ...]) -> RoundFigures:
        v, m = self.m.values, self.m
        assert m.e2e is not None and m.e2e_ack is not None
        return RoundFigures(
            round=self.index + 1,
            order=order,
            produce_rf1=v["rf1"],
            baseline_rf1=v["baseline_rf1"],
            produce_rf3=v["rf3"],
            baseline_rf3=v["baseline_rf3"],
            produce_fsync_always=v["fsync_always"],
            baseline_fsync_always=v["baseline_fsync_always"],
            consume_rf1=v["consume_rf1"],
            consumed=m.consumed,
            direct=v["direct"],
            forwarded=v["forwarded"],
            e2e=m.e2e,
            e2e_ack=m.e2e_ack,
            e2e_sent_per_s=m.e2e_sent_per_s,
            errors=m.errors,
        )


def describe_round(r: RoundFigures) -> str:
    return (
        f"round {r.round}: RF=1 {r.produce_rf1:,.0f} / baseline {r.baseline_rf1:,.0f} records/s "
        f"({r.produce_rf1 / r.baseline_rf1:.2f}x); "
        f"RF=3 acks=all {r.produce_rf3 / r.baseline_rf3:.2f}x; "
        f"fsync always {r.produce_fsync_always / r.baseline_fsync_always:.2f}x; "
        f"consume {r.consume_rf1 / r.produce_rf1:.1f}x RF=1; "
        f"forwarded {r.forwarded / r.direct:.2f}x direct; e2e p99 {r.e2e.p99_ms:.1f} ms"
    )


def another_round_fits(elapsed_s: float, round_s: list[float], budget_s: float) -> bool:
    """The first round always runs; another only if a round as long as the mean so far
    would end within the budget."""
    return not round_s or elapsed_s + statistics.mean(round_s) <= budget_s


def run_suite(options: SuiteOptions, progress: SuiteProgress | None = None) -> SuiteReport:
    progress = progress or SuiteProgress()
    cpu = plan_cpus()
    started = time.monotonic()
    started_utc = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rounds: list[RoundFigures] = []
    round_s: list[float] = []
    with (
        tempfile.TemporaryDirectory(prefix="raftka-bench-suite-") as tmp,
        client_pinned(cpu),
    ):
        for index in range(options.rounds):
            if not another_round_fits(time.monotonic() - started, round_s, options.time_budget_s):
                progress.line(
                    f"stopping after {len(rounds)} rounds: another would end past the "
                    f"{options.time_budget_s:.0f} s time budget"
                )
                break
            round_started = time.monotonic()
            rounds.append(Round(index, Path(tmp), cpu, options).run(progress))
            round_s.append(time.monotonic() - round_started)
            progress.line(describe_round(rounds[-1]))
    rows = verdict(rounds, options.connections, options.fsync_connections, options.e2e_rate)
    return SuiteReport(
        options=options,
        machine=this_machine(),
        cpu_note=cpu.note,
        started_utc=started_utc,
        elapsed_s=time.monotonic() - started,
        rounds=tuple(rounds),
        rows=tuple(rows),
        stopped_early=len(rounds) < options.rounds,
    )


def format_section(report: SuiteReport, command: str) -> str:
    """The text between the markers in docs/benchmarks.md: machine, settings, the table,
    and every round's ratios."""
    o, m = report.options, report.machine
    rounds = len(report.rounds)
    budget = (
        f" (the {o.time_budget_s:.0f} s time budget stopped it before {o.rounds})"
        if report.stopped_early
        else ""
    )
    return "\n".join(
        [
            f"Written by `{command}` on {report.started_utc}, commit {m.commit}, "
            f"in {report.elapsed_s:.0f} s.",
            f"Machine: {m.describe()}; {report.cpu_note}.",
            f"Medians of {rounds} round{'s' if rounds != 1 else ''}{budget}; in each, every "
            f"compared pair ran as {o.slices} alternating pairs of produce windows "
            f"of {o.window_s:g} s after {o.warmup_s:g} s of warm-up, {o.records_per_request} "
            f"records of {o.record_size} B per request; the log topped up to "
            f"{o.consume_records:,} records before the consume pass; e2e for "
            f"{o.e2e_duration_s:g} s. A ratio is the median of each round's own ratio.",
            "",
            format_table(report.rows),
            "",
            format_rounds(report.rounds),
        ]
    )
