"""The console producer and consumer behind `raftka produce` and `raftka consume`."""

from __future__ import annotations

import asyncio
import sys
from typing import Any, TextIO

import orjson

from raftka.api.client import RaftkaClient

PRODUCE_BATCH_RECORDS = 500
LONG_POLL_MS = 1000


async def produce_lines(
    bootstrap: str, topic: str, acks: str, key_separator: str | None, stream: TextIO
) -> None:
    """Sends the stream's lines as records, batching what is already there (a pipe) and
    sending at once what a person types (a terminal)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=PRODUCE_BATCH_RECORDS * 4)

    def read_lines() -> None:
        for line in stream:
            asyncio.run_coroutine_threadsafe(queue.put(line.rstrip("\n")), loop).result()
        asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()

    reader = loop.run_in_executor(None, read_lines)
    async with RaftkaClient(bootstrap) as client:
        done = False
        while not done:
            batch: list[dict[str, Any]] = []
            line = await queue.get()
            while True:
                if line is None:
                    done = True
                    break
                batch.append(_record(line, key_separator))
                if len(batch) >= PRODUCE_BATCH_RECORDS or queue.empty():
                    break
                line = queue.get_nowait()
            if batch:
                await client.produce(topic, batch, acks)
    await reader


def _record(line: str, key_separator: str | None) -> dict[str, Any]:
    if key_separator is not None and key_separator in line:
        key, value = line.split(key_separator, 1)
        return {"key": key, "value": value}
    return {"key": None, "value": line}


async def consume_records(
    bootstrap: str, topic: str, from_beginning: bool, max_records: int | None
) -> None:
    """Reads every partition of the topic and prints records as JSON lines until
    `max_records` were printed (or forever)."""
    async with RaftkaClient(bootstrap) as client:
        described = await client.describe_topic(topic)
        partitions = [p["partition"] for p in described["partitions"]]
        printed = 0
        done = asyncio.Event()
        lock = asyncio.Lock()

        async def follow(partition: int) -> None:
            nonlocal printed
            offset = await client.offset(
                topic, partition, "earliest" if from_beginning else "latest"
            )
            while not done.is_set():
                answer = await client.fetch(topic, partition, offset or 0, max_wait_ms=LONG_POLL_MS)
                async with lock:
                    for record in answer["records"]:
                        if done.is_set():
                            return
                        out = {"topic": topic, "partition": partition, **record}
                        sys.stdout.write(orjson.dumps(out).decode() + "\n")
                        printed += 1
                        if max_records is not None and printed >= max_records:
                            done.set()
                    sys.stdout.flush()
                offset = answer["next_offset"]

        tasks = [asyncio.ensure_future(follow(p)) for p in partitions]
        try:
            waiter = asyncio.ensure_future(done.wait())
            finished, _ = await asyncio.wait({waiter, *tasks}, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                if task is not waiter and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
