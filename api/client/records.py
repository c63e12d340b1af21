"""Records as the client hands them out (`Record`) and their wire form. Pure: no I/O.

A value or key may be any JSON value; `bytes` travel as `value_b64`/`key_b64` and come
back as `bytes`. The key bytes the partitioner hashes are the broker's: a string's UTF-8,
raw bytes as they are, any other JSON value its compact JSON text.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

from raftka.api.partitioner import partition_for_key

Headers = dict[str, str]


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed record."""

    topic: str
    partition: int
    offset: int
    key: Any
    value: Any
    headers: Headers
    timestamp: int | None


def key_bytes(key: Any) -> bytes | None:
    """The bytes the broker's partitioner hashes for `key` (None: no key)."""
    if key is None:
        return None
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode()
    return orjson.dumps(key)


def partition_for(key: Any, partitions: int) -> int | None:
    """Kafka's default partition for a keyed record, as the broker would choose it."""
    data = key_bytes(key)
    return None if data is None else partition_for_key(data, partitions)


def encode_record(
    value: Any, key: Any = None, headers: Headers | None = None, timestamp: int | None = None
) -> dict[str, Any]:
    """The produce request's form of one record."""
    record: dict[str, Any] = {}
    if isinstance(key, bytes):
        record["key_b64"] = base64.b64encode(key).decode()
    elif key is not None:
        record["key"] = key
    if isinstance(value, bytes):
        record["value_b64"] = base64.b64encode(value).decode()
    else:
        record["value"] = value
    if headers:
        for name, v in headers.items():
            if not isinstance(name, str) or not isinstance(v, str):
                raise TypeError("headers map strings to strings")
        record["headers"] = headers
    if timestamp is not None:
        record["timestamp"] = timestamp
    return record


def decode_record(topic: str, partition: int, doc: dict[str, Any]) -> Record:
    """A fetched record (`{"offset", "timestamp", "key"|"key_b64", "value"|"value_b64",
    "headers"}`) as a `Record`."""
    key = base64.b64decode(doc["key_b64"]) if "key_b64" in doc else doc.get("key")
    value = base64.b64decode(doc["value_b64"]) if "value_b64" in doc else doc.get("value")
    return Record(
        topic=doc.get("topic", topic),
        partition=doc.get("partition", partition),
        offset=doc["offset"],
        key=key,
        value=value,
        headers=doc.get("headers") or {},
        timestamp=doc.get("timestamp"),
    )


def record_json(record: Record) -> dict[str, Any]:
    """A record as one JSON object (what `raftka consume` prints); bytes as `_b64`."""
    out: dict[str, Any] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
    }
    if isinstance(record.key, bytes):
        out["key_b64"] = base64.b64encode(record.key).decode()
    else:
        out["key"] = record.key
    if isinstance(record.value, bytes):
        out["value_b64"] = base64.b64encode(record.value).decode()
    else:
        out["value"] = record.value
    out["headers"] = record.headers
    return out
