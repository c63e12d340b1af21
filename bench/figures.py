"""Pure arithmetic of the benchmarks: latency percentiles and medians over rounds.

No clock, no I/O: samples in, figures out, so the report's numbers can be tested alone.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

MS_PER_S = 1000.0
BYTES_PER_MB = 1_000_000


@dataclass(frozen=True, slots=True)
class Latency:
    """Milliseconds; all zero when there were no samples."""

    samples: int
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of sorted samples: the smallest sample that at least
    `fraction` of all samples are not above (so p99 of 10 samples is the largest)."""
    if not ordered:
        raise ValueError("no samples")
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    rank = math.ceil(fraction * len(ordered))
    return ordered[rank - 1]


def latency(seconds: Sequence[float]) -> Latency:
    if not seconds:
        return Latency(0, 0.0, 0.0, 0.0, 0.0)
    ordered = sorted(seconds)
    return Latency(
        samples=len(ordered),
        p50_ms=percentile(ordered, 0.5) * MS_PER_S,
        p99_ms=percentile(ordered, 0.99) * MS_PER_S,
        p999_ms=percentile(ordered, 0.999) * MS_PER_S,
        max_ms=ordered[-1] * MS_PER_S,
    )


def rate(count: float, elapsed_s: float) -> float:
    """Per second; 0 for an empty or instant measurement rather than a division error."""
    return count / elapsed_s if elapsed_s > 0 else 0.0


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("no values")
    return float(statistics.median(values))
