"""Kafka's request framing: which APIs and versions this broker speaks, the request
header, and the response frame. Pure: bytes in, bytes out; no sockets.

Message bodies are kafka-python 3's classes, generated from Kafka's own JSON schemas
(every version, flexible versions included), so no field layout is written by hand.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from kafka.protocol.admin import (
    CreateTopicsRequest,
    CreateTopicsResponse,
    DeleteTopicsRequest,
    DeleteTopicsResponse,
)
from kafka.protocol.consumer import (
    FetchRequest,
    FetchResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupRequest,
    LeaveGroupResponse,
    ListOffsetsRequest,
    ListOffsetsResponse,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    SyncGroupRequest,
    SyncGroupResponse,
)
from kafka.protocol.metadata import (
    ApiVersionsRequest,
    ApiVersionsResponse,
    FindCoordinatorRequest,
    FindCoordinatorResponse,
    MetadataRequest,
    MetadataResponse,
)
from kafka.protocol.producer import (
    InitProducerIdRequest,
    InitProducerIdResponse,
    ProduceRequest,
    ProduceResponse,
)
from kafka.protocol.sasl import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)

from raftka.api.kafka import errors

API_VERSIONS_KEY = 18
SASL_HANDSHAKE_KEY = 17
SASL_AUTHENTICATE_KEY = 36
PRODUCE_KEY = 0
UNSUPPORTED_VERSION = errors.UNSUPPORTED_VERSION

_HEADER_FIXED = struct.Struct(">hhih")  # api_key, api_version, correlation_id, client_id length


@dataclass(frozen=True, slots=True)
class Api:
    """One API this broker answers: the versions it advertises and the ones it accepts
    (Produce advertises v0-2 it refuses, as Kafka 4.0 does for librdkafka's sake)."""

    key: int
    request: Any
    response: Any
    min_version: int
    max_version: int
    min_accepted: int

    @property
    def name(self) -> str:
        """Kafka's name for the API ("Produce", "Metadata", ...)."""
        return str(self.request.name).removesuffix("Request")

    def accepts(self, version: int) -> bool:
        return self.min_accepted <= version <= self.max_version


def _api(key: int, req: Any, resp: Any, lo: int, hi: int, accepted: int | None = None) -> Api:
    return Api(key, req, resp, lo, hi, lo if accepted is None else accepted)


APIS: dict[int, Api] = {
    a.key: a
    for a in (
        _api(PRODUCE_KEY, ProduceRequest, ProduceResponse, 0, 8, accepted=3),
        _api(1, FetchRequest, FetchResponse, 4, 11),
        _api(2, ListOffsetsRequest, ListOffsetsResponse, 1, 5),
        _api(3, MetadataRequest, MetadataResponse, 0, 8),
        _api(8, OffsetCommitRequest, OffsetCommitResponse, 2, 7),
        _api(9, OffsetFetchRequest, OffsetFetchResponse, 1, 5),
        _api(10, FindCoordinatorRequest, FindCoordinatorResponse, 0, 2),
        _api(11, JoinGroupRequest, JoinGroupResponse, 0, 5),
        _api(12, HeartbeatRequest, HeartbeatResponse, 0, 3),
        _api(13, LeaveGroupRequest, LeaveGroupResponse, 0, 1),
        _api(14, SyncGroupRequest, SyncGroupResponse, 0, 3),
        _api(SASL_HANDSHAKE_KEY, SaslHandshakeRequest, SaslHandshakeResponse, 0, 1),
        _api(API_VERSIONS_KEY, ApiVersionsRequest, ApiVersionsResponse, 0, 3),
        _api(19, CreateTopicsRequest, CreateTopicsResponse, 2, 4),
        _api(20, DeleteTopicsRequest, DeleteTopicsResponse, 1, 3),
        _api(22, InitProducerIdRequest, InitProducerIdResponse, 0, 1),
        _api(SASL_AUTHENTICATE_KEY, SaslAuthenticateRequest, SaslAuthenticateResponse, 0, 2),
    )
}


class MalformedRequest(ValueError):
    """A frame that cannot be read as a Kafka request: the connection is closed."""


@dataclass(frozen=True, slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body_start: int  # where the request body starts in the frame


def _skip_tagged_fields(frame: bytes, pos: int) -> int:
    count, pos = _read_uvarint(frame, pos)
    for _ in range(count):
        _, pos = _read_uvarint(frame, pos)  # tag
        size, pos = _read_uvarint(frame, pos)
        pos += size
    if pos > len(frame):
        raise MalformedRequest("tagged fields run past the frame")
    return pos


def _read_uvarint(frame: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(frame) or shift > 28:
            raise MalformedRequest("bad unsigned varint in the request header")
        byte = frame[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def is_flexible(api: Api, version: int) -> bool:
    return bool(api.request.flexible_version_q(version))


def parse_header(frame: bytes) -> RequestHeader:
    """Request header v0-v2: v2 (flexible versions) adds tagged fields after client_id,
    which stays a classic nullable string in every version."""
    if len(frame) < _HEADER_FIXED.size:
        raise MalformedRequest(f"{len(frame)} bytes: shorter than a request header")
    api_key, version, correlation_id, id_length = _HEADER_FIXED.unpack_from(frame)
    pos = _HEADER_FIXED.size
    client_id = None
    if id_length >= 0:
        if pos + id_length > len(frame):
            raise MalformedRequest("client_id runs past the frame")
        client_id = frame[pos : pos + id_length].decode("utf-8", "replace")
        pos += id_length
    api = APIS.get(api_key)
    if api is not None and api.accepts(version) and is_flexible(api, version):
        pos = _skip_tagged_fields(frame, pos)
    return RequestHeader(api_key, version, correlation_id, client_id, pos)


def decode_body(api: Api, header: RequestHeader, frame: bytes) -> Any:
    try:
        return api.request.decode(
            memoryview(frame)[header.body_start :], version=header.api_version
        )
    except Exception as exc:  # kafka-python's decoders raise whatever a short read gives
        raise MalformedRequest(
            f"cannot decode {api.request.__name__} v{header.api_version}: {exc}"
        ) from None


def encode_response(api: Api, header: RequestHeader, response: Any) -> bytes:
    """The whole response frame: size, response header (v1 with tagged fields for
    flexible versions, except ApiVersions which always answers with header v0), body."""
    body = response.encode(version=header.api_version)
    flexible = api.key != API_VERSIONS_KEY and is_flexible(api, header.api_version)
    head = struct.pack(">i", header.correlation_id) + (b"\x00" if flexible else b"")
    return struct.pack(">i", len(head) + len(body)) + head + bytes(body)


def api_versions_response(error_code: int = 0) -> Any:
    return ApiVersionsResponse(
        error_code=error_code,
        api_keys=[
            ApiVersionsResponse.ApiVersion(
                api_key=a.key, min_version=a.min_version, max_version=a.max_version
            )
            for a in APIS.values()
        ],
        throttle_time_ms=0,
    )


def unsupported_api_versions(header: RequestHeader) -> bytes:
    """ApiVersions at a version this broker does not know: Kafka answers error 35 in the
    v0 shape, with its versions, so the client retries with one it has in common."""
    body = api_versions_response(UNSUPPORTED_VERSION).encode(version=0)
    head = struct.pack(">i", header.correlation_id)
    return struct.pack(">i", len(head) + len(body)) + head + bytes(body)
