"""Producer ids for idempotent producers, handed out from blocks reserved through the
metadata log (as Kafka's AllocateProducerIds), so most allocations cost no Raft write."""

from __future__ import annotations

import collections
import uuid
from collections.abc import Awaitable, Callable

from raftka.metadata.commands import AllocateProducerIds, Command
from raftka.metadata.events import ProducerIdsAllocated
from raftka.metadata.state import Applied

PRODUCER_ID_BLOCK_SIZE = 1000


class ProducerIdAllocator:
    def __init__(self, broker_id: int, submit: Callable[[Command], Awaitable[Applied]]) -> None:
        self._broker_id = broker_id
        self._submit = submit
        self._ids: collections.deque[int] = collections.deque()

    async def allocate(self) -> int:
        if not self._ids:
            applied = await self._submit(
                AllocateProducerIds(
                    command_id=uuid.uuid4().hex,
                    broker_id=self._broker_id,
                    count=PRODUCER_ID_BLOCK_SIZE,
                )
            )
            block = next(e for e in applied.events if isinstance(e, ProducerIdsAllocated))
            self._ids.extend(range(block.first_id, block.first_id + block.count))
        return self._ids.popleft()
