"""One Kafka protocol consumer group at its coordinator: the classic JoinGroup/SyncGroup
rebalance, where the members elect a leader that computes the assignment. Pure: the
clock is passed in, and answers are values the caller hands to waiting requests.

States as Kafka names them: Empty, PreparingRebalance (waiting for every member to
(re)join), CompletingRebalance (the leader is computing the assignment), Stable.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from raftka.api.kafka import errors

# Kafka's group.initial.rebalance.delay.ms is 3 s; consumers started together (the
# common case in tests and deployments) then share the first generation.
INITIAL_REBALANCE_DELAY_S = 0.5


class GroupPhase(enum.StrEnum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"


@dataclass(frozen=True, slots=True)
class JoinAnswer:
    error_code: int
    generation: int = -1
    protocol: str | None = None
    leader: str = ""
    member_id: str = ""
    members: tuple[tuple[str, bytes], ...] = ()  # only the leader's answer lists them


@dataclass(slots=True)
class Member:
    member_id: str
    session_timeout_s: float
    rebalance_timeout_s: float
    protocols: tuple[tuple[str, bytes], ...]
    last_heard: float
    joined: bool = False  # rejoined in the current rebalance
    assignment: bytes = b""


@dataclass(slots=True)
class KafkaGroup:
    group_id: str
    phase: GroupPhase = GroupPhase.EMPTY
    generation: int = 0
    protocol_type: str = ""
    protocol: str | None = None
    leader: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    rebalance_not_before: float = 0.0
    rebalance_deadline: float = 0.0

    # -- joining -------------------------------------------------------------------

    def join(
        self,
        member_id: str,
        protocol_type: str,
        protocols: tuple[tuple[str, bytes], ...],
        session_timeout_s: float,
        rebalance_timeout_s: float,
        now: float,
    ) -> int:
        """Records a (re)join; returns an error code (NONE: wait for `complete`)."""
        if self.members and protocol_type != self.protocol_type:
            return errors.INCONSISTENT_GROUP_PROTOCOL
        member = self.members.get(member_id)
        if member is None:
            member = Member(member_id, session_timeout_s, rebalance_timeout_s, protocols, now)
            self.members[member_id] = member
        member.protocols = protocols
        member.session_timeout_s = session_timeout_s
        member.rebalance_timeout_s = rebalance_timeout_s
        member.last_heard = now
        member.joined = True
        self.protocol_type = protocol_type
        if self.phase is not GroupPhase.PREPARING_REBALANCE:
            self._prepare_rebalance(now, initial=self.phase is GroupPhase.EMPTY)
        return errors.NONE

    def _prepare_rebalance(self, now: float, *, initial: bool = False) -> None:
        self.phase = GroupPhase.PREPARING_REBALANCE
        for m in self.members.values():
            m.assignment = b""
        self.rebalance_not_before = now + (INITIAL_REBALANCE_DELAY_S if initial else 0.0)
        self.rebalance_deadline = now + max(
            (m.rebalance_timeout_s for m in self.members.values()), default=0.0
        )

    def ready_to_complete(self, now: float) -> bool:
        if self.phase is not GroupPhase.PREPARING_REBALANCE or now < self.rebalance_not_before:
            return False
        return all(m.joined for m in self.members.values()) or now >= self.rebalance_deadline

    def complete(self) -> dict[str, JoinAnswer]:
        """Opens the next generation with the members that rejoined; their answers."""
        for member_id in [m for m, member in self.members.items() if not member.joined]:
            del self.members[member_id]
        if not self.members:
            self.phase, self.leader, self.protocol = GroupPhase.EMPTY, None, None
            return {}
        self.generation += 1
        if self.leader not in self.members:
            self.leader = next(iter(self.members))
        leader = self.members[self.leader]
        common = set.intersection(*({n for n, _ in m.protocols} for m in self.members.values()))
        self.protocol = next((n for n, _ in leader.protocols if n in common), None)
        if self.protocol is None:
            answers = {m: JoinAnswer(errors.INCONSISTENT_GROUP_PROTOCOL) for m in self.members}
            self.members.clear()
            self.phase, self.leader = GroupPhase.EMPTY, None
            return answers
        self.phase = GroupPhase.COMPLETING_REBALANCE
        listed = tuple(
            (m.member_id, dict(m.protocols)[self.protocol]) for m in self.members.values()
        )
        answers = {}
        for m in self.members.values():
            m.joined = False
            answers[m.member_id] = JoinAnswer(
                errors.NONE,
                self.generation,
                self.protocol,
                self.leader,
                m.member_id,
                listed if m.member_id == self.leader else (),
            )
        return answers

    # -- after the join ----------------------------------------------------------------

    def check_member(self, member_id: str, generation: int, now: float) -> int:
        member = self.members.get(member_id)
        if member is None:
            return errors.UNKNOWN_MEMBER_ID
        member.last_heard = now
        if generation != self.generation:
            return errors.ILLEGAL_GENERATION
        if self.phase is GroupPhase.PREPARING_REBALANCE:
            return errors.REBALANCE_IN_PROGRESS
        return errors.NONE

    def sync(self, member_id: str, assignments: dict[str, bytes]) -> bool:
        """The leader's assignments end the rebalance; True when they did (the waiting
        members' answers are then ready)."""
        if self.phase is not GroupPhase.COMPLETING_REBALANCE or member_id != self.leader:
            return False
        for m in self.members.values():
            m.assignment = assignments.get(m.member_id, b"")
        self.phase = GroupPhase.STABLE
        return True

    def leave(self, member_id: str, now: float) -> int:
        if self.members.pop(member_id, None) is None:
            return errors.UNKNOWN_MEMBER_ID
        self._after_departure(now)
        return errors.NONE

    def expire(self, now: float) -> list[str]:
        """Removes members whose session ran out (a member waiting in a join is alive)."""
        gone = [
            m.member_id
            for m in self.members.values()
            if not m.joined and now - m.last_heard > m.session_timeout_s
        ]
        for member_id in gone:
            del self.members[member_id]
        if gone:
            self._after_departure(now)
        return gone

    def _after_departure(self, now: float) -> None:
        if not self.members:
            self.phase, self.leader, self.protocol = GroupPhase.EMPTY, None, None
        elif self.phase is not GroupPhase.PREPARING_REBALANCE:
            self._prepare_rebalance(now)
