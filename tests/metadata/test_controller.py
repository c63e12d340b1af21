"""Controller decisions with explicit times: liveness, fencing, preferred leaders."""

from __future__ import annotations

import itertools

from raftka.metadata.commands import (
    MAX_COMMAND_TEXT_CHARS,
    AlterPartition,
    CreateTopic,
    ElectLeader,
    FenceBroker,
    UnfenceBroker,
    encode_command,
)
from raftka.metadata.controller import (
    BrokerLiveness,
    fence_commands,
    plan_create_topic,
    preferred_leader_elections,
)
from raftka.metadata.model import TopicConfig
from raftka.metadata.state import Rejected
from tests.metadata.scenario import create, register, run

SESSION_MS = 9000


def test_a_new_controller_gives_every_broker_a_full_session() -> None:
    state = run(register(1, 2))
    liveness = BrokerLiveness(SESSION_MS)
    liveness.reset(now_ms=100_000, broker_ids=state.brokers)
    assert liveness.expired(state, now_ms=100_000 + SESSION_MS) == []
    assert liveness.expired(state, now_ms=100_000 + SESSION_MS + 1) == [1, 2]


def test_heard_from_extends_the_session() -> None:
    state = run(register(1, 2))
    liveness = BrokerLiveness(SESSION_MS)
    liveness.reset(0, state.brokers)
    liveness.heard_from(1, 5000)
    assert liveness.expired(state, 12_000) == [2]
    assert liveness.expired(state, 14_001) == [1, 2]


def test_an_older_timestamp_never_shortens_a_session() -> None:
    liveness = BrokerLiveness(SESSION_MS)
    liveness.heard_from(1, 5000)
    liveness.heard_from(1, 1000)
    assert liveness.last_heard_ms(1) == 5000


def test_fenced_brokers_are_not_reported_expired() -> None:
    state = run([*register(1, 2), FenceBroker(2)])
    liveness = BrokerLiveness(SESSION_MS)
    liveness.reset(0, state.brokers)
    assert liveness.expired(state, 60_000) == [1]


def test_a_broker_registered_after_reset_gets_a_session_from_first_sight() -> None:
    state = run(register(1))
    liveness = BrokerLiveness(SESSION_MS)
    liveness.reset(0, [])
    assert liveness.expired(state, 50_000) == []
    assert liveness.expired(state, 50_000 + SESSION_MS + 1) == [1]


def test_fence_commands_fence_expired_brokers_with_caller_ids() -> None:
    state = run(register(1, 2))
    liveness = BrokerLiveness(SESSION_MS)
    liveness.reset(0, state.brokers)
    liveness.heard_from(2, 9000)
    ids = (f"id-{n}" for n in itertools.count())
    assert fence_commands(liveness, state, 10_000, lambda: next(ids)) == [
        FenceBroker(1, command_id="id-0")
    ]


def test_preferred_leader_election_moves_leadership_back_to_the_first_replica() -> None:
    state = run(
        [
            *register(1, 2, 3),
            create("t", (1, 2, 3), (2, 3, 1)),
            FenceBroker(1),
            FenceBroker(2),
        ]
    )
    # Broker 3 leads both partitions; 1 and 2 are fenced, so nothing can move.
    assert preferred_leader_elections(state) == []
    state = run([UnfenceBroker(1), UnfenceBroker(2)], state)
    # Unfenced but outside the isr until the leader lets them back: still nothing.
    assert preferred_leader_elections(state) == []
    p0, p1 = state.topics["t"].partitions
    state = run(
        [
            AlterPartition("t", 0, 3, p0.leader_epoch, p0.partition_epoch, (1, 2, 3)),
            AlterPartition("t", 1, 3, p1.leader_epoch, p1.partition_epoch, (1, 2, 3)),
        ],
        state,
    )
    assert preferred_leader_elections(state) == [
        ElectLeader("t", 0, 1, expected_leader_epoch=p0.leader_epoch),
        ElectLeader("t", 1, 2, expected_leader_epoch=p1.leader_epoch),
    ]
    state = run(preferred_leader_elections(state), state)
    assert [p.leader for p in state.topics["t"].partitions] == [1, 2]
    assert preferred_leader_elections(state) == []


def test_plan_create_topic_places_replicas_on_unfenced_brokers() -> None:
    state = run([*register(1, 2, 3), FenceBroker(2)])
    plan = plan_create_topic(state, "t", "id-t", 2, 2, TopicConfig(), command_id="c")
    assert isinstance(plan, CreateTopic)
    assert all(set(r) == {1, 3} for r in plan.assignment)
    run([plan], state)


def test_plan_create_topic_rejects_more_replicas_than_unfenced_brokers() -> None:
    state = run([*register(1, 2, 3), FenceBroker(2)])
    plan = plan_create_topic(state, "t", "id-t", 1, 3, TopicConfig())
    assert isinstance(plan, Rejected)
    assert plan.code == "INVALID_REPLICATION_FACTOR"


def test_plan_create_topic_fits_10000_partitions_at_rf_3_on_3_brokers() -> None:
    state = run(register(1, 2, 3))
    plan = plan_create_topic(state, "t", "id-t", 10_000, 3, TopicConfig(), command_id="c")
    assert isinstance(plan, CreateTopic)
    assert len(encode_command(plan)) <= MAX_COMMAND_TEXT_CHARS


def test_plan_create_topic_rejects_a_topic_too_large_for_one_metadata_entry() -> None:
    state = run(register(*range(1, 101)))
    plan = plan_create_topic(state, "t", "id-t", 100_000, 3, TopicConfig(), command_id="c")
    assert isinstance(plan, Rejected)
    assert plan.code == "INVALID_REQUEST"
    assert "100000 partitions x 3 replicas" in plan.message
    assert "does not fit one metadata log entry" in plan.message
