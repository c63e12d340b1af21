"""Kafka RecordBatch v2 <-> the JSON fragments the log stores. Pure: bytes in, values out.

The log keeps one format (docs/storage.md): each record as the JSON an HTTP fetch
shows. A Kafka produce is converted here into the same record bodies the HTTP produce
route stores, and a Kafka fetch is built here from the stored fragments. aiokafka's
maintained C codec (`aiokafka.record.default_records`) reads and builds the batches: it
checks the CRC32C and decompresses gzip, snappy, lz4 and zstd (cramjam).

The mapping, for keys and values alike: bytes that are JSON in orjson's own compact
form (so they come back byte for byte) are stored as `"value": <that JSON>`; any other
bytes as `"value_b64"`; a null as `"value": null`. The four bytes `null` are therefore
`value_b64`, keeping them apart from a null. Header values are UTF-8 strings both ways.
"""

from __future__ import annotations

import binascii
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import add
from typing import Any

import orjson
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from orjson import dumps

from raftka.api.kafka.errors import CORRUPT_MESSAGE, INVALID_RECORD, UNSUPPORTED_FOR_MESSAGE_FORMAT
from raftka.storage.batch import (
    BatchHeader,
    decode_header,
    payload_of,
    record_ends,
)

MAGIC = 2
# RecordBatch v2 layout: baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 |
# magic int8 | crc uint32 | attributes int16 | ... (the CRC covers attributes .. end).
BATCH_OVERHEAD_BYTES = 61
LENGTH_FIELD_END = 12
MAGIC_POSITION = 16
LEADER_EPOCH_POSITION = 12
TIMESTAMP_TYPE_LOG_APPEND = 1
NO_PRODUCER_ID = -1
# Large enough that the builder never refuses a record (a fetch bounds its own size).
BUILDER_BATCH_BYTES = 2**31 - 1


class InvalidRecordBatch(ValueError):
    """A produced batch Kafka would refuse: bad CRC, wrong magic, malformed or
    transactional. `error_code` is Kafka's code for it."""

    def __init__(self, message: str, error_code: int) -> None:
        super().__init__(message)
        self.error_code = error_code


@dataclass(frozen=True, slots=True)
class ProducedBatch:
    """One produced batch, ready for `PartitionReplica.append`: (timestamp_ms, body)
    per record, and the idempotent producer's state (-1 when not idempotent)."""

    records: list[tuple[int, bytes]]
    producer_id: int
    producer_epoch: int
    base_sequence: int


# The first byte of any JSON text orjson writes, besides true and false (and null, which
# stays base64). Bytes starting otherwise skip the parse: a failed parse raises, and an
# exception costs more than the parse itself (~14 us on the shared box).
_JSON_START = frozenset(b'{["-0123456789')
_JSON_WORDS = (b"true", b"false")


def _is_canonical_json(data: bytes) -> bool:
    """Whether `data` is JSON exactly as orjson writes it (so it comes back byte for byte)."""
    if not data or data[0] not in _JSON_START:
        return data in _JSON_WORDS
    try:
        return bool(orjson.dumps(orjson.loads(data)) == data)
    except orjson.JSONDecodeError:
        return False


def _field(name: bytes, data: bytes | None) -> bytes:
    if data is None:
        return b'"%b":null' % name
    if _is_canonical_json(data):
        return b'"%b":%b' % (name, data)
    return b'"%b_b64":"%b"' % (name, binascii.b2a_base64(data, newline=False))


def _headers(headers: Sequence[tuple[str, bytes | None]]) -> bytes:
    if not headers:
        return b"{}"
    out: dict[str, str] = {}
    for name, value in headers:
        if value is None or name in out:
            raise InvalidRecordBatch(
                f"header {name!r}: null or repeated header values have no HTTP form",
                INVALID_RECORD,
            )
        try:
            out[name] = bytes(value).decode()
        except UnicodeDecodeError:
            raise InvalidRecordBatch(
                f"header {name!r}: the value is not UTF-8", INVALID_RECORD
            ) from None
    return orjson.dumps(out)


def record_body(key: bytes | None, value: bytes | None, headers: Sequence[Any]) -> bytes:
    """The stored body of one Kafka record (what `api/records.py` makes of an HTTP one)."""
    return b'%b,%b,"headers":%b' % (_field(b"key", key), _field(b"value", value), _headers(headers))


def decode_produced(data: bytes, now_ms: int) -> ProducedBatch:
    """The one RecordBatch v2 of a partition's produce data, CRC checked and decompressed.

    Kafka accepts exactly one batch per partition from magic 2 on; so does this.
    Records without a timestamp, or in a LogAppendTime batch, get `now_ms`."""
    if len(data) < BATCH_OVERHEAD_BYTES:
        raise InvalidRecordBatch(f"{len(data)} bytes: shorter than a batch", CORRUPT_MESSAGE)
    if data[MAGIC_POSITION] != MAGIC:
        raise InvalidRecordBatch(
            f"magic {data[MAGIC_POSITION]}: only RecordBatch v2 is accepted",
            UNSUPPORTED_FOR_MESSAGE_FORMAT,
        )
    length = int.from_bytes(data[8:LENGTH_FIELD_END], "big", signed=True)
    if LENGTH_FIELD_END + length != len(data):
        raise InvalidRecordBatch(
            f"batchLength {length} does not match {len(data)} bytes: one whole batch expected",
            INVALID_RECORD if LENGTH_FIELD_END + length < len(data) else CORRUPT_MESSAGE,
        )
    batch = DefaultRecordBatch(bytes(data))
    if not batch.validate_crc():
        raise InvalidRecordBatch("CRC32C mismatch", CORRUPT_MESSAGE)
    if batch.is_transactional or batch.is_control_batch:
        raise InvalidRecordBatch("transactions are not supported", INVALID_RECORD)
    log_append_time = batch.timestamp_type == TIMESTAMP_TYPE_LOG_APPEND
    records: list[tuple[int, bytes]] = []
    try:
        for record in batch:
            ts = record.timestamp
            if log_append_time or ts is None or ts < 0:
                ts = now_ms
            records.append((ts, record_body(record.key, record.value, record.headers)))
    except InvalidRecordBatch:
        raise
    except Exception as exc:  # the C reader's errors for malformed records and codecs
        raise InvalidRecordBatch(f"malformed records: {exc}", CORRUPT_MESSAGE) from None
    if len(records) != batch.last_offset_delta + 1:
        raise InvalidRecordBatch(
            f"{len(records)} records but lastOffsetDelta {batch.last_offset_delta}",
            CORRUPT_MESSAGE,
        )
    return ProducedBatch(records, batch.producer_id, batch.producer_epoch, batch.base_sequence)


def _bytes_of(record: dict[str, Any], name: str, name_b64: str) -> bytes | None:
    value = record.get(name, record)  # the record itself: absent, so the _b64 form
    if value is record:
        return binascii.a2b_base64(record[name_b64])
    return None if value is None else dumps(value)


# The start of one stored fragment in its common shapes, as the log and the two produce
# paths write it: the offset and timestamp, then a null, plain-string or base64 key, then
# the value's name. With no headers the fragment ends in `,"headers":{}}`, so the value
# is everything between. Other shapes (headers, keys of other JSON types, escaped keys)
# take the orjson path.
_FRAGMENT_START_PATTERN = (
    rb'\{"offset":\d+,"timestamp":(\d+),'
    rb'(?:"key":(null|"[^"\\]*")|"key_b64":"([A-Za-z0-9+/=]*)"),"value(_b64)?":'
)
_FRAGMENT_START = re.compile(_FRAGMENT_START_PATTERN)
_NO_HEADERS_END = b',"headers":{}}'
_NO_HEADERS_BYTES = len(_NO_HEADERS_END)
# One boundary between two stored fragments in the common shapes: the end of the first
# (no headers), the comma joining them, the start of the second up to its value. A split
# of the fragments (the first one given a boundary's end too) at every boundary yields,
# per fragment, its four groups and then its value, all in one C pass.
_BOUNDARY_END = _NO_HEADERS_END + b","
_BOUNDARY = re.compile(re.escape(_BOUNDARY_END) + _FRAGMENT_START_PATTERN)
_SPLIT_STRIDE = 5  # per fragment: timestamp, key, key_b64, "_b64" or None, then value
_FRAGMENT_PREFIX = b'{"offset":'
_a2b = binascii.a2b_base64
_NO_HEADERS: list[tuple[str, bytes | None]] = []  # shared: the builder only reads it


def _key_of(key: bytes | None, key_b64: bytes | None) -> bytes | None:
    if key_b64 is not None:
        return _a2b(key_b64)
    return None if key == b"null" else key


def _value_of(value: bytes, b64: bytes | None) -> bytes | None:
    if b64 is not None:
        return _a2b(value[1:-1])
    return None if value == b"null" else value


def _record_parts(
    payload: bytes, start: int, end: int
) -> tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]]]:
    """(timestamp, key, value, headers) of the fragment payload[start:end], any shape."""
    m = _FRAGMENT_START.match(payload, start)
    if m is not None and payload.endswith(_NO_HEADERS_END, start, end):
        ts, key, key_b64, b64 = m.groups()
        value = payload[m.end() : end - _NO_HEADERS_BYTES]
        return int(ts), _key_of(key, key_b64), _value_of(value, b64), _NO_HEADERS
    r = orjson.loads(payload[start:end])
    headers = r["headers"]
    return (
        r["timestamp"],
        _bytes_of(r, "key", "key_b64"),
        _bytes_of(r, "value", "value_b64"),
        [(name, v.encode()) for name, v in headers.items()] if headers else [],
    )


class FetchedBatchBuilder:
    """Builds one RecordBatch v2 from stored batches (as `PartitionLog.read_raw` returns
    them), records in [start, end) only. The hot path of a Kafka fetch, with no Python
    bytecode per record: the records of one stored batch in the common shapes are cut
    into columns (timestamps, keys, values) by one `_BOUNDARY` split of its payload (no
    JSON parsed, no value scanned beyond the split's search), and `map` feeds the
    columns to aiokafka's C builder, which writes the varints and the CRC. A stored
    batch with any record of another shape takes `_record_parts`, one call per record."""

    def __init__(self) -> None:
        self._builder = DefaultRecordBatchBuilder(
            MAGIC, 0, 0, NO_PRODUCER_ID, -1, -1, BUILDER_BATCH_BYTES
        )
        self._base: int | None = None
        self.record_count = 0

    def add_stored(self, data: bytes, start: int, end: int) -> int:
        """Adds the records in [start, end) of the stored batches in `data`; returns the
        offset after the last one added (`start` when none)."""
        pos = 0
        next_offset = start
        while pos < len(data):
            header = decode_header(data, pos, verify_crc=False)
            batch = memoryview(data)[pos : pos + header.size_bytes]
            pos += header.size_bytes
            if header.base_offset >= end:
                break
            i = max(0, start - header.base_offset)
            j = min(header.record_count, end - header.base_offset)
            if i >= j:
                continue
            self._add_records(batch, header, i, j)
            next_offset = header.base_offset + j
        return next_offset

    def _add_records(self, batch: memoryview, header: BatchHeader, i: int, j: int) -> None:
        if self._base is None:
            self._base = header.base_offset + i
        delta = header.base_offset - self._base
        offsets = range(i + delta, j + delta)
        self.record_count += j - i
        ends = record_ends(batch, header)
        first = 0 if i == 0 else ends[i - 1] + 1
        fragments = payload_of(batch, header)[first : ends[j - 1]]
        columns = _common_shape_columns(b"".join((_BOUNDARY_END, fragments)), j - i)
        if columns is None:
            payload = bytes(payload_of(batch, header))
            starts = [first, *map(add, ends[i : j - 1], repeat(1))]
            timestamps, keys, values, headers = zip(
                *map(_record_parts, repeat(payload), starts, ends[i:j]), strict=True
            )
            columns = (timestamps, keys, values, headers)
        # deque(maxlen=0) runs the appends and drops their metadata
        deque(map(self._builder.append, offsets, *columns), maxlen=0)

    def build(self, leader_epoch: int = -1) -> bytes:
        """The batch, or b"" when no record was added."""
        if self._base is None:
            return b""
        batch = self._builder.build()
        batch[0:8] = self._base.to_bytes(8, "big", signed=True)  # outside the CRC, as in Kafka
        batch[LEADER_EPOCH_POSITION:MAGIC_POSITION] = leader_epoch.to_bytes(4, "big", signed=True)
        return bytes(batch)


def _common_shape_columns(
    text: bytes, count: int
) -> tuple[Iterable[int], Sequence[bytes | None], Sequence[bytes | None], Iterable[Any]] | None:
    """(timestamps, keys, values, headers) of the `count` fragments in `text` (a
    boundary's end, then the fragments joined by commas), or None unless every one is
    in the common shapes.

    Sound without positions: every fragment starts with `{"offset":` (the log writes it),
    so when `text` holds exactly `count` of them, every `_BOUNDARY` match sits at a
    fragment's start; `count` matches then mean every fragment is in the common shapes
    and has no headers (but the last, checked apart), and the text between two matches
    is exactly the first one's value."""
    if text.count(_FRAGMENT_PREFIX) != count:
        return None
    parts = _BOUNDARY.split(text)
    if len(parts) != 1 + _SPLIT_STRIDE * count or not parts[-1].endswith(_NO_HEADERS_END):
        return None
    parts[-1] = parts[-1][:-_NO_HEADERS_BYTES]
    keys: Sequence[bytes | None] = parts[2::_SPLIT_STRIDE]
    keys_b64 = parts[3::_SPLIT_STRIDE]
    if keys_b64.count(None) != count or b"null" in keys:  # not all plain-string keys
        keys = list(map(_key_of, keys, keys_b64))
    values: Sequence[bytes | None] = parts[5::_SPLIT_STRIDE]
    b64s = parts[4::_SPLIT_STRIDE]
    if b64s.count(None) != count or b"null" in values:  # not all JSON values
        values = list(map(_value_of, parts[5::_SPLIT_STRIDE], b64s))
    return map(int, parts[1::_SPLIT_STRIDE]), keys, values, repeat(_NO_HEADERS, count)


def encode_fetched(data: bytes, start: int, end: int, leader_epoch: int = -1) -> bytes:
    """One RecordBatch v2 of the records in [start, end) of the stored batches `data`."""
    builder = FetchedBatchBuilder()
    builder.add_stored(data, start, end)
    return builder.build(leader_epoch)
