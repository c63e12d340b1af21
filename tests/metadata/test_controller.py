"""Controller decisions with explicit times: liveness, fencing, preferred leaders."""

from __future__ import annotations

import itertools

import pytest

from raftka.metadata.commands import (
    MAX_COMMAND_TEXT_CHARS,
    AlterPartition,
    Command,
    CreateTopic,
    DeleteTopic,
    ElectLeader,
    FenceBroker,
    RegisterBroker,
    UnfenceBroker,
    encode_command,
)
from raftka.metadata.controller import (
    SESSION_CLOSED_GRACE_MS,
    BrokerLiveness,
    PreferredLeaderWatch,
    fence_commands,
    fence_continuations,
    plan_create_topic,
    preferred_leader_elections,
)
from raftka.metadata.model import MetadataState, TopicConfig
from raftka.metadata.state import Applied, Rejected, apply
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


def follow(
    watch: PreferredLeaderWatch, state: MetadataState, commands: list[Command]
) -> MetadataState:
    """Applies `commands`, telling `watch` of each one's events as the broker does; a fence
    goes on to its end, as the controller proposes its chunks."""
    for command in commands:
        result = apply(state, command)
        assert isinstance(result, Applied), f"{command} was rejected: {result}"
        state = result.state
        watch.follow(state, result.events, reset=False)
        if state.fencing:
            state = follow(watch, state, list(fence_continuations(state)))
    return state


def test_the_preferred_leader_watch_elects_what_the_full_scan_elects() -> None:
    watch = PreferredLeaderWatch()
    state = run(register(1, 2, 3))
    watch.follow(state, (), reset=True)
    state = follow(
        watch,
        state,
        [create("t", (1, 2, 3), (2, 3, 1)), FenceBroker(1), FenceBroker(2)],
    )
    assert watch.elections(state) == preferred_leader_elections(state) == []
    state = follow(watch, state, [UnfenceBroker(1), UnfenceBroker(2)])
    p0, p1 = state.topics["t"].partitions
    state = follow(
        watch,
        state,
        [
            AlterPartition("t", 0, 3, p0.leader_epoch, p0.partition_epoch, (1, 2, 3)),
            AlterPartition("t", 1, 3, p1.leader_epoch, p1.partition_epoch, (1, 2, 3)),
        ],
    )
    assert watch.elections(state) == preferred_leader_elections(state)
    assert len(watch.elections(state)) == 2
    state = follow(watch, state, watch.elections(state))
    assert watch.elections(state) == [] and len(watch) == 0


BIG_PARTITIONS = 5000


def test_the_preferred_leader_watch_visits_only_what_changed_next_to_a_big_topic() -> None:
    """The controller checks preferred leaders every tick: next to a big topic that is in
    place, a small topic's life costs its own partitions, not the big topic's."""
    big = create("big", *[(1 + i % 3, 1 + (i + 1) % 3) for i in range(BIG_PARTITIONS)])
    state = run([*register(1, 2, 3), big])
    watch = PreferredLeaderWatch()
    assert watch.elections(state) == []
    assert watch.partitions_visited == BIG_PARTITIONS  # the first look scans once

    watch.partitions_visited = 0
    state = follow(watch, state, [create("small", (2, 3))])
    assert watch.elections(state) == []
    state = follow(watch, state, [FenceBroker(3)])  # leads nothing of "small"'s
    state = follow(watch, state, [DeleteTopic("small")])
    assert watch.elections(state) == []
    # Broker 3 led the third of "big" it is the first replica of: those moved to their
    # second replica and stay there until 3 is unfenced and back in their ISR. They are
    # the partitions the watch now holds.
    moved = len([i for i in range(BIG_PARTITIONS) if i % 3 == 2])
    assert len(watch) == moved
    watch.partitions_visited = 0
    assert watch.elections(state) == []
    assert watch.partitions_visited == moved, "a tick visits the misplaced partitions only"

    watch.partitions_visited = 0
    state = follow(watch, state, [UnfenceBroker(3)])  # not in the ISR yet: no election
    assert watch.elections(state) == []
    assert watch.partitions_visited <= 2 * moved


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


# The case: topics of 9,000 partitions at RF=3 on 3 brokers put 9,000 replicas on
# each broker. With a budget of 20,000 the first two fit and the third is refused before
# anything is proposed; whatever the budget, a topic that fits exactly is accepted.
@pytest.mark.parametrize(
    ("budget", "partitions", "accepted"),
    [
        (20_000, [9000, 9000, 9000], [True, True, False]),
        (18_000, [9000, 9000, 1], [True, True, False]),
        (18_001, [9000, 9000, 1, 1], [True, True, True, False]),
        (3, [1, 1, 1, 1], [True, True, True, False]),
        (None, [9000, 9000, 9000], [True, True, True]),
    ],
)
def test_plan_create_topic_refuses_a_topic_past_max_partitions_per_broker(
    budget: int | None, partitions: list[int], accepted: list[bool]
) -> None:
    state = run(register(1, 2, 3))
    outcomes = []
    for i, count in enumerate(partitions):
        plan = plan_create_topic(
            state, f"t{i}", f"id-{i}", count, 3, TopicConfig(), max_partitions_per_broker=budget
        )
        outcomes.append(isinstance(plan, CreateTopic))
        if isinstance(plan, CreateTopic):
            state = run([plan], state)
        else:
            assert plan.code == "INVALID_REQUEST"
            assert f"over max_partitions_per_broker = {budget}" in plan.message
    assert outcomes == accepted


def test_the_refusal_says_which_broker_and_how_many_partitions_would_fit() -> None:
    state = run(register(1, 2, 3))
    state = run([create("a", (1,), (2,))], state)  # one replica on broker 1, one on 2
    plan = plan_create_topic(state, "b", "id-b", 30, 3, TopicConfig(), max_partitions_per_broker=20)
    assert isinstance(plan, Rejected)
    assert "would put 31 partition replicas on broker 1 (it holds 1)" in plan.message
    assert "about 19 partitions would fit" in plan.message


# --- session connections: fast fencing of dead brokers ---------------------------
#
# Brokers 1, 2 and 3; broker 1 is the controller. Each step is (time_ms, action, arg):
#   reset         this node becomes the controller (BrokerLiveness.reset)
#   open / close  broker `arg` opens or closes its session connection
#   heard         a heartbeat of broker `arg` is applied
#   fence         FenceBroker(arg) commits
#   restart       a new incarnation of broker `arg` registers (it is unfenced)
#   expect        liveness.expired(state, time) == arg
GRACE = SESSION_CLOSED_GRACE_MS
Step = tuple[int, str, object]
CONNECTED: list[Step] = [(0, "reset", None), (100, "open", 2), (100, "open", 3)]

SESSION_RULES: dict[str, list[Step]] = {
    "a_killed_broker_is_fenced_once_its_session_stays_closed_past_the_grace": [
        *CONNECTED,
        (1000, "close", 2),
        (1000 + GRACE, "expect", []),
        (1000 + GRACE + 1, "expect", [2]),
    ],
    "a_broker_that_reconnects_quickly_is_not_fenced": [
        *CONNECTED,
        (1000, "close", 2),
        (1100, "open", 2),
        (1000 + GRACE + 1, "expect", []),
        (8000, "expect", []),
    ],
    "a_new_session_opened_before_the_old_one_closes_keeps_the_broker_alive": [
        *CONNECTED,
        (1000, "open", 2),
        (1050, "close", 2),
        (1050 + GRACE + 1, "expect", []),
    ],
    "a_paused_broker_with_its_session_open_is_fenced_only_after_the_session_timeout": [
        *CONNECTED,
        (5000, "heard", 1),
        (5000, "heard", 3),
        (SESSION_MS, "expect", []),
        (SESSION_MS + 1, "expect", [2]),
    ],
    "after_a_new_controller_a_broker_that_never_opens_a_session_waits_for_the_timeout": [
        # It may just be paused across the change of controller: only the heartbeat
        # timeout may fence it.
        (0, "reset", None),
        (300, "open", 2),
        (5000, "heard", 1),
        (5000, "heard", 2),
        (SESSION_MS, "expect", []),
        (SESSION_MS + 1, "expect", [3]),
    ],
    "a_previous_controller_that_died_is_fenced_right_after_the_new_one_takes_over": [
        # The new controller saw its own session to it break without a clean end.
        (0, "open", 2),
        (600, "reset", None),
        (600, "close", 3),  # reported at the reset, with the time the break was seen
        (600, "expect", []),
        (600 + GRACE + 1, "expect", [3]),
    ],
    "a_session_opened_before_this_node_became_controller_counts": [
        (0, "open", 2),
        (0, "open", 3),
        (200, "reset", None),
        (200, "close", 3),
        (200 + GRACE + 1, "expect", [3]),
        (200 + GRACE + 1, "open", 2),
        (8000, "expect", [3]),
    ],
    "closes_seen_before_becoming_controller_are_forgotten": [
        (0, "open", 2),
        (100, "close", 2),  # broker 2 moved its session to another controller
        (5000, "reset", None),
        (5000, "open", 3),
        (5000 + GRACE + 1, "expect", []),
        (5000 + SESSION_MS, "expect", []),
    ],
    "a_quick_reconnect_well_after_a_new_controller_took_over_is_not_fenced": [
        (0, "open", 2),  # connected before the reset
        (100, "reset", None),
        (300, "open", 3),  # connected after it
        (3000, "close", 2),
        (3000, "close", 3),
        (3000 + GRACE, "expect", []),
        (3000 + GRACE, "open", 2),
        (3000 + GRACE, "open", 3),
        (3000 + GRACE + 1, "expect", []),
    ],
    "the_controller_itself_is_never_fenced_by_session_rules": [
        *CONNECTED,
        (200, "open", 1),
        (300, "close", 1),
        (300 + GRACE + 1, "expect", []),
    ],
    "the_controller_itself_is_never_fenced_by_the_heartbeat_timeout": [
        *CONNECTED,
        (1000, "heard", 2),
        (1000, "heard", 3),
        (SESSION_MS + 1000, "expect", []),
        (SESSION_MS + 1001, "expect", [2, 3]),
    ],
    "a_fenced_broker_is_not_reported_again": [
        *CONNECTED,
        (1000, "close", 2),
        (1000 + GRACE + 1, "expect", [2]),
        (1000 + GRACE + 1, "fence", 2),
        (1000 + GRACE + 2, "expect", []),
        (8000, "expect", []),
    ],
    "a_restarted_broker_is_not_fenced_for_its_old_incarnations_closed_session": [
        *CONNECTED,
        (1000, "close", 2),
        (1000 + GRACE + 1, "expect", [2]),
        (1000 + GRACE + 1, "fence", 2),
        (1800, "expect", []),
        (3000, "restart", 2),  # registered: unfenced before its session opens
        (3100, "expect", []),
        (3200, "open", 2),
        (4000, "close", 2),
        (4000 + GRACE + 1, "expect", [2]),
    ],
}


def play(steps: list[Step], track_sessions: bool = True) -> None:
    state = run(register(1, 2, 3))
    liveness = BrokerLiveness(SESSION_MS, controller_id=1, track_sessions=track_sessions)
    previous_ms = 0
    for at_ms, action, arg in steps:
        assert at_ms >= previous_ms, "steps go forward in time"
        previous_ms = at_ms
        broker_id = arg if isinstance(arg, int) else -1
        if action == "reset":
            liveness.reset(at_ms, state.brokers)
        elif action == "open":
            liveness.session_opened(broker_id, at_ms)
        elif action == "close":
            liveness.session_closed(broker_id, at_ms)
        elif action == "heard":
            liveness.heard_from(broker_id, at_ms)
        elif action == "fence":
            state = run([FenceBroker(broker_id)], state)
        elif action == "restart":
            state = run([RegisterBroker(broker_id, f"http://b{broker_id}", "inc-2", True)], state)
        elif action == "expect":
            assert liveness.expired(state, at_ms) == arg, f"at {at_ms} ms"
        else:
            raise AssertionError(f"unknown action {action!r}")


@pytest.mark.parametrize("steps", SESSION_RULES.values(), ids=SESSION_RULES)
def test_session_rule(steps: list[Step]) -> None:
    play(steps)


def test_without_track_sessions_only_the_heartbeat_timeout_fences() -> None:
    play(
        [
            *CONNECTED,
            (1000, "close", 2),
            (1000 + GRACE + 1, "expect", []),
            (SESSION_MS, "expect", []),
            (SESSION_MS + 1, "expect", [2, 3]),
        ],
        track_sessions=False,
    )
