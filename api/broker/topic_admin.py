"""Creating and deleting topics: a metadata command each, answered once it has committed
and been applied here. The rules (names, placement, limits) live in metadata/."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from raftka.metadata.commands import Command, CreateTopic, DeleteTopic
from raftka.metadata.controller import plan_create_topic
from raftka.metadata.errors import InvalidRequest, TopicExists, UnknownTopic, error_for_code
from raftka.metadata.model import InvalidConfig, TopicConfig, TopicRecord, validate_topic_name
from raftka.metadata.records import is_int
from raftka.metadata.state import Applied, Rejected

if TYPE_CHECKING:
    from raftka.api.broker.broker import Broker

# At replication factor 3 a topic this large fits one metadata log entry on up to about
# 2,000 brokers (its CreateTopic compresses to ~0.7 KB on 3 brokers, ~4 KB on 30); a topic
# that does not fit is refused by plan_create_topic with 400 INVALID_REQUEST.
MAX_PARTITIONS = 10_000
CREATE_FIELDS = frozenset({"name", "partitions", "replication_factor", "config"})


class TopicAdmin:
    def __init__(self, submit: Callable[[Command], Awaitable[Applied]]) -> None:
        self._submit = submit

    async def create(self, command: CreateTopic) -> TopicRecord:
        applied = await self._submit(command)
        topic = applied.state.topics.get(command.name)
        if topic is None:  # deleted again before this answer
            raise UnknownTopic(f"topic {command.name!r} was deleted meanwhile")
        return topic

    async def delete(self, name: str) -> None:
        await self._submit(DeleteTopic(command_id=uuid.uuid4().hex, name=name))


def create_topic_command(broker: Broker, doc: dict[str, Any]) -> CreateTopic:
    """The CreateTopic for a JSON-shaped request (the HTTP body, or what the Kafka face
    builds from CreateTopics / auto-creation), checked and placed; raises a RaftkaError."""
    unknown = doc.keys() - CREATE_FIELDS
    if unknown:
        raise InvalidRequest(f"unknown fields: {', '.join(sorted(unknown))}")
    name = doc.get("name")
    if not isinstance(name, str):
        raise InvalidRequest("name must be a string")
    if (problem := validate_topic_name(name)) is not None:
        raise InvalidRequest(problem)
    partitions = doc.get("partitions", 1)
    if not is_int(partitions) or not 1 <= partitions <= MAX_PARTITIONS:
        raise InvalidRequest(f"partitions must be an integer from 1 to {MAX_PARTITIONS}")
    rf = doc.get("replication_factor", 1)
    if not is_int(rf) or rf < 1:
        raise InvalidRequest("replication_factor must be a positive integer")
    raw_config = doc.get("config", {})
    if raw_config is None:
        raw_config = {}
    if not isinstance(raw_config, dict):
        raise InvalidRequest("config must be an object")
    defaults = {
        "segment_bytes": broker.settings.default_segment_bytes,
        "retention_ms": broker.settings.default_retention_ms,
    }
    try:
        config = TopicConfig.from_json({**defaults, **raw_config})
    except InvalidConfig as exc:
        raise InvalidRequest(str(exc)) from None
    if config.min_insync_replicas > rf:
        raise InvalidRequest(
            f"min_insync_replicas ({config.min_insync_replicas}) cannot exceed "
            f"replication_factor ({rf}): no write could ever be acknowledged with acks=all"
        )
    state = broker.state
    if name in state.topics:
        # Answered before placement; the state machine checks it again when applying.
        raise TopicExists(f"topic {name!r} already exists")
    plan = plan_create_topic(
        state,
        name,
        uuid.uuid4().hex,
        partitions,
        rf,
        config,
        command_id=uuid.uuid4().hex,
        max_partitions_per_broker=broker.settings.max_partitions_per_broker,
    )
    if isinstance(plan, Rejected):
        raise error_for_code(plan.code, plan.message)
    return plan
