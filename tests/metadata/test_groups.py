"""The group rules of metadata/groups.py, one rule per test, driven through `apply`."""

from __future__ import annotations

from dataclasses import replace

import pytest

from raftka.metadata.commands import (
    AcknowledgeGeneration,
    CommitOffsets,
    CreateTopic,
    DeleteTopic,
    FenceBroker,
    JoinGroup,
    LeaveGroup,
    OffsetCommit,
    RegisterBroker,
    decode_command,
    encode_command,
)
from raftka.metadata.events import GroupChanged, OffsetsCommitted
from raftka.metadata.groups import (
    EXTERNAL_MEMBER_ID,
    GroupRecord,
    GroupSessions,
    GroupState,
    coordinator_for,
)
from raftka.metadata.model import MetadataState, TopicConfig
from raftka.metadata.state import Applied, Rejected, apply, group_coordinator


def run(state: MetadataState, *commands: object) -> MetadataState:
    for command in commands:
        result = apply(state, command)  # type: ignore[arg-type]
        assert isinstance(result, Applied), result
        state = result.state
        state.check_invariants()
        assert MetadataState.from_snapshot(state.to_snapshot()) == state
    return state


def join(member: str, topics: tuple[str, ...] = ("t",), group: str = "g") -> JoinGroup:
    return JoinGroup(group, member, topics, 10_000, False, "earliest", "sticky", coordinator=1)


def batch(commits: tuple[OffsetCommit, ...]) -> CommitOffsets:
    """Commits batched by broker 1, the coordinator of every group in a one-broker cluster."""
    return CommitOffsets(commits, coordinator=1)


def cluster(partitions: int = 6) -> MetadataState:
    return run(
        MetadataState.empty(),
        RegisterBroker(1, "http://b1", "i1", True),
        CreateTopic("t", "id-t", TopicConfig(), ((1,),) * partitions),
    )


def group(state: MetadataState, group_id: str = "g") -> GroupRecord:
    return state.groups[group_id]


def assignment(state: MetadataState, member: str) -> set[tuple[str, int]]:
    return set(group(state).members[member].assignment)


def acknowledge_all(state: MetadataState) -> MetadataState:
    g = group(state)
    return run(
        state,
        *(AcknowledgeGeneration("g", m, g.generation, coordinator=1) for m in sorted(g.members)),
    )


def test_the_first_member_gets_every_partition_at_once() -> None:
    state = run(cluster(), join("a"))
    assert group(state).generation == 1
    assert assignment(state, "a") == {("t", p) for p in range(6)}
    assert group(state).state is GroupState.STABLE


def test_a_joining_member_waits_for_partitions_until_their_owner_acknowledges() -> None:
    state = run(cluster(), join("a"), join("b"))
    g = group(state)
    assert g.generation == 2
    assert g.state is GroupState.RECONCILING
    # a is told to give up b's target, but still owns it until it acknowledges.
    assert assignment(state, "b") == set()
    assert set(g.members["a"].owned) == {("t", p) for p in range(6)}
    assert len(assignment(state, "a")) == 3
    state = run(state, AcknowledgeGeneration("g", "a", 2, coordinator=1))
    assert len(assignment(state, "b")) == 3
    assert assignment(state, "a").isdisjoint(assignment(state, "b"))
    assert group(state).state is GroupState.STABLE


def test_three_members_split_six_partitions_two_each() -> None:
    state = acknowledge_all(run(cluster(), join("a"), join("b"), join("c")))
    assert [len(assignment(state, m)) for m in "abc"] == [2, 2, 2]


def test_an_acknowledgement_of_an_old_generation_hands_nothing_over() -> None:
    state = run(cluster(), join("a"), join("b"))
    state = run(state, AcknowledgeGeneration("g", "a", 1, coordinator=1))
    assert assignment(state, "b") == set()


def test_a_leaving_member_frees_its_partitions_for_the_others() -> None:
    state = acknowledge_all(run(cluster(), join("a"), join("b")))
    state = run(state, LeaveGroup("g", ("b",), coordinator=1))
    assert assignment(state, "a") == {("t", p) for p in range(6)}
    assert group(state).generation == 3


def test_leaving_twice_or_an_unknown_member_changes_nothing() -> None:
    state = run(cluster(), join("a"))
    result = apply(state, LeaveGroup("g", ("nobody",), coordinator=1))
    assert isinstance(result, Applied) and result.state == state and result.events == ()


def test_the_last_member_leaving_keeps_the_committed_offsets() -> None:
    state = run(cluster(), join("a"))
    state = run(state, batch((OffsetCommit("g", "a", 1, (("t", 0, 5),)),)))
    state = run(state, LeaveGroup("g", ("a",), coordinator=1))
    assert group(state).state is GroupState.EMPTY
    assert group(state).offsets == {("t", 0): 5}


def test_an_empty_group_without_offsets_is_forgotten() -> None:
    state = run(cluster(), join("a"), LeaveGroup("g", ("a",), coordinator=1))
    assert "g" not in state.groups


@pytest.mark.parametrize(
    ("member", "generation", "partition", "result"),
    [
        ("a", 1, 0, ""),
        ("a", 0, 0, "STALE_GENERATION"),
        ("a", 1, 9, "STALE_GENERATION"),  # not a partition the member owns
        ("x", 1, 0, "UNKNOWN_MEMBER"),
    ],
)
def test_a_commit_is_stored_only_from_the_owner_in_the_current_generation(
    member: str, generation: int, partition: int, result: str
) -> None:
    state = run(cluster(), join("a"))
    outcome = apply(state, batch((OffsetCommit("g", member, generation, (("t", partition, 7),)),)))
    assert isinstance(outcome, Applied)
    (event,) = outcome.events
    assert isinstance(event, OffsetsCommitted)
    assert event.results[0].split(":")[0] == result
    assert (group(outcome.state).offsets == {("t", 0): 7}) == (result == "")


def test_one_stale_commit_in_a_batch_refuses_only_itself() -> None:
    state = run(cluster(), join("a"))
    outcome = apply(
        state,
        batch(
            (
                OffsetCommit("g", "a", 0, (("t", 1, 3),)),
                OffsetCommit("g", "a", 1, (("t", 0, 4),)),
            )
        ),
    )
    assert isinstance(outcome, Applied)
    assert [r.split(":")[0] for r in outcome.events[0].results] == ["STALE_GENERATION", ""]  # type: ignore[union-attr]
    assert group(outcome.state).offsets == {("t", 0): 4}


def test_a_revoked_partition_can_be_committed_until_its_owner_acknowledges() -> None:
    state = run(cluster(), join("a"), join("b"))
    revoked = next(p for p in group(state).members["a"].owned if p not in assignment(state, "a"))
    state = run(state, batch((OffsetCommit("g", "a", 2, ((*revoked, 3),)),)))
    assert group(state).offsets[revoked] == 3
    state = run(state, AcknowledgeGeneration("g", "a", 2, coordinator=1))
    outcome = apply(state, batch((OffsetCommit("g", "a", 2, ((*revoked, 4),)),)))
    assert outcome.events[0].results[0].startswith("STALE_GENERATION")  # type: ignore[union-attr]


def test_a_new_topic_a_member_subscribes_to_rebalances_the_group() -> None:
    state = run(cluster(), join("a", ("t", "u")))
    assert group(state).generation == 1
    result = apply(state, CreateTopic("u", "id-u", TopicConfig(), ((1,),) * 2))
    assert isinstance(result, Applied)
    assert GroupChanged("g") in result.events
    assert group(result.state).generation == 2
    assert ("u", 1) in assignment(result.state, "a")


def test_a_deleted_topic_leaves_the_assignment_and_its_offsets_are_dropped() -> None:
    state = run(cluster(), join("a"))
    state = run(state, batch((OffsetCommit("g", "a", 1, (("t", 0, 2),)),)))
    state = run(state, DeleteTopic("t"))
    assert assignment(state, "a") == set()
    assert group(state).offsets == {}


def test_an_unrelated_topic_does_not_rebalance() -> None:
    state = run(cluster(), join("a"))
    state = run(state, CreateTopic("other", "id-o", TopicConfig(), ((1,),)))
    assert group(state).generation == 1


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"group": "bad/name"}, "group id"),
        ({"topics": ()}, "1-"),
        ({"topics": ("..",)}, "topic name"),
        ({"session_timeout_ms": 10}, "session_timeout_ms"),
        ({"auto_offset_reset": "middle"}, "auto_offset_reset"),
        ({"assignor": "random"}, "assignor"),
    ],
)
def test_a_bad_join_is_refused(change: dict[str, object], problem: str) -> None:
    fields = {
        "group": "g",
        "member_id": "a",
        "topics": ("t",),
        "session_timeout_ms": 10_000,
        "auto_commit": False,
        "auto_offset_reset": "earliest",
        "assignor": "sticky",
        "coordinator": 1,
        **change,
    }
    result = apply(cluster(), JoinGroup(**fields))  # type: ignore[arg-type]
    assert isinstance(result, Rejected) and result.code == "INVALID_REQUEST"
    assert problem in result.message


def test_a_member_cannot_join_with_another_assignor_than_the_group_uses() -> None:
    state = run(cluster(), join("a"))
    result = apply(
        state, JoinGroup("g", "b", ("t",), 10_000, False, "earliest", "range", coordinator=1)
    )
    assert isinstance(result, Rejected) and "sticky" in result.message


def test_a_retried_join_with_the_same_command_id_adds_one_member() -> None:
    command = JoinGroup(
        "g", "a", ("t",), 10_000, False, "earliest", "sticky", coordinator=1, command_id="c1"
    )
    state = run(cluster(), command, command)
    assert list(group(state).members) == ["a"]
    assert group(state).generation == 1


def test_a_broker_that_no_longer_coordinates_the_group_cannot_write_for_it() -> None:
    state = run(
        cluster(),
        RegisterBroker(2, "http://b2", "i2", True),
        RegisterBroker(3, "http://b3", "i3", True),
    )
    coordinator = group_coordinator(state, "g")
    other = next(b for b in (1, 2, 3) if b != coordinator)
    stale = JoinGroup("g", "a", ("t",), 10_000, False, "earliest", "sticky", coordinator=other)
    result = apply(state, stale)
    assert isinstance(result, Rejected) and result.code == "COORDINATOR_NOT_AVAILABLE"
    state = run(state, replace(stale, coordinator=coordinator))  # type: ignore[arg-type]
    # Its broker is fenced: the group moves, and the old coordinator's commit is refused.
    state = run(state, FenceBroker(coordinator))  # type: ignore[arg-type]
    commit = (OffsetCommit("g", "a", 1, (("t", 0, 1),)),)
    outcome = apply(state, CommitOffsets(commit, coordinator=coordinator))  # type: ignore[arg-type]
    assert isinstance(outcome, Applied)
    assert outcome.events[0].results[0].startswith("COORDINATOR_NOT_AVAILABLE")  # type: ignore[union-attr]
    assert group(outcome.state).offsets == {}
    new = group_coordinator(state, "g")
    assert new is not None and new != coordinator
    outcome = apply(state, CommitOffsets(commit, coordinator=new))
    assert group(outcome.state).offsets == {("t", 0): 1}  # type: ignore[union-attr]


def test_group_commands_survive_encoding() -> None:
    for command in (
        join("a"),
        LeaveGroup("g", ("a", "b"), coordinator=1),
        AcknowledgeGeneration("g", "a", 3, coordinator=1),
        batch((OffsetCommit("g", "a", 3, (("t", 0, 5), ("t", 1, 6))),)),
    ):
        assert decode_command(encode_command(command)) == command  # type: ignore[arg-type]


def test_a_large_commit_batch_is_compressed_below_the_entry_limit() -> None:
    offsets = tuple(("topic-with-a-long-name", p, 10**9 + p) for p in range(2_000))
    text = encode_command(batch((OffsetCommit("g", "m" * 32, 7, offsets),)))
    assert text.startswith("z:")
    assert decode_command(text) == batch((OffsetCommit("g", "m" * 32, 7, offsets),))


# --- coordinator helpers ---------------------------------------------------------


def test_the_coordinator_is_one_of_the_candidates_and_the_same_everywhere() -> None:
    assert coordinator_for("g", [1, 2, 3]) == coordinator_for("g", [3, 2, 1])
    assert coordinator_for("g", [1, 2, 3]) in {1, 2, 3}
    assert coordinator_for("g", []) is None


def test_a_broker_leaving_moves_only_the_groups_it_coordinated() -> None:
    groups = [f"group-{i}" for i in range(200)]
    before = {g: coordinator_for(g, [1, 2, 3]) for g in groups}
    after = {g: coordinator_for(g, [1, 2]) for g in groups}
    moved = [g for g in groups if before[g] != after[g]]
    assert moved and all(before[g] == 3 for g in moved)
    assert len(set(before.values())) == 3  # every broker coordinates some groups


def test_a_member_expires_one_session_timeout_after_it_was_last_heard() -> None:
    state = run(cluster(), join("a"), join("b"))
    sessions = GroupSessions()
    g = group(state)
    assert sessions.expired([g], now_ms=0) == {}  # first seen now: the grace period starts
    sessions.heard_from("g", "a", 9_000)
    assert sessions.expired([g], now_ms=10_000) == {}
    assert sessions.expired([g], now_ms=10_001) == {"g": ["b"]}
    assert sessions.expired([g], now_ms=19_001) == {"g": ["a", "b"]}


def test_sessions_forget_groups_no_longer_coordinated_here() -> None:
    state = run(cluster(), join("a"))
    sessions = GroupSessions()
    sessions.heard_from("g", "a", 0)
    sessions.expired([], now_ms=1)
    # Coordinating the group again later starts a fresh grace period.
    assert sessions.expired([group(state)], now_ms=50_000) == {}


def test_an_external_commit_stores_offsets_of_a_group_without_members() -> None:
    """The Kafka protocol's groups live in their coordinator's memory; their commits
    share the metadata's offsets, creating the group record, and survive encoding."""
    commit = batch((OffsetCommit("kg", EXTERNAL_MEMBER_ID, -1, (("t", 0, 7), ("t", 1, 3))),))
    state = run(cluster(), decode_command(encode_command(commit)))
    assert dict(group(state, "kg").offsets) == {("t", 0): 7, ("t", 1): 3}
    assert not group(state, "kg").members


def test_an_external_commit_to_a_group_with_members_is_refused() -> None:
    state = run(cluster(), join("a"))
    result = apply(state, batch((OffsetCommit("g", EXTERNAL_MEMBER_ID, -1, (("t", 0, 7),)),)))
    assert isinstance(result, Applied)
    assert result.events == (
        OffsetsCommitted(
            ("STALE_GENERATION: group g has HTTP members; its offsets are theirs to commit",)
        ),
    )  # noqa: E501
    assert dict(group(result.state).offsets) == {}
