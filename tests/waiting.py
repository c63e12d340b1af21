"""Waiting on a condition in an async test: polled, with a generous deadline, never a
fixed sleep."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

DEADLINE_S = 20.0


async def eventually(
    condition: Callable[[], bool],
    what: str,
    *,
    deadline_s: float = DEADLINE_S,
    poll_s: float = 0.01,
) -> None:
    """Returns once `condition()` holds; fails the test naming `what` after `deadline_s`."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(poll_s)
