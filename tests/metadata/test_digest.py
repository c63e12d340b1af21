"""The metadata digest: equal states give equal digests, any change gives another, and
the incremental digester always agrees with a digest from scratch."""

import orjson

from raftka.metadata.commands import AllocateProducerIds, DeleteTopic, RegisterBroker
from raftka.metadata.digest import StateDigester, state_digest
from raftka.metadata.model import MetadataState
from tests.metadata.scenario import create, register, run

STEPS = [
    *register(1, 2, 3),
    create("a", (1, 2), (2, 3)),
    create("b", (3, 1)),
    AllocateProducerIds(1, 1000, command_id="alloc-1"),
    RegisterBroker(2, "http://b2", "inc-2", raft_voter=True, clean_shutdown=False),
    DeleteTopic("a", command_id="delete-a"),
]


def _states() -> list[MetadataState]:
    states = [MetadataState.empty()]
    for step in STEPS:
        states.append(run([step], states[-1]))
    return states


def test_a_state_rebuilt_from_its_snapshot_has_the_same_digest() -> None:
    for state in _states():
        rebuilt = MetadataState.from_snapshot(orjson.loads(orjson.dumps(state.to_snapshot())))
        assert rebuilt is not state
        assert state_digest(rebuilt) == state_digest(state)


def test_every_change_of_state_changes_the_digest() -> None:
    digests = [state_digest(s) for s in _states()]
    assert len(set(digests)) == len(digests)


def test_the_incremental_digester_agrees_with_a_digest_from_scratch() -> None:
    digester = StateDigester()
    for state in _states():
        assert digester.cached(state) is None
        assert digester.digest(state) == state_digest(state)
        assert digester.cached(state) == state_digest(state)
