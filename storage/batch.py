"""The record batch format: encode, decode, verify and slice batches held in memory.

Pure: bytes in, bytes or values out. It must never open a file or keep state; the
segment and the log do the I/O. Layout (big-endian), documented in docs/storage.md:

    batch_length int32 | magic int8 | crc32c uint32 | attributes int16 |
    base_offset int64 | last_offset_delta int32 | leader_epoch int32 |
    first_timestamp int64 | max_timestamp int64 | producer_id int64 |
    producer_epoch int16 | base_sequence int32 | record_count int32 |
    position table: record_count x uint32 (end of each fragment in the payload) |
    payload: the records' JSON fragments joined by b","
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate, islice, repeat
from itertools import count as count_from
from operator import add, itemgetter
from typing import Any

import msgspec
import orjson
from crc32c import crc32c

from raftka.storage.errors import CorruptBatchError

MAGIC = 1
NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1

# batch_length, magic, crc: the CRC covers every byte after these three fields.
_PREFIX = struct.Struct(">iBI")
# attributes .. record_count
_REST = struct.Struct(">hqiiqqqhii")
_HEADER = struct.Struct(">iBIhqiiqqqhii")
PREFIX_BYTES = _PREFIX.size  # 9
HEADER_BYTES = _HEADER.size  # 61
LENGTH_FIELD_BYTES = 4
CRC_START = PREFIX_BYTES
POSITION_BYTES = 4  # one uint32 per record in the position table
MAX_RECORD_COUNT = (1 << 31) - 1

_FRAGMENT = b'{"offset":%d,"timestamp":%d,%b}'
_NEEDS_BYTESWAP = sys.byteorder == "little"  # the table is big-endian on disk


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The fixed header of one batch, plus where the batch sits in its segment file."""

    batch_length: int
    magic: int
    crc: int
    attributes: int
    base_offset: int
    last_offset_delta: int
    leader_epoch: int
    first_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def size_bytes(self) -> int:
        """The whole batch on disk, length field included."""
        return LENGTH_FIELD_BYTES + self.batch_length

    @property
    def payload_start(self) -> int:
        """Offset of the payload from the batch's first byte."""
        return HEADER_BYTES + POSITION_BYTES * self.record_count

    @property
    def payload_bytes(self) -> int:
        return self.size_bytes - self.payload_start


class _StoredRecord(msgspec.Struct):
    """A stored fragment's fields, in the order `build_fragments` writes them."""

    offset: int
    timestamp: int
    key: Any
    value: Any
    headers: Any


_ENCODER = msgspec.json.Encoder()
_JSON_NULL = msgspec.Raw(b"null")
_NO_HEADERS = msgspec.Raw(b"{}")
# A fragment of JsonRecords without its offset, timestamp, key and value.
_FRAGMENT_FIXED_BYTES = len(b'{"offset":,"timestamp":,"key":,"value":,"headers":{}}')


@dataclass(frozen=True, slots=True)
class JsonRecords:
    """Records that share one timestamp and have no headers, whose keys and values are
    JSON: each column holds `msgspec.Raw` JSON texts (stored as they are), or `str`s that
    need no escape (no `"`, backslash or control character: stored between quotes); `keys`
    None means every key is null. msgspec's encoder writes a whole batch's fragments in one
    call and the position table comes from the texts' lengths, so no Python code runs per
    record (the produce path's largest cost: docs/benchmarks.md, "Profile findings"). The
    fragments are the bytes that `build_fragments` makes of the same (timestamp, body)
    pairs, body `"key":K,"value":V,"headers":{}`."""

    timestamp: int
    values: Sequence[msgspec.Raw | str]
    keys: Sequence[msgspec.Raw | str] | None = None

    def __len__(self) -> int:
        return len(self.values)

    def bodies_bytes(self) -> int:
        """The keys' and values' JSON text, in bytes (a bound for the disk-room check)."""
        texts = _text_bytes(self.values)
        return texts + (
            len(self.values) * len(b"null") if self.keys is None else _text_bytes(self.keys)
        )

    def payload(self, base_offset: int) -> tuple[memoryview, array[int]]:
        """The batch payload (the fragments joined by commas) and its position table."""
        count = len(self.values)
        keys = repeat(_JSON_NULL) if self.keys is None else self.keys
        encoded = _ENCODER.encode(
            list(
                map(
                    _StoredRecord,
                    count_from(base_offset),
                    repeat(self.timestamp),
                    keys,
                    self.values,
                    repeat(_NO_HEADERS),
                )
            )
        )
        payload = memoryview(encoded)[1:-1]  # without the list's brackets
        # Each fragment's length (with its comma) is a constant plus its key's and value's
        # lengths (and its offset's width when that varies). The running sum starts at -1:
        # a fragment ends before its comma.
        constant = _FRAGMENT_FIXED_BYTES + len(str(self.timestamp)) + 1 + _quotes(self.values)
        lengths: Iterable[int] = map(len, self.values)
        if self.keys is None:
            constant += len(b"null")
        else:
            constant += _quotes(self.keys)
            lengths = map(add, lengths, map(len, self.keys))
        last_offset = base_offset + count - 1
        if len(str(base_offset)) == len(str(last_offset)):
            constant += len(str(base_offset))
        else:  # the offsets gain a digit inside this batch
            lengths = map(add, lengths, map(len, map(str, range(base_offset, last_offset + 1))))
        sums = accumulate(map(add, lengths, repeat(constant)), initial=-1)
        ends = array("I", islice(sums, 1, None))
        if ends[-1] != len(payload):
            raise ValueError("a key or value is neither JSON text nor a string without escapes")
        return payload, ends


def _quotes(column: Sequence[msgspec.Raw | str]) -> int:
    """What a column's JSON text adds to its items' lengths: a str's two quotes."""
    return 2 if column and type(column[0]) is str else 0


def _text_bytes(column: Sequence[msgspec.Raw | str]) -> int:
    return sum(map(len, column)) + _quotes(column) * len(column)


Records = Sequence[tuple[int, bytes]] | JsonRecords


def build_fragments(base_offset: int, records: Sequence[tuple[int, bytes]]) -> list[bytes]:
    """Turn the broker's (timestamp_ms, body) pairs into complete JSON objects.

    No JSON parse: the body is trusted to be the inside of an object (the broker parsed
    the request once already); the log only prefixes the fields it owns. One `%` per
    record, run by `map` (C): no Python bytecode per record on the produce path.
    """
    return list(
        map(
            _FRAGMENT.__mod__,
            zip(
                count_from(base_offset),
                map(itemgetter(0), records),
                map(itemgetter(1), records),
            ),
        )
    )


def encode_batch(
    base_offset: int,
    records: Sequence[bytes] | JsonRecords,
    *,
    first_timestamp: int,
    max_timestamp: int,
    leader_epoch: int = 0,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
) -> bytes:
    """Encode records as one batch: fragments (each one record's complete JSON object), or
    JsonRecords, whose fragments msgspec writes in one call (the same bytes)."""
    count = len(records)
    if not 1 <= count <= MAX_RECORD_COUNT:
        raise ValueError(f"a batch holds 1..{MAX_RECORD_COUNT} records, got {count}")
    payload: bytes | memoryview
    if isinstance(records, JsonRecords):
        payload, ends = records.payload(base_offset)
    else:
        payload = b",".join(records)
        # end of fragment k = its length sum so far + the k commas before it
        ends = array("I", map(add, accumulate(map(len, records)), range(count)))
    if _NEEDS_BYTESWAP:
        ends.byteswap()
    table = ends.tobytes()
    rest = _REST.pack(
        0,  # attributes: reserved
        base_offset,
        count - 1,
        leader_epoch,
        first_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        count,
    )
    crc = crc32c(payload, crc32c(table, crc32c(rest)))
    batch_length = PREFIX_BYTES - LENGTH_FIELD_BYTES + len(rest) + len(table) + len(payload)
    return b"".join((_PREFIX.pack(batch_length, MAGIC, crc), rest, table, payload))


def decode_header(
    buf: bytes | bytearray | memoryview, pos: int = 0, *, verify_crc: bool = True
) -> BatchHeader:
    """Decode the batch starting at buf[pos].

    Checks the length against the buffer, the magic, the count fields and (unless
    verify_crc is False, for batches already verified when they reached the disk) the
    CRC32C, raising CorruptBatchError. With verify_crc the whole batch must be in buf;
    without it only the header must be.
    """
    available = len(buf) - pos
    if available < HEADER_BYTES:
        raise CorruptBatchError(f"{available} bytes at {pos}: shorter than a batch header")
    h = BatchHeader(*_HEADER.unpack_from(buf, pos))
    if h.magic != MAGIC:
        raise CorruptBatchError(f"bad magic {h.magic} at {pos}")
    if h.record_count < 1 or h.last_offset_delta != h.record_count - 1:
        raise CorruptBatchError(f"bad record_count {h.record_count} at {pos}")
    if h.base_offset < 0 or h.size_bytes < h.payload_start:
        raise CorruptBatchError(f"bad batch_length {h.batch_length} at {pos}")
    if verify_crc:
        end = pos + h.size_bytes
        if end > len(buf):
            raise CorruptBatchError(f"batch at {pos} runs {end - len(buf)} bytes past the data")
        if crc32c(memoryview(buf)[pos + CRC_START : end]) != h.crc:
            raise CorruptBatchError(f"CRC32C mismatch in batch at {pos}")
    return h


def verify_batch(batch: bytes | memoryview) -> BatchHeader:
    """Check that `batch` is exactly one intact batch; return its header."""
    header = decode_header(batch, 0)
    if header.size_bytes != len(batch):
        raise CorruptBatchError(
            f"batch_length says {header.size_bytes} bytes, got {len(batch)} bytes"
        )
    return header


def split_batches(data: bytes | bytearray | memoryview) -> list[tuple[BatchHeader, memoryview]]:
    """Split concatenated batches (what read_raw returns) into (header, batch) pairs.

    Every batch's CRC is verified, and the data must end exactly after a whole batch:
    any bad or partial batch raises CorruptBatchError, so a follower can refuse a
    fetched buffer before appending any of it. The views share `data`'s memory.
    """
    view = memoryview(data)
    batches = []
    pos = 0
    while pos < len(view):
        header = decode_header(view, pos)
        end = pos + header.size_bytes
        batches.append((header, view[pos:end]))
        pos = end
    return batches


def record_ends(batch: bytes | memoryview, header: BatchHeader) -> array[int]:
    """The position table: end of each fragment in the payload (exclusive)."""
    ends = array("I")
    ends.frombytes(batch[HEADER_BYTES : header.payload_start])
    if _NEEDS_BYTESWAP:
        ends.byteswap()
    return ends


def payload_of(batch: bytes | memoryview, header: BatchHeader) -> memoryview:
    return memoryview(batch)[header.payload_start : header.size_bytes]


def slice_bounds(ends: Sequence[int], i: int, j: int) -> tuple[int, int]:
    """Payload byte range of records [i, j) (0 <= i < j <= count), without the commas around."""
    start = 0 if i == 0 else ends[i - 1] + 1
    return start, ends[j - 1]


def records_fitting(ends: Sequence[int], i: int, budget_bytes: int) -> int:
    """Largest j such that records [i, j) take at most budget_bytes of payload (j may be i)."""
    start = 0 if i == 0 else ends[i - 1] + 1
    return max(i, bisect_right(ends, start + budget_bytes, lo=i))


def record_fragments(batch: bytes | memoryview) -> list[bytes]:
    """Every record's fragment, in offset order (copies; for rare paths)."""
    header = decode_header(batch, 0, verify_crc=False)
    ends = record_ends(batch, header)
    payload = payload_of(batch, header)
    return [bytes(payload[slice(*slice_bounds(ends, k, k + 1))]) for k in range(len(ends))]


def fragment_timestamp(fragment: bytes) -> int:
    """A record's timestamp (parses JSON: for rare paths only)."""
    try:
        ts = orjson.loads(fragment)["timestamp"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise CorruptBatchError(f"record has no readable timestamp: {exc}") from exc
    if not isinstance(ts, int):
        raise CorruptBatchError(f"record timestamp {ts!r} is not an integer")
    return ts
