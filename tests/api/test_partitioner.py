"""Kafka's default partitioner: murmur2 must match the Java client bit for bit; keyless
records stick to one partition per request (KIP-480)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftka.api.partitioner import StickyPartitioner, murmur2, partition_for_key

# org.apache.kafka.common.utils.UtilsTest#testMurmur2
KAFKA_VECTORS = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]


@pytest.mark.parametrize(("data", "expected"), KAFKA_VECTORS)
def test_murmur2_matches_kafkas_test_vectors(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_partition_uses_the_positive_hash_modulo_the_count() -> None:
    # (-790332482 & 0x7fffffff) % 50 == 1357151166 % 50
    assert partition_for_key(b"foobar", 50) == 1357151166 % 50


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=1000))
def test_partition_is_in_range_and_stable(key: bytes, partitions: int) -> None:
    p = partition_for_key(key, partitions)
    assert 0 <= p < partitions
    assert partition_for_key(key, partitions) == p
    assert -(2**31) <= murmur2(key) < 2**31


def test_the_sticky_partition_rotates_between_requests_per_topic() -> None:
    sticky = StickyPartitioner()
    assert [sticky.partition_for_request("a", 3) for _ in range(6)] == [0, 1, 2, 0, 1, 2]
    assert sticky.partition_for_request("b", 2) == 0
    assert sticky.partition_for_request("a", 3) == 0


@given(st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=30))
def test_the_sticky_partition_is_in_range_and_never_repeats_with_more_than_one(
    counts: list[int],
) -> None:
    sticky = StickyPartitioner()
    previous = None
    for count in counts:
        p = sticky.partition_for_request("t", count)
        assert 0 <= p < count
        if previous is not None and count == previous[1] and count > 1:
            assert p != previous[0]
        previous = (p, count)
