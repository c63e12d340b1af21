"""The chaos history: what every client and the nemesis did, one operation per line.

Owns the operation record (`Op`), the in-memory `History`, and the `history.jsonl`
format: a streaming writer (one line per op, flushed, so a crashed run keeps all it
recorded) and a strict reader (hand-written test histories and saved runs alike).
It must never talk to a broker or judge a history: the workload and the nemesis fill
it, `checker.py` judges it.

The format, one JSON object per line (Jepsen's model):

- `time`: seconds since the run started (float); `process`: who acted (a client id,
  str or int; `"nemesis"` for faults, `"final-reader"` for the final read);
  `type`: `invoke` | `ok` | `fail` | `info`; `f`: what (`send`, `poll`, `commit`,
  `join`, `heartbeat`, `leave`, `final-read`, `start`, `stop`, ...); `value`.
  Lines are in the order things happened (one writer appends them as they happen):
  the checker orders events by line, not by `time`.
- A process has at most one operation in flight: its `ok`/`fail`/`info` completes its
  latest `invoke`. `fail` means it certainly did not happen (a refusal before any
  write); `info` means the outcome is unknown (a timeout, a lost connection): such a
  send may or may not be in the log. Record an `acks=0` send as `info`.
- `send`: `value` is the record's value, unique per send in the run (a retry of an
  unknown send reuses the value only with an idempotent producer). The `ok` carries
  `topic`, `partition`, `offset` (as acknowledged).
- `poll` (a consumer read): the `ok` has `value` = the records read, each
  `{"topic", "partition", "offset", "value"}` (`topic` may be left out when the op has
  one). A group member's poll also carries `group`, `member_id`, `generation` (the
  generation it last learned from a join/heartbeat: the server does not say).
- `commit`: carries `group`, `member_id`, `generation`, `offsets` =
  `[{"topic", "partition", "offset"}]` (the contract's body).
- `join` / `heartbeat`: the `ok` carries `group`, `member_id`, `generation` and the
  answer's `assignment` (`{"topic": [partitions]}`), as the contract's answers do.
- The final read: after healing, process `"final-reader"` (FINAL_READER) reads every
  partition from its first offset to its end and records each answer as an `ok` op
  with `f` = `"final-read"` (FINAL_READ), the partition read as the op's `topic` and
  `partition` (so an empty partition counts as read), and the records as a poll's
  `value`. A partition that could not be read gets a `fail`/`info` op instead.
- Faults: process `"nemesis"` (NEMESIS), `type` `info`. A fault window opens with
  `f` = `"start"`, `value` = `{"fault": KIND, "target": [...], ...}` (KIND: `kill`,
  `pause`, `partition`, `latency`, ...; `target`: broker ids, or any JSON that names
  what was hit; other keys describe it) and closes with `f` = `"stop"` and a `value`
  with the same `fault` and `target` (a kill stops when the broker restarts). A stop
  closes the oldest open window with that fault and target; a window never stopped
  lasts until the end of the history.
- Optionally one op of process `"runner"` (RUNNER), `type` `info`, `f` = `"run"`,
  `value` = `{"seed": ..., ...}` describes the run (the report shows the seed).

Unknown keys of a line are kept in `Op.extra` and written back unchanged.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

HISTORY_FILE = "history.jsonl"

FINAL_READER = "final-reader"
FINAL_READ = "final-read"
NEMESIS = "nemesis"
FAULT_START = "start"
FAULT_STOP = "stop"
RUNNER = "runner"
RUN_INFO = "run"

SEND = "send"
POLL = "poll"
COMMIT = "commit"
JOIN = "join"
HEARTBEAT = "heartbeat"
LEAVE = "leave"
READS = frozenset({POLL, FINAL_READ})
MEMBERSHIP_ANSWERS = frozenset({JOIN, HEARTBEAT})

Process = str | int


class HistoryError(ValueError):
    """A history line that is not a valid operation (the message names the line)."""


class OpType(enum.StrEnum):
    INVOKE = "invoke"
    OK = "ok"
    FAIL = "fail"
    INFO = "info"


_KNOWN_KEYS = (
    "time",
    "process",
    "type",
    "f",
    "value",
    "topic",
    "partition",
    "offset",
    "group",
    "member_id",
    "generation",
    "assignment",
    "offsets",
    "error",
)


@dataclass(frozen=True, slots=True)
class ReadRecord:
    """One record a read returned: where it was and what it held."""

    topic: str | None
    partition: int
    offset: int
    value: Any


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    topic: str | None
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Op:
    """One line of the history. Fields that do not apply to an op stay None."""

    time: float
    process: Process
    type: OpType
    f: str
    value: Any = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    group: str | None = None
    member_id: str | None = None
    generation: int | None = None
    assignment: Mapping[str, list[int]] | None = None
    offsets: list[Mapping[str, Any]] | None = None
    error: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_client(self) -> bool:
        """A workload client's op (not the nemesis', the runner's or the final reader's)."""
        return self.process not in (NEMESIS, RUNNER, FINAL_READER)

    def records(self) -> list[ReadRecord]:
        """The records an ok read returned (empty for any other op)."""
        if self.type is not OpType.OK or self.f not in READS or not isinstance(self.value, list):
            return []
        return [
            ReadRecord(r.get("topic", self.topic), r["partition"], r["offset"], r.get("value"))
            for r in self.value
        ]

    def committed(self) -> list[CommittedOffset]:
        """The offsets a commit carries."""
        return [
            CommittedOffset(o.get("topic", self.topic), o["partition"], o["offset"])
            for o in self.offsets or ()
        ]

    def assigned(self) -> frozenset[tuple[str, int]]:
        """The answer's assignment as (topic, partition) pairs."""
        return frozenset(
            (topic, p) for topic, partitions in (self.assignment or {}).items() for p in partitions
        )

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "time": self.time,
            "process": self.process,
            "type": self.type.value,
            "f": self.f,
        }
        for key in _KNOWN_KEYS[4:]:
            item = getattr(self, key)
            if item is not None or key == "value":
                doc[key] = item
        doc.update(self.extra)
        return doc

    @classmethod
    def from_json(cls, doc: Any) -> Op:
        """Validates one decoded line; raises HistoryError on a malformed op."""
        if not isinstance(doc, dict):
            raise HistoryError("an operation must be a JSON object")
        for key in ("time", "process", "type", "f"):
            if key not in doc:
                raise HistoryError(f"missing {key!r}")
        t, process, f = doc["time"], doc["process"], doc["f"]
        if isinstance(t, bool) or not isinstance(t, int | float):
            raise HistoryError("'time' must be a number")
        if isinstance(process, bool) or not isinstance(process, str | int):
            raise HistoryError("'process' must be a string or an integer")
        if not isinstance(f, str):
            raise HistoryError("'f' must be a string")
        try:
            op_type = OpType(doc["type"])
        except ValueError:
            raise HistoryError(f"'type' must be one of {[t.value for t in OpType]}") from None
        op = cls(
            time=float(t),
            process=process,
            type=op_type,
            f=f,
            value=doc.get("value"),
            topic=_optional(doc, "topic", str),
            partition=_optional(doc, "partition", int),
            offset=_optional(doc, "offset", int),
            group=_optional(doc, "group", str),
            member_id=_optional(doc, "member_id", str),
            generation=_optional(doc, "generation", int),
            assignment=_optional(doc, "assignment", dict),
            offsets=_optional(doc, "offsets", list),
            error=_optional(doc, "error", str),
            extra={k: v for k, v in doc.items() if k not in _KNOWN_KEYS},
        )
        _check_shape(op)
        return op


def _optional(doc: dict[str, Any], key: str, kind: type) -> Any:
    item = doc.get(key)
    if item is None:
        return None
    if isinstance(item, bool) or not isinstance(item, kind):
        raise HistoryError(f"{key!r} must be {kind.__name__}")
    return item


def _check_shape(op: Op) -> None:
    """The fields the checker relies on, so it never meets a half-formed op."""
    try:
        for r in op.records():
            if isinstance(r.partition, bool) or not isinstance(r.partition, int):
                raise HistoryError("a read record's 'partition' must be an integer")
            if isinstance(r.offset, bool) or not isinstance(r.offset, int):
                raise HistoryError("a read record's 'offset' must be an integer")
        for c in op.committed():
            if not isinstance(c.partition, int) or not isinstance(c.offset, int):
                raise HistoryError("a committed offset needs integer 'partition' and 'offset'")
        for partitions in (op.assignment or {}).values():
            if not isinstance(partitions, list) or not all(isinstance(p, int) for p in partitions):
                raise HistoryError("an assignment maps topics to lists of partitions")
    except (KeyError, AttributeError, TypeError) as exc:
        raise HistoryError(f"malformed {op.f} value: {exc!r}") from None
    if op.type is OpType.OK and op.f in READS and not isinstance(op.value, list):
        raise HistoryError(f"an ok {op.f} needs a list of records as 'value'")


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """A fault from its nemesis start op to its stop op (None: never stopped)."""

    fault: str
    target: Any
    start: float
    stop: float | None
    value: Any

    def end(self, history_end: float) -> float:
        return history_end if self.stop is None else self.stop


@dataclass(frozen=True, slots=True)
class Completed:
    """An operation with the invoke it completes, and both positions in the history.

    Without an invoke (a hand-written history may leave them out) the op counts as
    invoked where it completed.
    """

    op: Op
    index: int
    invoke: Op | None = None
    invoke_index: int | None = None

    @property
    def invoked_at(self) -> int:
        return self.index if self.invoke_index is None else self.invoke_index

    @property
    def invoke_time(self) -> float:
        return self.op.time if self.invoke is None else self.invoke.time


@dataclass
class History:
    """The ops in the order they were recorded, and the views the checker and report use."""

    ops: list[Op] = field(default_factory=list)

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def __len__(self) -> int:
        return len(self.ops)

    def append(self, op: Op) -> None:
        self.ops.append(op)

    @property
    def end_time(self) -> float:
        return max((op.time for op in self.ops), default=0.0)

    def completions(self) -> list[Completed]:
        """Every ok/fail/info op paired with its process's latest invoke, in history order."""
        pending: dict[Process, int] = {}
        done: list[Completed] = []
        for index, op in enumerate(self.ops):
            if op.type is OpType.INVOKE:
                pending[op.process] = index
                continue
            invoke_index = pending.pop(op.process, None)
            invoke = None if invoke_index is None else self.ops[invoke_index]
            done.append(Completed(op, index, invoke, invoke_index))
        return done

    def oks(self, *fs: str) -> list[Op]:
        return [op for op in self.ops if op.type is OpType.OK and (not fs or op.f in fs)]

    def final_reads(self) -> list[Op]:
        return [op for op in self.oks(FINAL_READ) if op.process == FINAL_READER]

    def has_final_read(self) -> bool:
        return any(op.process == FINAL_READER for op in self.ops)

    def fault_windows(self) -> list[FaultWindow]:
        """The nemesis' start/stop ops paired into windows, in start order."""
        windows: list[FaultWindow] = []
        open_at: dict[str, list[int]] = {}
        for op in self.ops:
            if op.process != NEMESIS or op.f not in (FAULT_START, FAULT_STOP):
                continue
            value = op.value if isinstance(op.value, dict) else {}
            fault = str(value.get("fault", "unknown"))
            target = value.get("target")
            key = fault + "\0" + orjson.dumps(target, option=orjson.OPT_SORT_KEYS).decode()
            if op.f == FAULT_START:
                open_at.setdefault(key, []).append(len(windows))
                windows.append(FaultWindow(fault, target, op.time, None, op.value))
            elif open_at.get(key):
                i = open_at[key].pop(0)
                w = windows[i]
                windows[i] = FaultWindow(w.fault, w.target, w.start, op.time, w.value)
        return windows

    def run_info(self) -> dict[str, Any]:
        """The runner's description of the run (`seed`, ...), or {}."""
        for op in self.ops:
            if op.process == RUNNER and op.f == RUN_INFO and isinstance(op.value, dict):
                return dict(op.value)
        return {}


def parse_lines(lines: Iterable[str | bytes]) -> History:
    """A history from JSON lines; blank lines are skipped, anything else malformed raises."""
    history = History()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            history.append(Op.from_json(orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            raise HistoryError(f"line {number}: not JSON ({exc})") from None
        except HistoryError as exc:
            raise HistoryError(f"line {number}: {exc}") from None
    return history


def read_history(path: Path) -> History:
    """Reads a `history.jsonl` (OSError if it cannot be opened, HistoryError if malformed)."""
    with path.open("rb") as f:
        return parse_lines(f)


def write_history(path: Path, history: Iterable[Op]) -> None:
    with HistoryWriter(path) as writer:
        for op in history:
            writer.append(op)


class HistoryWriter:
    """Appends one line per op and flushes it, so a crash loses at most the line being written.

    Safe to share between threads; `append` never blocks on anything but the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] = path.open("ab")
        self._lock = threading.Lock()

    def append(self, op: Op) -> None:
        line = orjson.dumps(op.to_json()) + b"\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class RunClock:
    """Seconds since the run started, for `Op.time` (monotonic: a wall-clock step cannot
    reorder the history)."""

    def __init__(self) -> None:
        self._start = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._start
