"""Percentiles and rates: nearest rank, so a reported p99 is always a latency that was seen."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftka.bench.figures import latency, percentile, rate


@pytest.mark.parametrize(
    ("samples", "fraction", "expected"),
    [
        ([5.0], 0.5, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 0.75, 3.0),
        ([float(i) for i in range(1, 11)], 0.99, 10.0),
        ([float(i) for i in range(1, 1001)], 0.99, 990.0),
        ([float(i) for i in range(1, 1001)], 0.999, 999.0),
        ([float(i) for i in range(1, 1001)], 1.0, 1000.0),
    ],
)
def test_percentile_is_the_nearest_rank(
    samples: list[float], fraction: float, expected: float
) -> None:
    assert percentile(samples, fraction) == expected


def test_percentile_refuses_no_samples_and_fractions_outside_0_1() -> None:
    with pytest.raises(ValueError):
        percentile([], 0.5)
    with pytest.raises(ValueError):
        percentile([1.0], 0.0)


@given(st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=300))
def test_latency_percentiles_are_seen_samples_in_order(seconds: list[float]) -> None:
    lat = latency(seconds)
    assert lat.samples == len(seconds)
    assert lat.p50_ms <= lat.p99_ms <= lat.p999_ms <= lat.max_ms == max(seconds) * 1000
    assert {lat.p50_ms, lat.p99_ms, lat.p999_ms} <= {s * 1000 for s in seconds}


def test_latency_of_nothing_is_zero_and_rate_of_no_time_is_zero() -> None:
    assert latency([]).samples == 0 and latency([]).max_ms == 0
    assert rate(10, 0.0) == 0.0
    assert rate(10, 2.0) == 5.0
