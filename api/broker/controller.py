"""The controller's duties, done by the broker that is the Raft leader: tracking brokers'
liveness (their committed heartbeats and their sessions), fencing the ones that went
silent, and moving leadership back to preferred replicas. The decisions are pure
(metadata/controller.py); this module times them and submits their commands."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from raftka.api.settings import Settings
from raftka.metadata.commands import Command
from raftka.metadata.controller import (
    BrokerLiveness,
    PreferredLeaderWatch,
    fence_commands,
    fence_continuations,
)
from raftka.metadata.errors import RaftkaError
from raftka.metadata.model import MetadataState
from raftka.metadata.quorum import MetadataQuorum
from raftka.metadata.state import Applied

log = logging.getLogger(__name__)

CONTROLLER_TICK_S = 0.25
SESSION_POLL_S = 0.1


def new_command_id() -> str:
    return uuid.uuid4().hex


class ControllerDuties:
    def __init__(
        self,
        broker_id: int,
        settings: Settings,
        quorum: Callable[[], MetadataQuorum | None],
        submit: Callable[[Command], Awaitable[Applied]],
    ) -> None:
        self._broker_id = broker_id
        self._settings = settings
        self._quorum = quorum
        self._submit = submit
        self._liveness = BrokerLiveness(
            settings.broker_session_timeout_ms, controller_id=broker_id, track_sessions=True
        )
        self._preferred_leaders = PreferredLeaderWatch()
        self._was_controller = False
        # (broker id, when): our session with that controller broke without a clean end.
        self._controller_lost: tuple[int, int] | None = None

    @property
    def active(self) -> bool:
        quorum = self._quorum()
        return quorum is not None and quorum.is_leader

    def follow(self, state: MetadataState, events: tuple[Any, ...], reset: bool) -> None:
        """A metadata listener: keeps the index of partitions away from their preferred
        leader current, at the cost of each change."""
        self._preferred_leaders.follow(state, events, reset)

    def heard_from(self, broker_id: int, applied_ms: int) -> None:
        """A broker's heartbeat committed at `applied_ms` (monotonic)."""
        self._liveness.heard_from(broker_id, applied_ms)

    def controller_died(self, broker_id: int, at_ms: int) -> None:
        """Our session with controller `broker_id` broke without its clean end: should we
        become the next controller, that broker counts as gone since `at_ms`."""
        self._controller_lost = (broker_id, at_ms)

    async def hold_session(self, broker_id: int, is_open: Callable[[], bool]) -> bool:
        """The controller's side of a broker's session: counts it open until the broker's
        connection closes or this broker stops being the controller; True in the latter
        case (the caller then sends the clean end)."""
        self._liveness.session_opened(broker_id, int(time.monotonic() * 1000))
        try:
            while is_open() and self.active:
                await asyncio.sleep(SESSION_POLL_S)
            return is_open()
        finally:
            self._liveness.session_closed(broker_id, int(time.monotonic() * 1000))

    async def loop(self) -> None:
        while True:
            await asyncio.sleep(CONTROLLER_TICK_S)
            try:
                await self.tick()
            except RaftkaError as exc:
                log.warning("controller: %s", exc.message)

    async def tick(self) -> None:
        quorum = self._quorum()
        if quorum is None or not quorum.is_leader:
            self._was_controller = False
            return
        now_ms = int(time.monotonic() * 1000)
        state = quorum.state
        if not self._was_controller:
            self._take_over(state, now_ms)
        for fence in fence_commands(self._liveness, state, now_ms, new_command_id):
            log.warning("controller: fencing broker %d", fence.broker_id)
            await self._submit(fence)
        # A big fence moves partitions off its broker a chunk per entry: the next chunk as
        # soon as the last one committed, so heartbeats never wait behind a whole fence.
        while quorum.is_leader and (chunks := fence_continuations(quorum.state, new_command_id)):
            for chunk in chunks:
                await self._submit(chunk)
        for election in self._preferred_leaders.elections(quorum.state, new_command_id):
            await self._submit(election)

    def _take_over(self, state: MetadataState, now_ms: int) -> None:
        # A new controller has heard from nobody yet: everyone gets a full session, but a
        # previous controller we saw die is as good as a closed session.
        self._liveness.reset(now_ms, list(state.brokers))
        if self._controller_lost is not None:
            lost, at_ms = self._controller_lost
            if (
                lost != self._broker_id
                and now_ms - at_ms < self._settings.broker_session_timeout_ms
            ):
                self._liveness.session_closed(lost, at_ms)
            self._controller_lost = None
        self._was_controller = True
        log.info("broker %d is now the controller", self._broker_id)
