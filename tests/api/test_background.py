"""BackgroundWrites: acks=0 writes run after the answer, but never more than `limit` at once."""

import asyncio

import pytest

from raftka.api.http.background_writes import BackgroundWrites

WAIT_S = 10.0


async def gated(gate: asyncio.Event, done: list[str], name: str) -> None:
    await gate.wait()
    done.append(name)


async def test_under_the_limit_a_write_goes_on_after_submit_returns() -> None:
    writes = BackgroundWrites(limit=2)
    gate, done = asyncio.Event(), []
    await asyncio.wait_for(writes.submit(gated(gate, done, "a")), WAIT_S)
    assert writes.in_flight == 1 and done == []
    gate.set()
    while writes.in_flight:
        await asyncio.sleep(0)
    assert done == ["a"]


async def test_at_the_limit_a_caller_waits_for_its_own_write() -> None:
    writes = BackgroundWrites(limit=1)
    first_gate, second_gate, done = asyncio.Event(), asyncio.Event(), []
    await writes.submit(gated(first_gate, done, "first"))
    second = asyncio.ensure_future(writes.submit(gated(second_gate, done, "second")))
    await asyncio.sleep(0)
    assert not second.done()  # pushed back: it runs its write itself
    assert writes.in_flight == 1  # and the backlog did not grow
    second_gate.set()
    await asyncio.wait_for(second, WAIT_S)
    assert done == ["second"]
    first_gate.set()


async def test_a_failed_background_write_leaves_the_set() -> None:
    writes = BackgroundWrites(limit=4)

    async def fails() -> None:
        raise OSError("disk gone")

    await writes.submit(fails())
    while writes.in_flight:
        await asyncio.sleep(0)


async def test_a_pushed_back_write_reports_its_error_to_the_caller() -> None:
    writes = BackgroundWrites(limit=0)

    async def fails() -> None:
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        await writes.submit(fails())
