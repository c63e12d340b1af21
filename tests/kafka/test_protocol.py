"""Request framing (api/kafka/protocol.py): headers v1 and v2, response headers, the
advertised versions."""

from __future__ import annotations

import struct

import pytest
from kafka.protocol.metadata import ApiVersionsRequest, MetadataRequest, MetadataResponse

from raftka.api.kafka import protocol


def request_frame(request, version: int) -> bytes:
    request.with_header(correlation_id=42, client_id="cli")
    return bytes(request.encode(version=version, header=True))


def test_a_classic_header_then_the_body():
    frame = request_frame(
        MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name="t")]), 8
    )
    header = protocol.parse_header(frame)
    assert (header.api_key, header.api_version, header.correlation_id, header.client_id) == (
        3,
        8,
        42,
        "cli",
    )
    body = protocol.decode_body(protocol.APIS[3], header, frame)
    assert [t.name for t in body.topics] == ["t"]


def test_a_flexible_header_skips_its_tagged_fields():
    frame = request_frame(
        ApiVersionsRequest(client_software_name="x", client_software_version="1"), 3
    )
    header = protocol.parse_header(frame)
    body = protocol.decode_body(protocol.APIS[18], header, frame)
    assert (header.client_id, body.client_software_name) == ("cli", "x")


def test_flexible_responses_carry_tagged_fields_in_their_header_except_api_versions():
    api = protocol.APIS[18]
    header = protocol.RequestHeader(18, 3, 9, None, 0)
    frame = protocol.encode_response(api, header, protocol.api_versions_response())
    size, correlation_id, error_code = struct.unpack_from(">iih", frame)
    assert (size, correlation_id, error_code) == (len(frame) - 4, 9, 0)
    response = MetadataResponse(brokers=[], cluster_id="c", controller_id=1, topics=[])
    flexible = protocol.encode_response(
        protocol.APIS[3], protocol.RequestHeader(3, 9, 9, None, 0), response
    )
    classic = protocol.encode_response(
        protocol.APIS[3], protocol.RequestHeader(3, 8, 9, None, 0), response
    )
    assert flexible[8] == 0  # the empty tagged-field section after the correlation id
    assert classic[4:8] == struct.pack(">i", 9)


def test_produce_advertises_v0_but_accepts_from_v3():
    produce = protocol.APIS[protocol.PRODUCE_KEY]
    assert (produce.min_version, produce.max_version) == (0, 8)
    assert not produce.accepts(2) and produce.accepts(3) and produce.accepts(8)


def test_unknown_api_versions_version_is_answered_in_the_v0_shape():
    frame = protocol.unsupported_api_versions(protocol.RequestHeader(18, 77, 5, None, 0))
    _, correlation_id, error_code, count = struct.unpack_from(">iihi", frame)
    assert (correlation_id, error_code, count) == (
        5,
        protocol.UNSUPPORTED_VERSION,
        len(protocol.APIS),
    )


@pytest.mark.parametrize(
    "frame", [b"", b"\x00\x03\x00", b"\x00\x03\x00\x08\x00\x00\x00\x01\x00\x09ab"]
)
def test_truncated_headers_are_malformed(frame):
    with pytest.raises(protocol.MalformedRequest):
        protocol.parse_header(frame)
