"""The Kafka edge's codec (api/kafka/records.py): produced RecordBatch v2 -> stored
fragments -> fetched RecordBatch v2 keeps every byte, and the CRC catches a flipped bit."""

from __future__ import annotations

import base64

import orjson
import pytest
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from hypothesis import given
from hypothesis import strategies as st

from raftka.api.kafka.errors import CORRUPT_MESSAGE, UNSUPPORTED_FOR_MESSAGE_FORMAT
from raftka.api.kafka.records import (
    InvalidRecordBatch,
    decode_produced,
    encode_fetched,
    record_body,
)
from raftka.storage.batch import build_fragments, encode_batch, payload_of, split_batches

CODECS = [0, 1, 2, 3, 4]  # none, gzip, snappy, lz4, zstd
NOW_MS = 1_700_000_000_000

json_bytes = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=5,
).map(orjson.dumps)
payloads = st.none() | st.binary(max_size=64) | json_bytes
headers = st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3).map(
    lambda d: [(k, v.encode()) for k, v in d.items()]
)
records = st.lists(
    st.tuples(st.integers(0, 2**50), payloads, payloads, headers), min_size=1, max_size=20
)


def build(recs: list, codec: int = 0, producer: tuple[int, int, int] = (-1, -1, -1)) -> bytes:
    builder = DefaultRecordBatchBuilder(2, codec, 0, *producer, 2**30)
    for i, (ts, key, value, hdrs) in enumerate(recs):
        builder.append(i, ts, key, value, hdrs)
    return bytes(builder.build())


def stored(data: bytes, base_offset: int) -> bytes:
    """The stored batch the log writes for the produced batch appended at base_offset."""
    bodies = decode_produced(data, NOW_MS).records
    return encode_batch(
        base_offset,
        build_fragments(base_offset, bodies),
        first_timestamp=bodies[0][0],
        max_timestamp=max(ts for ts, _ in bodies),
    )


@given(records, st.sampled_from(CODECS), st.integers(0, 2**40))
def test_any_batch_round_trips_through_the_stored_format(recs, codec, base_offset):
    end = base_offset + len(recs)
    fetched = DefaultRecordBatch(
        encode_fetched(stored(build(recs, codec), base_offset), base_offset, end)
    )
    assert fetched.validate_crc()
    assert fetched.base_offset == base_offset
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in fetched] == [
        (base_offset + i, ts, key, value, hdrs) for i, (ts, key, value, hdrs) in enumerate(recs)
    ]


@given(records, st.data())
def test_a_flipped_bit_fails_the_crc(recs, data):
    batch = bytearray(build(recs))
    # The CRC field and everything it covers (Kafka leaves baseOffset, batchLength,
    # partitionLeaderEpoch and magic outside it).
    bit = data.draw(st.integers(17 * 8, len(batch) * 8 - 1))
    batch[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(InvalidRecordBatch) as refused:
        decode_produced(bytes(batch), NOW_MS)
    assert refused.value.error_code == CORRUPT_MESSAGE


def test_the_http_view_of_kafka_bytes():
    batch = build(
        [
            (5, b'"k"', b'{"a":[1,2]}', [("h", b"v")]),  # JSON in orjson's form: as JSON
            (6, None, b"plain", []),  # not JSON: base64
            (7, b"null", None, []),  # the bytes null vs a null value
            (8, None, b'{"a": 1}', []),  # JSON, but not byte for byte what orjson writes
        ]
    )
    got = [orjson.loads(b"{" + body + b"}") for _, body in decode_produced(batch, NOW_MS).records]
    assert got == [
        {"key": "k", "value": {"a": [1, 2]}, "headers": {"h": "v"}},
        {"key": None, "value_b64": "cGxhaW4=", "headers": {}},
        {"key_b64": "bnVsbA==", "value": None, "headers": {}},
        {"key": None, "value_b64": "eyJhIjogMX0=", "headers": {}},
    ]


def test_records_without_a_timestamp_get_the_append_time():
    batch = build([(-1, None, b"x", [])])
    assert decode_produced(batch, NOW_MS).records[0][0] == NOW_MS


def test_the_idempotent_producer_state_is_kept():
    produced = decode_produced(build([(1, None, b"x", [])], producer=(7, 2, 40)), NOW_MS)
    assert (produced.producer_id, produced.producer_epoch, produced.base_sequence) == (7, 2, 40)


@pytest.mark.parametrize(
    ("mangle", "code"),
    [
        (lambda b: b[:-1], CORRUPT_MESSAGE),  # cut short
        (lambda b: b[:16] + b"\x01" + b[17:], UNSUPPORTED_FOR_MESSAGE_FORMAT),  # magic 1
        (lambda b: b[:30], CORRUPT_MESSAGE),  # shorter than a header
    ],
)
def test_malformed_batches_are_refused(mangle, code):
    with pytest.raises(InvalidRecordBatch) as refused:
        decode_produced(mangle(build([(1, None, b"x", [])])), NOW_MS)
    assert refused.value.error_code == code


def test_headers_without_an_http_form_are_refused():
    for hdrs in ([("h", b"\xff")], [("h", None)], [("h", b"a"), ("h", b"b")]):
        with pytest.raises(InvalidRecordBatch):
            decode_produced(build([(1, None, b"x", hdrs)]), NOW_MS)


def test_a_fetch_keeps_only_the_records_from_its_offset_to_the_high_watermark():
    first = stored(build([(1, None, b"a", []), (2, None, b"b", [])]), 10)
    second = stored(build([(3, None, b"c", []), (4, None, b"d", [])]), 12)
    fetched = DefaultRecordBatch(encode_fetched(first + second, 11, 13))
    assert [(r.offset, r.value) for r in fetched] == [(11, b"b"), (12, b"c")]


def test_http_records_of_every_shape_fetch_as_their_json_text():
    bodies = [
        (1, b'"key":{"id":7},"value":"s","headers":{}'),  # a key of another JSON type
        # a value holding the no-headers ending, and headers: the orjson path
        (2, b'"key":"k","value":[1,",\\"headers\\":{}}"],"headers":{"h":"v"}'),
        (3, b'"key":"a\\"b","value":null,"headers":{}'),  # an escaped key
        (4, b'"key_b64":"AA==","value_b64":"/w==","headers":{}'),
    ]
    batch = encode_batch(0, build_fragments(0, bodies), first_timestamp=1, max_timestamp=4)
    fetched = DefaultRecordBatch(encode_fetched(batch, 0, 4))
    assert [(r.timestamp, r.key, r.value, r.headers) for r in fetched] == [
        (1, b'{"id":7}', b'"s"', []),
        (2, b'"k"', b'[1,",\\"headers\\":{}}"]', [("h", b"v")]),
        (3, b'"a\\"b"', None, []),
        (4, b"\x00", b"\xff", []),
    ]


def test_no_records_fetch_as_no_batch():
    assert encode_fetched(b"", 0, 0) == b""


# Values that look like stored fragments' starts and ends, which a fetch must not cut at.
tricky_json = st.sampled_from(
    [
        b'[{"offset":1,"timestamp":2,"key":null,"value":3}]',
        b'[{"x":1,"headers":{}},{"offset":5,"timestamp":1,"key":"k","value":1}]',
        b'{"x":{"a":1,"headers":{}},"b":2}',
        b'",\\"headers\\":{}},{\\"offset\\":7"',
        b'"{\\"offset\\":"',
    ]
)
stored_payloads = tricky_json | st.none() | st.binary(max_size=16) | json_bytes
# HTTP bodies besides what a Kafka produce stores: keys of other JSON types, escapes.
http_bodies = st.sampled_from(
    [
        b'"key":{"id":7},"value":"s","headers":{}',
        b'"key":"a\\"b","value":null,"headers":{}',
        b'"key":12,"value":[1,2],"headers":{"h":"v"}',
    ]
)
stored_records = st.lists(
    st.tuples(
        st.integers(0, 2**50),
        st.tuples(stored_payloads, stored_payloads, headers).map(lambda r: record_body(*r))
        | http_bodies,
    ),
    min_size=1,
    max_size=8,
)


def reference_fetch(data: bytes, start: int, end: int) -> bytes:
    """The conversion by its definition: every stored record parsed with orjson and
    appended with aiokafka's builder, one at a time."""
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 2**31 - 1)
    base = None
    for header, batch in split_batches(data):
        for r in orjson.loads(b"[%b]" % payload_of(batch, header)):
            if start <= r["offset"] < end:
                base = r["offset"] if base is None else base
                hdrs = [(name, v.encode()) for name, v in r["headers"].items()]
                builder.append(
                    r["offset"] - base, r["timestamp"], field(r, "key"), field(r, "value"), hdrs
                )
    if base is None:
        return b""
    batch = builder.build()
    batch[0:8] = base.to_bytes(8, "big", signed=True)
    return bytes(batch)


def field(record: dict, name: str) -> bytes | None:
    if name in record:
        return None if record[name] is None else orjson.dumps(record[name])
    return base64.b64decode(record[name + "_b64"])


def decoded(batch: bytes) -> tuple:
    if not batch:
        return ()
    b = DefaultRecordBatch(batch)
    assert b.validate_crc()
    return b.base_offset, [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in b]


@given(st.lists(stored_records, min_size=1, max_size=3), st.integers(0, 2**40), st.data())
def test_a_fetch_decodes_as_the_reference_conversion(batches, base_offset, data):
    stored_data = b""
    offset = base_offset
    for recs in batches:
        stored_data += encode_batch(
            offset,
            build_fragments(offset, recs),
            first_timestamp=recs[0][0],
            max_timestamp=max(ts for ts, _ in recs),
        )
        offset += len(recs)
    start = data.draw(st.integers(base_offset, offset))
    end = data.draw(st.integers(start, offset))
    fetched = encode_fetched(stored_data, start, end)
    expected = reference_fetch(stored_data, start, end)
    assert decoded(fetched) == decoded(expected)
    assert fetched == expected  # byte for byte, header fields included


def test_a_value_holding_a_fragment_boundary_is_not_cut_there():
    bodies = [
        (
            1,
            b'"key":null,"value":[{"x":1,"headers":{}},{"offset":5,"timestamp":1,'
            b'"key":"k","value":1}],"headers":{}',
        ),
        (2, b'"key":{"id":7},"value":"s","headers":{}'),  # not a common shape
    ]
    batch = encode_batch(0, build_fragments(0, bodies), first_timestamp=1, max_timestamp=2)
    assert encode_fetched(batch, 0, 2) == reference_fetch(batch, 0, 2)
