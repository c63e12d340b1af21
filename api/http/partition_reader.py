"""Reading one partition for a group member: at the local leader, or over HTTP at the
partition's leader, the same way either side.

The coordinator serves a member's records from partitions led anywhere in the
cluster; this module hides where. It never decides what a member may read (that is
the coordinator, from the metadata).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from raftka.api.http.forward import Forwarder
from raftka.client.errors import error_from_answer
from raftka.metadata.errors import LeaderNotAvailable
from raftka.replication.partition import PartitionReplica
from raftka.storage.log import ReadResult

if TYPE_CHECKING:
    from raftka.api.broker.broker import Broker

MAX_READ_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PartitionRead:
    records: list[dict[str, Any]]  # as the fetch route shows them (offset, key, value, ...)
    next_offset: int
    log_start_offset: int
    high_watermark: int


async def read_leading(
    broker: Broker,
    replica: PartitionReplica,
    offset: int,
    max_records: int,
    max_bytes: int,
    max_wait_ms: int,
) -> tuple[PartitionReplica, ReadResult]:
    """A read at the local leader, long-polling up to `max_wait_ms` (capped by the
    broker's `max_fetch_wait_ms`) when nothing is readable yet: the fetch route's read
    and the group coordinator's. After a wait the topic may be gone (UnknownTopic) or the
    leadership moved (LeaderNotAvailable); the replica read is returned with it."""
    result = replica.read(offset, max_records=max_records, max_bytes=max_bytes)
    if result.record_count == 0 and max_wait_ms > 0:
        wait_s = min(max_wait_ms, broker.settings.max_fetch_wait_ms) / 1000
        await replica.wait_for_records(offset, wait_s)
        broker.locate(replica.topic, replica.partition)  # UnknownTopic once deleted
        if broker.local_leader(replica.topic, replica.partition) is not replica:
            raise LeaderNotAvailable(f"{replica.topic}-{replica.partition} changed leader")
        result = replica.read(offset, max_records=max_records, max_bytes=max_bytes)
    return replica, result


class PartitionReader:
    def __init__(self, broker: Broker, forwarder: Forwarder) -> None:
        self._broker = broker
        self._forwarder = forwarder

    async def read(
        self, topic: str, partition: int, offset: int, max_records: int, max_wait_ms: int
    ) -> PartitionRead:
        """Records from `offset` below the high watermark, long-polling up to
        `max_wait_ms` for the first one. Raises OffsetOutOfRange (with the partition's
        bounds) and the other contract errors."""
        broker = self._broker
        replica = broker.local_leader(topic, partition)
        if replica is not None:
            replica, result = await read_leading(
                broker, replica, offset, max_records, MAX_READ_BYTES, max_wait_ms
            )
            return PartitionRead(
                records=orjson.loads(b"[" + result.records_json + b"]"),
                next_offset=result.next_offset,
                log_start_offset=replica.log_start_offset,
                high_watermark=replica.high_watermark,
            )
        wait_ms = min(max_wait_ms, broker.settings.max_fetch_wait_ms)
        body = await self._get(
            topic,
            partition,
            f"records?offset={offset}&max_records={max_records}&max_wait_ms={wait_ms}",
            extra_wait_s=wait_ms / 1000,
        )
        return PartitionRead(
            records=body["records"],
            next_offset=body["next_offset"],
            log_start_offset=body["log_start_offset"],
            high_watermark=body["high_watermark"],
        )

    async def high_watermark(self, topic: str, partition: int) -> int:
        replica = self._broker.local_leader(topic, partition)
        if replica is not None:
            return replica.high_watermark
        body = await self._get(topic, partition, "offsets?timestamp=latest")
        return int(body["offset"])

    async def _get(
        self, topic: str, partition: int, path: str, extra_wait_s: float = 0.0
    ) -> dict[str, Any]:
        """GET a partition route at its leader; a refusal raises its contract error."""
        broker = self._broker
        leader = broker.locate(topic, partition).partition.leader
        url = None if leader is None else broker.broker_url(leader)
        if url is None:
            raise LeaderNotAvailable(f"{topic}-{partition} has no available leader right now")
        status, payload, _ = await self._forwarder.send(
            "GET",
            f"{url}/v1/topics/{topic}/partitions/{partition}/{path}",
            extra_wait_s=extra_wait_s,
        )
        body = orjson.loads(payload)
        if status == 200 and isinstance(body, dict):
            return body
        raise error_from_answer(status, body, url)
