"""Metadata commands: the entries of the Raft metadata log, and their text form.

This module owns one frozen dataclass per command and the compact JSON text that
travels through pysyncobj (a str, which pysyncobj pickles cheaply). It must never
apply a command (that is `state.apply`) and never trusts text: `decode_command`
checks every field's type and raises ValueError on anything malformed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import orjson

from raftka.metadata.records import InvalidConfig, TopicConfig

# command_id "" means "no id": the command is not remembered for idempotent retries.
NO_COMMAND_ID = ""
MAX_COMMAND_TEXT_CHARS = 16 * 1024 * 1024  # one Raft entry; matches max_request_bytes


@dataclass(frozen=True, slots=True)
class RegisterBroker:
    broker_id: int
    url: str
    incarnation_id: str  # new per process start: a new one means the broker restarted
    raft_voter: bool
    command_id: str = NO_COMMAND_ID


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


Command = (
    RegisterBroker
    | BrokerHeartbeat
    | FenceBroker
    | UnfenceBroker
    | CreateTopic
    | DeleteTopic
    | ElectLeader
    | AlterPartition
    | AllocateProducerIds
)

COMMAND_TYPES: dict[str, type[Command]] = {
    cls.__name__: cls
    for cls in (
        RegisterBroker,
        BrokerHeartbeat,
        FenceBroker,
        UnfenceBroker,
        CreateTopic,
        DeleteTopic,
        ElectLeader,
        AlterPartition,
        AllocateProducerIds,
    )
}


def _plain(value: object) -> object:
    if isinstance(value, TopicConfig):
        return value.to_json()
    return value  # orjson writes tuples as arrays


def encode_command(command: Command) -> str:
    """Compact JSON text: {"type": "<class name>", <fields>...}."""
    out: dict[str, object] = {"type": type(command).__name__}
    for f in fields(command):
        out[f.name] = _plain(getattr(command, f.name))
    return orjson.dumps(out).decode()


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
}


def decode_command(text: str) -> Command:
    """Parse text written by encode_command; raises ValueError on anything malformed."""
    if not isinstance(text, str):
        raise ValueError(f"a command is JSON text, got {type(text).__name__}")
    if len(text) > MAX_COMMAND_TEXT_CHARS:
        raise ValueError(f"command text longer than {MAX_COMMAND_TEXT_CHARS} characters")
    try:
        raw = orjson.loads(text)
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
    for name in names:
        if name in raw:
            values[name] = _FIELD_PARSERS[name](name, raw[name])
        elif name != "command_id":
            raise ValueError(f"{kind.__name__} is missing field {name!r}")
    return kind(**values)  # type: ignore[arg-type]
