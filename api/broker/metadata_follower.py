"""Follows the metadata log on this broker: each applied command reaches the event loop
in commit order and costs what it changed (KRaft's metadata delta). A partition's leader
or ISR change updates that replica alone, a topic created or deleted reconciles that topic
alone; a broker's fencing, unfencing or registration changes nothing here but the
partitions it moved, which come as their own events. Only a snapshot install reconciles
everything."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from raftka.metadata.events import (
    BrokerHeartbeatReceived,
    PartitionChanged,
    TopicCreated,
    TopicDeleted,
)
from raftka.metadata.model import MetadataState
from raftka.replication.manager import ReplicaManager

log = logging.getLogger(__name__)

MetadataListener = Callable[[MetadataState, tuple[Any, ...], bool], None]


class MetadataFollower:
    def __init__(
        self,
        replicas: ReplicaManager,
        latest_state: Callable[[], MetadataState | None],
        heard_from: Callable[[int, int], None],
    ) -> None:
        self._replicas = replicas
        self._latest_state = latest_state
        self._heard_from = heard_from
        self._loop: asyncio.AbstractEventLoop | None = None
        # Called on the loop, in commit order, with each applied command's state and events
        # (`reset` for a snapshot install): the group coordinator follows the metadata so.
        self.listeners: list[MetadataListener] = []
        # True once the local state is known complete (our registration was applied).
        self.complete = False
        # What the changes ask of the replicas, done by `reconcile_loop` on the latest
        # state: a full reconcile (snapshot install), else the topics named here.
        self._wanted = asyncio.Event()
        self._full = False
        self._full_is_complete = True
        self._topics: set[str] = set()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def applied_on_raft_thread(
        self, state: MetadataState, events: tuple[Any, ...], reset: bool
    ) -> None:
        """The quorum's listener, called on pysyncobj's thread."""
        loop = self._loop
        if loop is None:
            return
        # The time of the apply, not of the loop's turn: a heartbeat is heard when it
        # commits, however busy the loop is.
        applied_ms = int(time.monotonic() * 1000)
        with contextlib.suppress(RuntimeError):  # loop closed during shutdown
            loop.call_soon_threadsafe(self._applied, state, events, reset, applied_ms)

    def _applied(
        self, state: MetadataState, events: tuple[Any, ...], reset: bool, applied_ms: int
    ) -> None:
        for listener in self.listeners:
            listener(state, events, reset)
        if reset:
            # A snapshot install may carry an older state (shared/notes/pysyncobj.md, bug 2):
            # act on its roles (epoch-fenced) but move nothing aside on its word.
            self._want_full(complete=False)
            return
        for event in events:
            if isinstance(event, BrokerHeartbeatReceived):
                self._heard_from(event.broker_id, applied_ms)
            elif isinstance(event, PartitionChanged):
                topic = state.topics.get(event.topic)
                handled = topic is None or self._replicas.partition_changed(topic, event.partition)
                if self.complete and not handled:
                    self._want_topic(event.topic)
            elif isinstance(event, TopicCreated | TopicDeleted):
                self._want_topic(event.name)

    def _want_full(self, *, complete: bool) -> None:
        self._full = True
        self._full_is_complete = complete
        self._wanted.set()

    def _want_topic(self, name: str) -> None:
        self._topics.add(name)
        self._wanted.set()

    async def reconcile_loop(self) -> None:
        """Reconciles, one at a time, on the latest state (changes coalesce): a full one
        when a snapshot was installed, else the topics that were created or deleted."""
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            state = self._latest_state()
            if state is None:
                continue
            full, self._full = self._full, False
            topics, self._topics = self._topics, set()
            try:
                if full:
                    await self._replicas.reconcile(state, complete=self._full_is_complete)
                elif topics:
                    await self._replicas.reconcile_topics(state, topics)
            except Exception:
                log.exception("reconciling the replicas with the metadata failed")
