"""Consumer groups in the metadata: members, generations, the safe hand-off of
partitions between members, and committed offsets.

This module owns `GroupRecord` and `MemberRecord`, the pure rules that change them
(join, leave, acknowledge a generation, topic changes, commit) and the two pure
helpers a coordinator needs (`coordinator_for`, `GroupSessions`). `state.apply`
calls the rules; the broker calls the helpers. It must never read a clock (callers
pass `now_ms`), do I/O or depend on dict or set order.

The hand-off (KIP-848's reconciliation, in raftka's words):
- Every membership change opens a new `generation` and computes each member's
  `target` (the group's assignor). `owned` is what a member may be consuming now.
- A member is told, and served, `owned & target` (its `assignment`). Partitions in
  its `owned` but not in its `target` are revoked: it keeps them in `owned` until
  it acknowledges the generation (a heartbeat carrying it), so nobody else gets them
  while it may still be processing their records.
- A partition enters a member's `owned` only when no other member owns it. So the
  `owned` sets never overlap: no two members ever consume one partition at once.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from raftka.metadata.assignors import ASSIGNORS, DEFAULT_ASSIGNOR, TopicPartition, assign

MIN_SESSION_TIMEOUT_MS = 1_000  # below this a GC pause or a slow poll loop expires a member
MAX_SESSION_TIMEOUT_MS = 1_800_000  # Kafka's group.max.session.timeout.ms
MAX_MEMBERS_PER_GROUP = 1_000
MAX_TOPICS_PER_MEMBER = 1_000
MAX_MEMBER_ID_CHARS = 64
AUTO_OFFSET_RESETS = ("earliest", "latest")


MAX_GROUP_ID_CHARS = 249
GROUP_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]+")


def validate_group_id(group_id: object) -> str | None:
    """Why `group_id` is not a valid group id, or None. Topic names' rules: a group id
    travels in URL paths, so it keeps to the same safe characters."""
    if not isinstance(group_id, str) or not 1 <= len(group_id) <= MAX_GROUP_ID_CHARS:
        return f"a group id must be 1-{MAX_GROUP_ID_CHARS} characters"
    if GROUP_ID_PATTERN.fullmatch(group_id) is None:
        return f"group id {group_id!r} may only contain A-Z, a-z, 0-9, '.', '_' and '-'"
    return None


class GroupState(enum.StrEnum):
    # KIP-848's names: no members; partitions still moving; everyone has its target.
    EMPTY = "Empty"
    RECONCILING = "Reconciling"
    STABLE = "Stable"


class GroupRuleError(Exception):
    """A group command that cannot be applied; `code` is a contract error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _sorted_partitions(partitions: Iterable[TopicPartition]) -> tuple[TopicPartition, ...]:
    return tuple(sorted(set(partitions)))


@dataclass(frozen=True, slots=True)
class MemberRecord:
    member_id: str
    topics: tuple[str, ...]
    session_timeout_ms: int
    auto_commit: bool
    auto_offset_reset: str
    # The newest generation this member acknowledged; a new member starts at the
    # generation its join opened (it owns nothing, so it has nothing to give up).
    member_generation: int
    target: tuple[TopicPartition, ...]  # its partitions in the current generation
    owned: tuple[TopicPartition, ...]  # what it may be consuming now (see the module doc)

    @property
    def assignment(self) -> tuple[TopicPartition, ...]:
        """What the member is told and served: owned partitions it keeps."""
        target = set(self.target)
        return tuple(p for p in self.owned if p in target)

    def to_json(self) -> dict[str, Any]:
        return {
            "member_id": self.member_id,
            "topics": list(self.topics),
            "session_timeout_ms": self.session_timeout_ms,
            "auto_commit": self.auto_commit,
            "auto_offset_reset": self.auto_offset_reset,
            "member_generation": self.member_generation,
            "target": [list(p) for p in self.target],
            "owned": [list(p) for p in self.owned],
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> MemberRecord:
        return MemberRecord(
            member_id=str(d["member_id"]),
            topics=tuple(str(t) for t in d["topics"]),
            session_timeout_ms=int(d["session_timeout_ms"]),
            auto_commit=bool(d["auto_commit"]),
            auto_offset_reset=str(d["auto_offset_reset"]),
            member_generation=int(d["member_generation"]),
            target=tuple((str(t), int(p)) for t, p in d["target"]),
            owned=tuple((str(t), int(p)) for t, p in d["owned"]),
        )


@dataclass(frozen=True, slots=True)
class GroupRecord:
    group_id: str
    assignor: str
    generation: int
    members: Mapping[str, MemberRecord]
    offsets: Mapping[TopicPartition, int]  # committed offsets: the next record to consume

    @property
    def state(self) -> GroupState:
        if not self.members:
            return GroupState.EMPTY
        if any(set(m.owned) != set(m.target) for m in self.members.values()):
            return GroupState.RECONCILING
        return GroupState.STABLE

    @property
    def rebalancing(self) -> bool:
        return self.state is GroupState.RECONCILING

    def owner_of(self, partition: TopicPartition) -> str | None:
        for member in self.members.values():
            if partition in member.owned:
                return member.member_id
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "group_id": self.group_id,
            "assignor": self.assignor,
            "generation": self.generation,
            "members": [self.members[m].to_json() for m in sorted(self.members)],
            "offsets": [[t, p, o] for (t, p), o in sorted(self.offsets.items())],
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> GroupRecord:
        members = [MemberRecord.from_json(m) for m in d["members"]]
        return GroupRecord(
            group_id=str(d["group_id"]),
            assignor=str(d["assignor"]),
            generation=int(d["generation"]),
            members={m.member_id: m for m in members},
            offsets={(str(t), int(p)): int(o) for t, p, o in d["offsets"]},
        )

    def check_invariants(self, partition_counts: Mapping[str, int]) -> None:
        """Raise AssertionError naming the first broken invariant."""
        where = f"group {self.group_id}"
        assert self.assignor in ASSIGNORS, f"{where}: known assignor"
        seen: dict[TopicPartition, str] = {}
        for member_id, m in self.members.items():
            assert m.member_id == member_id, f"{where}: member stored under its id"
            assert m.member_generation <= self.generation, f"{where}: no future generation"
            for p in m.owned:
                assert p not in seen, f"{where}: {p} owned by {seen[p]} and {member_id}"
                seen[p] = member_id
            for t, p in (*m.owned, *m.target):
                assert t in m.topics, f"{where}: {member_id} holds {t} without subscribing"
                assert 0 <= p < partition_counts.get(t, 0), f"{where}: {t}-{p} exists"
        targets = [p for m in self.members.values() for p in m.target]
        assert len(targets) == len(set(targets)), f"{where}: targets are disjoint"
        for (t, p), offset in self.offsets.items():
            assert offset >= 0, f"{where}: committed offsets are >= 0"
            assert 0 <= p < partition_counts.get(t, 0), f"{where}: offsets of existing {t}-{p}"


# --- the rules -------------------------------------------------------------------


def _grant_free(members: dict[str, MemberRecord]) -> None:
    """Give each member the target partitions nobody owns any more (in place)."""
    owned = {p for m in members.values() for p in m.owned}
    for member_id in sorted(members):
        m = members[member_id]
        free = [p for p in m.target if p not in owned]
        if free:
            members[member_id] = replace(m, owned=_sorted_partitions((*m.owned, *free)))
            owned.update(free)


def _rebalance(
    group: GroupRecord, members: dict[str, MemberRecord], partition_counts: Mapping[str, int]
) -> GroupRecord:
    """A new generation over `members`: new targets, then hand over what is free."""
    targets = assign(
        group.assignor,
        {m.member_id: m.topics for m in members.values()},
        partition_counts,
        {m.member_id: m.target for m in members.values()},
    )
    for member_id, m in members.items():
        members[member_id] = replace(m, target=_sorted_partitions(targets[member_id]))
    _grant_free(members)
    return replace(group, generation=group.generation + 1, members=members)


def new_group(group_id: str, assignor: str) -> GroupRecord:
    return GroupRecord(group_id, assignor, generation=0, members={}, offsets={})


def join(
    group: GroupRecord, member: MemberRecord, partition_counts: Mapping[str, int]
) -> GroupRecord:
    """`member` (owning nothing yet) joins; the group opens a new generation."""
    if member.member_id in group.members:
        raise GroupRuleError("INVALID_REQUEST", f"member {member.member_id} already joined")
    if len(group.members) >= MAX_MEMBERS_PER_GROUP:
        raise GroupRuleError(
            "INVALID_REQUEST",
            f"group {group.group_id} has the maximum of {MAX_MEMBERS_PER_GROUP} members",
        )
    members = dict(group.members)
    members[member.member_id] = replace(
        member, member_generation=group.generation + 1, target=(), owned=()
    )
    return _rebalance(group, members, partition_counts)


def leave(
    group: GroupRecord, member_ids: Iterable[str], partition_counts: Mapping[str, int]
) -> GroupRecord:
    """The members leave (or expired); what they owned is free. Unknown ids are ignored:
    a retried leave, or an expiry racing a leave, must not fail."""
    gone = set(member_ids) & set(group.members)
    if not gone:
        return group
    members = {m: r for m, r in group.members.items() if m not in gone}
    return _rebalance(group, members, partition_counts)


def acknowledge(group: GroupRecord, member_id: str, generation: int) -> GroupRecord:
    """The member heartbeated at `generation`: it has stopped consuming what that
    generation revoked, so those partitions go to their new owners."""
    member = member_of(group, member_id)
    if generation != group.generation or member.member_generation >= generation:
        return group  # an old generation acknowledges nothing; a repeat changes nothing
    members = dict(group.members)
    target = set(member.target)
    members[member_id] = replace(
        member,
        member_generation=generation,
        owned=tuple(p for p in member.owned if p in target),
    )
    _grant_free(members)
    return replace(group, members=members)


def topics_changed(group: GroupRecord, partition_counts: Mapping[str, int]) -> GroupRecord:
    """A topic was created or deleted: drop what no longer exists, and rebalance when
    the partitions the members subscribe to changed."""

    def exists(tp: TopicPartition) -> bool:
        return tp[1] < partition_counts.get(tp[0], 0)

    offsets = {tp: o for tp, o in group.offsets.items() if exists(tp)}
    members = {
        member_id: replace(
            m,
            owned=tuple(p for p in m.owned if exists(p)),
            target=tuple(p for p in m.target if exists(p)),
        )
        for member_id, m in group.members.items()
    }
    subscribed = {t for m in members.values() for t in m.topics}
    wanted = {(t, p) for t in subscribed for p in range(partition_counts.get(t, 0))}
    assigned = {p for m in members.values() for p in m.target}
    group = replace(group, members=members, offsets=offsets)
    if wanted == assigned:
        return group
    return _rebalance(group, dict(members), partition_counts)


def member_of(group: GroupRecord, member_id: str) -> MemberRecord:
    member = group.members.get(member_id)
    if member is None:
        raise GroupRuleError(
            "UNKNOWN_MEMBER", f"member {member_id} is not in group {group.group_id}"
        )
    return member


def commit(
    group: GroupRecord,
    member_id: str,
    generation: int,
    offsets: Iterable[tuple[str, int, int]],
) -> GroupRecord:
    """Store committed offsets of partitions the member owns in the current generation
    (all or none). A member may commit a revoked partition until it acknowledges the
    generation that revoked it: that is its last chance to save its progress."""
    member = member_of(group, member_id)
    if generation != group.generation:
        raise GroupRuleError(
            "STALE_GENERATION",
            f"generation {generation} is not group {group.group_id}'s current "
            f"generation {group.generation}: rejoin or heartbeat, then commit again",
        )
    stored = dict(group.offsets)
    for topic, partition, offset in offsets:
        if (topic, partition) not in member.owned:
            raise GroupRuleError(
                "STALE_GENERATION",
                f"{topic}-{partition} is not assigned to member {member_id} in "
                f"generation {generation}",
            )
        stored[(topic, partition)] = offset
    return replace(group, offsets=stored)


# The member id of a commit its coordinator checked outside these records: a Kafka
# protocol group's (its members and generations live in the coordinator's memory,
# docs/kafka-protocol.md) or a commit without a group. Never a real member's id.
EXTERNAL_MEMBER_ID = ""


def commit_external(
    group: GroupRecord | None, group_id: str, offsets: Iterable[tuple[str, int, int]]
) -> GroupRecord:
    """Store offsets of a group with no members here (creating its record): the two kinds
    of groups share committed offsets, but one group id is used by one kind at a time."""
    if group is None:
        group = GroupRecord(group_id, DEFAULT_ASSIGNOR, 0, {}, {})
    elif group.members:
        raise GroupRuleError(
            "STALE_GENERATION",
            f"group {group_id} has HTTP members; its offsets are theirs to commit",
        )
    stored = dict(group.offsets)
    for topic, partition, offset in offsets:
        stored[(topic, partition)] = offset
    return replace(group, offsets=stored)


# --- what a coordinator needs --------------------------------------------------


def coordinator_for(group_id: str, candidates: Iterable[int]) -> int | None:
    """The broker that coordinates `group_id` among `candidates` (the unfenced
    brokers): rendezvous hashing, so a broker's death moves only its own groups."""

    def weight(broker_id: int) -> bytes:
        return hashlib.blake2b(f"{group_id}\x00{broker_id}".encode(), digest_size=8).digest()

    best = max(candidates, key=lambda b: (weight(b), b), default=None)
    return best


class GroupSessions:
    """When each member of the groups this broker coordinates was last heard from.

    Heartbeats live here, in the coordinator's memory, and cost no metadata write;
    only an expiry does. A member this coordinator has not heard from yet (it just
    took the group over, or the member joined elsewhere) starts its session at the
    moment it is first seen: the grace period of one session timeout.
    """

    def __init__(self) -> None:
        self._last_heard_ms: dict[tuple[str, str], int] = {}

    def heard_from(self, group_id: str, member_id: str, now_ms: int) -> None:
        self._last_heard_ms[(group_id, member_id)] = now_ms

    def expired(self, groups: Iterable[GroupRecord], now_ms: int) -> dict[str, list[str]]:
        """group_id -> members past their session timeout, among `groups` (the ones
        this broker coordinates now). Forgets members and groups no longer listed."""
        current: dict[tuple[str, str], int] = {}
        out: dict[str, list[str]] = {}
        for group in groups:
            for member_id in sorted(group.members):
                key = (group.group_id, member_id)
                last = self._last_heard_ms.get(key, now_ms)
                current[key] = last
                if now_ms - last > group.members[member_id].session_timeout_ms:
                    out.setdefault(group.group_id, []).append(member_id)
        self._last_heard_ms = current
        return out


__all__ = [
    "AUTO_OFFSET_RESETS",
    "ASSIGNORS",
    "DEFAULT_ASSIGNOR",
    "GroupRecord",
    "GroupRuleError",
    "GroupSessions",
    "GroupState",
    "MemberRecord",
    "TopicPartition",
    "acknowledge",
    "commit",
    "coordinator_for",
    "join",
    "leave",
    "member_of",
    "new_group",
    "topics_changed",
    "validate_group_id",
]
