"""Events: what an applied metadata command changed, for the broker to act on.

This module owns the event types and their plain-JSON form (events are kept in
the state for idempotent retries, so they are part of the snapshot). It must never
decide anything: events only describe changes `state.apply` has made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from raftka.metadata.records import PartitionRecord


@dataclass(frozen=True, slots=True)
class BrokerRegistered:
    broker_id: int


@dataclass(frozen=True, slots=True)
class BrokerHeartbeatReceived:
    # The controller feeds this into BrokerLiveness with its own clock.
    broker_id: int


@dataclass(frozen=True, slots=True)
class BrokerFenced:
    broker_id: int


@dataclass(frozen=True, slots=True)
class BrokerUnfenced:
    broker_id: int


@dataclass(frozen=True, slots=True)
class TopicCreated:
    name: str


@dataclass(frozen=True, slots=True)
class TopicDeleted:
    name: str


@dataclass(frozen=True, slots=True)
class PartitionChanged:
    topic: str
    partition: int
    record: PartitionRecord  # the partition as it is after the change


@dataclass(frozen=True, slots=True)
class ProducerIdsAllocated:
    broker_id: int
    first_id: int
    count: int  # the block is [first_id, first_id + count)


@dataclass(frozen=True, slots=True)
class GroupChanged:
    # A member joined, left, expired or acknowledged, or the group's topics changed.
    group: str


@dataclass(frozen=True, slots=True)
class OffsetsCommitted:
    # One entry per OffsetCommit of the batch, in order: "" when stored, else the
    # contract error code and why ("STALE_GENERATION: ...").
    results: tuple[str, ...]


Event = (
    BrokerRegistered
    | BrokerHeartbeatReceived
    | BrokerFenced
    | BrokerUnfenced
    | TopicCreated
    | TopicDeleted
    | PartitionChanged
    | ProducerIdsAllocated
    | GroupChanged
    | OffsetsCommitted
)

_EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        BrokerRegistered,
        BrokerHeartbeatReceived,
        BrokerFenced,
        BrokerUnfenced,
        TopicCreated,
        TopicDeleted,
        PartitionChanged,
        ProducerIdsAllocated,
        GroupChanged,
        OffsetsCommitted,
    )
}


def event_to_json(event: Event) -> dict[str, Any]:
    if isinstance(event, PartitionChanged):
        return {
            "type": "PartitionChanged",
            "topic": event.topic,
            "partition": event.partition,
            "record": event.record.to_json(),
        }
    out: dict[str, Any] = {"type": type(event).__name__}
    for name in type(event).__dataclass_fields__:
        out[name] = getattr(event, name)
    return out


def event_from_json(d: dict[str, Any]) -> Event:
    """Rebuild an event written by event_to_json; raises ValueError if malformed."""
    try:
        kind = _EVENT_TYPES[d["type"]]
        if kind is PartitionChanged:
            return PartitionChanged(
                topic=str(d["topic"]),
                partition=int(d["partition"]),
                record=PartitionRecord.from_json(d["record"]),
            )
        if kind is OffsetsCommitted:
            return OffsetsCommitted(tuple(str(r) for r in d["results"]))
        return kind(**{name: d[name] for name in kind.__dataclass_fields__})
    except (KeyError, TypeError) as e:
        raise ValueError(f"malformed event {d!r}: {e}") from e
