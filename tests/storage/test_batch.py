"""The batch codec: round trip, CRC coverage, slicing by the position table."""

from __future__ import annotations

import msgspec
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftka.storage.batch import (
    HEADER_BYTES,
    JsonRecords,
    build_fragments,
    decode_header,
    encode_batch,
    payload_of,
    record_ends,
    record_fragments,
    records_fitting,
    slice_bounds,
    verify_batch,
)
from raftka.storage.errors import CorruptBatchError

bodies = st.lists(
    st.builds(
        lambda k, v: b'"key":%s,"value":%s,"headers":{}' % (orjson.dumps(k), orjson.dumps(v)),
        st.text(max_size=8),
        st.integers(-(2**53), 2**53) | st.text(max_size=20),
    ),
    min_size=1,
    max_size=20,
)
timestamps = st.integers(0, 2**48)


def make(base: int, ts: list[int], bodies_: list[bytes], **producer: int) -> bytes:
    frags = build_fragments(base, list(zip(ts, bodies_, strict=True)))
    return encode_batch(base, frags, first_timestamp=ts[0], max_timestamp=max(ts), **producer)


@given(
    base=st.integers(0, 2**62),
    data=st.data(),
    bodies_=bodies,
    epoch=st.integers(0, 2**31 - 1),
    pid=st.integers(-1, 2**62),
)
def test_encode_decode_round_trip(
    base: int, data: st.DataObject, bodies_: list[bytes], epoch: int, pid: int
) -> None:
    ts = data.draw(st.lists(timestamps, min_size=len(bodies_), max_size=len(bodies_)))
    batch = make(base, ts, bodies_, leader_epoch=epoch, producer_id=pid, base_sequence=7)
    h = verify_batch(batch)
    assert (h.base_offset, h.record_count, h.last_offset) == (base, len(ts), base + len(ts) - 1)
    assert (h.first_timestamp, h.max_timestamp) == (ts[0], max(ts))
    assert (h.leader_epoch, h.producer_id, h.base_sequence, h.attributes) == (epoch, pid, 7, 0)
    assert h.size_bytes == len(batch)
    records = [orjson.loads(f) for f in record_fragments(batch)]
    assert [r["offset"] for r in records] == list(range(base, base + len(ts)))
    assert [r["timestamp"] for r in records] == ts
    assert [orjson.loads(b"{" + b + b"}")["value"] for b in bodies_] == [
        r["value"] for r in records
    ]
    # the whole payload is already a JSON array body
    assert orjson.loads(b"[" + bytes(payload_of(batch, h)) + b"]") == records


@given(bodies_=bodies, data=st.data())
def test_crc_catches_any_single_byte_flip(bodies_: list[bytes], data: st.DataObject) -> None:
    batch = bytearray(make(3, [5] * len(bodies_), bodies_))
    where = data.draw(st.integers(0, len(batch) - 1))
    batch[where] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CorruptBatchError):
        verify_batch(bytes(batch))


@given(bodies_=bodies, data=st.data())
def test_slices_are_the_records_between(bodies_: list[bytes], data: st.DataObject) -> None:
    batch = make(0, [1] * len(bodies_), bodies_)
    h = decode_header(batch)
    ends = record_ends(batch, h)
    i = data.draw(st.integers(0, len(bodies_) - 1))
    j = data.draw(st.integers(i + 1, len(bodies_)))
    lo, hi = slice_bounds(ends, i, j)
    got = orjson.loads(b"[" + bytes(payload_of(batch, h)[lo:hi]) + b"]")
    assert [r["offset"] for r in got] == list(range(i, j))
    budget = data.draw(st.integers(0, 2 * len(batch)))
    k = records_fitting(ends, i, budget)
    assert k == i or slice_bounds(ends, i, k)[1] - slice_bounds(ends, i, k)[0] <= budget
    assert (
        k == len(ends) or slice_bounds(ends, i, k + 1)[1] - slice_bounds(ends, i, k + 1)[0] > budget
    )


def test_decode_rejects_short_buffer_bad_magic_and_truncated_batch() -> None:
    batch = make(0, [1, 2], [b'"v":1', b'"v":2'])
    with pytest.raises(CorruptBatchError, match="shorter"):
        decode_header(batch[: HEADER_BYTES - 1])
    with pytest.raises(CorruptBatchError, match="magic"):
        decode_header(batch[:4] + b"\x09" + batch[5:])
    with pytest.raises(CorruptBatchError, match="past the data"):
        decode_header(batch[:-1])
    with pytest.raises(CorruptBatchError, match="batch_length says"):
        verify_batch(batch + b"\x00")
    assert decode_header(batch[:HEADER_BYTES], verify_crc=False).record_count == 2


def test_empty_batch_is_refused() -> None:
    with pytest.raises(ValueError):
        encode_batch(0, [], first_timestamp=0, max_timestamp=0)


# What JsonRecords columns hold: JSON texts, or strings that need no escape.
json_texts: st.SearchStrategy[msgspec.Raw | str] = st.builds(
    lambda v: msgspec.Raw(orjson.dumps(v)),
    st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8) | st.lists(st.booleans()),
)
plain_strings: st.SearchStrategy[msgspec.Raw | str] = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7F, exclude_characters='"\\'), max_size=12
)


def json_text(item: msgspec.Raw | str) -> bytes:
    return b'"%s"' % item.encode() if isinstance(item, str) else bytes(item)


@given(
    base=st.integers(min_value=0, max_value=2**40) | st.sampled_from([0, 7, 95, 999_990]),
    timestamp=st.integers(min_value=0, max_value=2**62 - 1),
    data=st.data(),
    count=st.integers(1, 20),
    keyless=st.booleans(),
)
def test_json_records_encode_as_the_batch_of_their_fragments(
    base: int, timestamp: int, data: st.DataObject, count: int, keyless: bool
) -> None:
    """Also across a power of ten (999_990 + 20 records), where the offsets gain a digit."""
    column = st.lists(json_texts, min_size=count, max_size=count) | st.lists(
        plain_strings, min_size=count, max_size=count
    )
    values = data.draw(column)
    keys = None if keyless else data.draw(column)
    records = JsonRecords(timestamp, values, keys)
    key_texts = [b"null"] * count if keys is None else list(map(json_text, keys))
    bodies = [
        b'"key":%b,"value":%b,"headers":{}' % (k, json_text(v))
        for k, v in zip(key_texts, values, strict=True)
    ]
    fragments = build_fragments(base, [(timestamp, b) for b in bodies])
    assert len(records) == count
    assert records.bodies_bytes() == sum(map(len, key_texts)) + sum(
        map(len, map(json_text, values))
    )
    as_json_records = encode_batch(
        base, records, first_timestamp=timestamp, max_timestamp=timestamp, leader_epoch=3
    )
    assert as_json_records == encode_batch(
        base, fragments, first_timestamp=timestamp, max_timestamp=timestamp, leader_epoch=3
    )


def test_a_string_that_needs_an_escape_is_refused_not_stored() -> None:
    with pytest.raises(ValueError, match="escape"):
        encode_batch(0, JsonRecords(1, ['say "hi"']), first_timestamp=1, max_timestamp=1)
