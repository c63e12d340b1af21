"""The contract's errors as Kafka error codes (Kafka's `Errors` enum), so Kafka clients'
own retry and metadata-refresh logic handles them. Pure."""

from __future__ import annotations

import logging

from raftka.metadata.errors import RaftkaError

log = logging.getLogger(__name__)

NONE = 0
UNKNOWN_SERVER_ERROR = -1
OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
LEADER_NOT_AVAILABLE = 5
NOT_LEADER_OR_FOLLOWER = 6
REQUEST_TIMED_OUT = 7
COORDINATOR_NOT_AVAILABLE = 15
NOT_COORDINATOR = 16
INVALID_TOPIC_EXCEPTION = 17
NOT_ENOUGH_REPLICAS = 19
INVALID_REQUIRED_ACKS = 21
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_GROUP_ID = 24
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
TOPIC_AUTHORIZATION_FAILED = 29
CLUSTER_AUTHORIZATION_FAILED = 31
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_CONFIG = 40
NOT_CONTROLLER = 41
INVALID_REQUEST = 42
UNSUPPORTED_VERSION = 35
OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
UNSUPPORTED_FOR_MESSAGE_FORMAT = 43
KAFKA_STORAGE_ERROR = 56
INVALID_RECORD = 87
REBALANCE_IN_PROGRESS = 27

_BY_CONTRACT_CODE = {
    "INVALID_REQUEST": INVALID_REQUEST,
    "INVALID_REPLICATION_FACTOR": INVALID_REPLICATION_FACTOR,
    "NOT_AUTHORIZED": TOPIC_AUTHORIZATION_FAILED,
    "UNKNOWN_TOPIC": UNKNOWN_TOPIC_OR_PARTITION,
    "UNKNOWN_PARTITION": UNKNOWN_TOPIC_OR_PARTITION,
    "UNKNOWN_MEMBER": UNKNOWN_MEMBER_ID,
    "TOPIC_EXISTS": TOPIC_ALREADY_EXISTS,
    "STALE_GENERATION": ILLEGAL_GENERATION,
    "OUT_OF_ORDER_SEQUENCE": OUT_OF_ORDER_SEQUENCE_NUMBER,
    "INVALID_PRODUCER_EPOCH": INVALID_PRODUCER_EPOCH,
    "OFFSET_OUT_OF_RANGE": OFFSET_OUT_OF_RANGE,
    "NOT_ENOUGH_REPLICAS": NOT_ENOUGH_REPLICAS,
    # The client refreshes its metadata and finds the new leader.
    "LEADER_NOT_AVAILABLE": NOT_LEADER_OR_FOLLOWER,
    "NO_CONTROLLER": NOT_CONTROLLER,
    "COORDINATOR_NOT_AVAILABLE": COORDINATOR_NOT_AVAILABLE,
    "NOT_COORDINATOR": NOT_COORDINATOR,
    "REQUEST_TIMED_OUT": REQUEST_TIMED_OUT,
    "INSUFFICIENT_STORAGE": KAFKA_STORAGE_ERROR,
}


def error_code(exc: BaseException) -> int:
    """Kafka's code for an error raised by the broker's calls (unknown ones are logged:
    they are bugs or failures the contract does not name)."""
    if isinstance(exc, RaftkaError):
        code = _BY_CONTRACT_CODE.get(exc.code)
        if code is not None:
            return code
    log.warning("Kafka request failed: %r", exc)
    return UNKNOWN_SERVER_ERROR


class KafkaRefusal(Exception):
    """A refusal the Kafka face decides itself, with Kafka's code for it."""

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
