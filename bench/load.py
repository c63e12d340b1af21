"""The load client of every `raftka bench` command that produces or consumes (produce,
consume, http, replication, suite): raw keep-alive connections, requests built before
timing starts, one request in flight per connection, so that the brokers saturate before
this process does.

Produce runs until a number of records is acknowledged, or for a time window after a
warm-up (the suite's mode). Every request is timed as the client sees it; a request
answered with an error is counted and sent again after a short pause, as a client would.
Consume reads each partition from its log start offset to the high watermark it had when
the run began, and counts the offsets it read. This module only measures: it starts no
broker and changes nothing about one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from raftka.bench import answer_reader
from raftka.bench.errors import BenchError
from raftka.bench.figures import BYTES_PER_MB, Latency, latency, rate
from raftka.bench.targets import ACKS, Target, fetch_request, produce_request

RESPONSE_TIMEOUT_S = 45.0  # above a broker's request_timeout_ms: acks=all answers 504 first
ERROR_BACKOFF_S = 0.02
MAX_ERRORS_IN_A_ROW = 250  # ~5 s of errors on one connection: the run cannot give figures
PROGRESS_INTERVAL_S = 0.25
FIRST_ANSWER_POLL_S = 0.01
DEFAULT_FETCH_MAX_BYTES = 1024 * 1024
# The broker's ceiling on records per fetch: max_bytes is what bounds each fetch.
FETCH_MAX_RECORDS = 100_000
# A fetch answer ends with its offsets: `],"next_offset":N,"high_watermark":N,...}`.
TAIL_BYTES = 256
BODY_VARIANTS = 16  # distinct full request bodies, sent in turn

Progress = Callable[[int], None]  # told the records done so far, a few times a second


@dataclass(frozen=True, slots=True)
class ProduceSpec:
    records: int | None = 1_000_000  # None: for `window_s` after `warmup_s`
    record_size: int = 100
    batch: int = 200
    acks: str = "1"
    concurrency: int = 8
    window_s: float = 0.0
    warmup_s: float = 0.0
    keyed: bool = False  # records with keys "user-N" (to the partition the target names)

    def __post_init__(self) -> None:
        for name in ("record_size", "batch", "concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.acks not in ACKS:
            raise ValueError(f"acks must be one of {', '.join(ACKS)}")
        if self.records is None:
            if self.window_s <= 0 or self.warmup_s < 0:
                raise ValueError("a timed run needs a positive window and a warm-up >= 0")
        elif self.records < 1:
            raise ValueError("records must be at least 1")


@dataclass(frozen=True, slots=True)
class ProduceResult:
    records: int  # acknowledged in the counted part
    requests: int
    errors: int  # error answers, each retried
    elapsed_s: float
    records_per_s: float
    mb_per_s: float  # of record values, as kafka-producer-perf-test counts
    latency: Latency  # per request, send to answer


@dataclass(frozen=True, slots=True)
class ConsumeResult:
    records: int  # offsets read
    expected: int  # offsets between log start and high watermark when the run began
    fetches: int
    bytes: int  # of fetch answers
    elapsed_s: float
    records_per_s: float
    mb_per_s: float


# -- the connections -------------------------------------------------------------------


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


def next_offset_of(body: bytes) -> int:
    """The fetch answer ends with `],"next_offset":N,"high_watermark":...}`."""
    tail = body[body.rindex(b'"next_offset":') + len(b'"next_offset":') :]
    return int(tail[: tail.index(b",")])


# -- produce ---------------------------------------------------------------------------


def record_value(size: int) -> str:
    return ("0123456789" * (size // 10 + 1))[:size]


def produce_body(count: int, size: int, variant: int, keyed: bool = False) -> bytes:
    """`count` records whose values are `size` characters, keyless or keyed "user-N";
    variants differ in their first characters (and keys) so that no two bodies in a row
    are the same bytes."""
    value = record_value(size)
    tag = f"{variant:x}"
    values = [(tag + value)[:size] for _ in range(count)]
    if keyed:
        first = variant * count
        keyed_records = [{"key": f"user-{first + i}", "value": v} for i, v in enumerate(values)]
        return orjson.dumps({"records": keyed_records})
    return orjson.dumps({"records": [{"value": v} for v in values]})


class WindowWatch(Protocol):
    """Told when a timed run's counted window starts and ends (to read CPU clocks over it)."""

    def started(self) -> None: ...

    def ended(self) -> None: ...


@dataclass(slots=True)
class ProduceState:
    """Shared by the connections of one run."""

    spec: ProduceSpec
    unclaimed: int | None  # records not yet given to a request (records mode)
    counting: bool = False
    stopped: bool = False
    records: int = 0
    requests: int = 0
    errors: int = 0
    latencies_s: list[float] = field(default_factory=list)

    def claim(self) -> int:
        """How many records the next request carries; 0: stop."""
        if self.stopped:
            return 0
        if self.unclaimed is None:
            return self.spec.batch
        count = min(self.spec.batch, self.unclaimed)
        self.unclaimed -= count
        return count


async def produce_worker(
    target: Target, full: list[bytes], last: bytes | None, first: int, state: ProduceState
) -> None:
    """One connection, one request in flight; a request that failed is sent again."""
    endpoint = target.endpoint
    connection = await answer_reader.connect(endpoint.host, endpoint.port, endpoint.tls)
    try:
        k = first
        while count := state.claim():
            request = full[k % len(full)] if count == state.spec.batch else last
            assert request is not None
            k += 1
            errors_in_a_row = 0
            while True:
                started = time.perf_counter()
                status, body = await asyncio.wait_for(
                    connection.exchange(request), RESPONSE_TIMEOUT_S
                )
                elapsed = time.perf_counter() - started
                if status == 200:
                    break
                state.errors += 1
                errors_in_a_row += 1
                if errors_in_a_row >= MAX_ERRORS_IN_A_ROW:
                    raise BenchError(
                        f"produce to {target.topic}-{target.partition}: {bytes(body[:300])!r}"
                    )
                await asyncio.sleep(ERROR_BACKOFF_S)
            if state.counting:
                state.records += count
                state.requests += 1
                state.latencies_s.append(elapsed)
    finally:
        connection.close()


async def report_progress(done: Callable[[], int], progress: Progress) -> None:
    while True:
        progress(done())
        await asyncio.sleep(PROGRESS_INTERVAL_S)


async def produce(
    targets: list[Target],
    spec: ProduceSpec,
    progress: Progress | None = None,
    watch: WindowWatch | None = None,
) -> ProduceResult:
    """Connection c sends to targets[c % len(targets)] until the records are acknowledged
    (or the window ends, which `watch` is told of)."""
    if not targets:
        raise ValueError("no partition to produce to")
    state = ProduceState(spec, spec.records, counting=spec.records is not None)
    tasks = []
    for c in range(spec.concurrency):
        target = targets[c % len(targets)]
        full = [
            produce_request(
                target, spec.acks, produce_body(spec.batch, spec.record_size, v, spec.keyed)
            )
            for v in range(BODY_VARIANTS)
        ]
        rest = (spec.records or 0) % spec.batch
        last = (
            produce_request(target, spec.acks, produce_body(rest, spec.record_size, 0, spec.keyed))
            if rest
            else None
        )
        tasks.append(asyncio.create_task(produce_worker(target, full, last, c, state)))
    ticker = None
    if progress is not None:
        ticker = asyncio.create_task(report_progress(lambda: state.records, progress))
    try:
        if spec.records is None:
            await run_for(tasks, spec.warmup_s)
            state.counting = True
            started = time.perf_counter()
            if watch is not None:
                watch.started()
            await run_for(tasks, spec.window_s)
            # A window shorter than one answer (acks=all on a busy machine) is held open
            # until the first answer, so that a figure exists.
            deadline = time.monotonic() + RESPONSE_TIMEOUT_S
            while state.requests == 0 and time.monotonic() < deadline:
                await run_for(tasks, FIRST_ANSWER_POLL_S)
            state.counting = False
            if watch is not None:
                watch.ended()
        else:
            started = time.perf_counter()
            await run_for(tasks, None)
        elapsed = time.perf_counter() - started
    finally:
        state.stopped = True
        await stop_workers(tasks)
        if ticker is not None:
            ticker.cancel()
    if progress is not None:
        progress(state.records)
    if state.requests == 0:
        where = ", ".join(sorted({f"{t.topic}-{t.partition}" for t in targets}))
        raise BenchError(f"no produce request to {where} was acknowledged")
    return ProduceResult(
        records=state.records,
        requests=state.requests,
        errors=state.errors,
        elapsed_s=elapsed,
        records_per_s=rate(state.records, elapsed),
        mb_per_s=rate(state.records * spec.record_size / BYTES_PER_MB, elapsed),
        latency=latency(state.latencies_s),
    )


# -- consume ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchRange:
    target: Target
    start: int
    stop: int


def split_ranges(
    targets: list[Target], bounds: list[tuple[int, int]], connections: int
) -> list[FetchRange]:
    """Each partition's [start, stop) cut into contiguous pieces, so that `connections`
    readers have work when there are fewer partitions than connections."""
    pieces = max(1, connections // max(1, len(targets)))
    ranges = []
    for target, (start, stop) in zip(targets, bounds, strict=True):
        cuts = [start + (stop - start) * i // pieces for i in range(pieces + 1)]
        ranges += [FetchRange(target, a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]
    return ranges


@dataclass(slots=True)
class ConsumeState:
    ranges: list[FetchRange]
    max_bytes: int
    records: int = 0
    fetches: int = 0
    bytes: int = 0


async def consume_worker(state: ConsumeState) -> None:
    """Takes ranges until none is left; reads each with sequential fetches."""
    while state.ranges:
        r = state.ranges.pop()
        endpoint = r.target.endpoint
        connection = await answer_reader.connect(endpoint.host, endpoint.port, endpoint.tls)
        try:
            offset = r.start
            while offset < r.stop:
                request = fetch_request(r.target, offset, state.max_bytes, FETCH_MAX_RECORDS)
                status, body = await asyncio.wait_for(
                    connection.exchange(request), RESPONSE_TIMEOUT_S
                )
                if status != 200:
                    raise BenchError(
                        f"fetch {r.target.topic}-{r.target.partition}@{offset}: "
                        f"HTTP {status} {bytes(body[:300])!r}"
                    )
                state.fetches += 1
                state.bytes += len(body)
                next_offset = next_offset_of(bytes(body[-TAIL_BYTES:]))
                if next_offset <= offset:
                    raise BenchError(
                        f"fetch {r.target.topic}-{r.target.partition}@{offset} returned nothing "
                        f"below {r.stop}"
                    )
                state.records += min(next_offset, r.stop) - offset
                offset = next_offset
        finally:
            connection.close()


async def consume(
    targets: list[Target],
    bounds: list[tuple[int, int]],
    connections: int = 1,
    max_bytes: int = DEFAULT_FETCH_MAX_BYTES,
    progress: Progress | None = None,
) -> ConsumeResult:
    """Reads every target's [start, stop) of `bounds` once."""
    if connections < 1 or max_bytes < 1:
        raise ValueError("connections and max_bytes must be at least 1")
    ranges = split_ranges(targets, bounds, connections)
    # Longest first: pop() takes from the end.
    ranges.sort(key=lambda r: r.stop - r.start)
    state = ConsumeState(ranges, max_bytes)
    ticker = None
    if progress is not None:
        ticker = asyncio.create_task(report_progress(lambda: state.records, progress))
    started = time.perf_counter()
    try:
        tasks = [asyncio.create_task(consume_worker(state)) for _ in range(connections)]
        try:
            await run_for(tasks, None)
        finally:
            await stop_workers(tasks)
    finally:
        if ticker is not None:
            ticker.cancel()
    elapsed = time.perf_counter() - started
    if progress is not None:
        progress(state.records)
    return ConsumeResult(
        records=state.records,
        expected=sum(stop - start for start, stop in bounds),
        fetches=state.fetches,
        bytes=state.bytes,
        elapsed_s=elapsed,
        records_per_s=rate(state.records, elapsed),
        mb_per_s=rate(state.bytes / BYTES_PER_MB, elapsed),
    )
