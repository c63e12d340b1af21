"""Parsing and validating request bodies into what the log stores. Pure: no I/O.

A produce body becomes a `ProduceRequest`: per record the JSON text a consumer reads
back without braces (`"key":..,"value":..,"headers":{..}`, or the `_b64` forms as
written), which the log stores as is, so a fetch never re-encodes a record.

The hot path touches records only in C (docs/benchmarks.md, "Profile findings"): `msgspec`
decodes the body into structs and hands the keys and values to the log as `JsonRecords`,
whose fragments msgspec's encoder writes in one call. Three decoders, cheapest first:
- a body of ASCII without a backslash whose keys and values are all strings (a null key
  too) is decoded with typed `str` fields: msgspec has then checked all there is to check
  (a string holds no number, and its text is exactly its quotes around its content);
- other bodies of `key`/`value` records keep each key and value as `msgspec.Raw`, the
  client's own JSON text, unparsed. msgspec skips a raw value without checking all that
  `orjson` does (UTF-8, numbers past a double), so the body also goes through one
  `orjson.loads`: whatever is stored, a consumer's `orjson` reads back;
- a body with other fields (headers, `_b64`, partition, timestamp) takes the general path,
  with per-record checks in Python.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Sequence
from itertools import repeat
from operator import attrgetter
from typing import Annotated, Any, TypeAlias, TypeVar, cast

import msgspec
import orjson
from msgspec import UNSET, Meta, Raw, UnsetType

from raftka.metadata.errors import InvalidRequest
from raftka.replication.producer_state import ProducerRef
from raftka.storage.batch import JsonRecords, Records

MAX_TIMESTAMP_MS = 2**62
# int() alone would also take "1_000", " 7 " and non-ASCII digits such as "٣". At most
# 19 digits: every integer of the API fits in a signed 64-bit field, and a longer one
# would cost int() time (Python refuses past 4,300 digits with a ValueError).
INTEGER_PATTERN = re.compile(r"-?[0-9]{1,19}")
MAX_INT64 = 2**63 - 1
# JSON integers are kept exact within 64 bits (orjson reads [-2**63, 2**64-1] as int and
# turns anything wider into a float); a wider one is refused rather than rounded.
MIN_JSON_INT = -(2**63)
MAX_JSON_INT = 2**64 - 1
# Only an integer of 19+ digits can fall outside that range: bodies are scanned for a run
# of digits this long (0.8 ms for 600 KB, against 8 ms for orjson's parse), and only then
# parsed again exactly.
_DIGITS_TO_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_DIGIT_RUN = b"0" * 19

# The batch header's widths: producer_id int64, producer_epoch int16, base_sequence int32.
MAX_SEQUENCE = 2**31 - 1
MAX_PRODUCER_ID = 2**63 - 1
MAX_PRODUCER_EPOCH = 2**15 - 1

JSON_NULL = Raw(b"null")
T = TypeVar("T")
PLAIN_BODY = b'"key":%b,"value":%b,"headers":{}'
_KEY = attrgetter("key")
_SCALAR_TYPES = frozenset({str, int, bool, type(None)})
_VALUE = attrgetter("value")


class _Producer(msgspec.Struct, forbid_unknown_fields=True):
    id: Annotated[int, Meta(ge=0, le=MAX_PRODUCER_ID)]
    epoch: Annotated[int, Meta(ge=0, le=MAX_PRODUCER_EPOCH)]
    sequence: Annotated[int, Meta(ge=0, le=MAX_SEQUENCE)]


class _PlainRecord(msgspec.Struct, forbid_unknown_fields=True):
    """The common record: a value and maybe a key, any JSON."""

    value: Raw
    key: Raw = JSON_NULL


class _PlainBody(msgspec.Struct, forbid_unknown_fields=True):
    records: Annotated[list[_PlainRecord], Meta(min_length=1)]
    producer: _Producer | None = None


class _TextRecord(msgspec.Struct, forbid_unknown_fields=True):
    """A plain record whose value is a JSON string, and its key one too, or null."""

    value: str
    key: str | None = None


class _TextBody(msgspec.Struct, forbid_unknown_fields=True):
    records: Annotated[list[_TextRecord], Meta(min_length=1)]
    producer: _Producer | None = None


class _Record(msgspec.Struct, forbid_unknown_fields=True):
    key: Raw | UnsetType = UNSET
    key_b64: str | UnsetType = UNSET
    value: Raw | UnsetType = UNSET
    value_b64: str | UnsetType = UNSET
    headers: dict[str, str] | None = None
    partition: Annotated[int, Meta(ge=0)] | None = None
    timestamp: Annotated[int, Meta(ge=0, lt=MAX_TIMESTAMP_MS)] | None = None


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    records: Annotated[list[_Record], Meta(min_length=1)]
    producer: _Producer | None = None


_TEXT_DECODER = msgspec.json.Decoder(_TextBody)
_PLAIN_DECODER = msgspec.json.Decoder(_PlainBody)
_DECODER = msgspec.json.Decoder(_Body)


# A plain body's keys or values: all msgspec.Raw JSON texts, or all strs that need no escape.
Column: TypeAlias = Sequence[Raw | str]


class ProduceRequest:
    """A validated produce body: per record its stored text, and what routes it. A body of
    plain records keeps its keys and values as columns instead (JSON texts, or strings
    without escapes; keys None when every key is null), which the log encodes in one call
    (storage.batch.JsonRecords)."""

    __slots__ = (
        "_bodies",
        "timestamps",
        "partitions",
        "producer",
        "_keys",
        "_values",
        "_plain_keys",
    )

    def __init__(
        self,
        producer: ProducerRef | None,
        *,
        bodies: list[bytes] | None = None,
        values: Column | None = None,
        plain_keys: Column | None = None,
        timestamps: list[int | None] | None = None,
        partitions: list[int | None] | None = None,
        keys: list[bytes | None] | None = None,
    ) -> None:
        self._bodies = bodies
        self._values = values
        self._plain_keys = plain_keys
        self.producer = producer
        # None when no record has one: the common case costs nothing per record.
        self.timestamps = timestamps
        self.partitions = partitions
        self._keys = keys

    def __len__(self) -> int:
        return len(self._values) if self._values is not None else len(self.bodies)

    @property
    def bodies(self) -> list[bytes]:
        """Each record's stored text without braces (built on first use for plain ones)."""
        if self._bodies is None:
            assert self._values is not None
            values = _texts(self._values)
            keys = (
                [JSON_NULL] * len(values) if self._plain_keys is None else _texts(self._plain_keys)
            )
            self._bodies = list(map(PLAIN_BODY.__mod__, zip(keys, values, strict=True)))
        return self._bodies

    def keyless(self) -> bool:
        if self._values is not None:
            return self._plain_keys is None
        return self._keys is None or all(k is None for k in self._keys)

    def key_bytes(self) -> list[bytes | None]:
        """Each record's key as the partitioner hashes it (None without a key)."""
        if self._keys is None:
            plain = self._plain_keys
            if plain is None:
                self._keys = [None] * (len(self._values) if self._values is not None else 0)
            else:
                self._keys = [_key_bytes(k) for k in plain]
        return self._keys

    def log_records(self, now_ms: int, indexes: Sequence[int] | None = None) -> Records:
        """What the log appends; records without a timestamp get now_ms."""
        if self._values is not None:
            values, keys = self._values, self._plain_keys
            if indexes is not None:
                values = _pick(values, indexes)
                keys = None if keys is None else _pick(keys, indexes)
            return JsonRecords(now_ms, values, keys)
        bodies = self.bodies if indexes is None else _pick(self.bodies, indexes)
        if self.timestamps is None:
            return list(zip(repeat(now_ms, len(bodies)), bodies, strict=True))
        timestamps = self.timestamps if indexes is None else _pick(self.timestamps, indexes)
        return [
            (now_ms if ts is None else ts, body)
            for ts, body in zip(timestamps, bodies, strict=True)
        ]

    def record_json(self, i: int) -> bytes:
        """Record i as a request's JSON object (to forward it to another leader)."""
        ts = None if self.timestamps is None else self.timestamps[i]
        tail = b"}" if ts is None else b',"timestamp":%d}' % ts
        return b"{" + self.bodies[i] + tail


def _texts(column: Column) -> Sequence[Raw | bytes]:
    """A column's JSON texts (a str's: its quotes around it, as it needs no escape)."""
    return [b'"%b"' % text.encode() if isinstance(text, str) else text for text in column]


def _key_bytes(key: Raw | str) -> bytes | None:
    if isinstance(key, str):
        return key.encode()
    return None if key == JSON_NULL else _json_key_bytes(key)


def _pick(items: Sequence[T], indexes: Sequence[int]) -> list[T]:
    return list(map(items.__getitem__, indexes))


def parse_produce(raw: bytes) -> ProduceRequest:
    if raw.isascii() and b"\\" not in raw:
        strings = _parse_strings(raw)
        if strings is not None:
            return strings
    try:
        plain = _PLAIN_DECODER.decode(raw)
    except msgspec.ValidationError:
        return _parse_general(raw)
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from None
    records = plain.records
    raw_keys = list(map(_KEY, records))
    values = list(map(_VALUE, records))
    _check_like_orjson(raw)
    return ProduceRequest(
        _producer_ref(plain.producer, len(records)),
        values=values,
        plain_keys=None if all(map(JSON_NULL.__eq__, raw_keys)) else raw_keys,
    )


def _parse_strings(raw: bytes) -> ProduceRequest | None:
    """A body of ASCII without a backslash whose keys and values are all strings (its keys
    may all be null): then a string's stored text is its content between quotes, exactly as
    sent, and a string holds no number, so msgspec has checked all that orjson would. None
    when another value or a mix of null and string keys leaves it to the raw path."""
    try:
        text = _TEXT_DECODER.decode(raw)
    except msgspec.ValidationError:
        return None
    except msgspec.DecodeError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from None
    keys: list[str | None] | None = None
    if b'"key"' in raw:  # else no record has a key: no pass over them
        keys = list(map(_KEY, text.records))
        nulls = keys.count(None)
        if nulls == len(keys):
            keys = None
        elif nulls:
            return None
    return ProduceRequest(
        _producer_ref(text.producer, len(text.records)),
        values=list(map(_VALUE, text.records)),
        plain_keys=cast(list[str] | None, keys),
    )


def _parse_general(raw: bytes) -> ProduceRequest:
    try:
        doc = _DECODER.decode(raw)
    except msgspec.DecodeError as exc:  # ValidationError included: it names the field
        raise InvalidRequest(f"invalid produce request: {exc}") from None
    _check_like_orjson(raw)
    bodies: list[bytes] = []
    keys: list[bytes | None] = []
    timestamps: list[int | None] = []
    partitions: list[int | None] = []
    for i, rec in enumerate(doc.records):
        body, key = _general_record(rec, i)
        bodies.append(body)
        keys.append(key)
        timestamps.append(rec.timestamp)
        partitions.append(rec.partition)
    return ProduceRequest(
        _producer_ref(doc.producer, len(bodies)),
        bodies=bodies,
        timestamps=timestamps if any(t is not None for t in timestamps) else None,
        partitions=partitions if any(p is not None for p in partitions) else None,
        keys=keys,
    )


def _general_record(rec: _Record, i: int) -> tuple[bytes, bytes | None]:
    """One record's stored text (in the fields' fixed order) and its key bytes."""
    parts: list[bytes] = []
    key: bytes | None = None
    if rec.key_b64 is not UNSET:
        if rec.key is not UNSET:
            raise InvalidRequest(f"records[{i}] has both key and key_b64")
        key = _b64(rec.key_b64, f"records[{i}].key_b64")
        parts.append(b'"key_b64":' + orjson.dumps(rec.key_b64))
    else:
        raw_key = JSON_NULL if rec.key is UNSET else rec.key
        if raw_key != JSON_NULL:
            key = _json_key_bytes(raw_key)
        parts.append(b'"key":%b' % raw_key)
    if rec.value_b64 is not UNSET:
        if rec.value is not UNSET:
            raise InvalidRequest(f"records[{i}] has both value and value_b64")
        _b64(rec.value_b64, f"records[{i}].value_b64")
        parts.append(b'"value_b64":' + orjson.dumps(rec.value_b64))
    elif rec.value is not UNSET:
        parts.append(b'"value":%b' % rec.value)
    else:
        raise InvalidRequest(f"records[{i}] needs a value (or value_b64)")
    parts.append(b'"headers":' + orjson.dumps(rec.headers or {}))
    return b",".join(parts), key


def _check_like_orjson(raw: bytes) -> None:
    """Refuse what msgspec's raw skip accepted but orjson (and so a consumer) would not:
    invalid UTF-8, a lone surrogate escape, a number past a double's range. One
    `orjson.loads` of the body does it exactly, and costs less than msgspec's decode
    (measured: docs/benchmarks.md, "Profile findings"). Integers wider than 64 bits, which
    orjson would round, are looked for only where they can be (`_scalars_only`)."""
    doc = _orjson_reads(raw)
    if not _scalars_only(doc["records"]):
        _refuse_wide_integers_in(raw)


def _orjson_reads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from None


def _scalars_only(records: list[dict[str, Any]]) -> bool:
    """Whether every key and value (as orjson read them) is a string, an integer, a bool
    or null (or absent: `_b64` forms), so that no integer in the body is wider than 64 bits:
    orjson reads such an integer as a float, and the typed decode bounds every integer
    outside keys and values (producer, partition, timestamp; headers are strings).
    Then a run of digits in the body (`"value": "0123456789..."`, an id, a phone number) is
    text, and the exact check it would trigger (3x orjson's parse) is not needed. Run by
    `map` (C): no Python bytecode per record."""
    keys = map(dict.get, records, repeat("key"))
    values = map(dict.get, records, repeat("value"))
    return {*map(type, keys), *map(type, values)} <= _SCALAR_TYPES


def _json_key_bytes(raw: Raw) -> bytes:
    """Kafka's key bytes of a JSON key: a string's UTF-8, any other value's compact text."""
    text = bytes(raw)
    if text[:1] == b'"' and b"\\" not in text:
        return text[1:-1]
    key = orjson.loads(text)
    return key.encode() if type(key) is str else orjson.dumps(key)


def _producer_ref(p: _Producer | None, record_count: int) -> ProducerRef | None:
    if p is None:
        return None
    if p.sequence + record_count - 1 > MAX_SEQUENCE:
        raise InvalidRequest(
            f"producer.sequence {p.sequence} + {record_count} records passes {MAX_SEQUENCE}"
        )
    return ProducerRef(p.id, p.epoch, p.sequence)


def load_json(raw: bytes) -> Any:
    doc = _orjson_reads(raw)
    _refuse_wide_integers_in(raw)
    return doc


def _refuse_wide_integers_in(raw: bytes) -> None:
    if _LONG_DIGIT_RUN in raw.translate(_DIGITS_TO_ZERO):
        _refuse_wide_integers(raw)


def _check_json_int(text: str) -> int:
    if len(text.lstrip("-")) > 20:
        raise InvalidRequest(f"the integer {text[:24]}... does not fit in 64 bits")
    value = int(text)
    if not MIN_JSON_INT <= value <= MAX_JSON_INT:
        raise InvalidRequest(f"the integer {text} does not fit in 64 bits")
    return value


def _refuse_wide_integers(raw: bytes) -> None:
    """Raises InvalidRequest if the body holds an integer outside [-2**63, 2**64-1], which
    orjson would have read as a rounded float (the digit run may also be inside a string:
    then this finds nothing)."""
    try:
        json.loads(raw, parse_int=_check_json_int)
    except RecursionError:  # orjson allows 1,024 levels, the json module a few less
        raise InvalidRequest("the body is nested too deeply") from None


def json_object(raw: bytes) -> dict[str, Any]:
    doc = load_json(raw) if raw else {}
    if not isinstance(doc, dict):
        raise InvalidRequest("the body must be a JSON object")
    return doc


def _b64(value: str, where: str) -> bytes:
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{where} is not valid base64") from None


def parse_acks(value: str | None) -> str:
    if value is None:
        return "all"
    if value in ("0", "1", "all", "-1"):
        return "all" if value == "-1" else value
    raise InvalidRequest("acks must be 0, 1 or all")


def parse_int(raw: str) -> int | None:
    """A decimal integer as a query string spells it (within 64 bits), or None."""
    if not INTEGER_PATTERN.fullmatch(raw):
        return None
    value = int(raw)
    return value if -MAX_INT64 - 1 <= value <= MAX_INT64 else None


def int_param(
    query: Any, name: str, default: int | None, *, minimum: int = 0, maximum: int | None = None
) -> int:
    raw = query.get(name)
    if raw is None:
        if default is None:
            raise InvalidRequest(f"the query parameter {name} is required")
        return default
    value = parse_int(raw)
    if value is None:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise InvalidRequest(f"{name} must be a 64-bit integer, got {shown!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f" and at most {maximum}" if maximum is not None else ""
        raise InvalidRequest(f"{name} must be at least {minimum}{bound}, got {value}")
    return value
