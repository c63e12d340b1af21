"""`raftka bench http`: produce and fetch throughput of one raftka broker over HTTP, next to
a bare aiohttp server (bench/baseline.py) on the same machine.

Each round starts a fresh single broker and a fresh baseline server, one after the other
in alternating order, each pinned to one CPU while the load client (this process) runs on
another. The client is cheap on purpose (raw keep-alive sockets, requests built once, one
request in flight per connection) so that the server is what saturates. Every load loop
ends after its window or deadline, and every server is stopped by PID and its files
removed, whatever happens. This module only measures: it never changes how a broker runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import math
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
from typing import Any

import orjson

from raftka.api.launcher import http_request
from raftka.api.ports import free_ports
from raftka.api.settings import (
    FSYNC_POLICIES,
    BrokerAddress,
    ClusterConfig,
    Settings,
    render_config,
)
from raftka.metadata.errors import RaftkaError

HOST = "127.0.0.1"
TOPIC = "t"
PRODUCE_PATH = f"/v1/topics/{TOPIC}/partitions/0/records?acks=1"
OFFSETS_PATH = f"/v1/topics/{TOPIC}/partitions/0/offsets"
FETCH_PATH = f"/v1/topics/{TOPIC}/partitions/0/records"
FETCH_MAX_BYTES = 1024 * 1024
# The broker's ceiling on records per fetch: FETCH_MAX_BYTES is what bounds each fetch.
FETCH_MAX_RECORDS = 100_000
FETCH_CONNECTIONS = (1, 4)
BODY_VARIANTS = 32  # distinct request bodies, sent in turn

READY_DEADLINE_S = 60.0
READY_POLL_S = 0.1
RESPONSE_TIMEOUT_S = 10.0
TOP_UP_DEADLINE_S = 30.0
FETCH_DEADLINE_S = 30.0
STOP_TIMEOUT_S = 15.0
HTTP_PROBE_TIMEOUT_S = 5.0
# The asyncio reader's buffer must hold a whole response head plus a 1 MiB fetch answer.
STREAM_LIMIT_BYTES = 8 * 1024 * 1024
LOG_TAIL_LINES = 20

BYTES_PER_MB = 1_000_000
US_PER_S = 1_000_000


class BenchError(RaftkaError):
    """A server did not start or answered badly: the run cannot give figures."""

    code = "BENCH_FAILED"


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
class CpuPlan:
    """Which CPU the servers and the load client run on; None: not pinned."""

    server_cpu: int | None
    client_cpu: int | None
    note: str


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


def make_bodies(options: BenchOptions) -> list[bytes]:
    """BODY_VARIANTS produce bodies of records {"key": "user-N", "value": <record_size chars>}."""
    value = ("0123456789" * (options.record_size // 10 + 1))[: options.record_size]
    bodies = []
    for variant in range(BODY_VARIANTS):
        first = variant * options.records_per_request
        records = [
            {"key": f"user-{first + i}", "value": value} for i in range(options.records_per_request)
        ]
        bodies.append(orjson.dumps({"records": records}))
    limit = Settings().max_request_bytes
    if max(len(b) for b in bodies) > limit:
        raise ValueError(f"a request body would exceed the broker's {limit} bytes limit")
    return bodies


def produce_requests(port: int, bodies: list[bytes]) -> list[bytes]:
    return [
        (
            f"POST {PRODUCE_PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for body in bodies
    ]


def fetch_request(port: int, offset: int) -> bytes:
    return (
        f"GET {FETCH_PATH}?offset={offset}&max_bytes={FETCH_MAX_BYTES}"
        f"&max_records={FETCH_MAX_RECORDS} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n"
    ).encode()


# -- the load client -------------------------------------------------------------------


def status_and_length(head: bytes) -> tuple[int, int]:
    """The status and Content-Length of an HTTP/1.1 response's head."""
    marker = head.lower().find(b"content-length:")
    if marker < 0:
        raise BenchError(f"a response without Content-Length: {head[:200]!r}")
    line_end = head.find(b"\r\n", marker)
    length = head[marker + len(b"content-length:") : line_end if line_end >= 0 else None]
    return int(head[9:12]), int(length)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length: (status, body)."""
    try:
        status, length = status_and_length(await reader.readuntil(b"\r\n\r\n"))
        return status, await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise BenchError("the server closed a connection in the middle of a response") from None


async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, what: str
) -> bytes:
    """Sends one request; returns the body of its 200 answer."""
    writer.write(request)
    status, body = await asyncio.wait_for(read_response(reader), RESPONSE_TIMEOUT_S)
    if status != 200:
        raise BenchError(f"{what}: HTTP {status} {body[:200]!r}")
    return body


@dataclass(slots=True)
class LoadCounters:
    counting: bool = False
    stopped: bool = False
    requests: int = 0
    limit: int | None = None  # stop after this many counted requests


async def produce_worker(
    port: int, requests: list[bytes], first: int, step: int, counters: LoadCounters
) -> None:
    """One keep-alive connection, one request in flight, until the counters say stop."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        k = first
        while not counters.stopped:
            await exchange(reader, writer, requests[k % len(requests)], "produce")
            k += step
            if counters.counting:
                counters.requests += 1
                if counters.limit is not None and counters.requests >= counters.limit:
                    counters.stopped = True
    finally:
        writer.close()


async def run_for(tasks: list[asyncio.Task[None]], seconds: float | None) -> None:
    """Waits `seconds` (None: until every task ends), or less if every task ends; a task's
    error is raised at once. Shared by every load client of bench/."""
    done, _ = await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        task.result()


async def stop_workers(tasks: list[asyncio.Task[None]]) -> None:
    """Lets in-flight requests finish (bounded), then cancels what is left."""
    _, pending = await asyncio.wait(tasks, timeout=RESPONSE_TIMEOUT_S)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def start_workers(
    port: int, requests: list[bytes], connections: int, counters: LoadCounters
) -> list[asyncio.Task[None]]:
    return [
        asyncio.create_task(produce_worker(port, requests, c, connections, counters))
        for c in range(connections)
    ]


async def produce_load(
    port: int, requests: list[bytes], body_bytes: float, options: BenchOptions
) -> ProduceResult:
    """Closed-loop produce: warm up, then count the answers of one window."""
    counters = LoadCounters()
    tasks = start_workers(port, requests, options.connections, counters)
    try:
        await run_for(tasks, options.warmup_s)
        counters.counting = True
        started = time.perf_counter()
        await run_for(tasks, options.window_s)
        done, elapsed = counters.requests, time.perf_counter() - started
    finally:
        counters.stopped = True
        await stop_workers(tasks)
    if done == 0:
        raise BenchError(f"no produce answered within the {options.window_s} s window")
    requests_per_s = done / elapsed
    return ProduceResult(
        requests_per_s=requests_per_s,
        records_per_s=requests_per_s * options.records_per_request,
        mb_per_s=requests_per_s * body_bytes / BYTES_PER_MB,
        us_per_request=US_PER_S / requests_per_s,
    )


async def top_up(port: int, requests: list[bytes], records: int, options: BenchOptions) -> None:
    """Produces about `records` more records, within TOP_UP_DEADLINE_S."""
    counters = LoadCounters(counting=True, limit=math.ceil(records / options.records_per_request))
    tasks = start_workers(port, requests, options.connections, counters)
    try:
        await run_for(tasks, TOP_UP_DEADLINE_S)
    finally:
        counters.stopped = True
        await stop_workers(tasks)


def next_offset_of(body: bytes) -> int:
    """The fetch answer ends with `],"next_offset":N,"high_watermark":...}`."""
    tail = body[body.rindex(b'"next_offset":') + len(b'"next_offset":') :]
    return int(tail[: tail.index(b",")])


async def fetch_range(port: int, start: int, stop: int, deadline: float) -> tuple[int, int, int]:
    """Sequential fetches of [start, stop) on one connection: (records, bytes, fetches)."""
    reader, writer = await asyncio.open_connection(HOST, port, limit=STREAM_LIMIT_BYTES)
    offset, records, received, fetches = start, 0, 0, 0
    try:
        while offset < stop and time.monotonic() < deadline:
            body = await exchange(reader, writer, fetch_request(port, offset), f"fetch {offset}")
            fetches += 1
            received += len(body)
            next_offset = next_offset_of(body)
            if next_offset <= offset:
                break
            records += min(next_offset, stop) - offset
            offset = next_offset
    finally:
        writer.close()
    return records, received, fetches


async def fetch_log(port: int, log_end: int, connections: int) -> FetchResult:
    """Reads [0, log_end) once, split into one contiguous range per connection."""
    deadline = time.monotonic() + FETCH_DEADLINE_S
    bounds = [log_end * i // connections for i in range(connections + 1)]
    started = time.perf_counter()
    parts = await asyncio.gather(
        *(fetch_range(port, bounds[i], bounds[i + 1], deadline) for i in range(connections))
    )
    elapsed = time.perf_counter() - started
    records = sum(p[0] for p in parts)
    return FetchResult(
        connections=connections,
        records=records,
        fetches=sum(p[2] for p in parts),
        records_per_s=records / elapsed,
        mb_per_s=sum(p[1] for p in parts) / elapsed / BYTES_PER_MB,
    )


# -- CPU pinning -----------------------------------------------------------------------


def plan_cpus() -> CpuPlan:
    if not hasattr(os, "sched_setaffinity"):
        return CpuPlan(None, None, "CPU pinning skipped: no os.sched_setaffinity here")
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return CpuPlan(
            None, None, "CPU pinning skipped: one CPU available, servers and client share it"
        )
    server, client = allowed[0], allowed[1]
    return CpuPlan(server, client, f"servers pinned to CPU {server}, load client to CPU {client}")


@contextmanager
def client_pinned(plan: CpuPlan) -> Iterator[None]:
    """This process on the client's CPU; its former affinity restored afterwards."""
    if plan.client_cpu is None:
        yield
        return
    former = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {plan.client_cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, former)


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


def wait_ready(server: ServerProcess, create_topic: bool) -> None:
    """Until the server accepts a produce to t-0 (after creating `t` on raftka)."""
    probe = {"records": [{"key": "probe", "value": "probe"}]}
    topic_ready = not create_topic
    deadline = time.monotonic() + READY_DEADLINE_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError(f"{server.name} exited at start:\n{server.log_tail()}")
        try:
            if not topic_ready:
                # 503 while the broker starts; 409 if an earlier attempt timed out but worked.
                status, _ = http_status(
                    server.port, "POST", "/v1/topics", {"name": TOPIC, "partitions": 1}
                )
                topic_ready = status in (201, 409)
            if topic_ready and http_status(server.port, "POST", PRODUCE_PATH, probe)[0] == 200:
                return
        except (OSError, http.client.HTTPException):
            pass  # not listening yet
        time.sleep(READY_POLL_S)
    raise BenchError(f"{server.name} not ready within {READY_DEADLINE_S} s:\n{server.log_tail()}")


@contextmanager
def raftka_broker(directory: Path, fsync: str, cpu: int | None) -> Iterator[ServerProcess]:
    """A one-broker cluster (its own metadata voter) with topic `t` of one partition."""
    http_port, raft_port = free_ports(2)
    config = ClusterConfig(
        cluster_id="bench",
        data_dir=directory / "data",
        brokers=(BrokerAddress(1, f"{HOST}:{http_port}", f"{HOST}:{raft_port}"),),
        settings=Settings(fsync=fsync),
    )
    directory.mkdir(parents=True)
    config_path = directory / "cluster.toml"
    config_path.write_text(render_config(config))
    command = [sys.executable, "-m", "raftka", "broker", "--config", str(config_path), "--id", "1"]
    with server_process("raftka", command, http_port, directory, cpu) as server:
        wait_ready(server, create_topic=True)
        yield server


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
        wait_ready(server, create_topic=False)
        yield server


# -- one round -------------------------------------------------------------------------


def log_end(port: int) -> int:
    status, body = http_status(port, "GET", OFFSETS_PATH)
    if status != 200:
        raise BenchError(f"offsets: HTTP {status} {body}")
    return int(body["offset"])


def measure_raftka(
    server: ServerProcess, bodies: list[bytes], body_bytes: float, options: BenchOptions
) -> tuple[ProduceResult, tuple[FetchResult, ...]]:
    requests = produce_requests(server.port, bodies)
    produce = asyncio.run(produce_load(server.port, requests, body_bytes, options))
    end = log_end(server.port)
    if end < options.fetch_records:
        asyncio.run(top_up(server.port, requests, options.fetch_records - end, options))
        end = log_end(server.port)
    fetches = tuple(asyncio.run(fetch_log(server.port, end, c)) for c in FETCH_CONNECTIONS)
    return produce, fetches


def measure_baseline(
    server: ServerProcess, bodies: list[bytes], body_bytes: float, options: BenchOptions
) -> ProduceResult:
    requests = produce_requests(server.port, bodies)
    return asyncio.run(produce_load(server.port, requests, body_bytes, options))


def run_round(
    index: int, root: Path, plan: CpuPlan, bodies: list[bytes], options: BenchOptions
) -> RoundResult:
    """Both servers, one at a time: raftka first in even rounds, the baseline in odd ones."""
    order = ("raftka", "baseline") if index % 2 == 0 else ("baseline", "raftka")
    body_bytes = statistics.mean(len(b) for b in bodies)
    raftka: ProduceResult | None = None
    baseline: ProduceResult | None = None
    fetches: tuple[FetchResult, ...] = ()
    for name in order:
        directory = root / f"round-{index}-{name}"
        if name == "raftka":
            with raftka_broker(directory, options.fsync, plan.server_cpu) as server:
                raftka, fetches = measure_raftka(server, bodies, body_bytes, options)
        else:
            with baseline_server(directory, plan.server_cpu) as server:
                baseline = measure_baseline(server, bodies, body_bytes, options)
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
    bodies = make_bodies(options)
    plan = plan_cpus()
    rounds: list[RoundResult] = []
    with (
        tempfile.TemporaryDirectory(prefix="raftka-bench-http-") as tmp,
        client_pinned(plan),
    ):
        for index in range(options.rounds):
            rounds.append(run_round(index, Path(tmp), plan, bodies, options))
            if progress is not None:
                progress(describe_round(rounds[-1]))
    return HttpBenchReport(
        options=options,
        cpu=plan,
        request_body_bytes=statistics.mean(len(b) for b in bodies),
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
