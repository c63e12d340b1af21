"""The broker raises its open files limit to the hard limit at start, and segment files get
a share of it."""

import resource
from collections.abc import Iterator

import pytest

from raftka.api.broker.open_files import (
    MIN_SEGMENT_FILES,
    default_max_open_files,
    raise_open_files_limit,
)
from raftka.api.settings import ConfigError, Settings

LOWERED_SOFT_LIMIT = 512


@pytest.fixture
def lowered_soft_limit() -> Iterator[int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= LOWERED_SOFT_LIMIT:
        pytest.skip(f"the hard limit ({hard}) leaves nothing to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (LOWERED_SOFT_LIMIT, hard))
    try:
        yield hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_soft_limit_is_raised_to_the_hard_limit_and_logged(
    lowered_soft_limit: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    before, after = raise_open_files_limit()
    assert before == LOWERED_SOFT_LIMIT
    assert after == resource.getrlimit(resource.RLIMIT_NOFILE)[0] > LOWERED_SOFT_LIMIT
    if lowered_soft_limit != resource.RLIM_INFINITY:
        assert after == lowered_soft_limit
    assert f"open files limit (RLIMIT_NOFILE): {LOWERED_SOFT_LIMIT}, raised to {after}" in (
        caplog.text
    )


@pytest.mark.parametrize(
    ("limit", "pool"), [(1_048_576, 524_288), (20_000, 10_000), (256, 128), (20, 16)]
)
def test_segment_files_get_half_the_limit_and_at_least_a_few(limit: int, pool: int) -> None:
    assert default_max_open_files(limit) == pool
    assert default_max_open_files(1) == MIN_SEGMENT_FILES


@pytest.mark.parametrize("value", [0, -1, True, "many"])
def test_max_open_files_must_be_a_positive_integer(value: object) -> None:
    with pytest.raises(ConfigError, match="max_open_files"):
        Settings(max_open_files=value)  # type: ignore[arg-type]


def test_max_partitions_per_broker_must_be_a_positive_integer() -> None:
    with pytest.raises(ConfigError, match="max_partitions_per_broker"):
        Settings(max_partitions_per_broker=0)
