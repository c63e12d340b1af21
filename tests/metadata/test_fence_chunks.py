"""A fence next to many partitions: each entry changes at most FENCE_CHUNK_PARTITIONS
partitions and looks at most at FENCE_SCAN_PARTITIONS, so no entry holds the Raft thread
long; the controller proposes ContinueFence until the fence is done, other entries in
between; the result is the whole fence's. Work is counted (events, the cursor), not timed."""

from __future__ import annotations

import math

from raftka.metadata import state as state_rules
from raftka.metadata.commands import (
    BrokerHeartbeat,
    Command,
    ContinueFence,
    CreateTopic,
    FenceBroker,
    RegisterBroker,
)
from raftka.metadata.controller import fence_continuations
from raftka.metadata.events import BrokerFenced, BrokerHeartbeatReceived, PartitionChanged
from raftka.metadata.model import MetadataState
from raftka.metadata.state import (
    FENCE_CHUNK_PARTITIONS,
    FENCE_SCAN_PARTITIONS,
    Applied,
    apply,
)
from tests.metadata.scenario import INCARNATION, create, register, run

ROTATIONS = ((1, 2, 3), (2, 3, 1), (3, 1, 2))


def big_state(
    partitions: int, assignment: tuple[tuple[int, ...], ...] = ROTATIONS
) -> MetadataState:
    """Two topics (the fence crosses from one to the next) of `partitions` in all."""
    half = partitions // 2
    return run(
        [
            *register(1, 2, 3),
            create("a", *[assignment[i % len(assignment)] for i in range(half)]),
            create("b", *[assignment[i % len(assignment)] for i in range(partitions - half)]),
        ]
    )


def applied(state: MetadataState, command: Command) -> Applied:
    result = apply(state, command)
    assert isinstance(result, Applied), result
    result.state.check_invariants()
    return result


def scanned_by(before: MetadataState, after: MetadataState, broker_id: int) -> int:
    """Partitions the entry looked at, from the fence's cursor before and after it."""

    def position(state: MetadataState) -> int:
        if broker_id not in state.fencing:  # not begun (0), or done (every partition)
            done = state.brokers[broker_id].fenced
            return sum(len(t.partitions) for t in state.topics.values()) if done else 0
        topic, partition = state.fencing[broker_id]
        below = sum(len(t.partitions) for name, t in state.topics.items() if name < topic)
        return below + partition

    return position(after) - position(before)


def test_a_fence_in_every_isr_of_many_partitions_takes_one_chunk_per_entry() -> None:
    partitions = 2 * FENCE_CHUNK_PARTITIONS + 500
    state = big_state(partitions)
    whole, _ = state_rules._fence(state, 1)  # the fence in one entry, as before chunks

    first = applied(state, FenceBroker(1, command_id="fence-1"))
    changes = [e for e in first.events if isinstance(e, PartitionChanged)]
    assert first.events[0] == BrokerFenced(1) and len(changes) == FENCE_CHUNK_PARTITIONS
    assert first.state.brokers[1].fenced and 1 in first.state.fencing
    # The retry window keeps that it was applied, not the chunk's changes.
    assert first.state.recent_command_ids[-1].events == (BrokerFenced(1),)

    # A heartbeat between two chunks changes no partition: it waits behind one chunk only.
    heard = applied(first.state, BrokerHeartbeat(2, INCARNATION))
    assert heard.events == (BrokerHeartbeatReceived(2),)
    assert heard.state.topics is first.state.topics

    state, entries = heard.state, 1
    while state.fencing:
        [command] = fence_continuations(state)
        assert command == ContinueFence(1)
        result = applied(state, command)
        assert len(result.events) <= FENCE_CHUNK_PARTITIONS
        assert scanned_by(state, result.state, 1) <= FENCE_SCAN_PARTITIONS
        state, entries = result.state, entries + 1
    assert entries == math.ceil(partitions / FENCE_CHUNK_PARTITIONS)
    assert state.topics == whole.topics, "the chunks add up to the whole fence"
    assert not any(1 in p.isr or p.leader == 1 for t in state.topics.values() for p in t.partitions)
    late = applied(state, ContinueFence(1))
    assert late.events == () and late.state is state, "a late copy changes nothing"


def test_a_fence_of_a_broker_in_few_partitions_scans_a_bounded_number_per_entry() -> None:
    partitions = FENCE_SCAN_PARTITIONS + 1_000
    state = big_state(partitions, ((2, 3), (3, 2)))
    state = run([RegisterBroker(4, "http://b4", INCARNATION, raft_voter=False)], state)
    state = run([CreateTopic("c", "id-c", state.topics["a"].config, ((4, 2),))], state)
    first = applied(state, FenceBroker(4))
    assert scanned_by(state, first.state, 4) == FENCE_SCAN_PARTITIONS
    assert [e for e in first.events if isinstance(e, PartitionChanged)] == []
    done = applied(first.state, ContinueFence(4))
    assert not done.state.fencing and len(done.events) == 1  # topic "c", after "a" and "b"
    assert done.state.topics["c"].partitions[0].leader == 2


def test_an_unfence_stops_a_fence_in_progress_and_a_restart_finishes_it_at_once() -> None:
    state = big_state(2 * FENCE_CHUNK_PARTITIONS)
    fencing = applied(state, FenceBroker(1)).state
    back = applied(fencing, BrokerHeartbeat(1, INCARNATION)).state
    assert not back.brokers[1].fenced and not back.fencing
    assert applied(back, ContinueFence(1)).state is back

    # A new incarnation's old one must lead nothing: its fence completes in one entry.
    restarted = applied(fencing, RegisterBroker(1, "http://b1", "inc-2", raft_voter=True)).state
    assert not restarted.fencing
    assert not any(p.leader == 1 for t in restarted.topics.values() for p in t.partitions)
