"""Random sequences of group commands against `apply`, checked against a small model.

Joins, leaves, expiries (a leave of several members), acknowledgements of current and
old generations, repeated commands, coordinator moves (brokers fenced and unfenced)
with commands sent by the current coordinator or by a broker that no longer is (it
must be refused), topic creations and deletions, and commits, in any order. After every step: no partition
is owned by two members (`check_invariants`), every member's assignment is within its
target, a stable group has every subscribed partition assigned, and a committed
offset is exactly the last one a current owner committed (never moved back by
anything else). The snapshot and the encoded log replay to the same state.
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from raftka.metadata.commands import (
    AcknowledgeGeneration,
    Command,
    CommitOffsets,
    CreateTopic,
    DeleteTopic,
    FenceBroker,
    JoinGroup,
    LeaveGroup,
    OffsetCommit,
    RegisterBroker,
    UnfenceBroker,
    decode_command,
    encode_command,
)
from raftka.metadata.groups import GroupState
from raftka.metadata.model import MetadataState, TopicConfig
from raftka.metadata.state import Applied, apply, group_coordinator

MEMBERS = st.sampled_from(["m1", "m2", "m3", "m4", "m5"])
GROUPS = st.sampled_from(["g1", "g2"])
TOPICS = st.sampled_from(["t", "u"])
ASSIGNORS = st.sampled_from(["range", "roundrobin", "sticky"])
BROKERS = (1, 2, 3)
# None: the command comes from the group's coordinator; a broker id: from that broker,
# which may be a coordinator the group has moved away from.
SENDERS = st.one_of(st.none(), st.none(), st.sampled_from(BROKERS))


class GroupMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = MetadataState.empty()
        self.log: list[str] = []
        self.topic_ids = 0
        # (group, topic, partition) -> the offset the model says is committed
        self.committed: dict[tuple[str, str, int], int] = {}

    def do(self, command: Command) -> Applied | None:
        result = apply(self.state, command)
        self.log.append(encode_command(command))
        if isinstance(result, Applied):
            self.state = result.state
            return result
        return None

    @initialize()
    def brokers_and_a_topic(self) -> None:
        for b in BROKERS:
            self.do(RegisterBroker(b, f"http://b{b}", f"i{b}", True))
        self.do(CreateTopic("t", "id-t0", TopicConfig(), ((1,),) * 4))

    def sender(self, group: str, chosen: int | None) -> tuple[int, bool]:
        """The broker a command names, and whether it coordinates the group now."""
        coordinator = group_coordinator(self.state, group)
        sender = coordinator if chosen is None else chosen
        return (-1 if sender is None else sender), sender == coordinator is not None

    @rule(broker=st.sampled_from(BROKERS), fence=st.booleans())
    def coordinator_moves(self, broker: int, fence: bool) -> None:
        self.do(FenceBroker(broker) if fence else UnfenceBroker(broker))

    @rule(
        group=GROUPS,
        member=MEMBERS,
        topics=st.sets(TOPICS, min_size=1),
        assignor=ASSIGNORS,
        chosen=SENDERS,
    )
    def join(
        self, group: str, member: str, topics: set[str], assignor: str, chosen: int | None
    ) -> None:
        sender, current = self.sender(group, chosen)
        before = self.state
        command = JoinGroup(
            group, member, tuple(sorted(topics)), 5_000, False, "earliest", assignor, sender
        )
        if self.do(command) is not None:
            assert current, "a join from a broker that does not coordinate was applied"
        assert current or self.state == before

    @rule(group=GROUPS, members=st.sets(MEMBERS, min_size=1, max_size=3), chosen=SENDERS)
    def leave_or_expire(self, group: str, members: set[str], chosen: int | None) -> None:
        sender, current = self.sender(group, chosen)
        before = self.state
        self.do(LeaveGroup(group, tuple(sorted(members)), sender))
        assert current or self.state == before

    @rule(group=GROUPS, member=MEMBERS, behind=st.integers(0, 2), chosen=SENDERS)
    def acknowledge(self, group: str, member: str, behind: int, chosen: int | None) -> None:
        g = self.state.groups.get(group)
        generation = (g.generation if g else 0) - behind
        sender, current = self.sender(group, chosen)
        before = self.state
        self.do(AcknowledgeGeneration(group, member, generation, sender))
        assert current or self.state == before

    @rule(topic=TOPICS, partitions=st.integers(1, 6))
    def create_topic(self, topic: str, partitions: int) -> None:
        self.topic_ids += 1
        if self.do(CreateTopic(topic, f"id-{self.topic_ids}", TopicConfig(), ((1,),) * partitions)):
            self._forget_offsets_of(topic)

    @rule(topic=TOPICS)
    def delete_topic(self, topic: str) -> None:
        if self.do(DeleteTopic(topic)):
            self._forget_offsets_of(topic)

    def _forget_offsets_of(self, topic: str) -> None:
        self.committed = {k: v for k, v in self.committed.items() if k[1] != topic}

    @rule(
        group=GROUPS,
        member=MEMBERS,
        behind=st.integers(0, 1),
        topic=TOPICS,
        partition=st.integers(0, 5),
        offset=st.integers(0, 100),
        chosen=SENDERS,
    )
    def commit(
        self,
        group: str,
        member: str,
        behind: int,
        topic: str,
        partition: int,
        offset: int,
        chosen: int | None,
    ) -> None:
        g = self.state.groups.get(group)
        generation = (g.generation if g else 0) - behind
        m = g.members.get(member) if g else None
        sender, current = self.sender(group, chosen)
        accepted = (
            current
            and g is not None
            and m is not None
            and generation == g.generation
            and (topic, partition) in m.owned
        )
        result = self.do(
            CommitOffsets(
                (OffsetCommit(group, member, generation, ((topic, partition, offset),)),),
                coordinator=sender,
            )
        )
        assert result is not None
        assert (result.events[0].results[0] == "") == accepted  # type: ignore[union-attr]
        if accepted:
            self.committed[(group, topic, partition)] = offset

    @invariant()
    def owned_partitions_never_overlap(self) -> None:
        self.state.check_invariants()

    @invariant()
    def assignments_stay_within_targets_and_stable_groups_are_complete(self) -> None:
        counts = self.state.partition_counts()
        for g in self.state.groups.values():
            for m in g.members.values():
                assert set(m.assignment) <= set(m.target)
            if g.state is GroupState.STABLE:
                subscribed = {t for m in g.members.values() for t in m.topics}
                wanted = {(t, p) for t in subscribed for p in range(counts.get(t, 0))}
                assert {p for m in g.members.values() for p in m.assignment} == wanted

    @invariant()
    def committed_offsets_are_the_last_accepted_commits(self) -> None:
        stored = {
            (g.group_id, t, p): o
            for g in self.state.groups.values()
            for (t, p), o in g.offsets.items()
        }
        assert stored == self.committed

    @invariant()
    def snapshot_and_log_replay_agree(self) -> None:
        assert MetadataState.from_snapshot(self.state.to_snapshot()) == self.state
        replayed = MetadataState.empty()
        for text in self.log:
            result = apply(replayed, decode_command(text))
            if isinstance(result, Applied):
                replayed = result.state
        assert replayed == self.state


TestGroupStateMachine = GroupMachine.TestCase
