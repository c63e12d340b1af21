"""The broker's lease: its registration and the heartbeats that keep it alive in the
metadata log. A broker leads partitions only while its own heartbeats commit, so one cut
off from the quorum stops leading before the controller can fence and replace it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from raftka.api.settings import BrokerAddress, Settings
from raftka.metadata.commands import BrokerHeartbeat, Command, RegisterBroker
from raftka.metadata.errors import RaftkaError
from raftka.metadata.state import Applied

log = logging.getLogger(__name__)

REGISTER_RETRY_S = 0.5
# Codes with which the quorum says "register again" (we restarted, or were forgotten).
REREGISTER_CODES = frozenset({"UNKNOWN_BROKER", "STALE_BROKER_INCARNATION"})


class BrokerLease:
    """Registers this incarnation and heartbeats; `on_heartbeat` runs after each committed
    heartbeat (a read barrier: the local state then holds everything committed before)."""

    def __init__(
        self,
        address: BrokerAddress,
        incarnation_id: str,
        settings: Settings,
        submit: Callable[[Command], Awaitable[Applied]],
        on_heartbeat: Callable[[], None],
    ) -> None:
        self._address = address
        self._incarnation_id = incarnation_id
        self._settings = settings
        self._submit = submit
        self._on_heartbeat = on_heartbeat
        self._renewed_at = float("-inf")

    @property
    def held(self) -> bool:
        """True while our heartbeats commit: a broker cut off from the quorum for a
        session timeout may already be fenced and replaced, so it stops leading. The
        lease is timed from when the heartbeat was *sent* and ends one heartbeat interval
        early, so it runs out before the controller (which heard it later) can fence us."""
        s = self._settings
        lease_ms = s.broker_session_timeout_ms - s.broker_heartbeat_interval_ms
        return (time.monotonic() - self._renewed_at) * 1000 < lease_ms

    async def register(self, *, clean_shutdown: bool) -> None:
        """Registers this incarnation, retrying until the quorum answers."""
        broker_id = self._address.broker_id
        command = RegisterBroker(
            command_id=f"register-{broker_id}-{self._incarnation_id}",
            broker_id=broker_id,
            url=self._address.url,
            incarnation_id=self._incarnation_id,
            raft_voter=self._address.raft is not None,
            clean_shutdown=clean_shutdown,
        )
        while True:
            sent_at = time.monotonic()
            try:
                await self._submit(command)
            except RaftkaError as exc:
                log.warning("broker %d registration failed: %s", broker_id, exc.message)
                await asyncio.sleep(REGISTER_RETRY_S)
                continue
            self._renewed_at = sent_at
            log.info(
                "broker %d registered (%s shutdown before)",
                broker_id,
                "clean" if clean_shutdown else "unclean",
            )
            return

    async def heartbeat_loop(self, *, clean_shutdown: bool) -> None:
        interval_s = self._settings.broker_heartbeat_interval_ms / 1000
        broker_id = self._address.broker_id
        heartbeat = BrokerHeartbeat(
            command_id="", broker_id=broker_id, incarnation_id=self._incarnation_id
        )
        while True:
            await asyncio.sleep(interval_s)
            sent_at = time.monotonic()
            try:
                await self._submit(heartbeat)
            except RaftkaError as exc:
                log.warning("broker %d heartbeat failed: %s", broker_id, exc.message)
                if exc.code in REREGISTER_CODES:
                    await self.register(clean_shutdown=clean_shutdown)
                continue
            self._renewed_at = sent_at
            self._on_heartbeat()
