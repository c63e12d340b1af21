"""The errors a client call raises: the contract's hierarchy, plus what only a client sees.

Re-exports `raftka.metadata.errors` (one class per contract code, with `.code`, `.status`
and `.retriable`) and adds the client's own failures: an answer that is not the
contract (`ClientError`) and a broker that could not be reached or did not answer in time
(`ConnectionFailed`, retriable, `.status` 0 since no HTTP status came back). Turns an
HTTP error answer into the right class. Never retries anything itself.
"""

from __future__ import annotations

from typing import Any

from raftka.metadata.errors import (
    ERRORS_BY_CODE,
    CoordinatorNotAvailable,
    InsufficientStorage,
    InvalidProducerEpoch,
    InvalidReplicationFactor,
    InvalidRequest,
    LeaderNotAvailable,
    MethodNotAllowed,
    NoController,
    NotAuthorized,
    NotEnoughReplicas,
    NotFound,
    OffsetOutOfRange,
    OutOfOrderSequence,
    RaftkaError,
    RequestTimedOut,
    RequestTooLarge,
    RetriableError,
    StaleGeneration,
    TooManyRequests,
    TopicExists,
    Unauthenticated,
    UnknownMember,
    UnknownPartition,
    UnknownTopic,
)

__all__ = [
    "ClientError",
    "ConnectionFailed",
    "CoordinatorNotAvailable",
    "InsufficientStorage",
    "InvalidProducerEpoch",
    "InvalidReplicationFactor",
    "InvalidRequest",
    "LeaderNotAvailable",
    "MethodNotAllowed",
    "NoController",
    "NotAuthorized",
    "NotEnoughReplicas",
    "NotFound",
    "OffsetOutOfRange",
    "OutOfOrderSequence",
    "RaftkaError",
    "RequestTimedOut",
    "RequestTooLarge",
    "RetriableError",
    "StaleGeneration",
    "TooManyRequests",
    "TopicExists",
    "Unauthenticated",
    "UnknownMember",
    "UnknownPartition",
    "UnknownTopic",
    "error_from_answer",
]


class ClientError(RaftkaError):
    """A broker answered something that is not the contract, or the client was misused
    (a closed producer, a commit without a group)."""

    code = "CLIENT_ERROR"
    status = 0


class ConnectionFailed(ClientError):
    """No answer: the connection was refused or broke, or the answer did not come in time.
    The request may or may not have been carried out, so it is retriable only where a
    retry is safe (idempotent producers, reads, the client's own retries within a deadline)."""

    code = "CONNECTION_FAILED"
    retriable = True


def error_from_answer(status: int, doc: Any, where: str) -> RaftkaError:
    """The contract error of an error answer `{"error": {"code", "message", ...}}`."""
    err = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(err, dict) or not isinstance(err.get("code"), str):
        return ClientError(f"{where} answered {status} without a contract error")
    code: str = err["code"]
    message = str(err.get("message", f"{where} answered {status}"))
    if code == OffsetOutOfRange.code:
        return OffsetOutOfRange(
            message,
            log_start_offset=int(err.get("log_start_offset", 0)),
            high_watermark=int(err.get("high_watermark", 0)),
        )
    cls = ERRORS_BY_CODE.get(code)
    if cls is not None:
        return cls(message)
    # A code this client does not know (a newer broker): keep it, judge by the status.
    base: type[RaftkaError] = RetriableError if status == 503 else RaftkaError
    error = base(message)
    # ClassVars on the class; this one instance carries the unknown code and status.
    setattr(error, "code", code)  # noqa: B010
    setattr(error, "status", status)  # noqa: B010
    return error
