"""MetadataQuorum on real pysyncobj nodes in this process: commits reach the state and
the listener, rejections become contract errors, retries are idempotent, and the
journal survives a restart."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from raftka.api.ports import free_ports
from raftka.metadata.commands import (
    MAX_COMMAND_TEXT_CHARS,
    PYSYNCOBJ_CHUNKED_ENTRY_BYTES,
    CreateTopic,
    RegisterBroker,
)
from raftka.metadata.errors import InvalidRequest, NoController, TopicExists
from raftka.metadata.events import TopicCreated
from raftka.metadata.model import MetadataState, TopicConfig
from raftka.metadata.placement import assign_replicas
from raftka.metadata.quorum import (
    JOURNAL_GROWTH_MAX_BYTES,
    MetadataQuorum,
    RaftTiming,
    _create_journal,
)

FAST = RaftTiming(
    election_timeout_min_s=0.1,
    election_timeout_max_s=0.2,
    heartbeat_interval_s=0.02,
    connection_retry_s=0.1,
)
SUBMIT_TIMEOUT_S = 20.0
READY_TIMEOUT_S = 30.0

Listener = Callable[[MetadataState, tuple[Any, ...], bool], None]


def register(broker_id: int, command_id: str = "") -> RegisterBroker:
    return RegisterBroker(
        command_id=command_id,
        broker_id=broker_id,
        url=f"http://127.0.0.1:{9000 + broker_id}",
        incarnation_id=f"inc-{broker_id}",
        raft_voter=True,
    )


def create(name: str, command_id: str) -> CreateTopic:
    return CreateTopic(
        command_id=command_id,
        name=name,
        topic_id=f"id-{name}",
        config=TopicConfig(),
        assignment=((1,),),
    )


class Nodes:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.nodes: list[MetadataQuorum] = []
        self.events: list[Any] = []

    def listener(self, state: MetadataState, events: tuple[Any, ...], reset: bool) -> None:
        self.events.extend(events)

    def start(self, addresses: list[str], index: int) -> MetadataQuorum:
        node = MetadataQuorum(
            self_address=addresses[index],
            voter_addresses=addresses,
            data_dir=self.root / f"node-{index}",
            timing=FAST,
            listener=self.listener,
        )
        self.nodes.append(node)
        return node

    def close(self) -> None:
        for node in self.nodes:
            node.close()
        self.nodes.clear()


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[Nodes]:
    made = Nodes(tmp_path)
    yield made
    await asyncio.get_running_loop().run_in_executor(None, made.close)


async def wait_ready(node: MetadataQuorum) -> None:
    ready = await asyncio.get_running_loop().run_in_executor(None, node.wait_ready, READY_TIMEOUT_S)
    assert ready, "the quorum did not become ready"


async def test_a_committed_command_changes_the_state_and_reaches_the_listener(
    nodes: Nodes,
) -> None:
    addresses = [f"127.0.0.1:{p}" for p in free_ports(1)]
    node = nodes.start(addresses, 0)
    await wait_ready(node)
    await node.submit(register(1), SUBMIT_TIMEOUT_S)
    applied = await node.submit(create("t", "c1"), SUBMIT_TIMEOUT_S)
    assert "t" in applied.state.topics
    assert node.state.topics["t"].partitions[0].leader == 1
    assert TopicCreated("t") in nodes.events
    assert node.is_leader
    assert node.status().commit_index >= 3


async def test_a_rejection_is_raised_as_the_contract_error(nodes: Nodes) -> None:
    node = nodes.start([f"127.0.0.1:{free_ports(1)[0]}"], 0)
    await wait_ready(node)
    await node.submit(register(1), SUBMIT_TIMEOUT_S)
    await node.submit(create("t", "c1"), SUBMIT_TIMEOUT_S)
    with pytest.raises(TopicExists):
        await node.submit(create("t", "c2"), SUBMIT_TIMEOUT_S)


async def test_resubmitting_a_command_id_answers_the_first_outcome(nodes: Nodes) -> None:
    node = nodes.start([f"127.0.0.1:{free_ports(1)[0]}"], 0)
    await wait_ready(node)
    await node.submit(register(1), SUBMIT_TIMEOUT_S)
    first = await node.submit(create("t", "same-id"), SUBMIT_TIMEOUT_S)
    again = await node.submit(create("t", "same-id"), SUBMIT_TIMEOUT_S)
    assert again.events == first.events
    assert list(node.state.topics) == ["t"]


async def test_a_command_submitted_through_a_follower_commits_everywhere(nodes: Nodes) -> None:
    addresses = [f"127.0.0.1:{p}" for p in free_ports(3)]
    members = [nodes.start(addresses, i) for i in range(3)]
    for member in members:
        await wait_ready(member)
    follower = next(m for m in members if not m.is_leader)
    await follower.submit(register(1), SUBMIT_TIMEOUT_S)
    await follower.submit(create("t", "via-follower"), SUBMIT_TIMEOUT_S)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SUBMIT_TIMEOUT_S
    while not all("t" in m.state.topics for m in members):
        assert loop.time() < deadline, "not every member applied the command"
        await asyncio.sleep(0.01)


async def test_the_journal_brings_the_state_back_after_a_restart(nodes: Nodes) -> None:
    address = [f"127.0.0.1:{free_ports(1)[0]}"]
    node = nodes.start(address, 0)
    await wait_ready(node)
    await node.submit(register(1), SUBMIT_TIMEOUT_S)
    await node.submit(create("kept", "k1"), SUBMIT_TIMEOUT_S)
    await asyncio.get_running_loop().run_in_executor(None, nodes.close)
    assert (nodes.root / "node-0" / "raft.journal").stat().st_size > 0

    again = nodes.start(address, 0)
    await wait_ready(again)
    # A write is the read barrier: once it is applied, every earlier entry is too.
    await again.submit(register(1), SUBMIT_TIMEOUT_S)
    assert list(again.state.topics) == ["kept"]


async def test_without_a_majority_a_write_fails_with_no_controller(nodes: Nodes) -> None:
    addresses = [f"127.0.0.1:{p}" for p in free_ports(3)]
    lonely = nodes.start(addresses, 0)  # its two peers never start
    with pytest.raises(NoController):
        await lonely.submit(register(1), 1.0)


async def test_a_write_submitted_once_fails_at_its_first_failure(nodes: Nodes) -> None:
    addresses = [f"127.0.0.1:{p}" for p in free_ports(3)]
    lonely = nodes.start(addresses, 0)  # its two peers never start
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(NoController):
        # A generous budget, but no second attempt: the first failure ends it.
        await lonely.submit(register(1), 60.0, resubmit=False)
    assert loop.time() - started < 60.0


async def test_a_compacted_log_restarts_from_the_dump_plus_the_journal(nodes: Nodes) -> None:
    # pysyncobj compacts on its own every 10 minutes; force it to exercise the dump path:
    # a journal without a loadable dump comes back empty (shared/notes/pysyncobj.md).
    address = [f"127.0.0.1:{free_ports(1)[0]}"]
    node = nodes.start(address, 0)
    await wait_ready(node)
    await node.submit(register(1), SUBMIT_TIMEOUT_S)
    await node.submit(create("before-dump", "b1"), SUBMIT_TIMEOUT_S)
    node._syncobj.forceLogCompaction()
    dump = nodes.root / "node-0" / "raft.dump"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT_S
    while not (dump.exists() and node._syncobj._getRaftLogSize() <= 2):
        assert loop.time() < deadline, "compaction did not finish"
        await asyncio.sleep(0.01)
    await node.submit(create("after-dump", "a1"), SUBMIT_TIMEOUT_S)
    await loop.run_in_executor(None, nodes.close)

    nodes.events.clear()
    again = nodes.start(address, 0)
    await wait_ready(again)
    await again.submit(register(1), SUBMIT_TIMEOUT_S)
    assert sorted(again.state.topics) == ["after-dump", "before-dump"]
    again.state.check_invariants()


async def test_the_longest_command_text_makes_a_log_entry_pysyncobj_sends_whole(
    nodes: Nodes,
) -> None:
    # Capture the entry exactly as pysyncobj builds it from our call (pickled method id
    # and arguments); _applyCommand then prepends one byte of entry type.
    node = nodes.start([f"127.0.0.1:{free_ports(1)[0]}"], 0)
    entries: list[bytes] = []
    node._syncobj._applyCommand = lambda command, callback, kind=None: entries.append(command)
    node._store.apply_command("z" * MAX_COMMAND_TEXT_CHARS, callback=lambda *_: None)
    [entry] = entries
    assert 1 + len(entry) < PYSYNCOBJ_CHUNKED_ENTRY_BYTES


def assignment_of(brokers: int, partitions: int) -> tuple[tuple[int, ...], ...]:
    return assign_replicas(list(range(1, brokers + 1)), partitions, 3, 0)


async def test_a_compressed_create_topic_commits_on_every_member(nodes: Nodes) -> None:
    addresses = [f"127.0.0.1:{p}" for p in free_ports(3)]
    members = [nodes.start(addresses, i) for i in range(3)]
    for member in members:
        await wait_ready(member)
    leader = next(m for m in members if m.is_leader)
    for broker_id in (1, 2, 3):
        await leader.submit(register(broker_id), SUBMIT_TIMEOUT_S)
    big = CreateTopic("big", "id-big", TopicConfig(), assignment_of(3, 10_000), "c-big")
    await leader.submit(big, SUBMIT_TIMEOUT_S)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SUBMIT_TIMEOUT_S
    while not all("big" in m.state.topics for m in members):
        assert loop.time() < deadline, "not every member applied the command"
        await asyncio.sleep(0.01)
    assert all(m.state.topics["big"].partitions[-1].replicas == big.assignment[-1] for m in members)


async def test_a_command_too_large_for_one_entry_is_refused_and_never_submitted(
    nodes: Nodes,
) -> None:
    node = nodes.start([f"127.0.0.1:{free_ports(1)[0]}"], 0)
    await wait_ready(node)
    await node.submit(register(1), SUBMIT_TIMEOUT_S)
    before = node.status().commit_index
    # Refused by its size alone, before the state machine could check its brokers.
    too_big = CreateTopic("t", "id-t", TopicConfig(), assignment_of(100, 100_000), "c-t")
    with pytest.raises(InvalidRequest, match="metadata log entry"):
        await node.submit(too_big, SUBMIT_TIMEOUT_S)
    assert node.status().commit_index == before
    assert "t" not in node.state.topics


def test_the_journal_file_is_allocated_before_the_mmap_writes_it(tmp_path: Path) -> None:
    """A write through an mmap to a page the disk cannot allocate is a SIGBUS: every byte
    of the journal is allocated (no sparse holes) as it grows."""
    path = tmp_path / "raft.journal"
    journal = _create_journal(str(path))
    try:
        for i in range(8000):
            journal.add(b"x" * 300, i + 1, 1)
            if i % 997 == 0:
                st = os.stat(path)
                assert st.st_blocks * 512 >= st.st_size
        assert os.stat(path).st_size <= 2 * 8000 * 340 + JOURNAL_GROWTH_MAX_BYTES
    finally:
        journal._destroy()
    reopened = _create_journal(str(path))
    assert len(reopened) == 8000
    reopened._destroy()
