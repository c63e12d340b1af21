"""A small builder for hand-written histories: each method appends what a client, the
group coordinator's answers or the final reader would record, one tick apart."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from raftka.chaos.history import FINAL_READ, FINAL_READER, History, Op, OpType

TOPIC = "t"
Rec = tuple[int, int, Any]  # (partition, offset, value)


@dataclass
class Story:
    history: History = field(default_factory=History)
    clock: float = 0.0

    def _op(self, process: str | int, type_: OpType, f: str, value: Any = None, **kw: Any) -> Op:
        self.clock += 0.01
        op = Op(round(self.clock, 3), process, type_, f, value, **kw)
        self.history.append(op)
        return op

    def invoke(self, process: str | int, f: str, value: Any = None, **kw: Any) -> Story:
        self._op(process, OpType.INVOKE, f, value, **kw)
        return self

    def complete(
        self, process: str | int, type_: OpType, f: str, value: Any = None, **kw: Any
    ) -> Story:
        self._op(process, type_, f, value, **kw)
        return self

    def send(self, process: str | int, value: Any, partition: int, offset: int) -> Story:
        self.invoke(process, "send", value)
        return self.complete(
            process, OpType.OK, "send", value, topic=TOPIC, partition=partition, offset=offset
        )

    def send_unknown(self, process: str | int, value: Any, type_: OpType = OpType.INFO) -> Story:
        self.invoke(process, "send", value)
        return self.complete(process, type_, "send", value, error="timeout")

    def poll(
        self,
        process: str | int,
        *records: Rec,
        group: str | None = None,
        member: str | None = None,
        generation: int | None = None,
    ) -> Story:
        self.invoke(process, "poll", group=group, member_id=member, generation=generation)
        return self.complete(
            process,
            OpType.OK,
            "poll",
            [{"topic": TOPIC, "partition": p, "offset": o, "value": v} for p, o, v in records],
            group=group,
            member_id=member,
            generation=generation,
        )

    def member(
        self, process: str | int, f: str, group: str, member: str, generation: int, *parts: int
    ) -> Story:
        """An ok join or heartbeat answer with the member's assignment."""
        self.invoke(process, f, group=group)
        return self.complete(
            process,
            OpType.OK,
            f,
            group=group,
            member_id=member,
            generation=generation,
            assignment={TOPIC: list(parts)},
        )

    def commit(
        self,
        process: str | int,
        group: str,
        member: str,
        generation: int,
        partition: int,
        offset: int,
    ) -> Story:
        offsets = [{"topic": TOPIC, "partition": partition, "offset": offset}]
        kw = {"group": group, "member_id": member, "generation": generation, "offsets": offsets}
        self.invoke(process, "commit", **kw)
        return self.complete(process, OpType.OK, "commit", **kw)

    def final(self, partition: int, *records: tuple[int, Any]) -> Story:
        value = [
            {"topic": TOPIC, "partition": partition, "offset": o, "value": v} for o, v in records
        ]
        return self.complete(
            FINAL_READER, OpType.OK, FINAL_READ, value, topic=TOPIC, partition=partition
        )
