"""The chaos checker: a history in, a verdict out (Jepsen's checker).

Pure: it reads `History` values only, never a file, a clock or a broker, so any
history (recorded, saved, or written by hand in a test) is judged the same way. It
orders events by their position in the history, which is the order they happened in.

Each invariant below is checked on its own and reported as {ok, count, details}:

- `final_read`: the history has a final read, and it read every partition that an
  acknowledged send went to (otherwise loss cannot be judged there).
- `lost`: an acknowledged (ok) send whose value is missing from the final read of its
  partition; for a partition the final read did not cover, one that no read returned.
- `duplicated`: a value read at two different positions (topic, partition, offset), or
  acknowledged at two different positions (an idempotent producer writing a retry twice).
- `offset_mismatch`: an acknowledged value that was read, but never at the position its
  acknowledgement named.
- `phantom`: a value read that no send ever carried, or whose every send failed.
- `divergence`: one position read with two different values (a reader saw a record that
  a later leader did not have: it was above the high watermark, or the log forked).
- `reordered`: (a) a consumer's offsets of one partition must strictly increase within a
  run, a run being one (process, group, member_id, generation, topic, partition). A
  member moving to a new generation or member_id may go back (at-least-once: it restarts
  at the committed offset). Within a run, a group member's poll may go back only to an
  offset at or above the highest offset that the group committed (ok) for the partition
  before the poll was invoked: a coordinator takeover keeps the generation and restarts
  positions at the committed offset, which never goes below that. Commits that the
  history does not show (auto_commit) leave that floor lower, never wrongly higher. A
  reader without a group may never go back. (b) The final reader's offsets of each
  partition strictly increase.
- `exclusive_assignment`: (a) for each (group, generation), the assignments that
  different members' ok join/heartbeat answers reported are disjoint. Sound because a
  member's assignment in a generation is part of its target there, and targets do not
  overlap. (b) A group poll labelled with generation G whose member's next ok
  join/heartbeat answer (invoked after the poll completed) still reports G returned only
  partitions in that answer's assignment: the generation was G throughout the poll, a
  served partition stays owned until the member acknowledges a newer generation, and
  the answer reports what is owned. A poll whose next answer reports a newer generation
  is not judged (the server may have served it under the newer one).
- `commits_monotonic`: for each (group, topic, partition), an ok commit never carries
  an offset below one that an ok commit completed before it was invoked. Across members
  too: a partition's new owner starts from the committed offset, so it commits no less.
  Commits that overlap in time are not ordered, so they are not compared.

Counts: `acked` = ok sends; every invariant's count is its number of anomalies (values
for lost, duplicated, offset_mismatch and phantom, positions for divergence, each going
back for reordered, each overlapping partition or stray poll for exclusive_assignment,
each decrease for commits_monotonic).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from raftka.chaos.history import (
    COMMIT,
    FINAL_READER,
    MEMBERSHIP_ANSWERS,
    POLL,
    SEND,
    Completed,
    History,
    Op,
    OpType,
    ReadRecord,
)

MAX_DETAILS = 20
MAX_VALUE_CHARS = 60

FINAL_READ_INVARIANT = "final_read"
LOST = "lost"
DUPLICATED = "duplicated"
OFFSET_MISMATCH = "offset_mismatch"
PHANTOM = "phantom"
DIVERGENCE = "divergence"
REORDERED = "reordered"
EXCLUSIVE_ASSIGNMENT = "exclusive_assignment"
COMMITS_MONOTONIC = "commits_monotonic"
INVARIANTS = (
    FINAL_READ_INVARIANT,
    LOST,
    DUPLICATED,
    OFFSET_MISMATCH,
    PHANTOM,
    DIVERGENCE,
    REORDERED,
    EXCLUSIVE_ASSIGNMENT,
    COMMITS_MONOTONIC,
)

ValueKey = str | bytes
TopicPartition = tuple[str | None, int]
Position = tuple[str | None, int, int]


@dataclass(frozen=True, slots=True)
class InvariantResult:
    """One invariant's verdict: how many anomalies, and the first MAX_DETAILS described."""

    count: int
    details: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return self.count == 0

    @staticmethod
    def of(anomalies: list[str]) -> InvariantResult:
        return InvariantResult(len(anomalies), tuple(anomalies[:MAX_DETAILS]))

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "count": self.count, "details": list(self.details)}


@dataclass(frozen=True, slots=True)
class CheckResult:
    acked: int
    invariants: dict[str, InvariantResult]

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.invariants.values())

    def count(self, name: str) -> int:
        return self.invariants[name].count

    @property
    def lost(self) -> int:
        return self.count(LOST)

    @property
    def duplicated(self) -> int:
        return self.count(DUPLICATED)

    @property
    def reordered(self) -> int:
        return self.count(REORDERED)

    def failed(self) -> list[str]:
        return [name for name, r in self.invariants.items() if not r.ok]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "acked": self.acked,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "invariants": {name: r.to_json() for name, r in self.invariants.items()},
        }


def check(history: History) -> CheckResult:
    """Judges a history against every invariant of the module docstring."""
    facts = _Facts.of(history)
    anomalies = {
        FINAL_READ_INVARIANT: _final_read(facts),
        LOST: _lost(facts),
        DUPLICATED: _duplicated(facts),
        OFFSET_MISMATCH: _offset_mismatch(facts),
        PHANTOM: _phantom(facts),
        DIVERGENCE: _divergence(facts),
        REORDERED: _reordered(facts),
        EXCLUSIVE_ASSIGNMENT: _exclusive_assignment(facts),
        COMMITS_MONOTONIC: _commits_monotonic(facts),
    }
    return CheckResult(
        acked=len(facts.acked),
        invariants={name: InvariantResult.of(found) for name, found in anomalies.items()},
    )


def value_key(value: Any) -> ValueKey:
    """A value's identity: a string itself, anything else its canonical JSON as bytes (so
    1 and "1" differ, and equal dicts compare equal)."""
    if type(value) is str:
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _show(value: Any) -> str:
    """A value (or a value_key) for a person, cut to MAX_VALUE_CHARS."""
    text = value.decode() if isinstance(value, bytes) else orjson.dumps(value).decode()
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def _at(position: Position) -> str:
    topic, partition, offset = position
    return f"{topic or '?'}/{partition}@{offset}"


def _who(op: Op) -> str:
    return f"process {op.process} at {op.time:.3f}s"


@dataclass(frozen=True, slots=True)
class _Read:
    """A record returned by a read, with the op that returned it."""

    record: ReadRecord
    done: Completed
    key: ValueKey
    position: Position

    @staticmethod
    def of(record: ReadRecord, done: Completed) -> _Read:
        position = (record.topic, record.partition, record.offset)
        return _Read(record, done, value_key(record.value), position)


class _CommitFloors:
    """For each (group, topic, partition): the highest offset committed (ok) by every
    point of the history, so "committed before index i" is one bisect."""

    def __init__(self, commits: Iterable[Completed]) -> None:
        self._index: dict[tuple[str | None, TopicPartition], list[int]] = defaultdict(list)
        self._max: dict[tuple[str | None, TopicPartition], list[int]] = defaultdict(list)
        for done in commits:
            for c in done.op.committed():
                key = (done.op.group, (c.topic, c.partition))
                highest = max(c.offset, self._max[key][-1]) if self._max[key] else c.offset
                self._index[key].append(done.index)
                self._max[key].append(highest)

    def before(self, group: str | None, tp: TopicPartition, index: int) -> int | None:
        """The highest offset of the ok commits that completed before history index `index`."""
        key = (group, tp)
        i = bisect.bisect_left(self._index.get(key, []), index)
        return self._max[key][i - 1] if i else None


@dataclass
class _Facts:
    """The indexes every invariant reads, built in one pass over the history."""

    history: History
    completions: list[Completed]
    acked: list[Op] = field(default_factory=list)
    sent: set[ValueKey] = field(default_factory=set)
    maybe_written: set[ValueKey] = field(default_factory=set)
    reads: list[_Read] = field(default_factory=list)
    final_reads: list[_Read] = field(default_factory=list)
    final_covered: set[TopicPartition] = field(default_factory=set)
    read_positions: dict[ValueKey, set[Position]] = field(default_factory=dict)
    final_values: set[ValueKey] = field(default_factory=set)
    reads_of: dict[int, list[_Read]] = field(default_factory=dict)

    @staticmethod
    def of(history: History) -> _Facts:
        facts = _Facts(history, history.completions())
        for op in history:
            if op.f == SEND:
                facts.sent.add(value_key(op.value))
                if op.type is not OpType.FAIL and op.type is not OpType.INVOKE:
                    facts.maybe_written.add(value_key(op.value))
                if op.type is OpType.OK:
                    facts.acked.append(op)
        for done in facts.completions:
            op = done.op
            reads = [_Read.of(r, done) for r in op.records()]
            facts.reads_of[done.index] = reads
            if op.process == FINAL_READER and op.type is OpType.OK:
                facts.final_reads += reads
                if op.partition is not None:
                    facts.final_covered.add((op.topic, op.partition))
                facts.final_covered.update((r.record.topic, r.record.partition) for r in reads)
                facts.final_values.update(r.key for r in reads)
            facts.reads += reads
        for read in facts.reads:
            facts.read_positions.setdefault(read.key, set()).add(read.position)
        return facts

    def acked_position(self, op: Op) -> Position | None:
        if op.partition is None or op.offset is None:
            return None
        return (op.topic, op.partition, op.offset)


def _final_read(facts: _Facts) -> list[str]:
    if not facts.acked:
        return []
    if not facts.history.has_final_read():
        return [f"no final read in the history: {len(facts.acked)} acknowledged sends unchecked"]
    uncovered = sorted(
        {(op.topic, op.partition) for op in facts.acked if op.partition is not None}
        - facts.final_covered,
        key=str,
    )
    return [f"the final read did not read {t or '?'}/{p}" for t, p in uncovered]


def _lost(facts: _Facts) -> list[str]:
    found = []
    for op in facts.acked:
        key = value_key(op.value)
        where = _at(pos) if (pos := facts.acked_position(op)) else "an unknown position"
        if (op.topic, op.partition) in facts.final_covered:
            if key in facts.final_values:
                continue
            seen = " (a poll had read it)" if key in facts.read_positions else ""
            found.append(
                f"{_show(op.value)} acked at {where} ({_who(op)}) is missing from the final read{seen}"
            )
        elif key not in facts.read_positions:
            found.append(f"{_show(op.value)} acked at {where} ({_who(op)}) was never read")
    return found


def _duplicated(facts: _Facts) -> list[str]:
    acked_at: dict[ValueKey, set[Position]] = defaultdict(set)
    for op in facts.acked:
        if (pos := facts.acked_position(op)) is not None:
            acked_at[value_key(op.value)].add(pos)
    found = []
    keys = list(facts.read_positions) + [k for k in acked_at if k not in facts.read_positions]
    for key in keys:
        read, acked = facts.read_positions.get(key, set()), acked_at.get(key, set())
        if len(read) > 1:
            found.append(f"{_show(key)} read at {len(read)} positions: {_positions(read)}")
        elif len(acked) > 1:
            found.append(f"{_show(key)} acked at {len(acked)} positions: {_positions(acked)}")
    return found


def _positions(positions: Iterable[Position]) -> str:
    return ", ".join(_at(p) for p in sorted(positions, key=str))


def _offset_mismatch(facts: _Facts) -> list[str]:
    found = []
    for op in facts.acked:
        pos = facts.acked_position(op)
        read = facts.read_positions.get(value_key(op.value), set())
        if pos is not None and read and pos not in read:
            found.append(
                f"{_show(op.value)} acked at {_at(pos)} ({_who(op)}) was read at {_positions(read)}"
            )
    return found


def _phantom(facts: _Facts) -> list[str]:
    found = []
    reported: set[ValueKey] = set()
    for read in facts.reads:
        key = read.key
        if key in reported or key in facts.maybe_written:
            continue
        reported.add(key)
        why = "whose every send failed" if key in facts.sent else "that was never sent"
        found.append(
            f"{_show(read.record.value)} at {_at(read.position)} read by {_who(read.done.op)}: "
            f"a value {why}"
        )
    return found


def _divergence(facts: _Facts) -> list[str]:
    values_at: dict[Position, dict[ValueKey, Op]] = defaultdict(dict)
    for read in facts.reads:
        values_at[read.position].setdefault(read.key, read.done.op)
    return [
        f"{_at(pos)} read as "
        + " and as ".join(f"{_show(key)} ({_who(op)})" for key, op in by_value.items())
        for pos, by_value in values_at.items()
        if len(by_value) > 1
    ]


def _reordered(facts: _Facts) -> list[str]:
    floors = _CommitFloors(d for d in facts.completions if _is_ok(d.op, COMMIT))
    found: list[str] = []
    last: dict[tuple[Any, ...], int] = {}
    for done in facts.completions:
        op = done.op
        if not _is_ok(op, POLL):
            continue
        started: set[TopicPartition] = set()
        for r in (read.record for read in facts.reads_of[done.index]):
            tp = (r.topic, r.partition)
            run = (op.process, op.group, op.member_id, op.generation, tp)
            previous = last.get(run)
            last[run] = r.offset
            if previous is None or r.offset > previous:
                started.add(tp)
                continue
            if op.group is not None and tp not in started:
                floor = floors.before(op.group, tp, done.invoked_at)
                if floor is None or r.offset >= floor:
                    started.add(tp)
                    continue  # a restart at the committed offset
                why = f"below the offset {floor} the group had committed"
            else:
                why = "within one poll" if tp in started else "(a reader without a group may not)"
            started.add(tp)
            found.append(
                f"{_who(op)} read {_at((r.topic, r.partition, r.offset))} after offset "
                f"{previous} ({_run_name(op)}): went back {why}"
            )
    found += _final_reader_order(facts.final_reads)
    return found


def _run_name(op: Op) -> str:
    if op.group is None:
        return "no group"
    return f"group {op.group}, member {op.member_id}, generation {op.generation}"


def _final_reader_order(reads: list[_Read]) -> list[str]:
    found = []
    last: dict[TopicPartition, int] = {}
    for read in reads:
        tp = (read.record.topic, read.record.partition)
        previous = last.get(tp)
        last[tp] = read.record.offset
        if previous is not None and read.record.offset <= previous:
            found.append(
                f"the final read returned {_at(read.position)} after offset {previous}: "
                "its offsets must strictly increase"
            )
    return found


def _is_ok(op: Op, f: str) -> bool:
    return op.type is OpType.OK and op.f == f and op.process != FINAL_READER


def _exclusive_assignment(facts: _Facts) -> list[str]:
    answers = [
        d
        for d in facts.completions
        if d.op.type is OpType.OK
        and d.op.f in MEMBERSHIP_ANSWERS
        and d.op.member_id is not None
        and d.op.generation is not None
    ]
    return _overlapping_assignments(answers) + _polls_outside_assignment(facts, answers)


def _overlapping_assignments(answers: list[Completed]) -> list[str]:
    held: dict[tuple[str | None, int], dict[tuple[str, int], set[str]]] = defaultdict(
        lambda: defaultdict(set)
    )
    for done in answers:
        op = done.op
        assert op.member_id is not None and op.generation is not None
        for tp in op.assigned():
            held[(op.group, op.generation)][tp].add(op.member_id)
    return [
        f"group {group} generation {generation}: {topic}/{partition} assigned to "
        f"{len(members)} members: {', '.join(sorted(members))}"
        for (group, generation), by_tp in held.items()
        for (topic, partition), members in sorted(by_tp.items())
        if len(members) > 1
    ]


def _polls_outside_assignment(facts: _Facts, answers: list[Completed]) -> list[str]:
    by_member: dict[tuple[str | None, str | None], list[Completed]] = defaultdict(list)
    for done in answers:
        by_member[(done.op.group, done.op.member_id)].append(done)
    invoked = {member: [a.invoked_at for a in dones] for member, dones in by_member.items()}
    found = []
    for done in facts.completions:
        op = done.op
        if not _is_ok(op, POLL) or op.group is None or op.generation is None:
            continue
        later = by_member.get((op.group, op.member_id), [])
        i = bisect.bisect_right(invoked.get((op.group, op.member_id), []), done.index)
        if i == len(later) or later[i].op.generation != op.generation:
            continue
        assigned = later[i].op.assigned()
        polled = {(r.record.topic, r.record.partition) for r in facts.reads_of[done.index]}
        for topic, partition in sorted(polled, key=str):
            if not any(p == partition and topic in (None, t) for t, p in assigned):
                found.append(
                    f"{_who(op)} ({_run_name(op)}) read {topic or '?'}/{partition}, outside the "
                    f"assignment of its next answer in that generation ({_who(later[i].op)})"
                )
    return found


def _commits_monotonic(facts: _Facts) -> list[str]:
    commits = [d for d in facts.completions if _is_ok(d.op, COMMIT)]
    floors = _CommitFloors(commits)
    found = []
    for done in commits:
        op = done.op
        for c in op.committed():
            floor = floors.before(op.group, (c.topic, c.partition), done.invoked_at)
            if floor is not None and c.offset < floor:
                found.append(
                    f"{_who(op)} (member {op.member_id}, generation {op.generation}) committed "
                    f"{c.topic or '?'}/{c.partition} at {c.offset}, below the {floor} "
                    f"committed before"
                )
    return found
