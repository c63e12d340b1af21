"""Which old segments retention deletes: a pure decision over (size, max timestamp) pairs.

It must never touch files; PartitionLog deletes what this module counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SegmentStats:
    size_bytes: int
    max_timestamp: int  # -1 when the segment holds no timestamp


def segments_to_delete(
    segments: Sequence[SegmentStats],
    *,
    now_ms: int,
    retention_ms: int | None,
    retention_bytes: int | None,
) -> int:
    """How many segments, oldest first, retention removes. The last (active) one never is.

    Time: a segment goes when its newest record is older than retention_ms. Bytes: the
    oldest segments go while the log is bigger than retention_bytes. Deletion stops at
    the first segment neither rule removes, so the log stays a contiguous suffix.
    """
    total = sum(s.size_bytes for s in segments)
    count = 0
    for stats in segments[:-1]:
        expired = retention_ms is not None and stats.max_timestamp < now_ms - retention_ms
        too_big = retention_bytes is not None and total > retention_bytes
        if not (expired or too_big):
            break
        total -= stats.size_bytes
        count += 1
    return count
