"""The replica fetch protocol's messages and their wire form (POST /internal/replica/fetch).

Pure: values to bytes and back; it never sends anything. A follower sends one request per
leader broker covering every partition it follows there (Kafka's fetcher per source
broker), as compact JSON. The answer is binary so record batches travel as the leader
stored them, never decoded or re-encoded:

    magic b"RKF1" | header_length uint32 (big-endian) | header (JSON) | records of each
    partition, back to back, in header order

Each partition's entry in a request or header is a JSON array in the field order of its
dataclass below (thousands of partitions per request: field names would double its size).
Decoding never trusts its input: anything malformed raises ValueError.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import orjson

from raftka.replication.follower import FetchAnswer
from raftka.replication.leader import FetchVerdict

ANSWER_MAGIC = b"RKF1"
_HEADER_LENGTH = struct.Struct(">I")
MAX_HEADER_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class PartitionFetch:
    topic: str
    topic_id: str
    partition: int
    leader_epoch: int
    fetch_offset: int
    last_fetched_epoch: int


@dataclass(frozen=True, slots=True)
class FetchRequest:
    replica_id: int
    max_wait_ms: int
    max_bytes: int
    partitions: tuple[PartitionFetch, ...]


@dataclass(frozen=True, slots=True)
class PartitionAnswer:
    topic: str
    partition: int
    answer: FetchAnswer


def _int(value: Any, what: str) -> int:
    if type(value) is not int:
        raise ValueError(f"{what} must be an integer, got {value!r}")
    return value


def _str(value: Any, what: str) -> str:
    if type(value) is not str:
        raise ValueError(f"{what} must be a string, got {value!r}")
    return value


def encode_request(request: FetchRequest) -> bytes:
    return orjson.dumps(
        {
            "replica_id": request.replica_id,
            "max_wait_ms": request.max_wait_ms,
            "max_bytes": request.max_bytes,
            "partitions": [
                [
                    p.topic,
                    p.topic_id,
                    p.partition,
                    p.leader_epoch,
                    p.fetch_offset,
                    p.last_fetched_epoch,
                ]
                for p in request.partitions
            ],
        }
    )


def decode_request(raw: bytes) -> FetchRequest:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"fetch request is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("partitions"), list):
        raise ValueError("fetch request must be an object with a partitions list")
    partitions = []
    for i, entry in enumerate(doc["partitions"]):
        if not isinstance(entry, list) or len(entry) != 6:
            raise ValueError(f"partitions[{i}] must be a list of 6 fields")
        topic, topic_id, *numbers = entry
        n = [_int(v, f"partitions[{i}]") for v in numbers]
        partitions.append(
            PartitionFetch(
                _str(topic, f"partitions[{i}].topic"),
                _str(topic_id, f"partitions[{i}].topic_id"),
                *n,
            )
        )
    return FetchRequest(
        replica_id=_int(doc.get("replica_id"), "replica_id"),
        max_wait_ms=_int(doc.get("max_wait_ms"), "max_wait_ms"),
        max_bytes=_int(doc.get("max_bytes"), "max_bytes"),
        partitions=tuple(partitions),
    )


def encode_answer(answers: list[PartitionAnswer]) -> bytes:
    """The whole answer in one buffer: copying the records (~0.1 ms per MiB) costs less
    than writing each piece with a system call of its own, as the leader did (measured in
    docs/benchmarks.md, "Profile findings (issue 15)", section 8)."""
    header = []
    records: list[bytes | memoryview] = []
    for p in answers:
        a = p.answer
        diverging = a.diverging_epoch or (-1, -1)
        header.append(
            [
                p.topic,
                p.partition,
                a.verdict.value,
                a.high_watermark,
                a.log_start_offset,
                a.log_end_offset,
                diverging[0],
                diverging[1],
                len(a.records),
            ]
        )
        if len(a.records):
            records.append(a.records)
    head = orjson.dumps(header)
    return b"".join((ANSWER_MAGIC, _HEADER_LENGTH.pack(len(head)), head, *records))


def decode_answer(raw: bytes) -> list[PartitionAnswer]:
    view = memoryview(raw)
    magic_end = len(ANSWER_MAGIC)
    if bytes(view[:magic_end]) != ANSWER_MAGIC or len(raw) < magic_end + _HEADER_LENGTH.size:
        raise ValueError("not a replica fetch answer")
    (length,) = _HEADER_LENGTH.unpack_from(raw, magic_end)
    start = magic_end + _HEADER_LENGTH.size
    if length > MAX_HEADER_BYTES or start + length > len(raw):
        raise ValueError("replica fetch answer header is cut short")
    try:
        header = orjson.loads(view[start : start + length])
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"replica fetch answer header is not JSON: {exc}") from None
    if not isinstance(header, list):
        raise ValueError("replica fetch answer header must be a list")
    pos = start + length
    out = []
    for i, entry in enumerate(header):
        if not isinstance(entry, list) or len(entry) != 9:
            raise ValueError(f"answer[{i}] must be a list of 9 fields")
        topic = _str(entry[0], f"answer[{i}].topic")
        partition, hw, lso, leo, d_epoch, d_end, size = (
            _int(v, f"answer[{i}]") for v in (entry[1], *entry[3:])
        )
        try:
            verdict = FetchVerdict(entry[2])
        except ValueError:
            raise ValueError(f"answer[{i}] has an unknown verdict {entry[2]!r}") from None
        if size < 0 or pos + size > len(raw):
            raise ValueError(f"answer[{i}] records run past the end")
        records = view[pos : pos + size]
        pos += size
        diverging = (d_epoch, d_end) if verdict is FetchVerdict.DIVERGING else None
        out.append(
            PartitionAnswer(
                topic, partition, FetchAnswer(verdict, hw, lso, leo, diverging, records)
            )
        )
    if pos != len(raw):
        raise ValueError("replica fetch answer has trailing bytes")
    return out
