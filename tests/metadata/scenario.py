"""Helpers that build metadata states from readable command lists for the tests."""

from __future__ import annotations

from collections.abc import Iterable

from raftka.metadata.commands import Command, CreateTopic, RegisterBroker
from raftka.metadata.model import MetadataState, PartitionRecord, TopicConfig
from raftka.metadata.state import Applied, apply

INCARNATION = "inc-1"


def register(*broker_ids: int, clean_shutdown: bool = True) -> list[Command]:
    return [
        RegisterBroker(
            b, f"http://b{b}", INCARNATION, raft_voter=True, clean_shutdown=clean_shutdown
        )
        for b in broker_ids
    ]


def restart_unclean(broker_id: int, incarnation: str = "inc-2") -> RegisterBroker:
    """A new incarnation of a broker whose previous run may have lost acknowledged writes."""
    return RegisterBroker(
        broker_id, f"http://b{broker_id}", incarnation, raft_voter=True, clean_shutdown=False
    )


def create(
    name: str, *assignment: tuple[int, ...], unclean: bool = False, min_isr: int = 1
) -> CreateTopic:
    config = TopicConfig(min_insync_replicas=min_isr, unclean_leader_election=unclean)
    return CreateTopic(name, f"id-{name}", config, tuple(assignment))


def run(commands: Iterable[Command], state: MetadataState | None = None) -> MetadataState:
    """Apply every command, each of which must be accepted; check invariants after each."""
    state = MetadataState.empty() if state is None else state
    for command in commands:
        result = apply(state, command)
        assert isinstance(result, Applied), f"{command} was rejected: {result}"
        state = result.state
        state.check_invariants()
    return state


def partition(state: MetadataState, topic: str, index: int = 0) -> PartitionRecord:
    return state.topics[topic].partitions[index]
