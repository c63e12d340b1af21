"""Random command sequences against `apply`, checking what must hold after every step.

Valid and invalid commands are mixed (unknown brokers, stale epochs, bad assignments,
repeated command ids, brokers back from clean and unclean shutdowns). After each step:
the invariants hold, epochs never went back, the snapshot survives orjson, replaying
the encoded log from empty gives the same state, and every command survives
encode/decode. After each fence, every new leader is the one the election rule picks.
"""

from __future__ import annotations

import orjson
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

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
    decode_command,
    encode_command,
)
from raftka.metadata.events import BrokerFenced, Event, PartitionChanged
from raftka.metadata.model import MetadataState, PartitionRecord, TopicConfig
from raftka.metadata.placement import assign_replicas
from raftka.metadata.state import Applied, Rejected, apply

BROKER_IDS = st.integers(0, 5)  # 5 is never registered by some runs: unknown brokers
INCARNATIONS = st.sampled_from(["i1", "i2"])
TOPIC_NAMES = st.sampled_from(["a", "a", "b", "b", "c", ".."])  # ".." is invalid


class MetadataMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.state = MetadataState.empty()
        self.log: list[str] = []  # the encoded commands, as the Raft log holds them
        self.remembered: list[tuple[Command, tuple[Event, ...]]] = []
        self.epochs: dict[tuple[str, int], tuple[int, int]] = {}
        self.ids = 0

    # --- helpers ---------------------------------------------------------------

    def new_id(self, data: st.DataObject) -> str:
        if data.draw(st.booleans(), label="with command_id"):
            self.ids += 1
            return f"cmd-{self.ids}"
        return ""

    def submit(self, command: Command) -> Applied | Rejected:
        text = encode_command(command)
        assert decode_command(text) == command
        result = apply(self.state, command)
        self.log.append(text)
        if isinstance(result, Applied):
            self.state = result.state
            if command.command_id and not isinstance(command, BrokerHeartbeat):
                events = result.events
                if isinstance(command, FenceBroker):  # kept without its partitions' changes
                    events = tuple(e for e in events if isinstance(e, BrokerFenced))
                self.remembered.append((command, events))
        return result

    def pick_partition(self, data: st.DataObject) -> tuple[str, int, PartitionRecord | None]:
        """A real partition most of the time, sometimes an unknown topic or partition."""
        names = sorted(self.state.topics)
        if not names or data.draw(st.integers(0, 9), label="unknown?") == 0:
            return data.draw(TOPIC_NAMES), data.draw(st.integers(-1, 4)), None
        name = data.draw(st.sampled_from(names))
        partitions = self.state.topics[name].partitions
        index = data.draw(st.integers(0, len(partitions) - 1))
        return name, index, partitions[index]

    # --- rules -----------------------------------------------------------------

    @initialize(
        data=st.data(),
        brokers=st.integers(1, 5),
        partitions=st.integers(1, 3),
        unclean=st.booleans(),
    )
    def start_cluster(
        self, data: st.DataObject, brokers: int, partitions: int, unclean: bool
    ) -> None:
        """Most runs start from a live cluster with one topic, so later rules bite."""
        for broker_id in range(brokers):
            clean = data.draw(st.booleans(), label="clean_shutdown")
            self.submit(
                RegisterBroker(broker_id, f"http://b{broker_id}", "i1", True, clean_shutdown=clean)
            )
        rf = data.draw(st.integers(1, min(3, brokers)), label="rf")
        assignment = assign_replicas(list(range(brokers)), partitions, rf, 0)
        config = TopicConfig(unclean_leader_election=unclean)
        assert isinstance(self.submit(CreateTopic("a", "id-a", config, assignment)), Applied)

    @rule(
        data=st.data(),
        broker_id=BROKER_IDS,
        incarnation=INCARNATIONS,
        voter=st.booleans(),
        clean=st.booleans(),
    )
    def register(
        self, data: st.DataObject, broker_id: int, incarnation: str, voter: bool, clean: bool
    ) -> None:
        url = data.draw(st.sampled_from([f"http://b{broker_id}", "http://moved"]))
        command = RegisterBroker(broker_id, url, incarnation, voter, self.new_id(data), clean)
        result = self.submit(command)
        if isinstance(result, Applied):
            assert self.state.brokers[broker_id].clean_shutdown == clean

    @rule(broker_id=BROKER_IDS, incarnation=INCARNATIONS)
    def heartbeat(self, broker_id: int, incarnation: str) -> None:
        result = self.submit(BrokerHeartbeat(broker_id, incarnation))
        if broker_id not in self.state.brokers:
            assert isinstance(result, Rejected) and result.code == "UNKNOWN_BROKER"

    @rule(data=st.data(), broker_id=BROKER_IDS)
    def fence(self, data: st.DataObject, broker_id: int) -> None:
        before = self.state
        result = self.submit(FenceBroker(broker_id, self.new_id(data)))
        if broker_id in self.state.brokers:
            assert self.state.brokers[broker_id].fenced
        if isinstance(result, Applied):
            self.check_elections(before, result.events)

    @precondition(lambda self: any(p.leader is not None for p in self.partitions()))
    @rule(data=st.data())
    def fence_a_leader(self, data: st.DataObject) -> None:
        """Fence the leader of a partition, so that elections happen often."""
        led = [p for p in self.partitions() if p.leader is not None]
        leader = data.draw(st.sampled_from(led)).leader
        assert leader is not None
        self.fence(data, leader)

    def partitions(self) -> list[PartitionRecord]:
        return [p for name in sorted(self.state.topics) for p in self.state.topics[name].partitions]

    def check_elections(self, before: MetadataState, events: tuple[Event, ...]) -> None:
        """Each new leader is the first unfenced candidate, in replica order, whose
        broker shut down cleanly, or the first unfenced one when none did. Candidates
        are the isr, or every replica for an unclean election (leader from outside)."""
        brokers = self.state.brokers
        for event in events:
            if not isinstance(event, PartitionChanged):
                continue
            old = before.topics[event.topic].partitions[event.partition]
            new = event.record
            if new.leader is None or new.leader == old.leader:
                continue
            candidates = new.isr if new.leader in old.isr else new.replicas
            unfenced = [r for r in candidates if not brokers[r].fenced]
            clean = [r for r in unfenced if brokers[r].clean_shutdown]
            assert new.leader == (clean or unfenced)[0], (event, brokers)

    @rule(data=st.data(), broker_id=BROKER_IDS)
    def unfence(self, data: st.DataObject, broker_id: int) -> None:
        self.submit(UnfenceBroker(broker_id, self.new_id(data)))

    @rule(
        data=st.data(),
        name=TOPIC_NAMES,
        partitions=st.integers(0, 4),
        rf=st.integers(1, 4),
        min_isr=st.integers(1, 3),
        unclean=st.booleans(),
    )
    def create_topic(
        self,
        data: st.DataObject,
        name: str,
        partitions: int,
        rf: int,
        min_isr: int,
        unclean: bool,
    ) -> None:
        usable = sorted(b for b, r in self.state.brokers.items() if not r.fenced)
        if partitions >= 1 and rf <= len(usable) and data.draw(st.booleans(), label="placed"):
            start = data.draw(st.integers(0, 10))
            assignment = assign_replicas(usable, partitions, rf, start)
        else:
            replicas = st.lists(BROKER_IDS, min_size=0, max_size=4).map(tuple)
            assignment = tuple(data.draw(replicas) for _ in range(partitions))
        topic_id = data.draw(st.sampled_from(["reused", f"id-{len(self.log)}"]), label="topic_id")
        config = TopicConfig(min_insync_replicas=min_isr, unclean_leader_election=unclean)
        self.submit(CreateTopic(name, topic_id, config, assignment, self.new_id(data)))

    @rule(data=st.data(), name=TOPIC_NAMES)
    def delete_topic(self, data: st.DataObject, name: str) -> None:
        result = self.submit(DeleteTopic(name, self.new_id(data)))
        if isinstance(result, Applied):
            assert name not in self.state.topics

    @rule(data=st.data(), epoch_delta=st.sampled_from([0, 0, 0, -1, 1]))
    def elect_leader(self, data: st.DataObject, epoch_delta: int) -> None:
        topic, index, p = self.pick_partition(data)
        replicas = p.replicas if p is not None else (0,)
        leader = data.draw(st.sampled_from(replicas) | BROKER_IDS)
        epoch = (p.leader_epoch if p is not None else 0) + epoch_delta
        result = self.submit(ElectLeader(topic, index, leader, epoch, self.new_id(data)))
        if epoch_delta != 0 and p is not None:
            assert isinstance(result, Rejected)

    @rule(data=st.data(), stale=st.sampled_from([None, None, "leader", "partition"]))
    def alter_partition(self, data: st.DataObject, stale: str | None) -> None:
        topic, index, p = self.pick_partition(data)
        if p is None:
            self.submit(AlterPartition(topic, index, 0, 0, 0, (0,), self.new_id(data)))
            return
        leader = p.leader if p.leader is not None else p.replicas[0]
        if data.draw(st.integers(0, 4), label="other leader") == 0:
            leader = data.draw(BROKER_IDS)
        unfenced = [r for r in p.replicas if not self.state.brokers[r].fenced]
        members = data.draw(st.lists(st.sampled_from([*p.replicas, 5]), max_size=4, unique=True))
        if data.draw(st.booleans(), label="plausible isr"):
            members = [leader, *(r for r in unfenced if r != leader and r in members)]
        leader_epoch = p.leader_epoch - (stale == "leader")
        partition_epoch = p.partition_epoch - (stale == "partition")
        command = AlterPartition(
            topic, index, leader, leader_epoch, partition_epoch, tuple(members), self.new_id(data)
        )
        result = self.submit(command)
        if stale is not None:
            assert isinstance(result, Rejected)
            assert result.code == "STALE_PARTITION_EPOCH"

    @rule(data=st.data(), broker_id=BROKER_IDS, count=st.integers(-1, 3000))
    def allocate_producer_ids(self, data: st.DataObject, broker_id: int, count: int) -> None:
        before = self.state.next_producer_id
        result = self.submit(AllocateProducerIds(broker_id, count, self.new_id(data)))
        if isinstance(result, Applied):
            assert self.state.next_producer_id == before + count

    @precondition(lambda self: bool(self.remembered))
    @rule(data=st.data())
    def repeat_command_id(self, data: st.DataObject) -> None:
        command, events = data.draw(st.sampled_from(self.remembered))
        before = self.state
        result = self.submit(command)
        assert isinstance(result, Applied)
        assert result.state == before
        assert result.events == events

    # --- what holds after every step ------------------------------------------

    @invariant()
    def invariants_hold(self) -> None:
        self.state.check_invariants()

    @invariant()
    def epochs_never_decrease(self) -> None:
        # Only for partitions that still exist: a deleted topic's epochs are forgotten,
        # so a topic created later (even one reusing a topic_id) starts again at 0.
        current: dict[tuple[str, int], tuple[int, int]] = {}
        for topic in self.state.topics.values():
            for p in topic.partitions:
                key = (topic.topic_id, p.partition)
                old_leader_epoch, old_partition_epoch = self.epochs.get(key, (0, 0))
                assert p.leader_epoch >= old_leader_epoch
                assert p.partition_epoch >= old_partition_epoch
                current[key] = (p.leader_epoch, p.partition_epoch)
        self.epochs = current

    @invariant()
    def snapshot_round_trips_through_orjson(self) -> None:
        text = orjson.dumps(self.state.to_snapshot())
        assert MetadataState.from_snapshot(orjson.loads(text)) == self.state

    @invariant()
    def replaying_the_log_from_empty_gives_the_same_state(self) -> None:
        state = MetadataState.empty()
        for text in self.log:
            result = apply(state, decode_command(text))
            if isinstance(result, Applied):
                state = result.state
        assert state == self.state


TestMetadataStateMachine = MetadataMachine.TestCase
