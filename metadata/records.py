"""The records of the cluster metadata: brokers, topic configs, topics and partitions.

This module owns the shape of each record, its validation (topic names, topic
configs) and its plain-JSON form. It must never decide how records change (that is
`state.apply`) and never does I/O. `model` re-exports everything here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

MAX_TOPIC_NAME_CHARS = 249  # Kafka's limit: leaves room for suffixes in file names
TOPIC_NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]+")

DEFAULT_RETENTION_MS = 604_800_000  # 7 days, Kafka's retention.ms default
DEFAULT_SEGMENT_BYTES = 1_073_741_824  # 1 GiB, Kafka's segment.bytes default
MIN_SEGMENT_BYTES = 14  # Kafka's lower bound for segment.bytes
MAX_SEGMENT_BYTES = 2**31 - 1  # Kafka stores segment positions as int32
MAX_MIN_INSYNC_REPLICAS = 2**31 - 1
UNLIMITED = -1  # Kafka's spelling of "no limit" for retention; stored as None here


class InvalidConfig(ValueError):
    """A topic config that cannot be accepted; the message is meant for a person."""


def validate_topic_name(name: object) -> str | None:
    """Return why `name` is not a valid topic name, or None when it is."""
    if not isinstance(name, str):
        return "topic name must be a string"
    if not 1 <= len(name) <= MAX_TOPIC_NAME_CHARS:
        return f"topic name must be 1-{MAX_TOPIC_NAME_CHARS} characters, got {len(name)}"
    if name in (".", ".."):
        return f"topic name cannot be {name!r}"
    if TOPIC_NAME_PATTERN.fullmatch(name) is None:
        return f"topic name {name!r} may only contain A-Z, a-z, 0-9, '.', '_' and '-'"
    return None


def is_int(value: object) -> bool:
    """A JSON integer: bool is an int subclass in Python, and JSON true must not pass for 1."""
    return isinstance(value, int) and not isinstance(value, bool)


def _int_in_range(key: str, value: object, low: int, high: int) -> int:
    if not is_int(value):
        raise InvalidConfig(f"{key} must be an integer, got {value!r}")
    assert isinstance(value, int)
    if not low <= value <= high:
        raise InvalidConfig(f"{key} must be between {low} and {high}, got {value}")
    return value


def _optional_limit(key: str, value: object) -> int | None:
    if value is None or value == UNLIMITED and is_int(value):
        return None
    return _int_in_range(key, value, 1, 2**63 - 1)


@dataclass(frozen=True, slots=True)
class BrokerRecord:
    broker_id: int
    url: str
    incarnation_id: str
    raft_voter: bool
    fenced: bool
    # As the broker's latest RegisterBroker said: False when its current incarnation
    # may have lost acknowledged writes, so elections prefer other candidates.
    clean_shutdown: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "broker_id": self.broker_id,
            "url": self.url,
            "incarnation_id": self.incarnation_id,
            "raft_voter": self.raft_voter,
            "fenced": self.fenced,
            "clean_shutdown": self.clean_shutdown,
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> BrokerRecord:
        return BrokerRecord(
            broker_id=int(d["broker_id"]),
            url=str(d["url"]),
            incarnation_id=str(d["incarnation_id"]),
            raft_voter=bool(d["raft_voter"]),
            fenced=bool(d["fenced"]),
            # Snapshots written before the field existed hold only clean starts.
            clean_shutdown=bool(d.get("clean_shutdown", True)),
        )


@dataclass(frozen=True, slots=True)
class TopicConfig:
    min_insync_replicas: int = 1
    retention_ms: int | None = DEFAULT_RETENTION_MS  # None: keep forever
    retention_bytes: int | None = None  # None: no size limit
    segment_bytes: int = DEFAULT_SEGMENT_BYTES
    unclean_leader_election: bool = False

    def __post_init__(self) -> None:
        # Construction and from_json share one set of rules, so no invalid config exists.
        _int_in_range("min_insync_replicas", self.min_insync_replicas, 1, MAX_MIN_INSYNC_REPLICAS)
        for key in ("retention_ms", "retention_bytes"):
            value = getattr(self, key)
            if value is not None:
                _int_in_range(key, value, 1, 2**63 - 1)
        _int_in_range("segment_bytes", self.segment_bytes, MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES)
        if not isinstance(self.unclean_leader_election, bool):
            raise InvalidConfig(
                f"unclean_leader_election must be true or false, got {self.unclean_leader_election!r}"
            )

    @staticmethod
    def from_json(d: object) -> TopicConfig:
        """Build a config from a JSON object; missing keys take their defaults.

        Raises InvalidConfig for unknown keys and values of the wrong type or range.
        Kafka's -1 ("unlimited") is accepted for retention_ms and retention_bytes.
        """
        if not isinstance(d, dict):
            raise InvalidConfig(f"config must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in fields(TopicConfig)}
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            raise InvalidConfig(
                f"unknown config key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        default = TopicConfig()
        return TopicConfig(
            min_insync_replicas=_int_in_range(
                "min_insync_replicas",
                d.get("min_insync_replicas", default.min_insync_replicas),
                1,
                MAX_MIN_INSYNC_REPLICAS,
            ),
            retention_ms=_optional_limit(
                "retention_ms", d.get("retention_ms", default.retention_ms)
            ),
            retention_bytes=_optional_limit(
                "retention_bytes", d.get("retention_bytes", default.retention_bytes)
            ),
            segment_bytes=_int_in_range(
                "segment_bytes",
                d.get("segment_bytes", default.segment_bytes),
                MIN_SEGMENT_BYTES,
                MAX_SEGMENT_BYTES,
            ),
            unclean_leader_election=d.get(
                "unclean_leader_election", default.unclean_leader_election
            ),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "min_insync_replicas": self.min_insync_replicas,
            "retention_ms": self.retention_ms,
            "retention_bytes": self.retention_bytes,
            "segment_bytes": self.segment_bytes,
            "unclean_leader_election": self.unclean_leader_election,
        }


@dataclass(frozen=True, slots=True)
class PartitionRecord:
    partition: int
    replicas: tuple[int, ...]  # replicas[0] is the preferred leader
    isr: tuple[int, ...]  # kept in replicas order, so equal sets compare equal
    leader: int | None  # None: no leader can be elected (offline partition)
    leader_epoch: int  # bumped on every leader change
    partition_epoch: int  # bumped on every leader or isr change

    def to_json(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "replicas": list(self.replicas),
            "isr": list(self.isr),
            "leader": self.leader,
            "leader_epoch": self.leader_epoch,
            "partition_epoch": self.partition_epoch,
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> PartitionRecord:
        leader = d["leader"]
        return PartitionRecord(
            partition=int(d["partition"]),
            replicas=tuple(int(r) for r in d["replicas"]),
            isr=tuple(int(r) for r in d["isr"]),
            leader=None if leader is None else int(leader),
            leader_epoch=int(d["leader_epoch"]),
            partition_epoch=int(d["partition_epoch"]),
        )


@dataclass(frozen=True, slots=True)
class TopicRecord:
    name: str
    topic_id: str  # tells a deleted topic from a new one with the same name
    config: TopicConfig
    partitions: tuple[PartitionRecord, ...]  # partitions[i].partition == i

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "topic_id": self.topic_id,
            "config": self.config.to_json(),
            "partitions": [p.to_json() for p in self.partitions],
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> TopicRecord:
        return TopicRecord(
            name=str(d["name"]),
            topic_id=str(d["topic_id"]),
            config=TopicConfig.from_json(d["config"]),
            partitions=tuple(PartitionRecord.from_json(p) for p in d["partitions"]),
        )
