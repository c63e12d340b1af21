"""CreateTopics (v2-v4), DeleteTopics (v1-v3) and InitProducerId (v0-v1): the same calls as
the HTTP topic routes and `POST /v1/producers`. Any broker answers them (Kafka sends
them to the controller; raftka's metadata log makes every broker a way in)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kafka.protocol.admin import CreateTopicsResponse, DeleteTopicsResponse
from kafka.protocol.producer import InitProducerIdResponse

from raftka.api.acl import Operation
from raftka.api.broker.topic_admin import create_topic_command
from raftka.api.kafka import errors
from raftka.api.kafka.access import Access
from raftka.metadata.errors import RaftkaError, UnknownTopic

if TYPE_CHECKING:
    from raftka.api.broker.broker import Broker

BROKER_DEFAULT = -1  # num_partitions / replication_factor: the broker's default
DEFAULT_PARTITIONS = 1
DEFAULT_REPLICATION_FACTOR = 1
# Kafka's topic config names -> the HTTP API's.
CONFIG_NAMES = {
    "min.insync.replicas": "min_insync_replicas",
    "retention.ms": "retention_ms",
    "retention.bytes": "retention_bytes",
    "segment.bytes": "segment_bytes",
}
INT_CONFIGS = frozenset(CONFIG_NAMES.values())

Created_ = CreateTopicsResponse.CreatableTopicResult
Deleted_ = DeleteTopicsResponse.DeletableTopicResult


def _topic_doc(topic: Any) -> dict[str, Any]:
    if topic.assignments:
        raise errors.KafkaRefusal(errors.INVALID_REQUEST, "manual replica assignments")
    config: dict[str, Any] = {}
    for c in topic.configs:
        name = CONFIG_NAMES.get(c.name)
        if name is None:
            raise errors.KafkaRefusal(errors.INVALID_CONFIG, f"config {c.name!r} is not supported")
        try:
            config[name] = None if c.value is None else int(c.value)
        except ValueError:
            raise errors.KafkaRefusal(
                errors.INVALID_CONFIG, f"{c.name} must be an integer"
            ) from None
    partitions = topic.num_partitions
    rf = topic.replication_factor
    return {
        "name": topic.name,
        "partitions": DEFAULT_PARTITIONS if partitions == BROKER_DEFAULT else partitions,
        "replication_factor": DEFAULT_REPLICATION_FACTOR if rf == BROKER_DEFAULT else rf,
        "config": config,
    }


async def _create(broker: Broker, topic: Any, validate_only: bool, access: Access) -> Any:
    code, message = errors.NONE, None
    try:
        if not access.may(Operation.ADMIN, topic.name):
            raise errors.KafkaRefusal(
                errors.TOPIC_AUTHORIZATION_FAILED, f"no admin ACL on topic {topic.name!r}"
            )
        command = create_topic_command(broker, _topic_doc(topic))
        if not validate_only:
            await broker.topics.create(command)
    except errors.KafkaRefusal as exc:
        code, message = exc.error_code, str(exc)
    except RaftkaError as exc:
        code, message = errors.error_code(exc), exc.message
    return Created_(name=topic.name, error_code=code, error_message=message)


async def handle_create_topics(broker: Broker, request: Any, version: int, access: Access) -> Any:
    return CreateTopicsResponse(
        throttle_time_ms=0,
        topics=[await _create(broker, t, request.validate_only, access) for t in request.topics],
    )


async def _delete(broker: Broker, name: str, access: Access) -> Any:
    code = errors.NONE
    try:
        if not access.may(Operation.ADMIN, name):
            return Deleted_(name=name, error_code=errors.TOPIC_AUTHORIZATION_FAILED)
        if name not in broker.state.topics:
            raise UnknownTopic(f"topic {name!r} does not exist")
        await broker.topics.delete(name)
    except RaftkaError as exc:
        code = errors.error_code(exc)
    return Deleted_(name=name, error_code=code)


async def handle_delete_topics(broker: Broker, request: Any, version: int, access: Access) -> Any:
    return DeleteTopicsResponse(
        throttle_time_ms=0,
        responses=[await _delete(broker, n, access) for n in request.topic_names],
    )


async def handle_init_producer_id(
    broker: Broker, request: Any, version: int, access: Access
) -> Any:
    """An idempotent producer's id (epoch 0), for a user who may produce somewhere (as
    Kafka 3 asks WRITE on any topic). Transactional ids are refused."""
    refusal = errors.NONE
    if request.transactional_id is not None:
        refusal = errors.INVALID_REQUEST
    elif not access.may_produce:
        refusal = errors.CLUSTER_AUTHORIZATION_FAILED
    if refusal != errors.NONE:
        return InitProducerIdResponse(
            throttle_time_ms=0, error_code=refusal, producer_id=-1, producer_epoch=-1
        )
    try:
        producer_id = await broker.producer_ids.allocate()
    except RaftkaError as exc:
        return InitProducerIdResponse(
            throttle_time_ms=0,
            error_code=errors.error_code(exc),
            producer_id=-1,
            producer_epoch=-1,
        )
    return InitProducerIdResponse(
        throttle_time_ms=0, error_code=errors.NONE, producer_id=producer_id, producer_epoch=0
    )
