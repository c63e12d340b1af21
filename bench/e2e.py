"""`raftka bench e2e`: produce-to-consume latency at a fixed rate, through the Python
client (`raftka.client.aio`), as an application would see it.

Record i is due at start + i / rate. The producer sends every due record each tick,
stamped with its due time, so a late tick or a full buffer shows up as latency instead of
silently lowering the rate (no coordinated omission). A consumer assigned to every
partition from its log end offset reads them back; latency is the time from a record's
due time to the moment `poll` hands it over. The producer batches for `linger_ms`, as
Kafka's does, so that is part of the figure. Only records of this run (their value
carries the run's id) are counted. The time to the producer's acknowledgement is given
too, which tells the write path's share from the read path's.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from raftka.bench.errors import BenchError
from raftka.bench.figures import Latency, latency, rate
from raftka.bench.load import Progress, report_progress
from raftka.bench.targets import ACKS
from raftka.client.aio import Admin, Consumer, Producer

TICK_S = 0.001
POLL_S = 0.5
DRAIN_DEADLINE_S = 30.0  # after the last send: every record read back, or the run fails
# The JSON around the padding: {"run":"<16 hex>","t":<float>,"pad":""}.
VALUE_OVERHEAD_BYTES = 52


@dataclass(frozen=True, slots=True)
class E2ESpec:
    rate: int = 10_000  # records/s
    duration_s: float = 10.0
    record_size: int = 100
    acks: str = "all"
    linger_ms: int = 5

    def __post_init__(self) -> None:
        if self.rate < 1 or self.duration_s <= 0 or self.record_size < 1 or self.linger_ms < 0:
            raise ValueError("rate, duration and record size must be positive, linger >= 0")
        if self.acks not in ACKS:
            raise ValueError(f"acks must be one of {', '.join(ACKS)}")

    @property
    def records(self) -> int:
        return max(1, math.ceil(self.rate * self.duration_s))


@dataclass(frozen=True, slots=True)
class E2EResult:
    sent: int
    received: int
    send_s: float  # from the first due time to the last send
    sent_per_s: float  # the rate achieved
    latency: Latency  # due time -> read by the consumer
    ack_latency: Latency  # due time -> acknowledged to the producer


async def end_to_end(
    bootstrap: str,
    topic: str,
    spec: E2ESpec,
    *,
    token: str | None = None,
    cacert: str | None = None,
    progress: Progress | None = None,
) -> E2EResult:
    async with Admin(bootstrap, token=token, cacert=cacert) as admin:
        doc: Any = await admin.describe_topic(topic)
        partitions = sorted(p["partition"] for p in doc["partitions"])
        starts = [await admin.offset(topic, p, "latest") for p in partitions]
    run = secrets.token_hex(8)
    pad = "x" * max(0, spec.record_size - VALUE_OVERHEAD_BYTES)
    total = spec.records
    latencies_s: list[float] = []
    acks_s: list[float] = []

    failures: list[BaseException] = []

    def acknowledged(due: float) -> Callable[[asyncio.Future[Any]], None]:
        # The futures are not kept: 10,000 a second of them (with their records and
        # callbacks) would soon make each of Python's full garbage collections a pause of
        # 100+ ms in this process, which the latencies would show as the broker's.
        def settle(future: asyncio.Future[Any]) -> None:
            error = None if future.cancelled() else future.exception()
            if future.cancelled() or error is not None:
                failures.append(error or asyncio.CancelledError())
            else:
                acks_s.append(time.perf_counter() - due)

        return settle

    async def receive(consumer: Consumer) -> None:
        while len(latencies_s) < total:
            records = await consumer.poll(POLL_S)
            now = time.perf_counter()
            for r in records:
                v = r.value
                if isinstance(v, dict) and v.get("run") == run:
                    latencies_s.append(now - v["t"])

    consumer = Consumer(
        bootstrap,
        assign=[(topic, p, start) for p, start in zip(partitions, starts, strict=True)],
        token=token,
        cacert=cacert,
    )
    producer = Producer(
        bootstrap,
        acks=spec.acks,
        linger_ms=spec.linger_ms,
        idempotent=spec.acks == "all",
        token=token,
        cacert=cacert,
    )
    async with consumer, producer:
        # Everything made so far (modules, clients) lives through the run: out of the
        # collector's sight, a full collection in this process no longer stalls it for tens
        # of milliseconds, which the latencies would show as the cluster's.
        gc.freeze()
        receiver = asyncio.create_task(receive(consumer))
        ticker = None
        if progress is not None:
            ticker = asyncio.create_task(report_progress(lambda: len(latencies_s), progress))
        try:
            sent = 0
            start = time.perf_counter()
            while sent < total:
                due = min(total, int((time.perf_counter() - start) * spec.rate) + 1)
                for i in range(sent, due):
                    due_at = start + i / spec.rate
                    future = await producer.send(topic, {"run": run, "t": due_at, "pad": pad})
                    future.add_done_callback(acknowledged(due_at))
                sent = due
                await asyncio.sleep(TICK_S)
            send_s = time.perf_counter() - start
            await producer.flush()
            if failures:
                raise BenchError(f"{len(failures)} of {sent} records failed: {failures[0]!r}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(receiver), DRAIN_DEADLINE_S)
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
            if ticker is not None:
                ticker.cancel()
    if progress is not None:
        progress(len(latencies_s))
    if len(latencies_s) < sent:
        raise BenchError(
            f"read back {len(latencies_s)} of {sent} records within {DRAIN_DEADLINE_S} s"
        )
    return E2EResult(
        sent=sent,
        received=len(latencies_s),
        send_s=send_s,
        sent_per_s=rate(sent, send_s),
        latency=latency(latencies_s),
        ack_latency=latency(acks_s),
    )
