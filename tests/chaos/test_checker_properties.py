"""Property tests of the checker: histories of a simple correct model always pass, and one
injected anomaly of a chosen kind is always caught, by exactly its invariant.

The model: clients send to partitions (acknowledged at the next offset, or failed, or
unknown either way); plain readers read prefixes from their positions; one group's
members split the partitions per generation, read from their positions and commit what
they read; a rebalance or a coordinator takeover restarts positions at the committed
offsets; the final read returns every partition whole.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from raftka.chaos.checker import (
    COMMITS_MONOTONIC,
    DIVERGENCE,
    DUPLICATED,
    EXCLUSIVE_ASSIGNMENT,
    LOST,
    OFFSET_MISMATCH,
    PHANTOM,
    REORDERED,
    check,
)
from raftka.chaos.history import FINAL_READ, FINAL_READER, History, Op, OpType

TOPIC = "t"
GROUP = "g"
MEMBERS = ("m0", "m1")
READERS = ("r0", "r1")
SENDERS = (0, 1)
OUTCOMES = ("ok", "ok", "ok", "fail", "written-unknown", "lost-unknown")

step = st.one_of(
    st.tuples(
        st.just("send"), st.sampled_from(SENDERS), st.integers(0, 2), st.sampled_from(OUTCOMES)
    ),
    st.tuples(st.just("poll"), st.sampled_from(READERS), st.integers(0, 2), st.integers(1, 4)),
    st.tuples(st.just("group-poll"), st.sampled_from(MEMBERS), st.integers(1, 4)),
    st.tuples(st.just("rebalance"), st.lists(st.sampled_from(MEMBERS), min_size=3, max_size=3)),
    st.tuples(st.just("takeover")),
)


@dataclass
class Model:
    partitions: int
    ops: list[Op] = field(default_factory=list)
    logs: list[list[str]] = field(default_factory=list)
    sent: int = 0
    positions: dict[tuple[str, int], int] = field(default_factory=dict)
    committed: dict[int, int] = field(default_factory=dict)
    generation: int = 0
    owner: dict[int, str] = field(default_factory=dict)

    def op(self, process: str | int, type_: OpType, f: str, value: Any = None, **kw: Any) -> None:
        self.ops.append(Op(len(self.ops) * 0.01, process, type_, f, value, **kw))

    def send(self, process: int, partition: int, outcome: str) -> None:
        value = f"v{self.sent}"
        self.sent += 1
        self.op(process, OpType.INVOKE, "send", value)
        log = self.logs[partition]
        if outcome == "ok":
            kw = {"topic": TOPIC, "partition": partition, "offset": len(log)}
            self.op(process, OpType.OK, "send", value, **kw)
        else:
            self.op(process, OpType.FAIL if outcome == "fail" else OpType.INFO, "send", value)
        if outcome in ("ok", "written-unknown"):
            log.append(value)

    def records(self, partition: int, start: int, count: int) -> list[dict[str, Any]]:
        log = self.logs[partition]
        return [
            {"topic": TOPIC, "partition": partition, "offset": o, "value": log[o]}
            for o in range(start, min(start + count, len(log)))
        ]

    def poll(self, reader: str, partition: int, count: int) -> None:
        start = self.positions.get((reader, partition), 0)
        records = self.records(partition, start, count)
        self.positions[(reader, partition)] = start + len(records)
        self.op(reader, OpType.INVOKE, "poll")
        self.op(reader, OpType.OK, "poll", records)

    def rebalance(self, owners: list[str]) -> None:
        self.generation += 1
        self.owner = {p: owners[p] for p in range(self.partitions)}
        for member in MEMBERS:
            self.positions = {k: v for k, v in self.positions.items() if k[0] != member}
            mine = sorted(p for p, m in self.owner.items() if m == member)
            self.op(member, OpType.INVOKE, "heartbeat", group=GROUP, member_id=member)
            kw = {"group": GROUP, "member_id": member, "generation": self.generation}
            self.op(member, OpType.OK, "heartbeat", assignment={TOPIC: mine}, **kw)

    def group_poll(self, member: str, count: int) -> None:
        if not self.generation:
            return
        kw = {"group": GROUP, "member_id": member, "generation": self.generation}
        records: list[dict[str, Any]] = []
        for p in sorted(p for p, m in self.owner.items() if m == member):
            start = self.positions.get((member, p), self.committed.get(p, 0))
            read = self.records(p, start, count)
            self.positions[(member, p)] = start + len(read)
            records += read
        self.op(member, OpType.INVOKE, "poll", **kw)
        self.op(member, OpType.OK, "poll", records, **kw)
        offsets = [
            {"topic": TOPIC, "partition": p, "offset": o}
            for (m, p), o in sorted(self.positions.items())
            if m == member and self.owner.get(p) == member
        ]
        if offsets:
            self.op(member, OpType.INVOKE, "commit", offsets=offsets, **kw)
            self.op(member, OpType.OK, "commit", offsets=offsets, **kw)
            self.committed.update((o["partition"], o["offset"]) for o in offsets)

    def takeover(self) -> None:
        """A new coordinator: same generation, positions restart at the committed offsets."""
        self.positions = {k: v for k, v in self.positions.items() if k[0] not in MEMBERS}

    def final_read(self) -> None:
        for p in range(self.partitions):
            value = self.records(p, 0, len(self.logs[p]))
            kw = {"topic": TOPIC, "partition": p}
            self.op(FINAL_READER, OpType.OK, FINAL_READ, value, **kw)


@st.composite
def clean_histories(draw: st.DrawFn) -> list[Op]:
    model = Model(partitions=3, logs=[[], [], []])
    model.send(0, 0, "ok")
    for s in draw(st.lists(step, min_size=4, max_size=40)):
        match s:
            case ("send", process, partition, outcome):
                model.send(process, partition, outcome)
            case ("poll", reader, partition, count):
                model.poll(reader, partition, count)
            case ("group-poll", member, count):
                model.group_poll(member, count)
            case ("rebalance", owners):
                model.rebalance(owners)
            case ("takeover",):
                model.takeover()
    model.final_read()
    return model.ops


@given(clean_histories())
def test_a_correct_model_history_always_passes(ops: list[Op]) -> None:
    result = check(History(ops))
    assert result.ok, result.to_json()


def _final(ops: list[Op], partition: int) -> int:
    return next(
        i for i, op in enumerate(ops) if op.process == FINAL_READER and op.partition == partition
    )


def _before_final(ops: list[Op]) -> int:
    return next(i for i, op in enumerate(ops) if op.process == FINAL_READER)


def inject(kind: str, ops: list[Op], data: st.DataObject) -> list[Op]:
    ops = list(ops)
    acked = [i for i, op in enumerate(ops) if op.f == "send" and op.type is OpType.OK]
    if kind == LOST:
        op = ops[data.draw(st.sampled_from(acked))]
        i = _final(ops, op.partition or 0)
        kept = [r for r in ops[i].value if r["value"] != op.value]
        ops[i] = dataclasses.replace(ops[i], value=kept)
    elif kind in (DUPLICATED, PHANTOM):
        p = data.draw(st.integers(0, 2))
        i = _final(ops, p)
        values = [r["value"] for op in ops if op.process == FINAL_READER for r in op.value]
        assume(kind == PHANTOM or values)
        value = "never-sent" if kind == PHANTOM else data.draw(st.sampled_from(values))
        extra = {"topic": TOPIC, "partition": p, "offset": len(ops[i].value), "value": value}
        ops[i] = dataclasses.replace(ops[i], value=[*ops[i].value, extra])
    elif kind == OFFSET_MISMATCH:
        i = data.draw(st.sampled_from(acked))
        ops[i] = dataclasses.replace(ops[i], offset=(ops[i].offset or 0) + 1000)
    elif kind == DIVERGENCE:
        polls = [
            i for i, op in enumerate(ops) if op.f == "poll" and op.type is OpType.OK and op.value
        ]
        assume(polls)
        i = data.draw(st.sampled_from(polls))
        j = data.draw(st.integers(0, len(ops[i].value) - 1))
        changed = [dict(r, value="ghost") if k == j else r for k, r in enumerate(ops[i].value)]
        ops[i] = dataclasses.replace(ops[i], value=changed)
        ghost = [
            Op(0.0, 9, OpType.INVOKE, "send", "ghost"),
            Op(0.0, 9, OpType.INFO, "send", "ghost"),
        ]
        ops[0:0] = ghost
    elif kind == REORDERED:
        polls = [
            i
            for i, op in enumerate(ops)
            if op.f == "poll" and op.type is OpType.OK and op.group is None and op.value
        ]
        assume(polls)
        i = data.draw(st.sampled_from(polls))
        end = _before_final(ops)
        ops[end:end] = [ops[i - 1], ops[i]]
    elif kind == EXCLUSIVE_ASSIGNMENT:
        answers = [
            op
            for op in ops
            if op.f == "heartbeat"
            and op.type is OpType.OK
            and op.assignment
            and op.assignment[TOPIC]
        ]
        assume(answers)
        answer = data.draw(st.sampled_from(answers))
        end = _before_final(ops)
        ops[end:end] = [dataclasses.replace(answer, process="intruder", member_id="intruder")]
    elif kind == COMMITS_MONOTONIC:
        commits = [
            op
            for op in ops
            if op.f == "commit"
            and op.type is OpType.OK
            and any(o["offset"] for o in op.offsets or ())
        ]
        assume(commits)
        commit = data.draw(st.sampled_from(commits))
        lower = [dict(o, offset=o["offset"] - 1) for o in commit.offsets or () if o["offset"]]
        end = _before_final(ops)
        ops[end:end] = [dataclasses.replace(commit, offsets=lower)]
    return ops


KINDS = (
    LOST,
    DUPLICATED,
    OFFSET_MISMATCH,
    PHANTOM,
    DIVERGENCE,
    REORDERED,
    EXCLUSIVE_ASSIGNMENT,
    COMMITS_MONOTONIC,
)


@given(clean_histories(), st.sampled_from(KINDS), st.data())
def test_one_injected_anomaly_is_caught_by_its_invariant(
    ops: list[Op], kind: str, data: st.DataObject
) -> None:
    result = check(History(inject(kind, ops, data)))
    assert result.failed() == [kind], (kind, result.to_json())
