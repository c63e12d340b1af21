"""The produce answer, `{"offsets": [{"partition": P, "offset": N}, ...]}`, as bytes. Pure.

Its cost is per record, so it is built without Python code per record. A run of
consecutive offsets of one partition is cut from a cached text that holds an entry for
every offset suffix 000..999 with the offset's leading digits left as `@` (entries of equal
width, so a run is one slice), the leading digits put in by one `bytes.replace`: about a
tenth of a `%` format with an int per record (docs/benchmarks.md, "Profile findings").
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

SUFFIXES = 1000  # an offset is written as its leading digits and a 3-digit suffix
SUFFIX_RUNS_CACHED = 64  # partitions whose suffix text is kept (about 33 KB each)
_LEADING = b"@"

# The records of one request bound for each partition: their places in the request.
Writes = dict[int, Sequence[int]]


@lru_cache(maxsize=SUFFIX_RUNS_CACHED)
def _suffix_run(partition: int) -> tuple[bytes, int]:
    """Every suffix's entry, joined by commas, and an entry's width with its comma."""
    entry = b'{"partition":%d,"offset":@%%03d}' % partition
    return b",".join(entry % s for s in range(SUFFIXES)), len(entry % 0) + 1


def _consecutive(partition: int, base: int, count: int) -> bytes:
    """The entries of offsets base..base+count-1, joined by commas."""
    if base < SUFFIXES or count > SUFFIXES:  # no leading digits (a suffix's zeros would lead)
        entry = b'{"partition":%d,"offset":%%d}' % partition
        return b",".join(map(entry.__mod__, range(base, base + count)))
    run, width = _suffix_run(partition)
    leading, start = divmod(base, SUFFIXES)
    end = start + count
    if end <= SUFFIXES:
        return run[start * width : end * width - 1].replace(_LEADING, b"%d" % leading)
    first = run[start * width :].replace(_LEADING, b"%d" % leading)
    rest = run[: (end - SUFFIXES) * width - 1].replace(_LEADING, b"%d" % (leading + 1))
    return first + b"," + rest


def offsets_answer(writes: Writes, count: int, bases: dict[int, int] | None) -> bytes:
    """The answer for `count` records in request order, the records of partition p taking
    offsets from bases[p] on; offsets null when `bases` is None (acks=0)."""
    if len(writes) == 1:
        ((p, _),) = writes.items()
        if bases is None:
            entries = b",".join([b'{"partition":%d,"offset":null}' % p] * count)
        else:
            entries = _consecutive(p, bases[p], count)
        return b'{"offsets":[' + entries + b"]}"
    answer: list[bytes] = [b""] * count
    for p, indexes in writes.items():
        if bases is None:
            for i in indexes:
                answer[i] = b'{"partition":%d,"offset":null}' % p
        else:
            for offset, i in enumerate(indexes, bases[p]):
                answer[i] = b'{"partition":%d,"offset":%d}' % (p, offset)
    return b'{"offsets":[' + b",".join(answer) + b"]}"
