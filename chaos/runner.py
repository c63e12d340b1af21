"""One chaos run: a cluster of its own, the workload and the nemesis side by side, then
heal, settle, read everything back, check, report.

Owns the order of a run and its exit code (0: every invariant holds, 1: a violation,
2: the run itself could not be done). It wires the parts and judges nothing itself:
`workload.py` drives the clients, `nemesis.py` the faults, `checker.py` the verdict,
`report.py` the files. Brokers are started the one way, `cluster.make_cluster`, each in
its own network namespace where the machine allows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from raftka.api.launcher import Cluster, make_cluster, wait_for
from raftka.chaos.checker import CheckResult, check
from raftka.chaos.history import (
    HISTORY_FILE,
    RUN_INFO,
    RUNNER,
    HistoryWriter,
    Op,
    OpType,
    RunClock,
    read_history,
)
from raftka.chaos.nemesis import FaultKind, FaultStep, Nemesis
from raftka.chaos.netns import NetworkLab, NetworkUnavailable, unavailable_reason
from raftka.chaos.report import write_report
from raftka.chaos.workload import Workload, WorkloadConfig, final_read

EXIT_OK, EXIT_VIOLATION, EXIT_NOT_RUN = 0, 1, 2
TOPIC = "chaos"
# Short broker timeouts so faults are noticed and healed within a short run.
BROKER_SETTINGS = {
    "broker_session_timeout_ms": 3000,
    "broker_heartbeat_interval_ms": 500,
    "replica_lag_time_max_ms": 3000,
}
SETTLE_DEADLINE_S = 120.0
PROGRESS_EVERY_S = 5.0


class RunFailed(Exception):
    """The run could not be carried out (exit code 2), as opposed to a violation."""


@dataclass(frozen=True, slots=True)
class RunConfig:
    report_dir: Path
    brokers: int = 5
    duration_s: float = 60.0
    seed: int | None = None
    faults: tuple[str, ...] = ("kill", "pause", "partition", "latency")
    acks: str = "all"
    topic_partitions: int = 3
    rf: int = 3
    workload: dict[str, Any] = field(default_factory=dict)  # WorkloadConfig overrides


@dataclass
class Progress:
    """What the run shows while it goes: the fault in force, ops/s, errors."""

    say: Callable[[str], None]
    clock: Callable[[], float]
    ok: Counter[str] = field(default_factory=Counter)
    failed: int = 0
    fault: str = "none"
    _last_ok: int = 0
    _last_time: float = 0.0

    def saw(self, op: Op) -> None:
        if op.process == "nemesis":
            value = op.value or {}
            what = f"{value.get('fault')} {value.get('variant', '')} on {value.get('targets', '')}"
            self.fault = what if op.f == "start" else "none"
            self.say(f"[{op.time:6.1f}s] nemesis {op.f}: {what}")
        elif op.type is OpType.OK:
            self.ok[op.f] += 1
        elif op.type in (OpType.FAIL, OpType.INFO) and op.is_client:
            self.failed += 1

    def report(self) -> None:
        now = self.clock()
        total = sum(self.ok.values())
        rate = (total - self._last_ok) / max(now - self._last_time, 1e-9)
        self._last_ok, self._last_time = total, now
        self.say(
            f"[{now:6.1f}s] {rate:7.0f} ops/s  sends ok {self.ok['send']}  polls ok "
            f"{self.ok['poll']}  commits ok {self.ok['commit']}  errors {self.failed}  "
            f"fault: {self.fault}"
        )


class _RecordingWriter(HistoryWriter):
    """The history writer that also feeds the progress display."""

    def __init__(self, path: Path, progress: Progress) -> None:
        super().__init__(path)
        self._progress = progress

    def append(self, op: Op) -> None:
        super().append(op)
        self._progress.saw(op)


def run(config: RunConfig, say: Callable[[str], None]) -> tuple[int, dict[str, Any] | None]:
    """Carries out a run; returns its exit code and the report (None when not run)."""
    seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**31)
    directory = config.report_dir
    directory.mkdir(parents=True, exist_ok=True)
    for stale in (HISTORY_FILE, "report.json", "report.html"):
        (directory / stale).unlink(missing_ok=True)
    shutil.rmtree(directory / "cluster", ignore_errors=True)
    clock = RunClock()
    progress = Progress(say, clock.now)
    started = time.monotonic()
    try:
        with _RecordingWriter(directory / HISTORY_FILE, progress) as history:
            history.append(
                Op(
                    clock.now(),
                    RUNNER,
                    OpType.INFO,
                    RUN_INFO,
                    value={**asdict(config), "report_dir": str(directory), "seed": seed},
                )
            )
            _run_cluster(config, seed, history, clock, progress, say)
    except (RunFailed, NetworkUnavailable, AssertionError, OSError) as exc:
        say(f"the run could not be carried out: {exc}")
        return EXIT_NOT_RUN, None
    result = check(read_history(directory / HISTORY_FILE))
    report = write_report(
        directory,
        read_history(directory / HISTORY_FILE),
        result,
        seed=seed,
        duration_s=round(time.monotonic() - started, 1),
    )
    _summarise(result, say)
    return (EXIT_OK if result.ok else EXIT_VIOLATION), report


def _run_cluster(
    config: RunConfig,
    seed: int,
    history: HistoryWriter,
    clock: RunClock,
    progress: Progress,
    say: Callable[[str], None],
) -> None:
    ids = list(range(1, config.brokers + 1))
    reason = unavailable_reason()
    lab = None if reason is not None else NetworkLab(ids)
    try:
        if lab is not None:
            lab.start()
        else:
            say(f"no network namespaces: {reason}")
        cluster = make_cluster(
            config.report_dir / "cluster", config.brokers, network=lab, **BROKER_SETTINGS
        )
        try:
            cluster.start_all()
            cluster.wait_ready()
            _create_topic(cluster, config)
            nemesis = Nemesis(
                cluster,
                record=lambda doc: history.append(Op.from_json(doc)),
                clock=clock.now,
                network=lab,
                network_unavailable=reason,
                topics=[TOPIC],
            )
            schedule, warnings = nemesis.plan(seed, config.duration_s, config.faults)
            for warning in warnings:
                say(f"warning: {warning}")
            say(
                f"seed {seed}: {len(schedule)} faults over {config.duration_s:.0f}s on "
                f"{config.brokers} brokers: "
                + ", ".join(f"{s.kind.value}/{s.variant}" for s in schedule)
            )
            bootstrap = [b.url for b in cluster.brokers.values()]
            asyncio.run(
                _drive(config, seed, bootstrap, nemesis, schedule, history, clock, progress)
            )
            say("healed; waiting for the cluster to settle")
            _settle(cluster, config)
            say("reading every partition back")
            asyncio.run(final_read(bootstrap, TOPIC, config.topic_partitions, history, clock.now))
        finally:
            cluster.close()
    finally:
        if lab is not None:
            lab.close()


def _create_topic(cluster: Cluster, config: RunConfig) -> None:
    resp = cluster.request(
        1,
        "POST",
        "/v1/topics",
        {
            "name": TOPIC,
            "partitions": config.topic_partitions,
            "replication_factor": config.rf,
            "config": {"min_insync_replicas": min(2, config.rf)},
        },
    )
    if resp.status != 201:
        raise RunFailed(f"creating the topic failed: {resp.status} {resp.body}")


async def _drive(
    config: RunConfig,
    seed: int,
    bootstrap: list[str],
    nemesis: Nemesis,
    schedule: Sequence[FaultStep],
    history: HistoryWriter,
    clock: RunClock,
    progress: Progress,
) -> None:
    """The workload on this loop, the nemesis on a thread (its steps block), both for the
    duration or until the schedule is through, whichever is later."""
    workload = Workload(
        bootstrap,
        WorkloadConfig(TOPIC, config.topic_partitions, acks=config.acks, **config.workload),
        history,
        clock.now,
        random.Random(seed),
    )
    stop = asyncio.Event()
    halt = threading.Event()
    loop = asyncio.get_running_loop()
    load = asyncio.ensure_future(workload.run(stop))
    faults = loop.run_in_executor(None, lambda: nemesis.run(schedule, should_stop=halt.is_set))
    ticker = asyncio.ensure_future(_tick(progress))
    try:
        await asyncio.wait_for(asyncio.shield(faults), config.duration_s + _schedule_s(schedule))
        remaining = config.duration_s - clock.now()
        if remaining > 0:
            await asyncio.sleep(remaining)
    finally:
        halt.set()
        stop.set()
        with contextlib.suppress(Exception):
            await faults  # heals everything on its way out
        await load
        await workload.close()
        ticker.cancel()


def _schedule_s(schedule: Sequence[FaultStep]) -> float:
    return (schedule[-1].end_ms / 1000 if schedule else 0.0) + SETTLE_DEADLINE_S


async def _tick(progress: Progress) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        progress.report()


def _settle(cluster: Cluster, config: RunConfig) -> None:
    """Every broker up with a controller, and every partition led with its full ISR, so
    the final read sees everything any replica acknowledged."""
    cluster.wait_ready()

    def settled() -> bool:
        partitions = cluster.get(1, f"/v1/topics/{TOPIC}")["partitions"]
        return all(p["leader"] is not None and len(p["isr"]) == config.rf for p in partitions)

    wait_for(settled, "every partition led with a full ISR", SETTLE_DEADLINE_S)


def _summarise(result: CheckResult, say: Callable[[str], None]) -> None:
    say(
        f"acked {result.acked}, lost {result.lost}, duplicated {result.duplicated}, "
        f"reordered {result.reordered}"
    )
    for name, invariant in result.invariants.items():
        say(
            f"  {'ok  ' if invariant.ok else 'FAIL'} {name}"
            + ("" if invariant.ok else f": {invariant.details[:3]}")
        )


__all__ = ["EXIT_NOT_RUN", "EXIT_OK", "EXIT_VIOLATION", "FaultKind", "RunConfig", "run"]
