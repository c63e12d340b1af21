"""Metadata: the brokers' Kafka listeners and every partition's real leader, so a Kafka
client sends each request straight to the broker that can serve it; and, as Kafka does by
default, the creation of a topic a client asks for that does not exist yet."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from kafka.protocol.metadata import MetadataResponse

from raftka.api.acl import Operation
from raftka.api.broker.topic_admin import create_topic_command
from raftka.api.kafka import errors
from raftka.api.kafka.access import Access
from raftka.metadata.errors import RaftkaError

if TYPE_CHECKING:
    from raftka.api.broker.broker import Broker

log = logging.getLogger(__name__)

NO_LEADER = -1
# Kafka's leader epoch is optional (-1): librdkafka then skips OffsetForLeaderEpoch.
NO_LEADER_EPOCH = -1

Broker_ = MetadataResponse.MetadataResponseBroker
Topic_ = MetadataResponse.MetadataResponseTopic
Partition_ = Topic_.MetadataResponsePartition


def kafka_listeners(broker: Broker) -> dict[int, tuple[str, int]]:
    """(host, port) of each registered, unfenced broker with a Kafka listener."""
    live = {b.broker_id for b in broker.state.brokers.values() if not b.fenced}
    out = {}
    for b in broker.config.brokers:
        if b.kafka is not None and b.broker_id in live:
            host, port = b.kafka.rsplit(":", 1)
            out[b.broker_id] = (host, int(port))
    return out


async def _auto_create(broker: Broker, names: list[str]) -> None:
    """Creates the named topics that do not exist (Kafka's auto.create.topics.enable):
    1 partition, replication factor 1, as Kafka's num.partitions and
    default.replication.factor. A name the HTTP API would refuse is left unknown."""
    for name in names:
        if name in broker.state.topics:
            continue
        try:
            await broker.topics.create(create_topic_command(broker, {"name": name}))
        except RaftkaError as exc:  # a bad name, a race with another creation, ...
            log.info("Metadata did not create topic %r: %s", name, exc.message)


async def handle_metadata(broker: Broker, request: Any, version: int, access: Access) -> Any:
    if request.topics is None or (version == 0 and not request.topics):
        # v0 asks for every topic with an empty list; a user sees the ones it may touch.
        names = sorted(n for n in broker.state.topics if access.may_see(n))
    else:
        names = [t.name for t in request.topics]
        # v0-3 have no flag: those clients expect Kafka's default, creation.
        wanted = version < 4 or request.allow_auto_topic_creation
        if wanted and broker.settings.auto_create_topics_enable:
            await _auto_create(broker, [n for n in names if access.may(Operation.ADMIN, n)])
    state = broker.state
    listeners = kafka_listeners(broker)
    topics = []
    for name in names:
        record = state.topics.get(name)
        if not access.may_see(name):  # whether it exists or not, as Kafka answers
            topics.append(
                Topic_(
                    error_code=errors.TOPIC_AUTHORIZATION_FAILED,
                    name=name,
                    is_internal=False,
                    partitions=[],
                )
            )
            continue
        if record is None:
            topics.append(
                Topic_(
                    error_code=errors.UNKNOWN_TOPIC_OR_PARTITION,
                    name=name,
                    is_internal=False,
                    partitions=[],
                )
            )
            continue
        partitions = []
        for p in record.partitions:
            leader = p.leader if p.leader in listeners else NO_LEADER
            partitions.append(
                Partition_(
                    error_code=errors.NONE if leader != NO_LEADER else errors.LEADER_NOT_AVAILABLE,
                    partition_index=p.partition,
                    leader_id=leader,
                    leader_epoch=NO_LEADER_EPOCH,
                    replica_nodes=list(p.replicas),
                    isr_nodes=list(p.isr),
                    offline_replicas=[r for r in p.replicas if r not in listeners],
                )
            )
        topics.append(
            Topic_(error_code=errors.NONE, name=name, is_internal=False, partitions=partitions)
        )
    controller = broker.controller_id
    return MetadataResponse(
        throttle_time_ms=0,
        brokers=[
            Broker_(node_id=i, host=host, port=port, rack=None)
            for i, (host, port) in sorted(listeners.items())
        ],
        cluster_id=broker.config.cluster_id,
        controller_id=controller if controller in listeners else NO_LEADER,
        topics=topics,
    )
