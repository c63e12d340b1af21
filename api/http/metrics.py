"""Prometheus metrics of one broker: counters bumped once per request, gauges read at scrape.

Each broker has its own registry (tests run several in one process). Nothing here is
touched per record: the hot paths add a request's record count in one call.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from raftka.api.http.connections import ConnectionStats, Phase

if TYPE_CHECKING:
    from raftka.api.broker.broker import Broker


class _BrokerStateCollector(Collector):
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    def collect(self) -> Iterator[Metric]:
        b = self._broker
        controller = GaugeMetricFamily("raftka_is_controller", "1 if this broker is the controller")
        controller.add_metric([], 1.0 if b.quorum is not None and b.quorum.is_leader else 0.0)
        yield controller
        if b.quorum is not None:
            status = b.quorum.status()
            yield GaugeMetricFamily("raftka_raft_term", "current Raft term", value=status.raft_term)
            yield GaugeMetricFamily(
                "raftka_raft_commit_index", "Raft commit index", value=status.commit_index
            )
        leo = GaugeMetricFamily(
            "raftka_log_end_offset", "next offset of each local log", labels=["topic", "partition"]
        )
        hw = GaugeMetricFamily(
            "raftka_high_watermark",
            "high watermark of each led partition",
            labels=["topic", "partition"],
        )
        size = GaugeMetricFamily(
            "raftka_log_size_bytes",
            "bytes on disk of each local log",
            labels=["topic", "partition"],
        )
        isr = GaugeMetricFamily(
            "raftka_isr_size",
            "in-sync replicas of each led partition",
            labels=["topic", "partition"],
        )
        leaders = 0
        under_replicated = 0
        for replica in b.replicas.replicas():
            labels = [replica.topic, str(replica.partition)]
            leo.add_metric(labels, replica.log.log_end_offset)
            size.add_metric(labels, replica.log.size_bytes)
            if replica.is_leader:
                leaders += 1
                hw.add_metric(labels, replica.high_watermark)
                isr.add_metric(labels, len(replica.role.isr))
                if len(replica.role.isr) < len(replica.role.replicas):
                    under_replicated += 1
        yield leo
        yield hw
        yield size
        yield isr
        yield GaugeMetricFamily(
            "raftka_partitions_led", "partitions this broker leads", value=leaders
        )
        yield from _budget_metrics(b)
        yield GaugeMetricFamily(
            "raftka_replica_fetches_waiting",
            "followers' fetches held here until there is news for them (long-poll)",
            value=b.replicas.fetches_waiting,
        )
        yield GaugeMetricFamily(
            "raftka_disk_free_bytes",
            "free bytes on the disk of this broker's data directory",
            value=b.disk.free_bytes(),
        )
        yield GaugeMetricFamily(
            "raftka_disk_reserve_held_bytes",
            "bytes of the disk reserve held in its preallocated file (0 once released)",
            value=b.disk.held_bytes,
        )
        yield CounterMetricFamily(
            "raftka_disk_full_refusals",
            "appends refused because the disk would fall below disk_reserve_bytes",
            value=b.disk.refusals,
        )
        yield GaugeMetricFamily(
            "raftka_under_replicated_partitions",
            "led partitions whose ISR is smaller than their replica set",
            value=under_replicated,
        )


class _ConnectionCollector(Collector):
    def __init__(self, stats: ConnectionStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self._stats
        yield GaugeMetricFamily(
            "raftka_open_connections", "client connections open now", value=s.open
        )
        yield CounterMetricFamily(
            "raftka_refused_connections",
            "connections answered 503 and closed because max_connections were open",
            value=s.refused,
        )
        timed_out = CounterMetricFamily(
            "raftka_timed_out_connections",
            "connections closed for sitting idle or sending a request too slowly, by phase",
            labels=["phase"],
        )
        for phase in (Phase.IDLE, Phase.HEADER, Phase.BODY):
            timed_out.add_metric([phase.value], s.timed_out[phase])
        yield timed_out


def _budget_metrics(b: Broker) -> Iterator[Metric]:
    """Partition replicas and open segment files, next to their limits."""
    pool = b.replicas.file_pool
    yield GaugeMetricFamily(
        "raftka_partition_replicas",
        "partition replicas this broker holds (open logs)",
        value=len(b.replicas.replicas()),
    )
    yield GaugeMetricFamily(
        "raftka_max_partitions_per_broker",
        "the most partition replicas a new topic may bring any broker to",
        value=b.settings.max_partitions_per_broker,
    )
    yield GaugeMetricFamily(
        "raftka_open_segment_files", "segment files open in the pool", value=pool.open_files
    )
    yield GaugeMetricFamily(
        "raftka_max_open_segment_files",
        "the pool's bound on open segment files (max_open_files)",
        value=pool.max_open_files or 0,
    )
    yield CounterMetricFamily(
        "raftka_segment_file_evictions",
        "idle segment files the pool closed to stay within max_open_files",
        value=pool.evictions,
    )
    yield CounterMetricFamily(
        "raftka_segment_file_opens",
        "segment files opened, first opens and reopens after an eviction",
        value=pool.opens,
    )


class BrokerMetrics:
    def __init__(self, broker: Broker, connections: ConnectionStats | None = None) -> None:
        self.registry = CollectorRegistry()
        self.produced_records = Counter(
            "raftka_produced_records", "records appended as leader", registry=self.registry
        )
        self.produce_requests = Counter(
            "raftka_produce_requests", "produce requests answered", registry=self.registry
        )
        self.fetched_records = Counter(
            "raftka_fetched_records", "records served by fetches", registry=self.registry
        )
        self.fetch_requests = Counter(
            "raftka_fetch_requests", "fetch requests answered", registry=self.registry
        )
        self.errors = Counter(
            "raftka_errors", "error answers by contract code", ["code"], registry=self.registry
        )
        self.registry.register(_BrokerStateCollector(broker))
        self.registry.register(_ConnectionCollector(connections or ConnectionStats()))
        # process_open_fds, process_max_fds, process_resident_memory_bytes, ...
        ProcessCollector(registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)
