"""The contract's errors: one class per error code of API.md, each carrying its HTTP status.

Every layer above storage raises these; the HTTP middleware renders them as
`{"error": {"code", "message"}}`. It lives in metadata/ because that is the innermost
layer the others may import; it holds no logic.
"""

from __future__ import annotations

from typing import Any, ClassVar


class RaftkaError(Exception):
    """Base of every error a client can see."""

    code: ClassVar[str] = "INTERNAL_ERROR"
    status: ClassVar[int] = 500
    retriable: ClassVar[bool] = False

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class InvalidRequest(RaftkaError):
    code, status = "INVALID_REQUEST", 400


class InvalidReplicationFactor(RaftkaError):
    code, status = "INVALID_REPLICATION_FACTOR", 400


class Unauthenticated(RaftkaError):
    code, status = "UNAUTHENTICATED", 401


class NotAuthorized(RaftkaError):
    code, status = "NOT_AUTHORIZED", 403


class UnknownTopic(RaftkaError):
    code, status = "UNKNOWN_TOPIC", 404


class UnknownPartition(RaftkaError):
    code, status = "UNKNOWN_PARTITION", 404


class UnknownMember(RaftkaError):
    code, status = "UNKNOWN_MEMBER", 404


class NotFound(RaftkaError):
    code, status = "NOT_FOUND", 404


class MethodNotAllowed(RaftkaError):
    code, status = "METHOD_NOT_ALLOWED", 405


class TopicExists(RaftkaError):
    code, status = "TOPIC_EXISTS", 409


class StaleGeneration(RaftkaError):
    code, status = "STALE_GENERATION", 409


class OutOfOrderSequence(RaftkaError):
    code, status = "OUT_OF_ORDER_SEQUENCE", 409


class InvalidProducerEpoch(RaftkaError):
    """An idempotent producer's epoch is older than one that has written since: fenced."""

    code, status = "INVALID_PRODUCER_EPOCH", 409


class RequestTooLarge(RaftkaError):
    code, status = "REQUEST_TOO_LARGE", 413


class OffsetOutOfRange(RaftkaError):
    code, status = "OFFSET_OUT_OF_RANGE", 416

    def __init__(self, message: str, *, log_start_offset: int, high_watermark: int) -> None:
        super().__init__(message, log_start_offset=log_start_offset, high_watermark=high_watermark)


class RetriableError(RaftkaError):
    """A 503: the client should retry after `Retry-After` seconds."""

    status = 503
    retriable = True
    retry_after_s: ClassVar[int] = 1


class NotEnoughReplicas(RetriableError):
    code = "NOT_ENOUGH_REPLICAS"


class LeaderNotAvailable(RetriableError):
    code = "LEADER_NOT_AVAILABLE"


class NoController(RetriableError):
    code = "NO_CONTROLLER"


class CoordinatorNotAvailable(RetriableError):
    # Kafka's COORDINATOR_NOT_AVAILABLE: no broker can coordinate the group right now,
    # or it is moving to another broker.
    code = "COORDINATOR_NOT_AVAILABLE"


class TooManyRequests(RetriableError):
    """A 429: this client holds too many long-polls, or the broker too many request bytes,
    right now; retriable after `Retry-After` seconds."""

    code, status = "TOO_MANY_REQUESTS", 429


class RequestTimedOut(RaftkaError):
    code, status = "REQUEST_TIMED_OUT", 504
    retriable = True


class InsufficientStorage(RetriableError):
    """A 507: the broker's disk is full; retriable after `Retry-After` seconds (space
    comes back when retention or a topic deletion frees it, or an operator adds it)."""

    code, status = "INSUFFICIENT_STORAGE", 507


ERRORS_BY_CODE: dict[str, type[RaftkaError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        InvalidReplicationFactor,
        Unauthenticated,
        NotAuthorized,
        UnknownTopic,
        UnknownPartition,
        UnknownMember,
        NotFound,
        MethodNotAllowed,
        TopicExists,
        StaleGeneration,
        OutOfOrderSequence,
        InvalidProducerEpoch,
        RequestTooLarge,
        NotEnoughReplicas,
        LeaderNotAvailable,
        NoController,
        CoordinatorNotAvailable,
        RequestTimedOut,
        InsufficientStorage,
        TooManyRequests,
    )
}


def error_for_code(code: str, message: str) -> RaftkaError:
    """The contract error for a code (a metadata rejection, a peer's answer); unknown codes stay generic."""
    cls = ERRORS_BY_CODE.get(code)
    if cls is None:
        err = RaftkaError(message)
        err.code = code  # type: ignore[misc]
        return err
    return cls(message)
