"""The produce answer (api/http/offsets_answer.py) against the obvious encoding of it."""

import orjson
from hypothesis import given
from hypothesis import strategies as st

from raftka.api.http.offsets_answer import SUFFIXES, offsets_answer


def expected(partition_of: list[int], bases: dict[int, int] | None) -> bytes:
    next_offset = dict(bases or {})
    offsets = []
    for p in partition_of:
        offsets.append({"partition": p, "offset": None if bases is None else next_offset[p]})
        if bases is not None:
            next_offset[p] += 1
    return orjson.dumps({"offsets": offsets})


# Around the places where the cut changes: no leading digits, a suffix run's end, a digit more.
offsets = st.integers(0, 2**62) | st.sampled_from([0, 999, 1000, 1999, 9_000, 99_999, 10**6 - 5])


@given(
    partition=st.integers(0, 10_000),
    base=offsets,
    count=st.integers(1, 3 * SUFFIXES) | st.sampled_from([1, SUFFIXES - 1, SUFFIXES, 200]),
)
def test_one_partition_answers_its_consecutive_offsets(
    partition: int, base: int, count: int
) -> None:
    writes = {partition: range(count)}
    assert offsets_answer(writes, count, {partition: base}) == expected(
        [partition] * count, {partition: base}
    )
    assert offsets_answer(writes, count, None) == expected([partition] * count, None)


@given(
    partition_of=st.lists(st.integers(0, 3), min_size=1, max_size=30),
    base=offsets,
    acks0=st.booleans(),
)
def test_several_partitions_answer_in_request_order(
    partition_of: list[int], base: int, acks0: bool
) -> None:
    writes: dict[int, list[int]] = {}
    for i, p in enumerate(partition_of):
        writes.setdefault(p, []).append(i)
    bases = None if acks0 else {p: base + 7 * p for p in writes}
    assert offsets_answer(dict(writes), len(partition_of), bases) == expected(partition_of, bases)
