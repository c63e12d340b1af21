"""Appending records at the local leader with what `acks` promises: the one write path
of the HTTP produce route and the Kafka Produce API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from raftka.replication.partition import Appended, PartitionReplica
from raftka.replication.producer_state import ProducerRef
from raftka.storage.batch import Records

if TYPE_CHECKING:
    from raftka.api.broker.broker import Broker


async def append_at_leader(
    broker: Broker,
    replica: PartitionReplica,
    records: Records,
    acks: str,
    producer: ProducerRef | None = None,
    timeout_s: float | None = None,
) -> Appended:
    """Appends records (as the log takes them) as one batch, then waits for what `acks`
    ("0", "1", "all") promises: the local fsync policy, and for "all" the in-sync replicas
    (at most `timeout_s`, default the broker's request_timeout_ms)."""
    appended = await replica.append(records, acks=acks, producer=producer)
    if not appended.duplicate:
        broker.flusher.mark_dirty(replica.log)
    if acks != "0":
        await broker.flusher.wait_durable(replica.log)
    if acks == "all":
        if timeout_s is None:
            timeout_s = broker.settings.request_timeout_ms / 1000
        await replica.wait_for_commit(appended, timeout_s)
    return appended
