"""`raftka bench http`: produce and fetch throughput of one raftka broker over HTTP, next to
a bare aiohttp server (bench/baseline.py) on the same machine.

Each round starts a fresh single broker (bench/clusters.py, through the one launcher) and a
fresh baseline server, one after the other in alternating order, each pinned to one CPU
while the load client (bench/load.py, in this process) runs on another. Every load loop
ends after its window or deadline, and every server is stopped by PID and its files
removed, whatever happens. This module only measures: it never changes how a broker runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from raftka.api.launcher import http_request
from raftka.api.ports import free_ports
from raftka.api.settings import FSYNC_POLICIES, Settings
from raftka.bench import load
from raftka.bench.clusters import create_topic, running_cluster, targets_of, url
from raftka.bench.cpu import CpuPlan, client_pinned, plan_cpus
from raftka.bench.errors import BenchError
from raftka.bench.targets import Endpoint, Target, describe

HOST = "127.0.0.1"
TOPIC = "t"
PRODUCE_PATH = f"/v1/topics/{TOPIC}/partitions/0/records?acks=1"
FETCH_MAX_BYTES = load.DEFAULT_FETCH_MAX_BYTES
FETCH_CONNECTIONS = (1, 4)

READY_DEADLINE_S = 60.0
READY_POLL_S = 0.1
STOP_TIMEOUT_S = 15.0
HTTP_PROBE_TIMEOUT_S = 5.0
LOG_TAIL_LINES = 20

BYTES_PER_MB = 1_000_000
US_PER_S = 1_000_000


# -- options and results -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BenchOptions:
    rounds: int = 5
    window_s: float = 3.0
    warmup_s: float = 0.5
    connections: int = 8
    records_per_request: int = 200
    record_size: int = 100
    fsync: str = "never"
    fetch_records: int = 1_000_000

    def __post_init__(self) -> None:
        check_produce_load(self)
        if self.fetch_records < 1:
            raise ValueError("fetch_records must be at least 1")
        check_fsync(self.fsync)


def check_produce_load(options: Any) -> None:
    """The checks every produce-load benchmark's options share (bench/replication.py's too):
    its counts, window and warm-up."""
    for name in ("rounds", "connections", "records_per_request", "record_size"):
        if getattr(options, name) < 1:
            raise ValueError(f"{name} must be at least 1")
    if options.window_s <= 0 or options.warmup_s < 0:
        raise ValueError("the window must be positive and the warm-up not negative")


def check_fsync(fsync: str) -> None:
    if fsync not in FSYNC_POLICIES:
        raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}")


@dataclass(frozen=True, slots=True)
class ProduceResult:
    requests_per_s: float
    records_per_s: float
    mb_per_s: float
    # 1 / request rate: the server's time per request while saturated, not a latency.
    us_per_request: float


@dataclass(frozen=True, slots=True)
class FetchResult:
    connections: int
    records: int
    fetches: int
    records_per_s: float
    mb_per_s: float


@dataclass(frozen=True, slots=True)
class RoundResult:
    round: int
    order: tuple[str, str]
    raftka: ProduceResult
    baseline: ProduceResult
    fetch: tuple[FetchResult, ...]


@dataclass(frozen=True, slots=True)
class ProduceMedians:
    records_per_s: float
    mb_per_s: float
    us_per_request: float


@dataclass(frozen=True, slots=True)
class FetchMedians:
    connections: int
    records_per_s: float
    mb_per_s: float
    fetch_to_produce: float  # fetch records/s over raftka's produce records/s


@dataclass(frozen=True, slots=True)
class Medians:
    raftka: ProduceMedians
    baseline: ProduceMedians
    raftka_to_baseline: float
    fetch: tuple[FetchMedians, ...]


@dataclass(frozen=True, slots=True)
class HttpBenchReport:
    options: BenchOptions
    cpu: CpuPlan
    request_body_bytes: float
    rounds: tuple[RoundResult, ...]
    medians: Medians

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -- the workload ----------------------------------------------------------------------


class ProduceLoadOptions(Protocol):
    """What bench http's and bench replication's options say of their produce load."""

    @property
    def window_s(self) -> float: ...
    @property
    def warmup_s(self) -> float: ...
    @property
    def connections(self) -> int: ...
    @property
    def records_per_request(self) -> int: ...
    @property
    def record_size(self) -> int: ...


def produce_spec(
    options: ProduceLoadOptions, *, acks: str = "1", records: int | None = None
) -> load.ProduceSpec:
    """Keyed records ("user-N"); for the options' window, or until `records` are
    acknowledged."""
    return load.ProduceSpec(
        records=records,
        record_size=options.record_size,
        batch=options.records_per_request,
        acks=acks,
        concurrency=options.connections,
        window_s=options.window_s,
        warmup_s=options.warmup_s,
        keyed=True,
    )


def request_body_bytes(options: ProduceLoadOptions) -> int:
    """One full request's body; refused when the broker would refuse it."""
    size = len(load.produce_body(options.records_per_request, options.record_size, 0, True))
    limit = Settings().max_request_bytes
    if size > limit:
        raise ValueError(f"a request body would exceed the broker's {limit} bytes limit")
    return size


def produce_figures(result: load.ProduceResult, body_bytes: float) -> ProduceResult:
    requests_per_s = result.requests / result.elapsed_s
    return ProduceResult(
        requests_per_s=requests_per_s,
        records_per_s=result.records_per_s,
        mb_per_s=requests_per_s * body_bytes / BYTES_PER_MB,
        us_per_request=US_PER_S / requests_per_s,
    )


def fetch_figures(result: load.ConsumeResult, connections: int) -> FetchResult:
    return FetchResult(
        connections=connections,
        records=result.records,
        fetches=result.fetches,
        records_per_s=result.records_per_s,
        mb_per_s=result.mb_per_s,
    )


# -- server processes ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-LOG_TAIL_LINES:])


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM by PID, SIGKILL if it does not exit within STOP_TIMEOUT_S."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def server_process(
    name: str, command: list[str], port: int, directory: Path, cpu: int | None
) -> Iterator[ServerProcess]:
    """Runs `command` in `directory`; stops it and removes the directory on exit."""
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / "server.log"
    try:
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=directory
            )
        try:
            if cpu is not None:
                # Popen returns once the child has exec'd, long before Python starts any
                # thread, so every thread it creates inherits this mask.
                os.sched_setaffinity(process.pid, {cpu})
            yield ServerProcess(name, port, process, log_path)
        finally:
            stop_process(process)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def http_status(port: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A plain request for set-up and probes (not load): (status, decoded JSON body)."""
    resp = http_request(HOST, port, method, path, body, timeout_s=HTTP_PROBE_TIMEOUT_S)
    return resp.status, resp.body


def wait_ready(server: ServerProcess) -> None:
    """Until the server accepts a produce to t-0."""
    probe = {"records": [{"key": "probe", "value": "probe"}]}
    deadline = time.monotonic() + READY_DEADLINE_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(f"{server.name} exited at start:\n{server.log_tail()}")
        try:
            if http_status(server.port, "POST", PRODUCE_PATH, probe)[0] == 200:
                return
        except (OSError, http.client.HTTPException):
            pass  # not listening yet
        time.sleep(READY_POLL_S)
    raise BenchError(f"{server.name} not ready within {READY_DEADLINE_S} s:\n{server.log_tail()}")


@contextmanager
def baseline_server(directory: Path, cpu: int | None) -> Iterator[ServerProcess]:
    (port,) = free_ports(1)
    command = [
        sys.executable,
        "-m",
        "raftka.bench.baseline",
        "--port",
        str(port),
        "--data-dir",
        str(directory / "data"),
    ]
    with server_process("baseline", command, port, directory, cpu) as server:
        wait_ready(server)
        yield server


# -- one round -------------------------------------------------------------------------


def measure_raftka(
    root: Path, cpu: int | None, options: BenchOptions, body_bytes: float
) -> tuple[ProduceResult, tuple[FetchResult, ...]]:
    """Produce for a window, top the log up to `fetch_records`, then read it whole with
    each of FETCH_CONNECTIONS."""
    with running_cluster(root, 1, cpu, fsync=options.fsync) as (cluster, controller):
        create_topic(cluster, controller, TOPIC, 1, 1)
        targets = targets_of(cluster, controller, TOPIC)
        produced = asyncio.run(load.produce(targets, produce_spec(options)))
        (view,) = asyncio.run(describe(url(cluster, controller), TOPIC))
        missing = options.fetch_records - (view.high_watermark - view.log_start_offset)
        if missing > 0:
            asyncio.run(load.produce(targets, produce_spec(options, records=missing)))
            (view,) = asyncio.run(describe(url(cluster, controller), TOPIC))
        bounds = [(view.log_start_offset, view.high_watermark)]
        fetches = tuple(
            fetch_figures(asyncio.run(load.consume(targets, bounds, c, FETCH_MAX_BYTES)), c)
            for c in FETCH_CONNECTIONS
        )
    return produce_figures(produced, body_bytes), fetches


def measure_baseline(
    root: Path, cpu: int | None, options: BenchOptions, body_bytes: float
) -> ProduceResult:
    with baseline_server(root, cpu) as server:
        targets = [Target(Endpoint(HOST, server.port), TOPIC, 0)]
        return produce_figures(
            asyncio.run(load.produce(targets, produce_spec(options))), body_bytes
        )


def run_round(
    index: int, root: Path, plan: CpuPlan, body_bytes: float, options: BenchOptions
) -> RoundResult:
    """Both servers, one at a time: raftka first in even rounds, the baseline in odd ones."""
    order = ("raftka", "baseline") if index % 2 == 0 else ("baseline", "raftka")
    raftka: ProduceResult | None = None
    baseline: ProduceResult | None = None
    fetches: tuple[FetchResult, ...] = ()
    for name in order:
        directory = root / f"round-{index}-{name}"
        if name == "raftka":
            raftka, fetches = measure_raftka(directory, plan.server_cpu, options, body_bytes)
        else:
            baseline = measure_baseline(directory, plan.server_cpu, options, body_bytes)
    assert raftka is not None and baseline is not None
    return RoundResult(index + 1, order, raftka, baseline, fetches)


# -- the run and its report ------------------------------------------------------------


def produce_medians(results: list[ProduceResult]) -> ProduceMedians:
    return ProduceMedians(
        records_per_s=statistics.median(r.records_per_s for r in results),
        mb_per_s=statistics.median(r.mb_per_s for r in results),
        us_per_request=statistics.median(r.us_per_request for r in results),
    )


def summarize(rounds: list[RoundResult]) -> Medians:
    """Medians over rounds; ratios are ratios of medians."""
    raftka = produce_medians([r.raftka for r in rounds])
    baseline = produce_medians([r.baseline for r in rounds])
    fetch = []
    for i, connections in enumerate(FETCH_CONNECTIONS):
        records_per_s = statistics.median(r.fetch[i].records_per_s for r in rounds)
        fetch.append(
            FetchMedians(
                connections=connections,
                records_per_s=records_per_s,
                mb_per_s=statistics.median(r.fetch[i].mb_per_s for r in rounds),
                fetch_to_produce=records_per_s / raftka.records_per_s,
            )
        )
    return Medians(raftka, baseline, raftka.records_per_s / baseline.records_per_s, tuple(fetch))


def describe_round(r: RoundResult) -> str:
    fetch = ", ".join(f"{f.records_per_s:,.0f} x{f.connections}" for f in r.fetch)
    return (
        f"round {r.round} ({r.order[0]} first): produce raftka {r.raftka.records_per_s:,.0f}, "
        f"baseline {r.baseline.records_per_s:,.0f} records/s "
        f"({r.raftka.records_per_s / r.baseline.records_per_s:.2f}x); "
        f"fetch {fetch} records/s"
    )


def run_http_bench(
    options: BenchOptions, progress: Callable[[str], None] | None = None
) -> HttpBenchReport:
    """The whole benchmark; `progress` receives a line per finished round."""
    body_bytes = request_body_bytes(options)
    plan = plan_cpus()
    rounds: list[RoundResult] = []
    with (
        tempfile.TemporaryDirectory(prefix="raftka-bench-http-") as tmp,
        client_pinned(plan),
    ):
        for index in range(options.rounds):
            rounds.append(run_round(index, Path(tmp), plan, body_bytes, options))
            if progress is not None:
                progress(describe_round(rounds[-1]))
    return HttpBenchReport(
        options=options,
        cpu=plan,
        request_body_bytes=body_bytes,
        rounds=tuple(rounds),
        medians=summarize(rounds),
    )


def format_report(report: HttpBenchReport) -> str:
    o, m = report.options, report.medians
    lines = [
        f"Medians of {o.rounds} round{'s' if o.rounds > 1 else ''}: {o.window_s} s produce windows after {o.warmup_s} s "
        f"warm-up, {o.connections} connections, {o.records_per_request} records of "
        f"{o.record_size} B per request ({report.request_body_bytes:,.0f} B), "
        f"raftka fsync={o.fsync}",
        report.cpu.note,
        "",
        "| produce | records/s | MB/s | µs/request | x baseline |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, p, ratio in (
        ("raftka", m.raftka, m.raftka_to_baseline),
        ("baseline", m.baseline, 1.0),
    ):
        lines.append(
            f"| {name} | {p.records_per_s:,.0f} | {p.mb_per_s:.1f} | "
            f"{p.us_per_request:.0f} | {ratio:.2f} |"
        )
    lines += [
        "",
        f"| raftka fetch, whole log, max_bytes {FETCH_MAX_BYTES // 2**20} MiB | records/s | MB/s "
        "| x raftka produce |",
        "| --- | ---: | ---: | ---: |",
    ]
    for f in m.fetch:
        lines.append(
            f"| {f.connections} connection{'s' if f.connections > 1 else ''} | "
            f"{f.records_per_s:,.0f} | {f.mb_per_s:.0f} | {f.fetch_to_produce:.1f} |"
        )
    return "\n".join(lines)
