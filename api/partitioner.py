"""Which partition a produced record goes to: Kafka's default partitioner.

Keyed records go to `(murmur2(key bytes) & 0x7fffffff) % partitions`, so keys land where a
Kafka client would put them. Keyless records use Kafka's sticky partitioner (KIP-480): all
keyless records of one request go to one partition, and the partition rotates between
requests, so a request is one write (and at most one forward), not one per partition.
Pure: no I/O.
"""

from __future__ import annotations

import itertools

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK32 = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's `Utils.murmur2`: a signed 32-bit MurmurHash2 with Kafka's seed."""
    length = len(data)
    h = (_SEED ^ length) & _MASK32
    tail_start = length - (length & 3)
    for i in range(0, tail_start, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK32
        k ^= k >> 24
        k = (k * _M) & _MASK32
        h = (h * _M) & _MASK32
        h ^= k
    remaining = length & 3
    if remaining == 3:
        h ^= data[tail_start + 2] << 16
    if remaining >= 2:
        h ^= data[tail_start + 1] << 8
    if remaining >= 1:
        h ^= data[tail_start]
        h = (h * _M) & _MASK32
    h ^= h >> 13
    h = (h * _M) & _MASK32
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class StickyPartitioner:
    """The partition of each request's keyless records: one per request, rotating over the
    topic's partitions from one request to the next (one counter per topic)."""

    def __init__(self) -> None:
        self._counters: dict[str, itertools.count[int]] = {}

    def partition_for_request(self, topic: str, partitions: int) -> int:
        counter = self._counters.get(topic)
        if counter is None:
            counter = self._counters[topic] = itertools.count()
        return next(counter) % partitions
