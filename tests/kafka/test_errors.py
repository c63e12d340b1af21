"""The contract's errors as Kafka's codes (api/kafka/errors.py): the ones Kafka clients
retry on must map to codes their retry and metadata refresh logic knows."""

from __future__ import annotations

import pytest

from raftka.api.kafka import errors
from raftka.metadata.errors import (
    CoordinatorNotAvailable,
    InsufficientStorage,
    LeaderNotAvailable,
    NotEnoughReplicas,
    OffsetOutOfRange,
    RequestTimedOut,
    TopicExists,
    UnknownPartition,
    UnknownTopic,
)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (LeaderNotAvailable("moved"), errors.NOT_LEADER_OR_FOLLOWER),
        (NotEnoughReplicas("isr"), errors.NOT_ENOUGH_REPLICAS),
        (RequestTimedOut("slow"), errors.REQUEST_TIMED_OUT),
        (UnknownTopic("t"), errors.UNKNOWN_TOPIC_OR_PARTITION),
        (UnknownPartition("p"), errors.UNKNOWN_TOPIC_OR_PARTITION),
        (OffsetOutOfRange("o", log_start_offset=0, high_watermark=1), errors.OFFSET_OUT_OF_RANGE),
        (InsufficientStorage("full"), errors.KAFKA_STORAGE_ERROR),
        (CoordinatorNotAvailable("c"), errors.COORDINATOR_NOT_AVAILABLE),
        (TopicExists("t"), errors.TOPIC_ALREADY_EXISTS),
        (RuntimeError("a bug"), errors.UNKNOWN_SERVER_ERROR),
    ],
)
def test_each_error_has_kafkas_code(error: Exception, code: int) -> None:
    assert errors.error_code(error) == code
