"""Table-driven tests of the metadata rules: each case's id names the rule it pins."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from raftka.metadata.commands import (
    AllocateProducerIds,
    AlterPartition,
    BrokerHeartbeat,
    Command,
    CreateTopic,
    DeleteTopic,
    ElectLeader,
    FenceBroker,
    RegisterBroker,
    UnfenceBroker,
)
from raftka.metadata.events import (
    BrokerFenced,
    BrokerHeartbeatReceived,
    BrokerRegistered,
    PartitionChanged,
    ProducerIdsAllocated,
    TopicCreated,
    TopicDeleted,
)
from raftka.metadata.model import MAX_RECENT_COMMAND_IDS, TopicConfig
from raftka.metadata.state import Applied, Rejected, apply
from tests.metadata.scenario import (
    INCARNATION,
    create,
    partition,
    register,
    restart_unclean,
    run,
)

B123 = register(1, 2, 3)
# Broker 2 came back from an unclean shutdown (it may miss acknowledged writes).
B1_UNCLEAN2_3 = [*register(1), *register(2, clean_shutdown=False), *register(3)]


@dataclass(frozen=True)
class Expect:
    """Partition t-0 after the command: (leader, isr, leader_epoch, partition_epoch)."""

    leader: int | None
    isr: tuple[int, ...]
    leader_epoch: int
    partition_epoch: int


PARTITION_RULES: dict[str, tuple[list[Command], Command, Expect]] = {
    "fence_moves_leadership_to_next_isr_replica": (
        [*B123, create("t", (1, 2, 3))],
        FenceBroker(1),
        Expect(2, (2, 3), 1, 1),
    ),
    "fence_of_follower_shrinks_isr_and_bumps_partition_epoch_only": (
        [*B123, create("t", (1, 2, 3))],
        FenceBroker(2),
        Expect(1, (1, 3), 0, 1),
    ),
    "fence_skips_replicas_outside_the_isr": (
        [*B123, create("t", (1, 2, 3)), AlterPartition("t", 0, 1, 0, 0, (1, 3))],
        FenceBroker(1),
        Expect(3, (3,), 1, 2),
    ),
    "fencing_the_last_isr_member_keeps_it_in_the_isr_with_leader_none": (
        [*B123, create("t", (1,))],
        FenceBroker(1),
        Expect(None, (1,), 1, 1),
    ),
    "fencing_every_replica_keeps_the_last_one_fenced_in_the_isr": (
        [*B123, create("t", (1, 2)), FenceBroker(1)],
        FenceBroker(2),
        Expect(None, (2,), 2, 2),
    ),
    "unclean_election_picks_the_first_unfenced_replica_when_configured": (
        [*B123, create("t", (1, 2), unclean=True), AlterPartition("t", 0, 1, 0, 0, (1,))],
        FenceBroker(1),
        Expect(2, (2,), 1, 2),
    ),
    "without_unclean_election_an_out_of_sync_replica_never_leads": (
        [*B123, create("t", (1, 2)), AlterPartition("t", 0, 1, 0, 0, (1,))],
        FenceBroker(1),
        Expect(None, (1,), 1, 2),
    ),
    "unfence_elects_the_broker_into_a_leaderless_partition_whose_isr_holds_it": (
        [*B123, create("t", (1,)), FenceBroker(1)],
        UnfenceBroker(1),
        Expect(1, (1,), 2, 2),
    ),
    "unfence_does_not_elect_a_replica_outside_the_isr": (
        [*B123, create("t", (1, 2)), FenceBroker(2), FenceBroker(1)],
        UnfenceBroker(2),
        Expect(None, (1,), 1, 2),
    ),
    "unfence_with_unclean_election_elects_an_out_of_sync_replica": (
        [*B123, create("t", (1, 2), unclean=True), FenceBroker(2), FenceBroker(1)],
        UnfenceBroker(2),
        Expect(2, (2,), 2, 3),
    ),
    "unfence_leaves_a_led_partition_alone_for_the_leader_to_expand": (
        [*B123, create("t", (1, 2)), FenceBroker(2)],
        UnfenceBroker(2),
        Expect(1, (1,), 0, 1),
    ),
    "heartbeat_of_a_fenced_broker_unfences_it": (
        [*B123, create("t", (1,)), FenceBroker(1)],
        BrokerHeartbeat(1, INCARNATION),
        Expect(1, (1,), 2, 2),
    ),
    "new_incarnation_fences_the_old_one_moving_leadership_away": (
        [*B123, create("t", (1, 2, 3))],
        RegisterBroker(1, "http://b1", "inc-2", raft_voter=True),
        Expect(2, (2, 3), 1, 1),
    ),
    "new_incarnation_of_the_only_replica_leads_again_in_a_new_epoch": (
        [*B123, create("t", (1,))],
        RegisterBroker(1, "http://b1", "inc-2", raft_voter=True),
        Expect(1, (1,), 2, 2),
    ),
    "same_incarnation_registering_again_changes_nothing": (
        [*B123, create("t", (1, 2, 3))],
        RegisterBroker(1, "http://b1", INCARNATION, raft_voter=True),
        Expect(1, (1, 2, 3), 0, 0),
    ),
    "create_topic_starts_with_the_unfenced_replicas_in_the_isr": (
        [*B123, FenceBroker(1)],
        create("t", (1, 2, 3)),
        Expect(2, (2, 3), 0, 0),
    ),
    "elect_leader_moves_leadership_and_bumps_both_epochs": (
        [*B123, create("t", (1, 2, 3))],
        ElectLeader("t", 0, 2, expected_leader_epoch=0),
        Expect(2, (1, 2, 3), 1, 1),
    ),
    "elect_leader_of_the_current_leader_changes_nothing": (
        [*B123, create("t", (1, 2, 3))],
        ElectLeader("t", 0, 1, expected_leader_epoch=0),
        Expect(1, (1, 2, 3), 0, 0),
    ),
    "alter_partition_shrinks_the_isr_bumping_partition_epoch_only": (
        [*B123, create("t", (1, 2, 3))],
        AlterPartition("t", 0, 1, 0, 0, (1, 3)),
        Expect(1, (1, 3), 0, 1),
    ),
    "fence_prefers_a_clean_isr_member_over_an_earlier_unclean_one": (
        [*B1_UNCLEAN2_3, create("t", (1, 2, 3))],
        FenceBroker(1),
        Expect(3, (2, 3), 1, 1),
    ),
    "fence_elects_an_unclean_isr_member_when_it_is_the_only_candidate": (
        [*B1_UNCLEAN2_3, create("t", (1, 2))],
        FenceBroker(1),
        Expect(2, (2,), 1, 1),
    ),
    "fence_prefers_a_clean_isr_member_re_added_after_an_unclean_restart": (
        [
            *B123,
            create("t", (1, 2, 3)),
            restart_unclean(2),
            AlterPartition("t", 0, 1, 0, 1, (1, 2, 3)),
        ],
        FenceBroker(1),
        Expect(3, (2, 3), 1, 3),
    ),
    "unclean_election_prefers_a_clean_replica_over_an_earlier_unclean_one": (
        [
            *B1_UNCLEAN2_3,
            create("t", (1, 2, 3), unclean=True),
            AlterPartition("t", 0, 1, 0, 0, (1,)),
        ],
        FenceBroker(1),
        Expect(3, (3,), 1, 2),
    ),
    "unclean_election_elects_an_unclean_replica_when_it_is_the_only_unfenced_one": (
        [*B1_UNCLEAN2_3, create("t", (1, 2), unclean=True), AlterPartition("t", 0, 1, 0, 0, (1,))],
        FenceBroker(1),
        Expect(2, (2,), 1, 2),
    ),
    "new_incarnation_moves_leadership_to_a_clean_isr_member": (
        [*B1_UNCLEAN2_3, create("t", (1, 2, 3))],
        RegisterBroker(1, "http://b1", "inc-2", raft_voter=True),
        Expect(3, (2, 3), 1, 1),
    ),
    "an_unclean_restart_of_the_only_replica_still_leads_it_again": (
        [*B123, create("t", (1,))],
        restart_unclean(1),
        Expect(1, (1,), 2, 2),
    ),
    "unfence_elects_an_unclean_broker_into_a_partition_only_it_can_lead": (
        [*B1_UNCLEAN2_3, create("t", (2,)), FenceBroker(2)],
        UnfenceBroker(2),
        Expect(2, (2,), 2, 2),
    ),
    "unfence_with_unclean_election_elects_an_unclean_broker_when_it_is_the_only_one": (
        [*B1_UNCLEAN2_3, create("t", (1, 2), unclean=True), FenceBroker(2), FenceBroker(1)],
        UnfenceBroker(2),
        Expect(2, (2,), 2, 3),
    ),
    "alter_partition_expands_the_isr_kept_in_replicas_order": (
        [*B123, create("t", (1, 2, 3)), AlterPartition("t", 0, 1, 0, 0, (1,))],
        AlterPartition("t", 0, 1, 0, 1, (3, 1, 2)),
        Expect(1, (1, 2, 3), 0, 2),
    ),
}


@pytest.mark.parametrize(("given", "when", "expect"), PARTITION_RULES.values(), ids=PARTITION_RULES)
def test_partition_rule(given: list[Command], when: Command, expect: Expect) -> None:
    before = run(given)
    after = run([when], before)
    p = partition(after, "t")
    assert Expect(p.leader, p.isr, p.leader_epoch, p.partition_epoch) == expect
    # Every changed partition is announced, with its new record.
    result = apply(before, when)
    assert isinstance(result, Applied)
    changed = [e for e in result.events if isinstance(e, PartitionChanged)]
    old = partition(before, "t") if "t" in before.topics else None
    # A new topic is announced by TopicCreated, not per partition.
    assert changed == ([PartitionChanged("t", 0, p)] if old is not None and old != p else [])


REJECTIONS: dict[str, tuple[list[Command], Command, str]] = {
    "stale_alter_partition_partition_epoch_is_rejected": (
        [*B123, create("t", (1, 2, 3)), AlterPartition("t", 0, 1, 0, 0, (1, 2))],
        AlterPartition("t", 0, 1, 0, 0, (1,)),
        "STALE_PARTITION_EPOCH",
    ),
    "stale_alter_partition_leader_epoch_is_rejected": (
        [*B123, create("t", (1, 2, 3)), ElectLeader("t", 0, 2, 0)],
        AlterPartition("t", 0, 1, 0, 1, (1, 2)),
        "STALE_PARTITION_EPOCH",
    ),
    "alter_partition_from_a_non_leader_is_rejected": (
        [*B123, create("t", (1, 2, 3))],
        AlterPartition("t", 0, 2, 0, 0, (2, 3)),
        "NOT_LEADER",
    ),
    "alter_partition_isr_must_hold_the_leader": (
        [*B123, create("t", (1, 2, 3))],
        AlterPartition("t", 0, 1, 0, 0, (2, 3)),
        "INVALID_REQUEST",
    ),
    "alter_partition_isr_must_be_within_replicas": (
        [*register(1, 2, 3, 4), create("t", (1, 2, 3))],
        AlterPartition("t", 0, 1, 0, 0, (1, 4)),
        "INVALID_REQUEST",
    ),
    "alter_partition_cannot_add_a_fenced_broker_to_the_isr": (
        [*B123, create("t", (1, 2, 3)), FenceBroker(3)],
        AlterPartition("t", 0, 1, 0, 1, (1, 2, 3)),
        "INVALID_REQUEST",
    ),
    "alter_partition_of_an_unknown_topic_is_rejected": (
        B123,
        AlterPartition("nope", 0, 1, 0, 0, (1,)),
        "UNKNOWN_TOPIC",
    ),
    "elect_leader_with_a_stale_leader_epoch_is_rejected": (
        [*B123, create("t", (1, 2, 3)), FenceBroker(1)],
        ElectLeader("t", 0, 3, expected_leader_epoch=0),
        "STALE_PARTITION_EPOCH",
    ),
    "elect_leader_outside_the_isr_is_rejected": (
        [*B123, create("t", (1, 2, 3)), AlterPartition("t", 0, 1, 0, 0, (1, 2))],
        ElectLeader("t", 0, 3, expected_leader_epoch=0),
        "INVALID_REQUEST",
    ),
    "elect_leader_of_a_fenced_broker_is_rejected": (
        [*B123, create("t", (1,)), FenceBroker(1)],
        ElectLeader("t", 0, 1, expected_leader_epoch=1),
        "INVALID_REQUEST",
    ),
    "elect_leader_of_an_unknown_partition_is_rejected": (
        [*B123, create("t", (1,))],
        ElectLeader("t", 1, 1, expected_leader_epoch=0),
        "UNKNOWN_PARTITION",
    ),
    "create_topic_that_exists_is_rejected": (
        [*B123, create("t", (1,))],
        CreateTopic("t", "other-id", TopicConfig(), ((1,),)),
        "TOPIC_EXISTS",
    ),
    "create_topic_with_an_invalid_name_is_rejected": (B123, create("..", (1,)), "INVALID_REQUEST"),
    "create_topic_reusing_a_topic_id_is_rejected": (
        [*B123, create("t", (1,))],
        CreateTopic("u", "id-t", TopicConfig(), ((1,),)),
        "INVALID_REQUEST",
    ),
    "create_topic_needs_a_partition": (B123, create("t"), "INVALID_REQUEST"),
    "create_topic_needs_replicas_for_every_partition": (
        B123,
        create("t", ()),
        "INVALID_REPLICATION_FACTOR",
    ),
    "create_topic_rejects_a_replica_listed_twice": (B123, create("t", (1, 1)), "INVALID_REQUEST"),
    "create_topic_rejects_unregistered_brokers": (
        B123,
        create("t", (1, 9)),
        "INVALID_REPLICATION_FACTOR",
    ),
    "create_topic_needs_one_replication_factor": (
        B123,
        create("t", (1, 2), (2,)),
        "INVALID_REPLICATION_FACTOR",
    ),
    "create_topic_rejects_a_partition_whose_replicas_are_all_fenced": (
        [*B123, FenceBroker(1), FenceBroker(2)],
        create("t", (1, 2)),
        "INVALID_REPLICATION_FACTOR",
    ),
    "create_topic_rejects_min_insync_replicas_above_replication_factor": (
        B123,
        create("t", (1, 2), min_isr=3),
        "INVALID_REQUEST",
    ),
    "delete_of_an_unknown_topic_is_rejected": (B123, DeleteTopic("t"), "UNKNOWN_TOPIC"),
    "heartbeat_of_an_unknown_broker_is_rejected": (
        B123,
        BrokerHeartbeat(9, INCARNATION),
        "UNKNOWN_BROKER",
    ),
    "heartbeat_of_an_old_incarnation_is_rejected": (
        [*B123, RegisterBroker(1, "http://b1", "inc-2", raft_voter=True)],
        BrokerHeartbeat(1, INCARNATION),
        "STALE_BROKER_INCARNATION",
    ),
    "fence_of_an_unknown_broker_is_rejected": (B123, FenceBroker(9), "UNKNOWN_BROKER"),
    "unfence_of_an_unknown_broker_is_rejected": (B123, UnfenceBroker(9), "UNKNOWN_BROKER"),
    "same_incarnation_with_another_url_is_rejected": (
        B123,
        RegisterBroker(1, "http://elsewhere", INCARNATION, raft_voter=True),
        "INVALID_REQUEST",
    ),
    "negative_broker_id_is_rejected": (
        [],
        RegisterBroker(-1, "http://b", INCARNATION, raft_voter=True),
        "INVALID_REQUEST",
    ),
    "allocate_producer_ids_needs_a_positive_count": (
        B123,
        AllocateProducerIds(1, 0),
        "INVALID_REQUEST",
    ),
    "allocate_producer_ids_needs_a_registered_broker": (
        B123,
        AllocateProducerIds(9, 10),
        "UNKNOWN_BROKER",
    ),
}


@pytest.mark.parametrize(("given", "when", "code"), REJECTIONS.values(), ids=REJECTIONS)
def test_rejection(given: list[Command], when: Command, code: str) -> None:
    result = apply(run(given), when)
    assert isinstance(result, Rejected)
    assert result.code == code
    assert result.message


def test_fence_announces_every_changed_partition_sorted() -> None:
    state = run([*B123, create("b", (1, 2), (2, 1)), create("a", (1, 3), (3, 2))])
    result = apply(state, FenceBroker(1))
    assert isinstance(result, Applied)
    changed = [(e.topic, e.partition) for e in result.events if isinstance(e, PartitionChanged)]
    assert changed == [("a", 0), ("b", 0), ("b", 1)]


def test_heartbeat_of_an_unfenced_broker_only_reports_it_and_keeps_the_state() -> None:
    state = run(B123)
    result = apply(state, BrokerHeartbeat(2, INCARNATION, command_id="hb-1"))
    assert isinstance(result, Applied)
    assert result.state is state
    assert result.events == (BrokerHeartbeatReceived(2),)


def test_register_then_create_then_delete_emit_their_events() -> None:
    state = run([])
    registered = apply(state, register(1)[0])
    assert isinstance(registered, Applied)
    assert registered.events == (BrokerRegistered(1),)
    created = apply(registered.state, create("t", (1,)))
    assert isinstance(created, Applied)
    assert created.events == (TopicCreated("t"),)
    deleted = apply(created.state, DeleteTopic("t"))
    assert isinstance(deleted, Applied)
    assert deleted.events == (TopicDeleted("t"),)
    assert "t" not in deleted.state.topics


def test_allocate_producer_ids_hands_out_consecutive_disjoint_blocks() -> None:
    state = run(B123)
    first = apply(state, AllocateProducerIds(1, 1000))
    assert isinstance(first, Applied)
    second = apply(first.state, AllocateProducerIds(2, 5))
    assert isinstance(second, Applied)
    assert first.events == (ProducerIdsAllocated(1, 0, 1000),)
    assert second.events == (ProducerIdsAllocated(2, 1000, 5),)
    assert second.state.next_producer_id == 1005


def test_a_repeated_command_id_answers_the_original_outcome_without_reapplying() -> None:
    state = run(B123)
    first = apply(state, AllocateProducerIds(1, 10, command_id="c-1"))
    assert isinstance(first, Applied)
    retry = apply(first.state, AllocateProducerIds(1, 10, command_id="c-1"))
    assert isinstance(retry, Applied)
    assert retry.state == first.state
    assert retry.events == first.events
    assert retry.state.next_producer_id == 10


def test_a_repeated_command_id_answers_the_original_even_after_later_changes() -> None:
    state = run([*B123, create("t", (1, 2, 3))])
    fenced = apply(state, FenceBroker(1, command_id="fence-1"))
    assert isinstance(fenced, Applied)
    later = run(
        [UnfenceBroker(1), CreateTopic("t2", "id-t2", TopicConfig(), ((2,),), "c-2")], fenced.state
    )
    retry = apply(later, FenceBroker(1, command_id="fence-1"))
    assert isinstance(retry, Applied)
    assert retry.state == later
    # A fence's outcome is kept without its partitions' changes (the retry window and the
    # snapshot would hold up to FENCE_CHUNK_PARTITIONS of them): that it was applied.
    assert retry.events == fenced.events[:1] == (BrokerFenced(1),)
    assert not later.brokers[1].fenced


def test_a_rejected_command_is_not_remembered_so_its_retry_is_evaluated_again() -> None:
    state = run(register(1))
    command = create("t", (1, 2))
    command = CreateTopic(command.name, command.topic_id, command.config, command.assignment, "c-1")
    assert isinstance(apply(state, command), Rejected)
    state = run(register(2), state)
    assert isinstance(apply(state, command), Applied)


def test_recent_command_ids_are_bounded_and_forget_the_oldest_first() -> None:
    state = run(register(1))
    for n in range(MAX_RECENT_COMMAND_IDS + 1):
        result = apply(state, AllocateProducerIds(1, 1, command_id=f"c-{n}"))
        assert isinstance(result, Applied)
        state = result.state
    assert len(state.recent_command_ids) == MAX_RECENT_COMMAND_IDS
    assert state.outcome_of("c-0") is None
    assert state.outcome_of("c-1") is not None
    state.check_invariants()
    again = apply(state, AllocateProducerIds(1, 1, command_id="c-0"))
    assert isinstance(again, Applied)
    assert again.events == (ProducerIdsAllocated(1, MAX_RECENT_COMMAND_IDS + 1, 1),)


def test_heartbeats_are_not_remembered() -> None:
    state = run(B123)
    result = apply(state, BrokerHeartbeat(1, INCARNATION, command_id="hb"))
    assert isinstance(result, Applied)
    assert result.state.recent_command_ids == ()


def test_a_deleted_topic_can_be_created_again_with_a_new_topic_id() -> None:
    state = run([*B123, create("t", (1,)), DeleteTopic("t")])
    state = run([CreateTopic("t", "id-t-2", TopicConfig(), ((2,),))], state)
    assert state.topics["t"].topic_id == "id-t-2"
    assert partition(state, "t").leader == 2


def test_check_invariants_names_the_broken_invariant() -> None:
    from dataclasses import replace

    state = run([*B123, create("t", (1, 2, 3))])
    topic = state.topics["t"]
    broken = replace(topic, partitions=(replace(topic.partitions[0], leader=9),))
    with pytest.raises(AssertionError, match="leader is None or in isr"):
        replace(state, topics={"t": broken}).check_invariants()
    broken = replace(topic, partitions=(replace(topic.partitions[0], isr=(1, 2, 3, 4)),))
    with pytest.raises(AssertionError, match="isr within replicas"):
        replace(state, topics={"t": broken}).check_invariants()
    fenced = {**state.brokers, 2: replace(state.brokers[2], fenced=True)}
    with pytest.raises(AssertionError, match="fenced broker is in no isr"):
        replace(state, brokers=fenced).check_invariants()


def test_a_broker_record_keeps_what_its_latest_registration_said_about_shutdown() -> None:
    state = run([*B123, create("t", (1, 2, 3))])
    assert state.brokers[2].clean_shutdown
    state = run([restart_unclean(2)], state)
    assert not state.brokers[2].clean_shutdown
    state = run([RegisterBroker(2, "http://b2", "inc-3", raft_voter=True)], state)
    assert state.brokers[2].clean_shutdown


def test_the_same_incarnation_registering_again_updates_clean_shutdown_only() -> None:
    state = run([*B123, create("t", (1, 2, 3))])
    result = apply(state, register(2, clean_shutdown=False)[0])
    assert isinstance(result, Applied)
    assert result.events == ()
    assert not result.state.brokers[2].clean_shutdown
    assert result.state.topics == state.topics
    assert result.state.brokers[2].incarnation_id == INCARNATION
    assert not result.state.brokers[2].fenced
