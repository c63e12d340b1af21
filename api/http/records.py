"""Parsing and validating request bodies into what the log stores. Pure: no I/O.

A produced record becomes `(partition or None, key bytes for the partitioner or None,
timestamp or None, body)` where `body` is the JSON text of the fields a consumer reads
back (`"key":..,"value":..,"headers":{..}`, or the `_b64` forms as written): the log
stores it as is, so a fetch never re-encodes a record.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from typing import Any

import orjson

from raftka.metadata.errors import InvalidRequest
from raftka.replication.producer_state import ProducerRef

RECORD_FIELDS = frozenset(
    {"key", "key_b64", "value", "value_b64", "headers", "partition", "timestamp"}
)
PLAIN_RECORD_FIELDS = frozenset({"key", "value"})
MAX_TIMESTAMP_MS = 2**62
# int() alone would also take "1_000", " 7 " and non-ASCII digits such as "٣".
INTEGER_PATTERN = re.compile(r"-?[0-9]+")

ParsedRecord = tuple[int | None, bytes | None, int | None, bytes]
# The batch header's widths: producer_id int64, producer_epoch int16, base_sequence int32.
MAX_SEQUENCE = 2**31 - 1
PRODUCER_FIELD_LIMITS = {"id": 2**63 - 1, "epoch": 2**15 - 1, "sequence": MAX_SEQUENCE}


@dataclass(frozen=True, slots=True)
class ProduceRequest:
    records: list[ParsedRecord]
    producer: ProducerRef | None


def load_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from None


def json_object(raw: bytes) -> dict[str, Any]:
    doc = load_json(raw) if raw else {}
    if not isinstance(doc, dict):
        raise InvalidRequest("the body must be a JSON object")
    return doc


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidRequest(f"{where} must be a base64 string")
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{where} is not valid base64") from None


def parse_record(rec: Any, i: int) -> ParsedRecord:
    if type(rec) is dict and rec.keys() <= PLAIN_RECORD_FIELDS and "value" in rec:
        # The common record: a value and maybe a string key. Same bytes as the general
        # path below, with none of its per-field checks (hot path: once per record).
        key = rec.get("key")
        if key is None or type(key) is str:
            body = orjson.dumps({"key": key, "value": rec["value"], "headers": {}})[1:-1]
            return None, None if key is None else key.encode(), None, body
    if type(rec) is not dict:
        raise InvalidRequest(f"records[{i}] must be an object")
    unknown = rec.keys() - RECORD_FIELDS
    if unknown:
        raise InvalidRequest(f"records[{i}] has unknown fields: {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    key_bytes: bytes | None = None
    if "key_b64" in rec:
        if "key" in rec:
            raise InvalidRequest(f"records[{i}] has both key and key_b64")
        key_bytes = _b64(rec["key_b64"], f"records[{i}].key_b64")
        out["key_b64"] = rec["key_b64"]
    else:
        key = rec.get("key")
        if key is not None:
            key_bytes = key.encode() if type(key) is str else orjson.dumps(key)
        out["key"] = key
    if "value_b64" in rec:
        if "value" in rec:
            raise InvalidRequest(f"records[{i}] has both value and value_b64")
        _b64(rec["value_b64"], f"records[{i}].value_b64")
        out["value_b64"] = rec["value_b64"]
    elif "value" in rec:
        out["value"] = rec["value"]
    else:
        raise InvalidRequest(f"records[{i}] needs a value (or value_b64)")
    headers = rec.get("headers")
    if headers is None:
        out["headers"] = {}
    elif type(headers) is dict and all(type(v) is str for v in headers.values()):
        out["headers"] = headers
    else:
        raise InvalidRequest(f"records[{i}].headers must be an object of string values")
    partition = rec.get("partition")
    if partition is not None and (not is_int(partition) or partition < 0):
        raise InvalidRequest(f"records[{i}].partition must be a non-negative integer")
    timestamp = rec.get("timestamp")
    if timestamp is not None and (not is_int(timestamp) or not 0 <= timestamp < MAX_TIMESTAMP_MS):
        raise InvalidRequest(f"records[{i}].timestamp must be a non-negative integer (ms)")
    return partition, key_bytes, timestamp, orjson.dumps(out)[1:-1]


def parse_produce(raw: bytes) -> ProduceRequest:
    doc = json_object(raw)
    unknown = doc.keys() - {"records", "producer"}
    if unknown:
        raise InvalidRequest(f"unknown fields: {', '.join(sorted(unknown))}")
    records = doc.get("records")
    if not isinstance(records, list) or not records:
        raise InvalidRequest("records must be a non-empty list")
    parsed = [parse_record(rec, i) for i, rec in enumerate(records)]
    producer = None
    if (p := doc.get("producer")) is not None:
        producer = parse_producer(p, len(parsed))
    return ProduceRequest(parsed, producer)


def parse_producer(p: Any, record_count: int) -> ProducerRef:
    """`{"id", "epoch", "sequence"}` within the widths the batch header stores them in."""
    if not isinstance(p, dict) or p.keys() != {"id", "epoch", "sequence"}:
        raise InvalidRequest("producer must be exactly {id, epoch, sequence}")
    for name, limit in PRODUCER_FIELD_LIMITS.items():
        value = p[name]
        if not is_int(value) or not 0 <= value <= limit:
            raise InvalidRequest(f"producer.{name} must be an integer from 0 to {limit}")
    if p["sequence"] + record_count - 1 > MAX_SEQUENCE:
        raise InvalidRequest(
            f"producer.sequence {p['sequence']} + {record_count} records passes {MAX_SEQUENCE}"
        )
    return ProducerRef(p["id"], p["epoch"], p["sequence"])


def parse_acks(value: str | None) -> str:
    if value is None:
        return "all"
    if value in ("0", "1", "all", "-1"):
        return "all" if value == "-1" else value
    raise InvalidRequest("acks must be 0, 1 or all")


def parse_int(raw: str) -> int | None:
    """A decimal integer as a query string spells it, or None."""
    return int(raw) if INTEGER_PATTERN.fullmatch(raw) else None


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
        raise InvalidRequest(f"{name} must be an integer, got {raw!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f" and at most {maximum}" if maximum is not None else ""
        raise InvalidRequest(f"{name} must be at least {minimum}{bound}, got {value}")
    return value
