"""The chaos workload: real clients (`raftka.client.aio`) driving a cluster, every
operation of theirs recorded in the history.

Owns the producers (idempotent, acks=all, one send in flight per process, each value
unique), the consumer group's members (polls, commits, joins and heartbeats as the
client sees them) and the members' churn (a member leaves cleanly, or dies without a
word, and a new one takes its slot). It never injects faults and never judges: the
nemesis does the one, the checker the other. It reaches brokers only through the
client, over HTTP, as any user would.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from raftka.chaos.history import (
    COMMIT,
    FINAL_READ,
    FINAL_READER,
    HEARTBEAT,
    JOIN,
    LEAVE,
    POLL,
    SEND,
    HistoryWriter,
    Op,
    OpType,
)
from raftka.client.aio import Admin, Consumer, Producer, RaftkaError

POLL_TIMEOUT_S = 0.5
CLOSE_TIMEOUT_S = 10.0
FINAL_READ_DEADLINE_S = 60.0
FINAL_READ_PAGE = 5_000


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    topic: str
    partitions: int
    producers: int = 4  # processes, one send in flight each
    send_interval_s: float = 0.01
    members: int = 3
    group: str = "chaos"
    session_timeout_ms: int = 3_000
    churn_interval_s: float = 8.0  # how often a member leaves or dies (0: never)
    delivery_timeout_ms: int = 30_000
    acks: str = "all"  # acks=1 may lose acknowledged records to a leader change


class Workload:
    def __init__(
        self,
        bootstrap: list[str],
        config: WorkloadConfig,
        history: HistoryWriter,
        now: Callable[[], float],
        rng: random.Random,
    ) -> None:
        self._bootstrap = bootstrap
        self._config = config
        self._history = history
        self._now = now
        self._rng = rng
        self._members: dict[int, Consumer] = {}
        self.errors = 0

    def _record(self, process: str, type_: OpType, f: str, **fields: Any) -> None:
        self._history.append(Op(time=self._now(), process=process, type=type_, f=f, **fields))

    async def run(self, stop: asyncio.Event) -> None:
        producer = Producer(
            self._bootstrap,
            acks=self._config.acks,
            idempotent=True,
            linger_ms=1,
            delivery_timeout_ms=self._config.delivery_timeout_ms,
        )
        try:
            tasks = [
                asyncio.ensure_future(self._produce(producer, i, stop))
                for i in range(self._config.producers)
            ]
            tasks += [
                asyncio.ensure_future(self._consume(slot, stop))
                for slot in range(self._config.members)
            ]
            if self._config.churn_interval_s > 0:
                tasks.append(asyncio.ensure_future(self._churn(stop)))
            await asyncio.gather(*tasks)
        finally:
            with contextlib.suppress(RaftkaError, TimeoutError):
                await asyncio.wait_for(producer.close(), CLOSE_TIMEOUT_S)

    # -- producers -------------------------------------------------------------

    async def _produce(self, producer: Producer, index: int, stop: asyncio.Event) -> None:
        process = f"producer-{index}"
        topic = self._config.topic
        n = 0
        while not stop.is_set():
            value = f"{index}-{n}"
            partition = (index + n) % self._config.partitions
            n += 1
            self._record(
                process, OpType.INVOKE, SEND, value=value, topic=topic, partition=partition
            )
            try:
                at, offset = await producer.send_and_wait(topic, value, partition=partition)
            except RaftkaError as exc:
                # Retried until the delivery timeout: it may have been written anyway.
                self.errors += 1
                self._record(process, OpType.INFO, SEND, value=value, error=str(exc))
            else:
                self._record(
                    process, OpType.OK, SEND, value=value, topic=topic, partition=at, offset=offset
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._config.send_interval_s)

    # -- the consumer group ------------------------------------------------------

    def _membership_listener(
        self, slot: int
    ) -> Callable[[str, str, int, dict[str, list[int]]], None]:
        process = f"member-{slot}-membership"
        group = self._config.group

        def tell(
            event: str, member_id: str, generation: int, assignment: dict[str, list[int]]
        ) -> None:
            f = JOIN if event == "join" else HEARTBEAT
            fields: dict[str, Any] = {
                "group": group,
                "member_id": member_id,
                "generation": generation,
            }
            self._record(process, OpType.INVOKE, f, **fields)
            self._record(process, OpType.OK, f, assignment=assignment, **fields)

        return tell

    def _new_member(self, slot: int) -> Consumer:
        return Consumer(
            self._bootstrap,
            group=self._config.group,
            topics=[self._config.topic],
            session_timeout_ms=self._config.session_timeout_ms,
            membership_listener=self._membership_listener(slot),
        )

    async def _consume(self, slot: int, stop: asyncio.Event) -> None:
        process = f"member-{slot}"
        group = self._config.group
        while not stop.is_set():
            member = self._members.get(slot)
            if member is None:
                member = self._members[slot] = self._new_member(slot)
            self._record(process, OpType.INVOKE, POLL, group=group)
            try:
                records = await member.poll(POLL_TIMEOUT_S)
            except RaftkaError as exc:
                self.errors += 1
                self._record(process, OpType.FAIL, POLL, group=group, error=str(exc))
                await self._pause(stop)
                continue
            self._record(
                process,
                OpType.OK,
                POLL,
                group=group,
                member_id=member.member_id,
                generation=member.generation,
                value=[
                    {
                        "topic": r.topic,
                        "partition": r.partition,
                        "offset": r.offset,
                        "value": r.value,
                    }
                    for r in records
                ],
            )
            if records and self._members.get(slot) is member:
                await self._commit(process, member, records)

    async def _commit(self, process: str, member: Consumer, records: list[Any]) -> None:
        upto: dict[tuple[str, int], int] = {}
        for r in records:
            upto[(r.topic, r.partition)] = max(upto.get((r.topic, r.partition), 0), r.offset + 1)
        offsets = [{"topic": t, "partition": p, "offset": o} for (t, p), o in sorted(upto.items())]
        fields = {"group": self._config.group, "member_id": member.member_id, "offsets": offsets}
        self._record(process, OpType.INVOKE, COMMIT, generation=member.generation, **fields)
        try:
            await member.commit(upto)
        except RaftkaError as exc:
            # A refused commit (409, 404) stored nothing; a 503 or a timeout may have.
            certain = exc.status in (404, 409)
            self._record(
                process,
                OpType.FAIL if certain else OpType.INFO,
                COMMIT,
                generation=member.generation,
                error=str(exc),
                **fields,
            )
        else:
            self._record(process, OpType.OK, COMMIT, generation=member.generation, **fields)

    async def _churn(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._config.churn_interval_s)
            if stop.is_set():
                return
            slot = self._rng.randrange(self._config.members)
            member = self._members.pop(slot, None)
            if member is None:
                continue
            process = f"member-{slot}-lifecycle"
            fields = {"group": self._config.group, "member_id": member.member_id}
            if self._rng.random() < 0.5:
                self._record(process, OpType.INVOKE, LEAVE, **fields)
                try:
                    await asyncio.wait_for(member.close(), CLOSE_TIMEOUT_S)
                except (RaftkaError, TimeoutError) as exc:
                    self._record(process, OpType.INFO, LEAVE, error=str(exc), **fields)
                else:
                    self._record(process, OpType.OK, LEAVE, **fields)
            else:
                # Dies without a word: the group finds out when its session times out.
                self._record(process, OpType.INFO, "crash", **fields)
                await member.abort()

    async def _pause(self, stop: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_TIMEOUT_S)

    async def close(self) -> None:
        for member in list(self._members.values()):
            with contextlib.suppress(RaftkaError, TimeoutError):
                await asyncio.wait_for(member.close(), CLOSE_TIMEOUT_S)
        self._members.clear()


async def final_read(
    bootstrap: list[str],
    topic: str,
    partitions: int,
    history: HistoryWriter,
    now: Callable[[], float],
) -> None:
    """Reads every partition from its first offset to its high watermark and records
    each as one `final-read` op (the checker's ground truth for lost records)."""
    async with Admin(bootstrap) as admin:
        for partition in range(partitions):
            history.append(
                Op(now(), FINAL_READER, OpType.INVOKE, FINAL_READ, topic=topic, partition=partition)
            )
            try:
                records = await asyncio.wait_for(
                    _read_partition(bootstrap, admin, topic, partition), FINAL_READ_DEADLINE_S
                )
            except (RaftkaError, TimeoutError) as exc:
                history.append(
                    Op(
                        now(),
                        FINAL_READER,
                        OpType.INFO,
                        FINAL_READ,
                        topic=topic,
                        partition=partition,
                        error=str(exc) or type(exc).__name__,
                    )
                )
                continue
            history.append(
                Op(
                    now(),
                    FINAL_READER,
                    OpType.OK,
                    FINAL_READ,
                    topic=topic,
                    partition=partition,
                    value=records,
                )
            )


async def _read_partition(
    bootstrap: list[str], admin: Admin, topic: str, partition: int
) -> list[dict[str, Any]]:
    end = int(await admin.offset(topic, partition, "latest"))
    start = int(await admin.offset(topic, partition, "earliest"))
    out: list[dict[str, Any]] = []
    if end <= start:
        return out
    async with Consumer(
        bootstrap, assign=[(topic, partition, start)], max_poll_records=FINAL_READ_PAGE
    ) as reader:
        while not out or out[-1]["offset"] < end - 1:
            for r in await reader.poll(POLL_TIMEOUT_S):
                if r.offset < end:
                    out.append(
                        {
                            "topic": topic,
                            "partition": partition,
                            "offset": r.offset,
                            "value": r.value,
                        }
                    )
    return out
