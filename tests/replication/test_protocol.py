"""The replica fetch's wire form: round trips, and refusal of anything malformed."""

from __future__ import annotations

import struct

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftka.replication.follower import FetchAnswer
from raftka.replication.leader import FetchVerdict
from raftka.replication.protocol import (
    ANSWER_MAGIC,
    FetchRequest,
    PartitionAnswer,
    PartitionFetch,
    decode_answer,
    decode_request,
    encode_answer,
    encode_request,
)

names = st.text(alphabet="abc.-_0", min_size=1, max_size=8)
ints = st.integers(-1, 2**40)


@given(
    st.builds(
        FetchRequest,
        replica_id=st.integers(0, 100),
        max_wait_ms=st.integers(0, 10_000),
        max_bytes=st.integers(0, 2**30),
        partitions=st.lists(
            st.builds(PartitionFetch, names, names, ints, ints, ints, ints), max_size=5
        ).map(tuple),
    )
)
def test_a_request_round_trips(request_: FetchRequest) -> None:
    assert decode_request(encode_request(request_)) == request_


answers = st.builds(
    PartitionAnswer,
    names,
    st.integers(0, 100),
    st.builds(
        FetchAnswer,
        st.sampled_from(FetchVerdict),
        ints,
        ints,
        ints,
        st.none(),
        st.binary(max_size=50),
    ),
)


def _normal(a: PartitionAnswer) -> tuple[object, ...]:
    x = a.answer
    # Only a DIVERGING answer carries an epoch; an absent one travels as (-1, -1).
    diverging = (x.diverging_epoch or (-1, -1)) if x.verdict is FetchVerdict.DIVERGING else None
    return (
        a.topic,
        a.partition,
        x.verdict,
        x.high_watermark,
        x.log_start_offset,
        x.log_end_offset,
        diverging,
        bytes(x.records),
    )


@given(st.lists(answers, max_size=5))
def test_an_answer_round_trips_with_its_records_untouched(items: list[PartitionAnswer]) -> None:
    raw = encode_answer(items)
    assert [_normal(a) for a in decode_answer(raw)] == [_normal(a) for a in items]


def test_a_diverging_answer_carries_its_epoch_and_end() -> None:
    a = FetchAnswer(FetchVerdict.DIVERGING, 5, 0, 9, (3, 7), b"")
    [back] = decode_answer(encode_answer([PartitionAnswer("t", 0, a)]))
    assert back.answer.diverging_epoch == (3, 7)


def _answer_with_header(header: object, tail: bytes = b"") -> bytes:
    head = orjson.dumps(header)
    return ANSWER_MAGIC + struct.pack(">I", len(head)) + head + tail


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"nope",
        ANSWER_MAGIC + b"\x00\x00\xff\xff{}",
        _answer_with_header({}),
        _answer_with_header([["t", 0, "READ", 1, 0, 1, -1, -1]]),
        _answer_with_header([["t", 0, "BOGUS", 1, 0, 1, -1, -1, 0]]),
        _answer_with_header([["t", 0, "READ", 1, 0, 1, -1, -1, 5]], b"abc"),
        _answer_with_header([["t", "0", "READ", 1, 0, 1, -1, -1, 0]]),
        _answer_with_header([], b"trailing"),
    ],
)
def test_a_malformed_answer_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_answer(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"[]",
        b'{"partitions": 3}',
        b'{"replica_id": 1, "max_wait_ms": 0, "max_bytes": 1, "partitions": [[1]]}',
        b'{"replica_id": 1, "max_wait_ms": 0, "max_bytes": 1, '
        b'"partitions": [["t", "id", 0, 1, 2, true]]}',
        b'{"replica_id": "1", "max_wait_ms": 0, "max_bytes": 1, "partitions": []}',
    ],
)
def test_a_malformed_request_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_request(raw)
