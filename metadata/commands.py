"""Metadata commands: the entries of the Raft metadata log, and their text form.

This module owns one frozen dataclass per command and the text that travels through
pysyncobj (a str, which pysyncobj pickles cheaply): compact JSON, zlib-compressed
past `COMPRESS_ABOVE_TEXT_BYTES`, and never longer than `MAX_COMMAND_TEXT_CHARS` (a
longer entry breaks pysyncobj). It must never apply a command (that is
`state.apply`) and never trusts text: `decode_command` checks every field's type,
bounds what it decompresses, and raises ValueError on anything malformed.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Any

import orjson

from raftka.metadata.records import InvalidConfig, TopicConfig

# command_id "" means "no id": the command is not remembered for idempotent retries.
NO_COMMAND_ID = ""

# pysyncobj 0.3.17 sends a log entry of this many bytes or more in chunks, and labels
# the last chunk wrongly (shared/notes/pysyncobj.md, bug 4): every entry stays below.
PYSYNCOBJ_CHUNKED_ENTRY_BYTES = 64 * 1024
# The longest text encode_command writes. pysyncobj stores one byte of entry type and
# the call pickled with protocol 2, `(method_id, (text,))`: measured 19-22 bytes
# around the text's UTF-8 bytes. Text this long is always compressed, so ASCII:
# characters and bytes are the same. The 4 KiB left is margin, not a need.
MAX_COMMAND_TEXT_CHARS = 60 * 1024
# JSON text longer than this is compressed. Most commands (heartbeats, fences,
# elections) are a few hundred bytes and stay readable JSON; a CreateTopic is the one
# that grows (about 8 bytes per partition at replication factor 3).
COMPRESS_ABOVE_TEXT_BYTES = 1024
COMPRESSION_LEVEL = 9  # zlib's best: a 10,000-partition CreateTopic costs 1-7 ms
# Compressed text is this prefix and base64 of zlib data. JSON text cannot start with
# "z", so either form is told apart without guessing.
COMPRESSED_PREFIX = "z:"
# The most decode_command accepts, as text and after decompression (zlib inflates up
# to ~1000-fold: text this long could otherwise become gigabytes). Journals written before compression hold
# plain JSON up to this (the old limit, matching max_request_bytes): they still load.
MAX_DECODED_COMMAND_BYTES = 16 * 1024 * 1024


class CommandTooLarge(ValueError):
    """A command whose text does not fit one metadata log entry, even compressed."""

    def __init__(self, command_type: str, size: int, limit: int, unit: str) -> None:
        super().__init__(
            f"{command_type} is {size} {unit} as a metadata log entry, more than the "
            f"{limit} one entry may hold"
        )
        self.command_type = command_type
        self.size = size
        self.limit = limit


@dataclass(frozen=True, slots=True)
class RegisterBroker:
    broker_id: int
    url: str
    incarnation_id: str  # new per process start: a new one means the broker restarted
    raft_voter: bool
    command_id: str = NO_COMMAND_ID
    # False when the broker's previous run may have lost writes it acknowledged (a
    # power cut under fsync="batch"): elections then prefer other candidates (KIP-966).
    # Absent in entries written before it existed: those meant a clean start.
    clean_shutdown: bool = True


@dataclass(frozen=True, slots=True)
class BrokerHeartbeat:
    broker_id: int
    incarnation_id: str
    command_id: str = NO_COMMAND_ID


@dataclass(frozen=True, slots=True)
class FenceBroker:
    broker_id: int
    command_id: str = NO_COMMAND_ID


@dataclass(frozen=True, slots=True)
class ContinueFence:
    """Moves the next chunk of partitions off a broker whose fence is still in progress
    (state.py: a fence changes at most FENCE_CHUNK_PARTITIONS partitions per entry)."""

    broker_id: int
    command_id: str = NO_COMMAND_ID


@dataclass(frozen=True, slots=True)
class UnfenceBroker:
    broker_id: int
    command_id: str = NO_COMMAND_ID


@dataclass(frozen=True, slots=True)
class CreateTopic:
    name: str
    topic_id: str
    config: TopicConfig
    # One replica list per partition (from placement.assign_replicas); the first
    # replica of each is its preferred leader.
    assignment: tuple[tuple[int, ...], ...]
    command_id: str = NO_COMMAND_ID


@dataclass(frozen=True, slots=True)
class DeleteTopic:
    name: str
    command_id: str = NO_COMMAND_ID


@dataclass(frozen=True, slots=True)
class ElectLeader:
    topic: str
    partition: int
    leader: int
    expected_leader_epoch: int  # stale when the leader changed since the decision
    command_id: str = NO_COMMAND_ID


@dataclass(frozen=True, slots=True)
class AlterPartition:
    # Sent by the partition's leader to shrink or expand the isr.
    topic: str
    partition: int
    leader: int
    leader_epoch: int
    partition_epoch: int
    isr: tuple[int, ...]
    command_id: str = NO_COMMAND_ID


@dataclass(frozen=True, slots=True)
class AllocateProducerIds:
    broker_id: int
    count: int
    command_id: str = NO_COMMAND_ID


@dataclass(frozen=True, slots=True)
class JoinGroup:
    # The coordinator names the member (member_id) so a retried join is one member.
    group: str
    member_id: str
    topics: tuple[str, ...]
    session_timeout_ms: int
    auto_commit: bool
    auto_offset_reset: str
    assignor: str
    # Every group command names the broker that sent it as the group's coordinator; the
    # state machine refuses it unless that broker *is* the coordinator at that point of the
    # log. So a broker that has not yet applied its own replacement cannot write for the
    # group any more, and the new coordinator's state already holds all it wrote.
    coordinator: int
    command_id: str = NO_COMMAND_ID


@dataclass(frozen=True, slots=True)
class LeaveGroup:
    group: str
    member_ids: tuple[str, ...]
    coordinator: int
    command_id: str = NO_COMMAND_ID


@dataclass(frozen=True, slots=True)
class AcknowledgeGeneration:
    # Idempotent by itself (a repeat changes nothing): needs no command_id.
    group: str
    member_id: str
    generation: int
    coordinator: int
    command_id: str = NO_COMMAND_ID


@dataclass(frozen=True, slots=True)
class OffsetCommit:
    """One member's commit request: all of its offsets are stored, or none."""

    group: str
    member_id: str
    generation: int
    offsets: tuple[tuple[str, int, int], ...]  # (topic, partition, offset)


@dataclass(frozen=True, slots=True)
class CommitOffsets:
    # Many members' commits in one log entry: the coordinator batches them, so commits
    # scale with entries per second, not requests. No command_id: a batch is never
    # remembered (it would push real commands out of the retry window); the
    # coordinator sends one batch at a time, so a retry cannot overtake a newer one.
    commits: tuple[OffsetCommit, ...]
    coordinator: int  # the broker that batched them; see JoinGroup
    command_id: str = NO_COMMAND_ID


Command = (
    RegisterBroker
    | BrokerHeartbeat
    | FenceBroker
    | ContinueFence
    | UnfenceBroker
    | CreateTopic
    | DeleteTopic
    | ElectLeader
    | AlterPartition
    | AllocateProducerIds
    | JoinGroup
    | LeaveGroup
    | AcknowledgeGeneration
    | CommitOffsets
)

COMMAND_TYPES: dict[str, type[Command]] = {
    cls.__name__: cls
    for cls in (
        RegisterBroker,
        BrokerHeartbeat,
        FenceBroker,
        ContinueFence,
        UnfenceBroker,
        CreateTopic,
        DeleteTopic,
        ElectLeader,
        AlterPartition,
        AllocateProducerIds,
        JoinGroup,
        LeaveGroup,
        AcknowledgeGeneration,
        CommitOffsets,
    )
}


def _plain(value: object) -> object:
    if isinstance(value, TopicConfig):
        return value.to_json()
    if isinstance(value, tuple) and value and isinstance(value[0], OffsetCommit):
        return [[c.group, c.member_id, c.generation, [list(o) for o in c.offsets]] for c in value]
    return value  # orjson writes tuples as arrays


def encode_command(command: Command) -> str:
    """Compact JSON text {"type": "<class name>", <fields>...}, compressed when long.

    Raises CommandTooLarge when even the compressed text is longer than
    MAX_COMMAND_TEXT_CHARS.
    """
    out: dict[str, object] = {"type": type(command).__name__}
    for f in fields(command):
        out[f.name] = _plain(getattr(command, f.name))
    raw = orjson.dumps(out)
    if len(raw) <= COMPRESS_ABOVE_TEXT_BYTES:
        return raw.decode()
    kind = type(command).__name__
    if len(raw) > MAX_DECODED_COMMAND_BYTES:  # decode_command would refuse it
        raise CommandTooLarge(kind, len(raw), MAX_DECODED_COMMAND_BYTES, "bytes of JSON")
    packed = base64.b64encode(zlib.compress(raw, COMPRESSION_LEVEL)).decode("ascii")
    text = COMPRESSED_PREFIX + packed
    if len(text) > MAX_COMMAND_TEXT_CHARS:
        raise CommandTooLarge(kind, len(text), MAX_COMMAND_TEXT_CHARS, "characters compressed")
    return text


def _int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return value


def _str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {value!r}")
    return value


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return value


def _ints(name: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list of integers, got {value!r}")
    return tuple(_int(name, v) for v in value)


def _assignment(name: str, value: Any) -> tuple[tuple[int, ...], ...]:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list of replica lists, got {value!r}")
    return tuple(_ints(name, v) for v in value)


def _strs(name: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list of strings, got {value!r}")
    return tuple(_str(name, v) for v in value)


def _offset_commits(name: str, value: Any) -> tuple[OffsetCommit, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list, got {value!r}")
    out = []
    for item in value:
        if not isinstance(item, list) or len(item) != 4 or not isinstance(item[3], list):
            raise ValueError(f"{name}: each commit is [group, member_id, generation, offsets]")
        offsets = []
        for o in item[3]:
            if not isinstance(o, list) or len(o) != 3:
                raise ValueError(f"{name}: each offset is [topic, partition, offset]")
            offsets.append((_str(name, o[0]), _int(name, o[1]), _int(name, o[2])))
        out.append(
            OffsetCommit(
                _str(name, item[0]), _str(name, item[1]), _int(name, item[2]), tuple(offsets)
            )
        )
    return tuple(out)


def _config(name: str, value: Any) -> TopicConfig:
    try:
        return TopicConfig.from_json(value)
    except InvalidConfig as e:
        raise ValueError(f"{name}: {e}") from e


# Field names mean the same thing in every command, so one parser per name suffices.
_FIELD_PARSERS: dict[str, Callable[[str, Any], object]] = {
    "command_id": _str,
    "broker_id": _int,
    "url": _str,
    "incarnation_id": _str,
    "raft_voter": _bool,
    "clean_shutdown": _bool,
    "name": _str,
    "topic_id": _str,
    "config": _config,
    "assignment": _assignment,
    "topic": _str,
    "partition": _int,
    "leader": _int,
    "expected_leader_epoch": _int,
    "leader_epoch": _int,
    "partition_epoch": _int,
    "isr": _ints,
    "count": _int,
    "group": _str,
    "member_id": _str,
    "member_ids": _strs,
    "topics": _strs,
    "session_timeout_ms": _int,
    "auto_commit": _bool,
    "auto_offset_reset": _str,
    "assignor": _str,
    "generation": _int,
    "commits": _offset_commits,
    "coordinator": _int,
}


def _decompress(packed: str) -> bytes:
    """The JSON bytes inside compressed text; ValueError unless whole, valid and bounded."""
    try:
        data = base64.b64decode(packed, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"compressed command is not valid base64: {e}") from e
    inflater = zlib.decompressobj()
    try:
        # max_length stops inflating one byte past the bound: a bomb costs at most that.
        json_bytes = inflater.decompress(data, MAX_DECODED_COMMAND_BYTES + 1)
    except zlib.error as e:
        raise ValueError(f"compressed command is not valid zlib data: {e}") from e
    if len(json_bytes) > MAX_DECODED_COMMAND_BYTES:
        raise ValueError(f"compressed command inflates past {MAX_DECODED_COMMAND_BYTES} bytes")
    if not inflater.eof or inflater.unused_data:
        raise ValueError("compressed command is truncated or followed by extra bytes")
    return json_bytes


def decode_command(text: str) -> Command:
    """Parse text written by encode_command (either form); raises ValueError on anything
    malformed, including compressed text that is corrupt or inflates past the bound."""
    if not isinstance(text, str):
        raise ValueError(f"a command is JSON text, got {type(text).__name__}")
    # Characters, as journals written before compression were checked: each is at
    # least one byte, so this never refuses text the byte bound would accept.
    if len(text) > MAX_DECODED_COMMAND_BYTES:
        raise ValueError(f"command text longer than {MAX_DECODED_COMMAND_BYTES} characters")
    json_text: str | bytes = text
    if text.startswith(COMPRESSED_PREFIX):
        json_text = _decompress(text[len(COMPRESSED_PREFIX) :])
    try:
        raw = orjson.loads(json_text)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"command is not valid JSON: {e}") from e
    if not isinstance(raw, dict):
        raise ValueError("a command must be a JSON object")
    type_name = raw.get("type")
    kind = COMMAND_TYPES.get(type_name) if isinstance(type_name, str) else None
    if kind is None:
        raise ValueError(f"unknown command type {type_name!r}")
    names = [f.name for f in fields(kind)]
    extra = sorted(set(raw) - set(names) - {"type"})
    if extra:
        raise ValueError(f"{kind.__name__} has no field(s) {', '.join(extra)}")
    values: dict[str, object] = {}
    for f in fields(kind):
        if f.name in raw:
            values[f.name] = _FIELD_PARSERS[f.name](f.name, raw[f.name])
        elif f.default is MISSING:
            # Only fields with a default may be absent: they were added later, and
            # entries written before them must still decode (to that default).
            raise ValueError(f"{kind.__name__} is missing field {f.name!r}")
    return kind(**values)  # type: ignore[arg-type]
