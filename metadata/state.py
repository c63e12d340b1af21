"""The metadata state machine: `apply(state, command)` -> Applied or Rejected.

This module owns every rule of how the metadata changes (KRaft's broker fencing,
leader election with cleanly shut down candidates first, isr changes, topic
lifecycle, producer id blocks, idempotent retries). It must stay a pure function: no pysyncobj (`quorum.py` calls `apply`),
no clock, no randomness, no I/O, and no dependence on dict or set iteration order
(topics are walked sorted by name), so every replica computes the same state.
"""

from __future__ import annotations

import enum
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from raftka.metadata import groups as group_rules
from raftka.metadata.commands import (
    AcknowledgeGeneration,
    AllocateProducerIds,
    AlterPartition,
    BrokerHeartbeat,
    Command,
    CommitOffsets,
    ContinueFence,
    CreateTopic,
    DeleteTopic,
    ElectLeader,
    FenceBroker,
    JoinGroup,
    LeaveGroup,
    RegisterBroker,
    UnfenceBroker,
)
from raftka.metadata.events import (
    BrokerFenced,
    BrokerHeartbeatReceived,
    BrokerRegistered,
    BrokerUnfenced,
    Event,
    GroupChanged,
    OffsetsCommitted,
    PartitionChanged,
    ProducerIdsAllocated,
    TopicCreated,
    TopicDeleted,
)
from raftka.metadata.model import (
    MAX_RECENT_COMMAND_IDS,
    BrokerRecord,
    CommandOutcome,
    GroupRecord,
    MetadataState,
    PartitionRecord,
    TopicRecord,
    validate_topic_name,
)

MAX_PRODUCER_ID = 2**63 - 1  # Kafka's producer id is an int64
MAX_PRODUCER_ID_BLOCK_SIZE = 1_000_000  # ids per AllocateProducerIds; Kafka hands out 1000
MAX_PARTITIONS_PER_TOPIC = 100_000  # bounds one CreateTopic entry and its snapshot
# A fence moves leaderships and isr memberships off its broker in chunks, one entry each,
# so that no entry holds the Raft thread long (next to 100,000 partitions at RF=3 a whole
# fence took 3.7 s there, and heartbeats and leases waited behind it): an entry changes at
# most FENCE_CHUNK_PARTITIONS partitions and looks at most at FENCE_SCAN_PARTITIONS (an
# unchanged one costs far less). The controller proposes ContinueFence until it is done.
FENCE_CHUNK_PARTITIONS = 1_000
FENCE_SCAN_PARTITIONS = 20_000


class ErrorCode(enum.StrEnum):
    # Contract codes (API.md), rendered to HTTP by the api layer.
    TOPIC_EXISTS = "TOPIC_EXISTS"
    UNKNOWN_TOPIC = "UNKNOWN_TOPIC"
    UNKNOWN_PARTITION = "UNKNOWN_PARTITION"
    INVALID_REQUEST = "INVALID_REQUEST"
    INVALID_REPLICATION_FACTOR = "INVALID_REPLICATION_FACTOR"
    # Internal codes: broker-to-controller traffic only.
    UNKNOWN_BROKER = "UNKNOWN_BROKER"
    STALE_BROKER_INCARNATION = "STALE_BROKER_INCARNATION"
    STALE_PARTITION_EPOCH = "STALE_PARTITION_EPOCH"
    NOT_LEADER = "NOT_LEADER"
    # Consumer groups (contract codes).
    UNKNOWN_MEMBER = "UNKNOWN_MEMBER"
    STALE_GENERATION = "STALE_GENERATION"
    COORDINATOR_NOT_AVAILABLE = "COORDINATOR_NOT_AVAILABLE"


@dataclass(frozen=True, slots=True)
class Applied:
    state: MetadataState
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class Rejected:
    code: str  # an ErrorCode (a str subclass)
    message: str


Result = Applied | Rejected


def apply(state: MetadataState, command: Command) -> Applied | Rejected:
    """Apply one committed command. Pure: the same inputs give the same result."""
    # pysyncobj may report failure for an entry that did commit, so the caller
    # retries with the same command_id: answer with the first outcome, never twice.
    seen = state.outcome_of(command.command_id)
    if seen is not None:
        return Applied(state, seen.events)
    handler: Callable[[MetadataState, Any], Result] = _HANDLERS[type(command)]
    result = handler(state, command)
    # A heartbeat means the same thing every time it arrives, and brokers send one
    # every few seconds: remembering them would only push real commands out. So does a
    # ContinueFence (it only continues a fence in progress).
    if (
        isinstance(result, Applied)
        and command.command_id
        and not isinstance(command, BrokerHeartbeat | ContinueFence)
    ):
        events = result.events
        if isinstance(command, FenceBroker):
            # A retry needs only to know that it was applied; the partitions' changes, up
            # to FENCE_CHUNK_PARTITIONS, would fill the retry window and the snapshot.
            events = tuple(e for e in events if isinstance(e, BrokerFenced))
        remembered = (*state.recent_command_ids, CommandOutcome(command.command_id, events))
        remembered = remembered[-MAX_RECENT_COMMAND_IDS:]
        result = Applied(replace(result.state, recent_command_ids=remembered), result.events)
    return result


# --- partition transitions -------------------------------------------------------


def _with_leader_and_isr(
    p: PartitionRecord, leader: int | None, isr: tuple[int, ...]
) -> PartitionRecord:
    """`p` with a new leader and isr, epochs bumped as Kafka does (or `p` if unchanged)."""
    isr = tuple(r for r in p.replicas if r in isr)  # replicas order: one form per set
    leader_changed = leader != p.leader
    if not leader_changed and isr == p.isr:
        return p
    # The constructor, not dataclasses.replace (3x slower): a fence changes every partition
    # of the broker, on the Raft thread.
    return PartitionRecord(
        p.partition,
        p.replicas,
        isr,
        leader,
        p.leader_epoch + 1 if leader_changed else p.leader_epoch,
        p.partition_epoch + 1,
    )


def _choose_leader(candidates: Iterable[int], brokers: Mapping[int, BrokerRecord]) -> int | None:
    """The first unfenced candidate whose broker shut down cleanly, else the first
    unfenced one, else None. Candidates come in replica order.

    A broker back from an unclean shutdown may miss records it acknowledged
    (KIP-966), so any clean candidate goes first; but it still leads rather than
    leave the partition leaderless when it is the only one.
    """
    unfenced = [r for r in candidates if not brokers[r].fenced]
    clean = [r for r in unfenced if brokers[r].clean_shutdown]
    ranked = clean or unfenced
    return ranked[0] if ranked else None


def _after_fence(
    p: PartitionRecord, broker_id: int, brokers: Mapping[int, BrokerRecord], unclean: bool
) -> PartitionRecord:
    if p.leader != broker_id and (broker_id not in p.isr or len(p.isr) == 1):
        return p  # nothing of this partition changes (the common case, kept cheap)
    isr = p.isr
    # Kafka keeps the last isr member even when fenced: it holds every committed
    # record, and dropping it would let any replica claim to be "in sync".
    if broker_id in isr and len(isr) > 1:
        isr = tuple(r for r in isr if r != broker_id)
    leader = p.leader
    if leader == broker_id:
        leader = _choose_leader((r for r in p.replicas if r in isr), brokers)
        if leader is None and unclean:
            # The topic accepts losing committed records to stay available.
            leader = _choose_leader(p.replicas, brokers)
            if leader is not None:
                isr = (leader,)
    return _with_leader_and_isr(p, leader, isr)


def _after_unfence(
    p: PartitionRecord, brokers: Mapping[int, BrokerRecord], unclean: bool
) -> PartitionRecord:
    # Only leaderless partitions change: elsewhere the leader adds the broker back to
    # the isr once it has caught up. By the invariants, the unfenced broker is the
    # only candidate here; choosing among all keeps one election rule everywhere.
    if p.leader is not None:
        return p
    leader = _choose_leader((r for r in p.replicas if r in p.isr), brokers)
    if leader is not None:
        return _with_leader_and_isr(p, leader, p.isr)
    if unclean:
        leader = _choose_leader(p.replicas, brokers)
        if leader is not None:
            return _with_leader_and_isr(p, leader, (leader,))
    return p


PartitionKey = tuple[str, int]


def _map_partitions(
    topics: Mapping[str, TopicRecord],
    change: Callable[[TopicRecord, PartitionRecord], PartitionRecord],
) -> tuple[dict[str, TopicRecord], dict[PartitionKey, PartitionRecord]]:
    """Apply `change` to every partition; return the new topics and what changed."""
    new_topics = dict(topics)
    changed: dict[PartitionKey, PartitionRecord] = {}
    for name in sorted(topics):
        topic = topics[name]
        partitions = tuple(change(topic, p) for p in topic.partitions)
        if partitions != topic.partitions:
            new_topics[name] = replace(topic, partitions=partitions)
            for old, new in zip(topic.partitions, partitions, strict=True):
                if old is not new:
                    changed[(name, new.partition)] = new
    return new_topics, changed


def _set_fenced(state: MetadataState, broker: BrokerRecord, fenced: bool) -> MetadataState:
    return replace(
        state, brokers={**state.brokers, broker.broker_id: replace(broker, fenced=fenced)}
    )


def _without_fencing(state: MetadataState, broker_id: int) -> MetadataState:
    if broker_id not in state.fencing:
        return state
    fencing = {b: cursor for b, cursor in state.fencing.items() if b != broker_id}
    return replace(state, fencing=fencing)


def _fence(
    state: MetadataState, broker_id: int
) -> tuple[MetadataState, dict[PartitionKey, PartitionRecord]]:
    """The whole fence in one entry: for a restarted broker's old incarnation, whose
    leaderships must all go before the new one is unfenced."""
    state = _without_fencing(_set_fenced(state, state.brokers[broker_id], True), broker_id)
    brokers = state.brokers
    topics, changed = _map_partitions(
        state.topics,
        lambda t, p: _after_fence(p, broker_id, brokers, t.config.unclean_leader_election),
    )
    return replace(state, topics=topics), changed


def _fence_chunk(
    state: MetadataState, broker_id: int
) -> tuple[MetadataState, dict[PartitionKey, PartitionRecord]]:
    """The next chunk of the fence of `broker_id` (in state.fencing), from its cursor on in
    topic name order: at most FENCE_CHUNK_PARTITIONS changed, FENCE_SCAN_PARTITIONS looked
    at. The fence ends (its cursor goes) with the last topic. A topic deleted meanwhile is
    skipped; one created meanwhile never holds the fenced broker."""
    cursor_topic, cursor_partition = state.fencing[broker_id]
    names = sorted(state.topics)
    brokers = state.brokers
    topics = dict(state.topics)
    changed: dict[PartitionKey, PartitionRecord] = {}
    scanned = 0
    cursor: tuple[str, int] | None = None
    for name in names[bisect_left(names, cursor_topic) :]:
        topic = state.topics[name]
        unclean = topic.config.unclean_leader_election
        partitions = topic.partitions
        new_partitions: list[PartitionRecord] | None = None
        index = cursor_partition if name == cursor_topic else 0
        while index < len(partitions):
            if len(changed) >= FENCE_CHUNK_PARTITIONS or scanned >= FENCE_SCAN_PARTITIONS:
                cursor = (name, index)
                break
            old = partitions[index]
            new = _after_fence(old, broker_id, brokers, unclean)
            scanned += 1
            if new is not old:
                if new_partitions is None:
                    new_partitions = list(partitions)
                new_partitions[index] = new
                changed[(name, index)] = new
            index += 1
        if new_partitions is not None:
            topics[name] = replace(topic, partitions=tuple(new_partitions))
        if cursor is not None:
            break
    fencing = {b: c for b, c in state.fencing.items() if b != broker_id}
    if cursor is not None:
        fencing[broker_id] = cursor
    return replace(state, topics=topics, fencing=fencing), changed


def _unfence(
    state: MetadataState, broker_id: int
) -> tuple[MetadataState, dict[PartitionKey, PartitionRecord]]:
    # A fence still in progress stops: the partitions it has not reached keep the broker,
    # which is alive again.
    state = _without_fencing(_set_fenced(state, state.brokers[broker_id], False), broker_id)
    brokers = state.brokers
    topics, changed = _map_partitions(
        state.topics,
        lambda t, p: _after_unfence(p, brokers, t.config.unclean_leader_election),
    )
    return replace(state, topics=topics), changed


def _partition_events(changed: Mapping[PartitionKey, PartitionRecord]) -> tuple[Event, ...]:
    return tuple(PartitionChanged(t, i, changed[(t, i)]) for t, i in sorted(changed))


# --- brokers ---------------------------------------------------------------------


def _register_broker(state: MetadataState, cmd: RegisterBroker) -> Result:
    if cmd.broker_id < 0:
        return Rejected(ErrorCode.INVALID_REQUEST, f"broker_id must be >= 0, got {cmd.broker_id}")
    if not cmd.url or not cmd.incarnation_id:
        return Rejected(ErrorCode.INVALID_REQUEST, "url and incarnation_id must be non-empty")
    new = BrokerRecord(
        cmd.broker_id,
        cmd.url,
        cmd.incarnation_id,
        cmd.raft_voter,
        fenced=False,
        clean_shutdown=cmd.clean_shutdown,
    )
    old = state.brokers.get(cmd.broker_id)
    if old is None:
        state = replace(state, brokers={**state.brokers, cmd.broker_id: new})
        return Applied(state, (BrokerRegistered(cmd.broker_id),))
    if old.incarnation_id == cmd.incarnation_id:
        if (old.url, old.raft_voter) != (new.url, new.raft_voter):
            return Rejected(
                ErrorCode.INVALID_REQUEST,
                f"broker {cmd.broker_id} incarnation {cmd.incarnation_id} is already "
                f"registered with url {old.url} and raft_voter={old.raft_voter}",
            )
        if old.clean_shutdown != cmd.clean_shutdown:
            # The record keeps what the latest registration said. It only ranks
            # future election candidates, so no partition changes now.
            updated = replace(old, clean_shutdown=cmd.clean_shutdown)
            return Applied(replace(state, brokers={**state.brokers, cmd.broker_id: updated}), ())
        return Applied(state, ())  # the same registration again: nothing to do
    # A new incarnation is a restart: whatever the old process led or held in sync
    # may be gone (unflushed writes), so the old incarnation is fenced first (Kafka's
    # broker epoch fencing), then the new one is unfenced like any returning broker.
    changed: dict[PartitionKey, PartitionRecord] = {}
    if not old.fenced or cmd.broker_id in state.fencing:
        state, changed = _fence(state, cmd.broker_id)
    state = replace(state, brokers={**state.brokers, cmd.broker_id: replace(new, fenced=True)})
    state, unfenced = _unfence(state, cmd.broker_id)
    changed.update(unfenced)
    return Applied(state, (BrokerRegistered(cmd.broker_id), *_partition_events(changed)))


def _broker_heartbeat(state: MetadataState, cmd: BrokerHeartbeat) -> Result:
    broker = state.brokers.get(cmd.broker_id)
    if broker is None:
        return Rejected(ErrorCode.UNKNOWN_BROKER, f"broker {cmd.broker_id} is not registered")
    if broker.incarnation_id != cmd.incarnation_id:
        return Rejected(
            ErrorCode.STALE_BROKER_INCARNATION,
            f"broker {cmd.broker_id} is registered as incarnation {broker.incarnation_id}, "
            f"not {cmd.incarnation_id}",
        )
    heard = BrokerHeartbeatReceived(cmd.broker_id)
    if not broker.fenced:
        return Applied(state, (heard,))
    state, changed = _unfence(state, cmd.broker_id)
    return Applied(state, (BrokerUnfenced(cmd.broker_id), *_partition_events(changed), heard))


def _fence_broker(state: MetadataState, cmd: FenceBroker) -> Result:
    broker = state.brokers.get(cmd.broker_id)
    if broker is None:
        return Rejected(ErrorCode.UNKNOWN_BROKER, f"broker {cmd.broker_id} is not registered")
    if broker.fenced:
        return Applied(state, ())
    state = _set_fenced(state, broker, True)
    state = replace(state, fencing={**state.fencing, cmd.broker_id: ("", 0)})
    state, changed = _fence_chunk(state, cmd.broker_id)
    return Applied(state, (BrokerFenced(cmd.broker_id), *_partition_events(changed)))


def _continue_fence(state: MetadataState, cmd: ContinueFence) -> Result:
    if cmd.broker_id not in state.fencing:
        return Applied(state, ())  # done, or stopped by an unfence: a late copy is harmless
    state, changed = _fence_chunk(state, cmd.broker_id)
    return Applied(state, _partition_events(changed))


def _unfence_broker(state: MetadataState, cmd: UnfenceBroker) -> Result:
    broker = state.brokers.get(cmd.broker_id)
    if broker is None:
        return Rejected(ErrorCode.UNKNOWN_BROKER, f"broker {cmd.broker_id} is not registered")
    if not broker.fenced:
        return Applied(state, ())
    state, changed = _unfence(state, cmd.broker_id)
    return Applied(state, (BrokerUnfenced(cmd.broker_id), *_partition_events(changed)))


# --- topics ----------------------------------------------------------------------


def _check_assignment(state: MetadataState, cmd: CreateTopic) -> Rejected | None:
    if not cmd.assignment:
        return Rejected(ErrorCode.INVALID_REQUEST, "a topic needs at least one partition")
    if len(cmd.assignment) > MAX_PARTITIONS_PER_TOPIC:
        return Rejected(
            ErrorCode.INVALID_REQUEST,
            f"at most {MAX_PARTITIONS_PER_TOPIC} partitions per topic, got {len(cmd.assignment)}",
        )
    replication_factor = len(cmd.assignment[0])
    for partition, replicas in enumerate(cmd.assignment):
        if not replicas:
            return Rejected(
                ErrorCode.INVALID_REPLICATION_FACTOR, f"partition {partition} has no replicas"
            )
        if len(replicas) != replication_factor:
            return Rejected(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"partition {partition} has {len(replicas)} replicas, partition 0 has "
                f"{replication_factor}: every partition needs the same replication factor",
            )
        if len(set(replicas)) != len(replicas):
            return Rejected(
                ErrorCode.INVALID_REQUEST, f"partition {partition} lists a replica twice"
            )
        unknown = [r for r in replicas if r not in state.brokers]
        if unknown:
            return Rejected(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"partition {partition} names unregistered broker(s) {unknown}",
            )
        if all(state.brokers[r].fenced for r in replicas):
            return Rejected(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"every replica of partition {partition} is fenced: no leader possible",
            )
    if cmd.config.min_insync_replicas > replication_factor:
        return Rejected(
            ErrorCode.INVALID_REQUEST,
            f"min_insync_replicas {cmd.config.min_insync_replicas} is larger than the "
            f"replication factor {replication_factor}: acks=all could never succeed",
        )
    return None


def _create_topic(state: MetadataState, cmd: CreateTopic) -> Result:
    problem = validate_topic_name(cmd.name)
    if problem is not None:
        return Rejected(ErrorCode.INVALID_REQUEST, problem)
    if cmd.name in state.topics:
        return Rejected(ErrorCode.TOPIC_EXISTS, f"topic {cmd.name} already exists")
    if not cmd.topic_id or any(t.topic_id == cmd.topic_id for t in state.topics.values()):
        return Rejected(ErrorCode.INVALID_REQUEST, f"topic_id {cmd.topic_id!r} is empty or in use")
    rejected = _check_assignment(state, cmd)
    if rejected is not None:
        return rejected
    partitions = []
    for index, replicas in enumerate(cmd.assignment):
        # Like KRaft: a fenced replica starts outside the isr and joins once caught up.
        isr = tuple(r for r in replicas if not state.brokers[r].fenced)
        partitions.append(
            PartitionRecord(index, replicas, isr, isr[0], leader_epoch=0, partition_epoch=0)
        )
    topic = TopicRecord(cmd.name, cmd.topic_id, cmd.config, tuple(partitions))
    state = replace(state, topics={**state.topics, cmd.name: topic})
    state, changed = _groups_after_topic_change(state)
    return Applied(state, (TopicCreated(cmd.name), *changed))


def _delete_topic(state: MetadataState, cmd: DeleteTopic) -> Result:
    if cmd.name not in state.topics:
        return Rejected(ErrorCode.UNKNOWN_TOPIC, f"topic {cmd.name} does not exist")
    topics = {name: t for name, t in state.topics.items() if name != cmd.name}
    state, changed = _groups_after_topic_change(replace(state, topics=topics))
    return Applied(state, (TopicDeleted(cmd.name), *changed))


# --- partitions ------------------------------------------------------------------


def _find_partition(
    state: MetadataState, topic: str, partition: int
) -> tuple[TopicRecord, PartitionRecord] | Rejected:
    record = state.topics.get(topic)
    if record is None:
        return Rejected(ErrorCode.UNKNOWN_TOPIC, f"topic {topic} does not exist")
    if not 0 <= partition < len(record.partitions):
        return Rejected(
            ErrorCode.UNKNOWN_PARTITION,
            f"topic {topic} has partitions 0-{len(record.partitions) - 1}, not {partition}",
        )
    return record, record.partitions[partition]


def _replace_partition(state: MetadataState, topic: TopicRecord, new: PartitionRecord) -> Applied:
    if new == topic.partitions[new.partition]:
        return Applied(state, ())
    partitions = list(topic.partitions)
    partitions[new.partition] = new
    topic = replace(topic, partitions=tuple(partitions))
    state = replace(state, topics={**state.topics, topic.name: topic})
    return Applied(state, (PartitionChanged(topic.name, new.partition, new),))


def _elect_leader(state: MetadataState, cmd: ElectLeader) -> Result:
    found = _find_partition(state, cmd.topic, cmd.partition)
    if isinstance(found, Rejected):
        return found
    topic, p = found
    if cmd.expected_leader_epoch != p.leader_epoch:
        return Rejected(
            ErrorCode.STALE_PARTITION_EPOCH,
            f"{cmd.topic}-{cmd.partition} is at leader_epoch {p.leader_epoch}, "
            f"not {cmd.expected_leader_epoch}",
        )
    if cmd.leader not in p.isr or state.brokers[cmd.leader].fenced:
        return Rejected(
            ErrorCode.INVALID_REQUEST,
            f"broker {cmd.leader} cannot lead {cmd.topic}-{cmd.partition}: "
            "a leader must be an unfenced isr member",
        )
    return _replace_partition(state, topic, _with_leader_and_isr(p, cmd.leader, p.isr))


def _alter_partition(state: MetadataState, cmd: AlterPartition) -> Result:
    found = _find_partition(state, cmd.topic, cmd.partition)
    if isinstance(found, Rejected):
        return found
    topic, p = found
    where = f"{cmd.topic}-{cmd.partition}"
    if (cmd.leader_epoch, cmd.partition_epoch) != (p.leader_epoch, p.partition_epoch):
        return Rejected(
            ErrorCode.STALE_PARTITION_EPOCH,
            f"{where} is at leader_epoch {p.leader_epoch} partition_epoch "
            f"{p.partition_epoch}, not {cmd.leader_epoch} {cmd.partition_epoch}",
        )
    if cmd.leader != p.leader:
        return Rejected(ErrorCode.NOT_LEADER, f"broker {cmd.leader} does not lead {where}")
    isr = set(cmd.isr)
    if len(isr) != len(cmd.isr) or cmd.leader not in isr or not isr <= set(p.replicas):
        return Rejected(
            ErrorCode.INVALID_REQUEST,
            f"isr {list(cmd.isr)} of {where} must hold the leader, only replicas "
            f"{list(p.replicas)}, each once",
        )
    fenced = sorted(r for r in isr if state.brokers[r].fenced)
    if fenced:
        # Kafka's INELIGIBLE_REPLICA: a fenced broker may not join an isr.
        return Rejected(
            ErrorCode.INVALID_REQUEST, f"fenced broker(s) {fenced} cannot join {where}'s isr"
        )
    return _replace_partition(state, topic, _with_leader_and_isr(p, p.leader, cmd.isr))


# --- producer ids ----------------------------------------------------------------


def _allocate_producer_ids(state: MetadataState, cmd: AllocateProducerIds) -> Result:
    if cmd.broker_id not in state.brokers:
        return Rejected(ErrorCode.UNKNOWN_BROKER, f"broker {cmd.broker_id} is not registered")
    if not 1 <= cmd.count <= MAX_PRODUCER_ID_BLOCK_SIZE:
        return Rejected(
            ErrorCode.INVALID_REQUEST,
            f"count must be 1-{MAX_PRODUCER_ID_BLOCK_SIZE}, got {cmd.count}",
        )
    first = state.next_producer_id
    if first + cmd.count - 1 > MAX_PRODUCER_ID:
        return Rejected(ErrorCode.INVALID_REQUEST, "producer ids are exhausted")
    state = replace(state, next_producer_id=first + cmd.count)
    return Applied(state, (ProducerIdsAllocated(cmd.broker_id, first, cmd.count),))


# --- consumer groups (the rules are in groups.py) ---------------------------------


def _groups_after_topic_change(state: MetadataState) -> tuple[MetadataState, tuple[Event, ...]]:
    """Every group whose subscribed partitions changed rebalances; offsets of topics
    that are gone are dropped (a topic created again under the name starts afresh)."""
    counts = state.partition_counts()
    groups = dict(state.groups)
    events: list[Event] = []
    for group_id in sorted(groups):
        new = group_rules.topics_changed(groups[group_id], counts)
        if new != groups[group_id]:
            groups[group_id] = new
            events.append(GroupChanged(group_id))
    if not events:
        return state, ()
    return replace(state, groups=groups), tuple(events)


def group_coordinator(state: MetadataState, group_id: str) -> int | None:
    """The broker that coordinates `group_id` in this state (rendezvous hashing over the
    unfenced brokers, as every broker computes it)."""
    unfenced = [b for b, r in state.brokers.items() if not r.fenced]
    return group_rules.coordinator_for(group_id, unfenced)


def _not_coordinator(state: MetadataState, group_id: str, sender: int) -> Rejected | None:
    coordinator = group_coordinator(state, group_id)
    if sender == coordinator:
        return None
    return Rejected(
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        f"broker {sender} no longer coordinates group {group_id} (broker {coordinator} does)",
    )


def _with_group(state: MetadataState, group: GroupRecord) -> Applied:
    groups = dict(state.groups)
    if group.members or group.offsets:
        groups[group.group_id] = group
    else:
        groups.pop(group.group_id, None)  # nothing left to remember
    return Applied(replace(state, groups=groups), (GroupChanged(group.group_id),))


def _join_group(state: MetadataState, cmd: JoinGroup) -> Result:
    problem = _check_join(cmd)
    if problem is not None:
        return Rejected(ErrorCode.INVALID_REQUEST, problem)
    stale = _not_coordinator(state, cmd.group, cmd.coordinator)
    if stale is not None:
        return stale
    group = state.groups.get(cmd.group) or group_rules.new_group(cmd.group, cmd.assignor)
    if group.members and group.assignor != cmd.assignor:
        return Rejected(
            ErrorCode.INVALID_REQUEST,
            f"group {cmd.group} uses the {group.assignor} assignor, not {cmd.assignor}",
        )
    if not group.members:
        group = replace(group, assignor=cmd.assignor)  # an empty group takes the new one
    member = group_rules.MemberRecord(
        member_id=cmd.member_id,
        topics=tuple(sorted(set(cmd.topics))),
        session_timeout_ms=cmd.session_timeout_ms,
        auto_commit=cmd.auto_commit,
        auto_offset_reset=cmd.auto_offset_reset,
        member_generation=0,
        target=(),
        owned=(),
    )
    try:
        group = group_rules.join(group, member, state.partition_counts())
    except group_rules.GroupRuleError as e:
        return Rejected(e.code, e.message)
    return _with_group(state, group)


def _check_join(cmd: JoinGroup) -> str | None:
    """Why the join cannot be accepted, or None."""
    problem = group_rules.validate_group_id(cmd.group)
    if problem is not None:
        return problem
    if not cmd.member_id or len(cmd.member_id) > group_rules.MAX_MEMBER_ID_CHARS:
        return f"member_id must be 1-{group_rules.MAX_MEMBER_ID_CHARS} characters"
    if not 1 <= len(cmd.topics) <= group_rules.MAX_TOPICS_PER_MEMBER:
        return f"a member subscribes to 1-{group_rules.MAX_TOPICS_PER_MEMBER} topics"
    for topic in cmd.topics:
        problem = validate_topic_name(topic)
        if problem is not None:
            return problem
    low, high = group_rules.MIN_SESSION_TIMEOUT_MS, group_rules.MAX_SESSION_TIMEOUT_MS
    if not low <= cmd.session_timeout_ms <= high:
        return f"session_timeout_ms must be {low}-{high}, got {cmd.session_timeout_ms}"
    if cmd.auto_offset_reset not in group_rules.AUTO_OFFSET_RESETS:
        return f"auto_offset_reset must be one of {', '.join(group_rules.AUTO_OFFSET_RESETS)}"
    if cmd.assignor not in group_rules.ASSIGNORS:
        return f"assignor must be one of {', '.join(group_rules.ASSIGNORS)}"
    return None


def _leave_group(state: MetadataState, cmd: LeaveGroup) -> Result:
    stale = _not_coordinator(state, cmd.group, cmd.coordinator)
    if stale is not None:
        return stale
    group = state.groups.get(cmd.group)
    if group is None:
        return Applied(state, ())  # a retried leave, or the group is long gone
    left = group_rules.leave(group, cmd.member_ids, state.partition_counts())
    if left is group:
        return Applied(state, ())
    return _with_group(state, left)


def _acknowledge_generation(state: MetadataState, cmd: AcknowledgeGeneration) -> Result:
    stale = _not_coordinator(state, cmd.group, cmd.coordinator)
    if stale is not None:
        return stale
    group = state.groups.get(cmd.group)
    if group is None:
        return Rejected(ErrorCode.UNKNOWN_MEMBER, f"group {cmd.group} has no members")
    try:
        acknowledged = group_rules.acknowledge(group, cmd.member_id, cmd.generation)
    except group_rules.GroupRuleError as e:
        return Rejected(e.code, e.message)
    if acknowledged is group:
        return Applied(state, ())
    return _with_group(state, acknowledged)


def _commit_offsets(state: MetadataState, cmd: CommitOffsets) -> Result:
    """Each commit of the batch stands alone: one member's stale commit refuses that
    commit only. The results say which were stored."""
    groups = dict(state.groups)
    results: list[str] = []
    stale_for: dict[str, Rejected | None] = {}  # the coordinator check, once per group
    for c in cmd.commits:
        group = groups.get(c.group)
        if c.group not in stale_for:
            stale_for[c.group] = _not_coordinator(state, c.group, cmd.coordinator)
        stale = stale_for[c.group]
        if stale is not None:
            results.append(f"{stale.code}: {stale.message}")
            continue
        external = c.member_id == group_rules.EXTERNAL_MEMBER_ID
        if group is None and not external:
            results.append(f"UNKNOWN_MEMBER: group {c.group} has no members")
            continue
        bad = [o for o in c.offsets if o[2] < 0]
        if bad:
            results.append(f"INVALID_REQUEST: offsets must be >= 0, got {bad[0][2]}")
            continue
        try:
            if external:
                groups[c.group] = group_rules.commit_external(group, c.group, c.offsets)
                results.append("")
                continue
            assert group is not None
            groups[c.group] = group_rules.commit(group, c.member_id, c.generation, c.offsets)
        except group_rules.GroupRuleError as e:
            results.append(f"{e.code}: {e.message}")
            continue
        results.append("")
    return Applied(replace(state, groups=groups), (OffsetsCommitted(tuple(results)),))


_HANDLERS: dict[type, Callable[[MetadataState, Any], Result]] = {
    RegisterBroker: _register_broker,
    BrokerHeartbeat: _broker_heartbeat,
    FenceBroker: _fence_broker,
    ContinueFence: _continue_fence,
    UnfenceBroker: _unfence_broker,
    CreateTopic: _create_topic,
    DeleteTopic: _delete_topic,
    ElectLeader: _elect_leader,
    AlterPartition: _alter_partition,
    AllocateProducerIds: _allocate_producer_ids,
    JoinGroup: _join_group,
    LeaveGroup: _leave_group,
    AcknowledgeGeneration: _acknowledge_generation,
    CommitOffsets: _commit_offsets,
}
