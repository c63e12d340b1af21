"""The metadata state: every broker and topic, as one immutable value.

This module owns `MetadataState`, its invariants and its snapshot form, and
re-exports the records (`records.py`) so callers import one module. It must never
change a state (only `state.apply` makes new ones), read a clock or do I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from raftka.metadata.events import Event, event_from_json, event_to_json
from raftka.metadata.groups import GroupRecord
from raftka.metadata.records import (
    BrokerRecord,
    InvalidConfig,
    PartitionRecord,
    TopicConfig,
    TopicRecord,
    validate_topic_name,
)

__all__ = [
    "MAX_RECENT_COMMAND_IDS",
    "SNAPSHOT_VERSION",
    "BrokerRecord",
    "CommandOutcome",
    "GroupRecord",
    "InvalidConfig",
    "MetadataState",
    "PartitionRecord",
    "TopicConfig",
    "TopicRecord",
    "validate_topic_name",
]

# How many applied command ids are remembered for idempotent retries. A client
# retries within seconds; 1024 covers far more commands than a cluster issues then.
MAX_RECENT_COMMAND_IDS = 1024
SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """The events an applied command produced, kept to answer a retry of it."""

    command_id: str
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class MetadataState:
    # Plain dicts typed as read-only Mappings: picklable, and dict equality ignores
    # insertion order, so a state rebuilt from a snapshot compares equal.
    brokers: Mapping[int, BrokerRecord]
    topics: Mapping[str, TopicRecord]
    next_producer_id: int
    # Oldest first; at most MAX_RECENT_COMMAND_IDS entries (FIFO eviction).
    recent_command_ids: tuple[CommandOutcome, ...]
    groups: Mapping[str, GroupRecord] = field(default_factory=dict)
    # Fenced brokers whose leaderships and isr memberships are still being moved off them,
    # a chunk per entry (state.py): broker id -> (topic, partition) where the next chunk
    # starts, in topic name order. Until its chunk comes, a partition may still name the
    # broker as leader or isr member.
    fencing: Mapping[int, tuple[str, int]] = field(default_factory=dict)

    @staticmethod
    def empty() -> MetadataState:
        return MetadataState(brokers={}, topics={}, next_producer_id=0, recent_command_ids=())

    def outcome_of(self, command_id: str) -> CommandOutcome | None:
        """The remembered outcome of `command_id`, or None ("" is never remembered)."""
        if not command_id:
            return None
        for outcome in self.recent_command_ids:
            if outcome.command_id == command_id:
                return outcome
        return None

    def partition_counts(self) -> dict[str, int]:
        return {name: len(t.partitions) for name, t in self.topics.items()}

    def check_invariants(self) -> None:
        """Raise AssertionError naming the first broken invariant."""
        assert self.next_producer_id >= 0, "next_producer_id >= 0"
        assert len(self.recent_command_ids) <= MAX_RECENT_COMMAND_IDS, (
            "recent_command_ids is bounded"
        )
        ids = [o.command_id for o in self.recent_command_ids]
        assert all(ids), "recent_command_ids holds no empty id"
        assert len(set(ids)) == len(ids), "recent_command_ids holds each id once"
        for broker_id, broker in self.brokers.items():
            assert broker.broker_id == broker_id, f"broker {broker_id} is stored under its id"
        for broker_id in self.fencing:
            assert self.brokers[broker_id].fenced, f"broker {broker_id} is fenced while fencing"
        topic_ids = [t.topic_id for t in self.topics.values()]
        assert len(set(topic_ids)) == len(topic_ids), "topic_id is unique"
        partition_counts = self.partition_counts()
        for group_id, group in self.groups.items():
            assert group.group_id == group_id, f"group {group_id} is stored under its id"
            group.check_invariants(partition_counts)
        for name, topic in self.topics.items():
            assert topic.name == name, f"topic {name} is stored under its name"
            assert validate_topic_name(name) is None, f"topic name {name!r} is valid"
            assert topic.partitions, f"{name} has at least one partition"
            replication_factor = len(topic.partitions[0].replicas)
            for index, p in enumerate(topic.partitions):
                self._check_partition(topic, index, p, replication_factor)

    def _check_partition(
        self, topic: TopicRecord, index: int, p: PartitionRecord, replication_factor: int
    ) -> None:
        where = f"{topic.name}-{index}"
        assert p.partition == index, f"{where}: partitions are numbered 0..n-1"
        assert len(p.replicas) == replication_factor, f"{where}: same replication factor"
        assert p.replicas, f"{where}: replicas non-empty"
        assert len(set(p.replicas)) == len(p.replicas), f"{where}: no duplicate replicas"
        assert all(r in self.brokers for r in p.replicas), (
            f"{where}: replicas only registered brokers"
        )
        assert p.isr, f"{where}: isr non-empty"
        assert len(set(p.isr)) == len(p.isr), f"{where}: no duplicate isr members"
        assert set(p.isr) <= set(p.replicas), f"{where}: isr within replicas"
        assert list(p.isr) == [r for r in p.replicas if r in p.isr], (
            f"{where}: isr kept in replicas order"
        )
        assert p.leader is None or p.leader in p.isr, f"{where}: leader is None or in isr"
        assert p.leader_epoch >= 0 and p.partition_epoch >= 0, f"{where}: epochs >= 0"
        # A fence in progress has not reached every partition yet.
        fenced = [r for r in p.isr if self.brokers[r].fenced and r not in self.fencing]
        assert p.leader is None or not self.brokers[p.leader].fenced or p.leader in self.fencing, (
            f"{where}: a fenced broker leads nothing"
        )
        assert not fenced or len(p.isr) == 1, (
            f"{where}: a fenced broker is in no isr unless it is the only member"
        )
        # Every unfence elects into leaderless partitions, so none stays needlessly offline.
        if p.leader is None:
            assert not [r for r in p.isr if not self.brokers[r].fenced], (
                f"{where}: a leaderless partition has no unfenced isr member"
            )
            if topic.config.unclean_leader_election:
                assert all(self.brokers[r].fenced for r in p.replicas), (
                    f"{where}: with unclean_leader_election, a leaderless partition "
                    "has no unfenced replica"
                )

    def to_snapshot(self) -> dict[str, Any]:
        """A plain JSON-able dict (lists in a fixed order) that from_snapshot reads back."""
        return {
            "version": SNAPSHOT_VERSION,
            "brokers": [self.brokers[b].to_json() for b in sorted(self.brokers)],
            "topics": [self.topics[t].to_json() for t in sorted(self.topics)],
            "next_producer_id": self.next_producer_id,
            "groups": [self.groups[g].to_json() for g in sorted(self.groups)],
            "fencing": [[b, *self.fencing[b]] for b in sorted(self.fencing)],
            "recent_command_ids": [
                {"command_id": o.command_id, "events": [event_to_json(e) for e in o.events]}
                for o in self.recent_command_ids
            ],
        }

    @staticmethod
    def from_snapshot(d: dict[str, Any]) -> MetadataState:
        """Rebuild a state from to_snapshot's output; raises ValueError if malformed."""
        try:
            if d["version"] != SNAPSHOT_VERSION:
                raise ValueError(f"unsupported snapshot version {d['version']!r}")
            brokers = [BrokerRecord.from_json(b) for b in d["brokers"]]
            topics = [TopicRecord.from_json(t) for t in d["topics"]]
            # Snapshots written before consumer groups existed have no "groups".
            groups = [GroupRecord.from_json(g) for g in d.get("groups", [])]
            return MetadataState(
                brokers={b.broker_id: b for b in brokers},
                topics={t.name: t for t in topics},
                next_producer_id=int(d["next_producer_id"]),
                groups={g.group_id: g for g in groups},
                # Snapshots written before fences were chunked hold none in progress.
                fencing={int(b): (str(t), int(p)) for b, t, p in d.get("fencing", [])},
                recent_command_ids=tuple(
                    CommandOutcome(
                        command_id=str(o["command_id"]),
                        events=tuple(event_from_json(e) for e in o["events"]),
                    )
                    for o in d["recent_command_ids"]
                ),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"malformed metadata snapshot: {e!r}") from e
