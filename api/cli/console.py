"""The console producer and consumer behind `raftka produce` and `raftka consume`, and the
`raftka group describe` view: thin loops over `raftka.client.aio`.

`consume --group` is a real group member: it commits what it printed and leaves the group
when it stops (Ctrl-C, SIGTERM, or `--max-records` reached).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from typing import Any, TextIO

import orjson
from rich.console import Console
from rich.table import Table

from raftka.client.aio import Admin, Consumer, Producer
from raftka.client.records import record_json

# Lines read ahead of the producer; `send` pushes back past its own buffer too.
READ_AHEAD_LINES = 2000
POLL_TIMEOUT_S = 1.0


async def produce_lines(
    bootstrap: str, topic: str, acks: str, key_separator: str | None, stream: TextIO
) -> None:
    """Sends the stream's lines as records: a pipe's lines go in large batches, a line a
    person types goes at once (the producer lingers only milliseconds). Raises the first
    error any record met."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=READ_AHEAD_LINES)

    def read_lines() -> None:
        for line in stream:
            asyncio.run_coroutine_threadsafe(queue.put(line.rstrip("\n")), loop).result()
        asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()

    reader = loop.run_in_executor(None, read_lines)
    failures: list[BaseException] = []

    def check(future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None and not failures:
            failures.append(future.exception())  # type: ignore[arg-type]

    async with Producer(bootstrap, acks=acks, idempotent=acks == "all") as producer:
        while (line := await queue.get()) is not None and not failures:
            key: str | None = None
            value = line
            if key_separator is not None and key_separator in line:
                key, value = line.split(key_separator, 1)
            (await producer.send(topic, value, key=key)).add_done_callback(check)
        await producer.flush()
    if failures:
        reader.cancel()
        raise failures[0]
    await reader


def _print(records: list[Any]) -> None:
    for record in records:
        sys.stdout.write(orjson.dumps(record_json(record)).decode() + "\n")
    sys.stdout.flush()


async def consume_records(
    bootstrap: str,
    topic: str,
    from_beginning: bool,
    max_records: int | None,
    group: str | None = None,
) -> None:
    """Prints records as JSON lines until `max_records` were printed, or until Ctrl-C or
    SIGTERM. Without a group it reads every partition of the topic from the earliest or
    latest offset; with one it is a group member (positions are the group's committed
    offsets) that commits what it printed and leaves the group at the end."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    consumer: Consumer
    if group is None:
        async with Admin(bootstrap) as admin:
            described = await admin.describe_topic(topic)
        start = "earliest" if from_beginning else "latest"
        consumer = Consumer(
            bootstrap, assign=[(topic, p["partition"], start) for p in described["partitions"]]
        )
    else:
        consumer = Consumer(bootstrap, group=group, topics=[topic])
    printed = 0
    try:
        await consumer.start()
        while not stop.is_set():
            poll = asyncio.ensure_future(consumer.poll(POLL_TIMEOUT_S))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({poll, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not poll.done():
                poll.cancel()
                break
            records = poll.result()
            if max_records is not None:
                records = records[: max_records - printed]
            _print(records)
            printed += len(records)
            if group is not None and records:
                await consumer.commit({(r.topic, r.partition): r.offset + 1 for r in records})
            if max_records is not None and printed >= max_records:
                break
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)
        await consumer.close()


async def fetch_group(bootstrap: str, group: str) -> dict[str, Any]:
    async with Admin(bootstrap) as admin:
        described, offsets = await asyncio.gather(
            admin.describe_group(group), admin.group_offsets(group)
        )
    return {"group": group, "description": described, "offsets": offsets}


def print_group(view: dict[str, Any]) -> None:
    console = Console()
    d = view["description"]
    console.print(
        f"group [bold]{view['group']}[/bold]   state: {d.get('state')}   "
        f"generation: {d.get('generation')}"
    )
    members = Table(title="members", title_justify="left")
    members.add_column("member")
    members.add_column("assignment")
    for m in d.get("members", []):
        assignment = m.get("assignment") or {}
        members.add_row(
            str(m["member_id"]),
            "  ".join(
                f"{t}:{','.join(str(p) for p in sorted(ps))}"
                for t, ps in sorted(assignment.items())
            )
            or "-",
        )
    console.print(members)
    offsets = Table(title="offsets", title_justify="left")
    for column in ("topic", "partition", "committed offset", "lag"):
        offsets.add_column(column, justify="left" if column == "topic" else "right")
    for o in sorted(view["offsets"], key=lambda o: (o["topic"], o["partition"])):
        offsets.add_row(
            o["topic"],
            str(o["partition"]),
            "-" if o.get("offset") is None else str(o["offset"]),
            "?" if o.get("lag") is None else str(o["lag"]),
        )
    console.print(offsets)
