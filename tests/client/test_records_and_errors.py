"""The client's pure parts: key bytes and partitions as the broker computes them, the
record wire form both ways, and error answers mapped to the contract's classes."""

from typing import Any

import pytest

from raftka.api.http.records import parse_record
from raftka.api.partitioner import partition_for_key
from raftka.client import (
    ClientError,
    InsufficientStorage,
    LeaderNotAvailable,
    OffsetOutOfRange,
    RaftkaError,
    RequestTimedOut,
    StaleGeneration,
    UnknownTopic,
)
from raftka.client.errors import error_from_answer
from raftka.client.records import decode_record, encode_record, key_bytes, partition_for

KEYS: list[Any] = [
    "alice",
    "",
    "ünïcødé",
    7,
    -1,
    3.5,
    True,
    {"b": 1, "a": [1, 2]},
    [1, "x"],
    b"\x00\xff",
]


@pytest.mark.parametrize("key", KEYS)
def test_key_bytes_are_the_brokers(key: Any) -> None:
    _, broker_key, _, _ = parse_record(encode_record("v", key), 0)
    assert key_bytes(key) == broker_key
    for partitions in (1, 3, 12):
        assert partition_for(key, partitions) == partition_for_key(broker_key, partitions)


def test_a_record_without_key_has_no_partition_of_its_own() -> None:
    assert key_bytes(None) is None
    assert partition_for(None, 5) is None


def test_bytes_travel_as_b64_and_come_back_as_bytes() -> None:
    wire = encode_record(b"\x00\x01", b"k", {"h": "v"}, timestamp=5)
    assert wire == {"key_b64": "aw==", "value_b64": "AAE=", "headers": {"h": "v"}, "timestamp": 5}
    fetched = {"offset": 3, "timestamp": 5, "key_b64": "aw==", "value_b64": "AAE=", "headers": {}}
    record = decode_record("t", 2, fetched)
    assert (record.topic, record.partition, record.offset) == ("t", 2, 3)
    assert (record.key, record.value) == (b"k", b"\x00\x01")


def test_headers_must_map_strings_to_strings() -> None:
    with pytest.raises(TypeError):
        encode_record(1, headers={"n": 1})  # type: ignore[dict-item]


def _answer(code: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": "m", **extra}}


@pytest.mark.parametrize(
    ("status", "code", "cls", "retriable"),
    [
        (404, "UNKNOWN_TOPIC", UnknownTopic, False),
        (409, "STALE_GENERATION", StaleGeneration, False),
        (503, "LEADER_NOT_AVAILABLE", LeaderNotAvailable, True),
        (504, "REQUEST_TIMED_OUT", RequestTimedOut, True),
        (507, "INSUFFICIENT_STORAGE", InsufficientStorage, True),
    ],
)
def test_an_error_answer_raises_the_class_named_after_its_code(
    status: int, code: str, cls: type[RaftkaError], retriable: bool
) -> None:
    error = error_from_answer(status, _answer(code), "url")
    assert type(error) is cls
    assert (error.code, error.status, error.retriable) == (code, status, retriable)


def test_offset_out_of_range_keeps_the_range() -> None:
    error = error_from_answer(
        416, _answer("OFFSET_OUT_OF_RANGE", log_start_offset=3, high_watermark=9), "url"
    )
    assert isinstance(error, OffsetOutOfRange)
    assert error.details == {"log_start_offset": 3, "high_watermark": 9}


def test_an_unknown_code_is_kept_and_judged_by_its_status() -> None:
    error = error_from_answer(503, _answer("SOMETHING_NEW"), "url")
    assert (error.code, error.status, error.retriable) == ("SOMETHING_NEW", 503, True)
    assert not error_from_answer(418, _answer("TEAPOT"), "url").retriable


def test_an_answer_that_is_not_the_contract_is_a_client_error() -> None:
    assert isinstance(error_from_answer(500, {"oops": 1}, "url"), ClientError)
