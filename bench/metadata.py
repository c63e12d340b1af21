"""`raftka bench metadata`: metadata changes next to many existing partitions.

A fresh 3-broker cluster (the default settings, passed explicitly) first gets `partitions`
existing partitions, as topics of at most MAX_PARTITIONS_PER_REQUEST each. Then `rounds`
times: create a 1-partition topic (RF=3), write one record to it with acks=all through the
broker that received the create (the first write to a new partition: its logs must be open
and its leader known), and delete it. The figures are the rounds' total time, the create,
first-write and delete latencies, how often the controller changed (polled every
CONTROLLER_POLL_S from /v1/cluster) and how many brokers the controllers fenced (read from
the brokers' logs). No fault is injected, so both counts should be 0. Every broker is
stopped by PID (Cluster.close()) and every directory removed, whatever happens.
"""

from __future__ import annotations

import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raftka.api.launcher import Cluster, make_cluster
from raftka.api.settings import Security
from raftka.bench.errors import BenchError
from raftka.bench.failover import default_settings

MAX_PARTITIONS_PER_REQUEST = 10_000  # the API's maximum per topic
BIG_TOPIC = "existing-{index}"
ROUND_TOPIC = "round-{index}"
CONTROLLER_POLL_S = 0.1
CREATE_TIMEOUT_S = 600.0  # creating 10,000 partitions opens thousands of logs per broker
REQUEST_TIMEOUT_S = 60.0  # a request not answered by then counts as an error
FENCING_LOG_LINE = "controller: fencing broker"
MS_PER_S = 1000
ERRORS_SHOWN = 5


@dataclass(frozen=True, slots=True)
class MetadataOptions:
    partitions: int = 10_000  # existing partitions next to which the rounds run
    replication_factor: int = 1  # of the existing partitions (file handles: one per log)
    rounds: int = 200
    # With a cluster secret: pysyncobj's password seals every Raft frame (Fernet), and
    # brokers sign their HTTP calls to each other (docs/security.md measures the cost).
    cluster_secret: bool = False


@dataclass(frozen=True, slots=True)
class MetadataReport:
    partitions: int
    replication_factor: int
    rounds: int
    setup_s: float
    rounds_s: float
    create_ms: list[float]
    first_write_ms: list[float]
    delete_ms: list[float]
    controller_changes: int
    fenced: int
    errors: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "partitions": self.partitions,
            "replication_factor": self.replication_factor,
            "rounds": self.rounds,
            "setup_s": round(self.setup_s, 2),
            "rounds_s": round(self.rounds_s, 2),
            "create_ms": _summary(self.create_ms),
            "first_write_ms": _summary(self.first_write_ms),
            "delete_ms": _summary(self.delete_ms),
            "controller_changes": self.controller_changes,
            "fenced": self.fenced,
            "errors": len(self.errors),
            "first_errors": self.errors[:ERRORS_SHOWN],
        }


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 1),
        "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
        "max": round(ordered[-1], 1),
    }


class ControllerWatch:
    """Polls one broker's /v1/cluster in a thread; counts changes of the controller."""

    def __init__(self, cluster: Cluster, broker_id: int) -> None:
        self._cluster = cluster
        self._broker_id = broker_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.seen: list[int | None] = []

    def __enter__(self) -> ControllerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(CONTROLLER_POLL_S):
            try:
                controller = self._cluster.cluster_view(self._broker_id)["controller"]
            except (OSError, AssertionError, KeyError, ValueError):
                continue
            if controller is not None and (not self.seen or self.seen[-1] != controller):
                self.seen.append(controller)

    @property
    def changes(self) -> int:
        return max(0, len(self.seen) - 1)


def _timed(action: Callable[[], Any]) -> float:
    started = time.monotonic()
    action()
    return (time.monotonic() - started) * MS_PER_S


def _expect(
    cluster: Cluster, broker_id: int, method: str, path: str, body: Any, status: int
) -> None:
    try:
        resp = cluster.request(broker_id, method, path, body, timeout_s=REQUEST_TIMEOUT_S)
    except OSError as exc:  # a timeout included
        raise BenchError(f"{method} {path} on broker {broker_id}: {exc!r}") from None
    if resp.status != status:
        raise BenchError(f"{method} {path} on broker {broker_id}: {resp.status} {resp.body}")


def _create_existing(cluster: Cluster, broker_id: int, options: MetadataOptions) -> None:
    left, index = options.partitions, 0
    while left > 0:
        count = min(left, MAX_PARTITIONS_PER_REQUEST)
        body = {
            "name": BIG_TOPIC.format(index=index),
            "partitions": count,
            "replication_factor": options.replication_factor,
        }
        resp = cluster.request(broker_id, "POST", "/v1/topics", body, timeout_s=CREATE_TIMEOUT_S)
        if resp.status != 201:
            raise BenchError(f"creating {body['name']}: {resp.status} {resp.body}")
        left, index = left - count, index + 1


def _round(cluster: Cluster, broker_id: int, index: int, report: dict[str, list[float]]) -> None:
    """One round; a failed step raises BenchError (the next round goes on with a new name)."""
    name = ROUND_TOPIC.format(index=index)
    create = {"name": name, "partitions": 1, "replication_factor": 3}
    report["create"].append(
        _timed(lambda: _expect(cluster, broker_id, "POST", "/v1/topics", create, 201))
    )
    path = f"/v1/topics/{name}/partitions/0/records?acks=all"
    record = {"records": [{"value": index}]}
    report["first_write"].append(
        _timed(lambda: _expect(cluster, broker_id, "POST", path, record, 200))
    )
    report["delete"].append(
        _timed(lambda: _expect(cluster, broker_id, "DELETE", f"/v1/topics/{name}", None, 204))
    )


def _fenced_count(cluster: Cluster) -> int:
    return sum(
        b.log_path.read_text(errors="replace").count(FENCING_LOG_LINE)
        for b in cluster.brokers.values()
        if b.log_path.exists()
    )


def run_metadata_bench(
    options: MetadataOptions, progress: Callable[[str], None] = lambda _: None
) -> MetadataReport:
    with tempfile.TemporaryDirectory(prefix="raftka-bench-") as tmp:
        security = Security(
            cluster_secret=secrets.token_urlsafe(32) if options.cluster_secret else None
        )
        cluster = make_cluster(Path(tmp), voters=3, security=security, **default_settings())
        try:
            cluster.start_all()
            broker_id = cluster.wait_ready()
            started = time.monotonic()
            progress(f"creating {options.partitions} existing partitions")
            _create_existing(cluster, broker_id, options)
            setup_s = time.monotonic() - started
            progress(f"existing partitions created in {setup_s:.1f} s; {options.rounds} rounds")
            latencies: dict[str, list[float]] = {"create": [], "first_write": [], "delete": []}
            fenced_before = _fenced_count(cluster)
            errors: list[str] = []
            with ControllerWatch(cluster, broker_id) as watch:
                started = time.monotonic()
                for index in range(options.rounds):
                    try:
                        _round(cluster, broker_id, index, latencies)
                    except BenchError as exc:
                        errors.append(f"round {index}: {exc}")
                        if len(errors) <= ERRORS_SHOWN:
                            progress(errors[-1])
                rounds_s = time.monotonic() - started
            return MetadataReport(
                partitions=options.partitions,
                replication_factor=options.replication_factor,
                rounds=options.rounds,
                setup_s=setup_s,
                rounds_s=rounds_s,
                create_ms=latencies["create"],
                first_write_ms=latencies["first_write"],
                delete_ms=latencies["delete"],
                controller_changes=watch.changes,
                fenced=_fenced_count(cluster) - fenced_before,
                errors=errors,
            )
        finally:
            cluster.close()


def format_report(report: MetadataReport) -> str:
    d = report.to_json()

    def ms(key: str) -> str:
        s = d[key]
        return f"median {s['median']} ms, p90 {s['p90']} ms, max {s['max']} ms" if s else "-"

    return "\n".join(
        [
            f"{report.rounds} create/write/delete rounds next to {report.partitions} partitions "
            f"(RF={report.replication_factor}, created in {d['setup_s']} s): {d['rounds_s']} s",
            f"  create topic   {ms('create_ms')}",
            f"  first write    {ms('first_write_ms')}",
            f"  delete topic   {ms('delete_ms')}",
            f"  controller changes {report.controller_changes}, brokers fenced {report.fenced}, "
            f"failed rounds {len(report.errors)}",
            *(f"    {e}" for e in report.errors[:ERRORS_SHOWN]),
        ]
    )
