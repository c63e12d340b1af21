"""`raftka bench failover`: how long acks=all writes stop when a partition leader is killed,
paused or starved of CPU, and whether a broker that is only slow gets fenced.

Each measurement runs on a fresh 3-broker cluster (the default settings, passed explicitly)
with a topic of RF=3 and min_insync_replicas=2 whose partitions every broker leads some of.
A probe writer sends one acks=all write at a time to one partition led by the target broker,
through a surviving broker, RETRY_INTERVAL_S apart, and records every attempt; a monitor
polls the survivor's /v1/cluster for the target's `fenced` flag. Faults:
- kill: SIGKILL the target; the figure is kill -> first acknowledged write sent after it;
- pause: SIGSTOP the target for `pause_s`, then SIGCONT;
- hog: busy-loop processes pinned to the CPU the target is pinned to, for `hog_s`.
For pause and hog the figure is the longest time without an acknowledged write, from the
fault's start until `settle_s` after its end. This module only measures: every process it
starts is stopped by PID (Cluster.close() for brokers), whatever happens.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from raftka.api.launcher import Cluster, http_request, make_cluster, wait_for
from raftka.api.settings import Settings
from raftka.bench.cpu import set_process_affinity
from raftka.bench.errors import BenchError

TOPIC = "failover"
PARTITIONS = 6  # two per broker, so every broker leads some
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2
CASES = ("kill", "pause", "hog")
ROLES = ("controller", "broker")  # the target is the controller, or a broker that is not

RETRY_INTERVAL_S = 0.02  # between write attempts, failed or not
MONITOR_POLL_S = 0.05
# A write that takes longer counts as unavailable: a request forwarded to a paused leader
# would otherwise hide a new leader elected meanwhile.
PROBE_TIMEOUT_S = 0.5
# After a kill only refused connections and a live leader's answers are possible, so a
# write may take its time (the first one on a new leader waits for a follower to fetch).
KILL_PROBE_TIMEOUT_S = 5.0
STEADY_DEADLINE_S = 60.0  # a fresh cluster takes its first acks=all write within this
RECOVERY_DEADLINE_S = 60.0
FENCED_SEEN_DEADLINE_S = 5.0  # after the first ack, for the monitor to catch up
STOP_JOIN_S = 10.0
BUSY_LOOP = "while True: pass"


def default_settings() -> dict[str, Any]:
    """Every setting at its default, to pass explicitly (chaos.cluster's own are short)."""
    defaults = Settings()
    return {f.name: getattr(defaults, f.name) for f in dataclasses.fields(Settings)}


# -- options and results ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FailoverOptions:
    runs: int = 5
    cases: tuple[str, ...] = CASES
    pause_s: float = 5.0
    hog_s: float = 5.0
    hogs: int = 1  # busy-loop processes on the target's CPU
    settle_s: float = 5.0  # observed after a pause or hog ends

    def __post_init__(self) -> None:
        if self.runs < 1 or self.hogs < 1:
            raise ValueError("runs and hogs must be at least 1")
        if not self.cases or set(self.cases) - set(CASES):
            raise ValueError(f"cases must be some of {', '.join(CASES)}")
        if self.pause_s <= 0 or self.hog_s <= 0 or self.settle_s < 0:
            raise ValueError("pause and hog must be positive, settle not negative")


@dataclass(frozen=True, slots=True)
class FaultRun:
    run: int
    case: str
    role: str
    broker_id: int
    partition: int
    # fault -> first acknowledged write sent after the fault began (None: none within the run)
    first_ack_s: float | None
    # the longest time without an acknowledged write, from the fault to the observation's end
    unavailable_s: float
    fenced: bool
    fenced_s: float | None  # fault -> the survivor's /v1/cluster shows the target fenced
    alive_at_end: bool  # the target alive again at the end (pause and hog)
    max_latency_s: float  # slowest acknowledged write sent during the observation
    acked: int
    failed: dict[str, int]  # failed attempts by HTTP status, or "error" (refused, timed out)


@dataclass(frozen=True, slots=True)
class GroupSummary:
    case: str
    role: str
    runs: int
    unavailable_median_s: float
    unavailable_max_s: float
    first_ack_median_s: float | None
    fenced_runs: int
    fenced_median_s: float | None
    max_latency_median_s: float


@dataclass(frozen=True, slots=True)
class FailoverReport:
    options: FailoverOptions
    settings: dict[str, Any]
    cpu_note: str
    runs: tuple[FaultRun, ...]
    summary: tuple[GroupSummary, ...]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def plan(options: FailoverOptions) -> list[tuple[int, str, str]]:
    """(run, case, role) in order. A kill's target alternates between the controller (odd
    runs) and another broker; pause and hog target another broker every run, and the
    controller once, in run 1."""
    out = []
    for run in range(1, options.runs + 1):
        for case in options.cases:
            if case == "kill":
                out.append((run, case, "controller" if run % 2 == 1 else "broker"))
            else:
                out.append((run, case, "broker"))
                if run == 1:
                    out.append((run, case, "controller"))
    return out


# -- probes ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    sent_at: float
    done_at: float
    status: int | None  # None: refused, reset or timed out


class ProbeWriter(threading.Thread):
    """One acks=all write of one record at a time to `partition` through one broker."""

    def __init__(self, host: str, port: int, partition: int, timeout_s: float) -> None:
        super().__init__(daemon=True, name="probe-writer")
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.path = f"/v1/topics/{TOPIC}/partitions/{partition}/records?acks=all"
        self.attempts: list[Attempt] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            body = {"records": [{"value": f"probe-{n}"}]}
            sent_at = time.monotonic()
            status: int | None
            try:
                status = http_request(
                    self.host, self.port, "POST", self.path, body, timeout_s=self.timeout_s
                ).status
            except (OSError, http.client.HTTPException, orjson.JSONDecodeError):
                status = None
            self.attempts.append(Attempt(sent_at, time.monotonic(), status))
            n += 1
            self.stopping.wait(RETRY_INTERVAL_S)

    def acked_since(self, since: float) -> list[Attempt]:
        return [a for a in list(self.attempts) if a.status == 200 and a.sent_at >= since]


class FenceMonitor(threading.Thread):
    """Polls one broker's /v1/cluster: when it first shows `target` fenced, and its last view."""

    def __init__(self, host: str, port: int, target: int) -> None:
        super().__init__(daemon=True, name="fence-monitor")
        self.host, self.port, self.target = host, port, target
        self.first_fenced_at: float | None = None
        self.alive: bool | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                view = http_request(self.host, self.port, "GET", "/v1/cluster", timeout_s=1.0)
                (me,) = [b for b in view.body["brokers"] if b["id"] == self.target]
                self.alive = bool(me["alive"])
                if me["fenced"] and self.first_fenced_at is None:
                    self.first_fenced_at = time.monotonic()
            except (OSError, http.client.HTTPException, orjson.JSONDecodeError, KeyError):
                pass  # a survivor busy with an election: poll again
            self.stopping.wait(MONITOR_POLL_S)


def stop_threads(*threads: ProbeWriter | FenceMonitor) -> None:
    for t in threads:
        t.stopping.set()
    for t in threads:
        if t.is_alive():
            t.join(STOP_JOIN_S)


# -- CPU hog ---------------------------------------------------------------------------


def hog_cpu() -> int:
    return min(os.sched_getaffinity(0))


def cpu_note() -> str:
    cpus = sorted(os.sched_getaffinity(0))
    return (
        f"{len(cpus)} CPUs available; the hog case pins the target broker (every thread) "
        f"and the busy loops to CPU {cpus[0]}"
    )


@contextmanager
def cpu_hog(pid: int, hogs: int) -> Iterator[None]:
    """`hogs` busy loops pinned to one CPU, with broker `pid` pinned there too; both undone."""
    cpu = hog_cpu()
    former = os.sched_getaffinity(pid)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        set_process_affinity(pid, {cpu})
        for _ in range(hogs):
            p = subprocess.Popen(
                [sys.executable, "-c", BUSY_LOOP],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            processes.append(p)
            os.sched_setaffinity(p.pid, {cpu})
        yield
    finally:
        for p in processes:
            p.send_signal(signal.SIGKILL)
            p.wait()
        with contextlib.suppress(FileNotFoundError):  # the broker is gone
            set_process_affinity(pid, former)


# -- one measurement -------------------------------------------------------------------


def _partitions(cluster: Cluster, via: int) -> list[dict[str, Any]]:
    partitions: list[dict[str, Any]] = cluster.get(via, f"/v1/topics/{TOPIC}")["partitions"]
    return partitions


def _prepare(cluster: Cluster, role: str) -> tuple[int, int, int]:
    """Starts the cluster and the topic: (target broker, its partition, survivor)."""
    cluster.start_all()
    controller = cluster.wait_ready()
    resp = cluster.request(
        controller,
        "POST",
        "/v1/topics",
        {
            "name": TOPIC,
            "partitions": PARTITIONS,
            "replication_factor": REPLICATION_FACTOR,
            "config": {"min_insync_replicas": MIN_INSYNC_REPLICAS},
        },
    )
    if resp.status != 201:
        raise BenchError(f"creating {TOPIC}: HTTP {resp.status} {resp.body}")
    described = _partitions(cluster, controller)
    if role == "controller":
        target = controller
    else:
        target = next(p["leader"] for p in described if p["leader"] not in (None, controller))
    partition = next(p["partition"] for p in described if p["leader"] == target)
    # A survivor that is not the controller, when there is one: it keeps working throughout.
    survivor = next(b for b in sorted(cluster.brokers) if b not in (target, controller))

    def full_isr() -> bool:
        p = _partitions(cluster, target)[partition]
        return p["leader"] == target and len(p["isr"]) == REPLICATION_FACTOR

    wait_for(full_isr, f"{TOPIC}-{partition} led by broker {target} with a full ISR")
    return target, partition, survivor


def _unavailable(fault_at: float, acks: list[float], end: float | None) -> float:
    """The longest gap between acknowledgements from `fault_at`, up to `end` if given."""
    points = [fault_at, *sorted(a for a in acks if a > fault_at)]
    if end is not None:
        points.append(end)
    return max((b - a for a, b in zip(points, points[1:], strict=False)), default=0.0)


def _failed(attempts: list[Attempt], since: float) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in attempts:
        if a.sent_at >= since and a.status != 200:
            key = "error" if a.status is None else str(a.status)
            out[key] = out.get(key, 0) + 1
    return out


def measure(
    root: Path, run: int, case: str, role: str, settings: dict[str, Any], options: FailoverOptions
) -> FaultRun:
    cluster = make_cluster(root, voters=3, **settings)
    writer: ProbeWriter | None = None
    monitor: FenceMonitor | None = None
    try:
        target, partition, survivor = _prepare(cluster, role)
        address = cluster.brokers[survivor].address
        timeout_s = KILL_PROBE_TIMEOUT_S if case == "kill" else PROBE_TIMEOUT_S
        writer = ProbeWriter(address.http_host, address.http_port, partition, timeout_s)
        monitor = FenceMonitor(address.http_host, address.http_port, target)
        writer.start()
        monitor.start()
        w = writer
        wait_for(lambda: w.acked_since(0.0), "a first acks=all write", STEADY_DEADLINE_S)

        fault_at = time.monotonic()
        end: float | None = None
        if case == "kill":
            cluster.kill(target)
            wait_for(
                lambda: w.acked_since(fault_at),
                "an acks=all write after the kill",
                RECOVERY_DEADLINE_S,
            )
            m = monitor
            with contextlib.suppress(AssertionError):  # then reported as not fenced
                wait_for(lambda: m.first_fenced_at, "the fencing", FENCED_SEEN_DEADLINE_S)
        elif case == "pause":
            cluster.pause(target)
            try:
                time.sleep(options.pause_s)
            finally:
                cluster.resume(target)
            time.sleep(options.settle_s)
            end = time.monotonic()
        else:
            process = cluster.brokers[target].process
            assert process is not None
            with cpu_hog(process.pid, options.hogs):
                time.sleep(options.hog_s)
            time.sleep(options.settle_s)
            end = time.monotonic()
        stop_threads(writer, monitor)

        acked = [a for a in writer.acked_since(fault_at) if end is None or a.done_at <= end]
        fenced_at = monitor.first_fenced_at
        return FaultRun(
            run=run,
            case=case,
            role=role,
            broker_id=target,
            partition=partition,
            first_ack_s=min(a.done_at for a in acked) - fault_at if acked else None,
            unavailable_s=_unavailable(fault_at, [a.done_at for a in acked], end),
            fenced=fenced_at is not None,
            fenced_s=None if fenced_at is None else fenced_at - fault_at,
            alive_at_end=case != "kill" and bool(monitor.alive),
            max_latency_s=max((a.done_at - a.sent_at for a in acked), default=0.0),
            acked=len(acked),
            failed=_failed(writer.attempts, fault_at),
        )
    finally:
        if writer is not None and monitor is not None:
            stop_threads(writer, monitor)
        cluster.close()


# -- the run and its report ------------------------------------------------------------


def summarize(runs: list[FaultRun]) -> tuple[GroupSummary, ...]:
    out = []
    for case in CASES:
        for role in ROLES:
            group = [r for r in runs if r.case == case and r.role == role]
            if not group:
                continue
            first = [r.first_ack_s for r in group if r.first_ack_s is not None]
            fenced = [r.fenced_s for r in group if r.fenced_s is not None]
            out.append(
                GroupSummary(
                    case=case,
                    role=role,
                    runs=len(group),
                    unavailable_median_s=statistics.median(r.unavailable_s for r in group),
                    unavailable_max_s=max(r.unavailable_s for r in group),
                    first_ack_median_s=statistics.median(first) if first else None,
                    fenced_runs=len(fenced),
                    fenced_median_s=statistics.median(fenced) if fenced else None,
                    max_latency_median_s=statistics.median(r.max_latency_s for r in group),
                )
            )
    return tuple(out)


def describe_run(r: FaultRun) -> str:
    failed = ", ".join(f"{n} x {k}" for k, n in sorted(r.failed.items())) or "none"
    fenced = f"fenced after {r.fenced_s:.2f} s" if r.fenced_s is not None else "not fenced"
    return (
        f"run {r.run} {r.case} {r.role} (broker {r.broker_id}, {TOPIC}-{r.partition}): "
        f"writes unavailable {r.unavailable_s:.2f} s, {fenced}, "
        f"slowest ack {r.max_latency_s:.2f} s, failed attempts: {failed}"
    )


def run_failover_bench(
    options: FailoverOptions,
    settings: dict[str, Any],
    progress: Callable[[str], None] | None = None,
) -> FailoverReport:
    runs: list[FaultRun] = []
    with tempfile.TemporaryDirectory(prefix="raftka-bench-failover-") as tmp:
        for i, (run, case, role) in enumerate(plan(options)):
            runs.append(
                measure(Path(tmp) / f"{i}-{case}-{role}", run, case, role, settings, options)
            )
            if progress is not None:
                progress(describe_run(runs[-1]))
    return FailoverReport(options, settings, cpu_note(), tuple(runs), summarize(runs))


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def format_report(report: FailoverReport) -> str:
    o, s = report.options, report.settings
    lines = [
        f"{o.runs} run{'s' if o.runs > 1 else ''}, fresh 3-broker cluster each, "
        f"RF={REPLICATION_FACTOR}, min_insync_replicas={MIN_INSYNC_REPLICAS}; "
        f"broker_session_timeout_ms={s['broker_session_timeout_ms']}, "
        f"broker_heartbeat_interval_ms={s['broker_heartbeat_interval_ms']}; "
        f"pause {o.pause_s} s, hog {o.hog_s} s x {o.hogs}, observed {o.settle_s} s after",
        report.cpu_note,
        "",
        "| fault | target | runs | acks=all unavailable, median | max | fenced | "
        "fault -> fenced, median | slowest ack, median |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for g in report.summary:
        lines.append(
            f"| {g.case} | {g.role} | {g.runs} | {_s(g.unavailable_median_s)} | "
            f"{_s(g.unavailable_max_s)} | {g.fenced_runs}/{g.runs} | {_s(g.fenced_median_s)} | "
            f"{_s(g.max_latency_median_s)} |"
        )
    return "\n".join(lines)
