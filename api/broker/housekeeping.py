"""The broker's periodic upkeep of its replicas and disk: retention, high-watermark
checkpoints, ISR checks, and the disk's reserve file. Each loop does its work in the
replica manager or a worker thread; none of it is on a request's path."""

from __future__ import annotations

import asyncio
import logging
import time

from raftka.api.settings import Settings
from raftka.replication.manager import ReplicaManager
from raftka.storage.disk import DiskSpace

log = logging.getLogger(__name__)

# How often the disk's free space is read to make the reserve file again once space is back.
DISK_CHECK_INTERVAL_S = 1.0


class Housekeeping:
    def __init__(self, settings: Settings, replicas: ReplicaManager, disk: DiskSpace) -> None:
        self._settings = settings
        self._replicas = replicas
        self._disk = disk

    async def retention_loop(self) -> None:
        interval_s = self._settings.log_retention_check_interval_ms / 1000
        while True:
            await asyncio.sleep(interval_s)
            deleted = await self._replicas.apply_retention(int(time.time() * 1000))
            if deleted:
                log.info("retention deleted %d segments", deleted)

    async def checkpoint_loop(self) -> None:
        interval_s = self._replicas.settings.high_watermark_checkpoint_interval_ms / 1000
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self._replicas.checkpoint()
            except OSError:
                log.exception("writing the replication checkpoints failed")

    async def disk_loop(self) -> None:
        """Makes the reserve file again once the disk has room for it (it was released
        when a metadata or checkpoint write found the disk full)."""
        while True:
            await asyncio.sleep(DISK_CHECK_INTERVAL_S)
            if not self._disk.held_bytes:
                try:
                    await asyncio.get_running_loop().run_in_executor(None, self._disk.hold_reserve)
                except OSError:
                    log.exception("making the disk reserve file failed")

    async def isr_loop(self) -> None:
        # Kafka checks every replica_lag_time_max_ms / 2; a tighter check costs little and
        # bounds how long acks=all waits on a dead follower.
        interval_s = self._settings.replica_lag_time_max_ms / 4000
        while True:
            await asyncio.sleep(interval_s)
            self._replicas.check_isrs()
