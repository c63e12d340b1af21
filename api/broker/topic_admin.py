"""Creating and deleting topics: a metadata command each, answered once it has committed
and been applied here. The rules (names, placement, limits) live in metadata/."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from raftka.metadata.commands import Command, CreateTopic, DeleteTopic
from raftka.metadata.errors import UnknownTopic
from raftka.metadata.model import TopicRecord
from raftka.metadata.state import Applied


class TopicAdmin:
    def __init__(self, submit: Callable[[Command], Awaitable[Applied]]) -> None:
        self._submit = submit

    async def create(self, command: CreateTopic) -> TopicRecord:
        applied = await self._submit(command)
        topic = applied.state.topics.get(command.name)
        if topic is None:  # deleted again before this answer
            raise UnknownTopic(f"topic {command.name!r} was deleted meanwhile")
        return topic

    async def delete(self, name: str) -> None:
        await self._submit(DeleteTopic(command_id=uuid.uuid4().hex, name=name))
