"""`raftka bench replication`: produce throughput and per-request latency with RF=1, RF=3
acks=1 and RF=3 acks=all, side by side, on fresh clusters of real broker processes.

Each round starts a fresh 3-broker cluster (the default settings, passed explicitly) with
one topic per workload, and, unless told not to, a fresh 1-broker cluster. Every workload
produces straight to partitions led by one broker, as a client that read
`/v1/topics/{t}` would: closed-loop, one request in flight per keep-alive connection,
bodies built once (bench/load.py). The client times every request as it
sees it, and the CPU time of each process is read from /proc over the window, so the cost
of replication shows per request even when the machine is CPU-bound. Workloads alternate
their order between rounds; figures are medians over rounds. Every broker is stopped by
PID (Cluster.close()) and every directory removed, whatever happens.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raftka.api.launcher import Cluster
from raftka.bench import load
from raftka.bench.clusters import MIN_INSYNC_REPLICAS, create_topic, running_cluster
from raftka.bench.cpu import (
    CPU_MODES,
    CpuPlan,
    client_pinned,
    cpu_seconds,
    own_cpu_seconds,
    plan_cpus,
    set_process_affinity,
)
from raftka.bench.errors import BenchError
from raftka.bench.http import (
    check_fsync,
    check_produce_load,
    produce_spec,
    request_body_bytes,
)
from raftka.bench.targets import Endpoint, Target

HOST = "127.0.0.1"
PARTITIONS = 6  # with 3 brokers each leads 2; the load goes to the 2 one broker leads
LOADED_PARTITIONS = 2
BYTES_PER_MB = 1_000_000
US_PER_S = 1_000_000


@dataclass(frozen=True, slots=True)
class Workload:
    key: str  # as --workloads names it
    name: str
    brokers: int  # the cluster it runs on
    topic: str
    replication_factor: int
    acks: str


SINGLE = Workload("single", "1 broker, RF=1, acks=1", 1, "single", 1, "1")
RF1 = Workload("rf1", "RF=1, acks=1", 3, "rf1", 1, "1")
RF3_ACKS1 = Workload("rf3-acks1", "RF=3, acks=1", 3, "rf3_acks1", 3, "1")
RF3_ACKS_ALL = Workload("rf3-acks-all", "RF=3, acks=all", 3, "rf3_acks_all", 3, "all")
WORKLOADS = (SINGLE, RF1, RF3_ACKS1, RF3_ACKS_ALL)  # in the report's order
WORKLOAD_KEYS = tuple(w.key for w in WORKLOADS)


# -- options and results ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplicationOptions:
    rounds: int = 5
    window_s: float = 3.0
    warmup_s: float = 0.5
    connections: int = 4
    records_per_request: int = 200
    record_size: int = 100
    fsync: str = "never"
    workloads: tuple[str, ...] = WORKLOAD_KEYS
    cpus: str = "shared"  # CPU_MODES

    def __post_init__(self) -> None:
        check_produce_load(self)
        check_fsync(self.fsync)
        if not self.workloads or set(self.workloads) - set(WORKLOAD_KEYS):
            raise ValueError(f"workloads must be some of {', '.join(WORKLOAD_KEYS)}")
        if self.cpus not in CPU_MODES:
            raise ValueError(f"cpus must be one of {', '.join(CPU_MODES)}")


@dataclass(frozen=True, slots=True)
class WorkloadResult:
    workload: str
    requests: int
    errors: int  # non-200 answers (each sent again after a pause)
    records_per_s: float
    mb_per_s: float
    p50_ms: float
    p99_ms: float
    # CPU time per acknowledged request over the window: the cost, even when CPU-bound.
    leader_cpu_us: float
    followers_cpu_us: float  # the cluster's other brokers together
    client_cpu_us: float
    leader_busy: float  # CPU seconds per window second (1.0 = one core all the time)
    client_busy: float
    drain_s: float  # window end -> an acks=all write on every loaded partition answered


@dataclass(frozen=True, slots=True)
class RoundResult:
    round: int
    order: tuple[str, ...]
    results: tuple[WorkloadResult, ...]


@dataclass(frozen=True, slots=True)
class WorkloadMedians:
    workload: str
    records_per_s: float
    mb_per_s: float
    p50_ms: float
    p99_ms: float
    to_rf1: float | None  # records/s over the 3-broker RF=1 median (None: not measured)
    leader_cpu_us: float
    followers_cpu_us: float
    client_cpu_us: float
    leader_busy: float
    client_busy: float
    errors: int  # over all rounds


@dataclass(frozen=True, slots=True)
class ReplicationReport:
    options: ReplicationOptions
    cpu: CpuPlan
    request_body_bytes: float
    rounds: tuple[RoundResult, ...]
    medians: tuple[WorkloadMedians, ...]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def workload_order(index: int, keys: tuple[str, ...]) -> list[Workload]:
    """Alternating between rounds: forwards in even rounds, backwards in odd ones (the
    1-broker cluster first, then the 3-broker cluster's workloads, or the reverse)."""
    order = [w for w in WORKLOADS if w.key in keys]
    return order if index % 2 == 0 else order[::-1]


# -- the load ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadedCluster:
    cluster: Cluster
    leader: int  # the broker that leads the loaded partitions
    partitions: dict[str, list[int]]  # topic -> the loaded partitions

    @property
    def port(self) -> int:
        return self.cluster.brokers[self.leader].address.http_port

    def pid(self, broker_id: int) -> int:
        process = self.cluster.brokers[broker_id].process
        assert process is not None
        return process.pid


@dataclass
class CpuWatch:
    """The brokers' and this process's CPU seconds over a produce window (load.WindowWatch)."""

    pids: dict[int, int]  # broker id -> PID
    brokers: dict[int, float] = dataclasses.field(default_factory=dict)
    client: float = 0.0

    def started(self) -> None:
        self.brokers = {b: cpu_seconds(pid) for b, pid in self.pids.items()}
        self.client = own_cpu_seconds()

    def ended(self) -> None:
        self.brokers = {b: cpu_seconds(pid) - self.brokers[b] for b, pid in self.pids.items()}
        self.client = own_cpu_seconds() - self.client


def produce_window(
    loaded: LoadedCluster, w: Workload, options: ReplicationOptions
) -> tuple[load.ProduceResult, CpuWatch]:
    """Warm up, then one counted window to the loaded partitions, over which CPU is read."""
    targets = [Target(Endpoint(HOST, loaded.port), w.topic, p) for p in loaded.partitions[w.topic]]
    spec = produce_spec(options, acks=w.acks)
    watch = CpuWatch({b: loaded.pid(b) for b in loaded.cluster.brokers})
    return asyncio.run(load.produce(targets, spec, watch=watch)), watch


def drain(loaded: LoadedCluster, w: Workload) -> float:
    """An acks=all write on every loaded partition: answered once the followers hold
    everything before it. Returns how long that took."""
    started = time.monotonic()
    for p in loaded.partitions[w.topic]:
        loaded.cluster.produce(loaded.leader, w.topic, p, ["drain"], acks="all")
    return time.monotonic() - started


def measure_workload(
    loaded: LoadedCluster, w: Workload, body_bytes: float, options: ReplicationOptions
) -> WorkloadResult:
    result, cpu = produce_window(loaded, w, options)
    drain_s = drain(loaded, w)
    done, elapsed = result.requests, result.elapsed_s
    if done < 2:
        raise BenchError(f"{w.name}: {done} produce requests answered in {elapsed:.1f} s")
    requests_per_s = done / elapsed
    leader_cpu = cpu.brokers[loaded.leader]
    followers_cpu = sum(s for b, s in cpu.brokers.items() if b != loaded.leader)
    return WorkloadResult(
        workload=w.name,
        requests=done,
        errors=result.errors,
        records_per_s=result.records_per_s,
        mb_per_s=requests_per_s * body_bytes / BYTES_PER_MB,
        p50_ms=result.latency.p50_ms,
        p99_ms=result.latency.p99_ms,
        leader_cpu_us=leader_cpu / done * US_PER_S,
        followers_cpu_us=followers_cpu / done * US_PER_S,
        client_cpu_us=cpu.client / done * US_PER_S,
        leader_busy=leader_cpu / elapsed,
        client_busy=cpu.client / elapsed,
        drain_s=drain_s,
    )


# -- clusters --------------------------------------------------------------------------


@contextmanager
def loaded_cluster(
    root: Path, brokers: int, workloads: list[Workload], options: ReplicationOptions, plan: CpuPlan
) -> Iterator[LoadedCluster]:
    """A fresh cluster with one topic per workload, every partition with a full ISR and
    taking acks=all writes (clusters.create_topic), its load's leader pinned if planned."""
    with running_cluster(root, brokers, None, fsync=options.fsync) as (cluster, controller):
        # Not the controller when there is a choice: it also runs the Raft leader's work.
        leader = next((b for b in sorted(cluster.brokers) if b != controller), controller)
        partitions: dict[str, list[int]] = {}
        for w in workloads:
            create_topic(cluster, controller, w.topic, PARTITIONS, w.replication_factor)
            described = cluster.get(controller, f"/v1/topics/{w.topic}")["partitions"]
            led = [p["partition"] for p in described if p["leader"] == leader]
            partitions[w.topic] = led[:LOADED_PARTITIONS]
        loaded = LoadedCluster(cluster, leader, partitions)
        for b in cluster.brokers:
            cpu = plan.broker_cpu(b == leader)
            if cpu is not None:
                set_process_affinity(loaded.pid(b), {cpu})
        yield loaded


def run_round(
    index: int, root: Path, plan: CpuPlan, body_bytes: float, options: ReplicationOptions
) -> RoundResult:
    order = workload_order(index, options.workloads)
    results: dict[str, WorkloadResult] = {}
    # The workloads of one cluster run back to back, so a cluster is started once per round.
    for brokers in dict.fromkeys(w.brokers for w in order):
        on_cluster = [w for w in order if w.brokers == brokers]
        with loaded_cluster(
            root / f"round-{index}-{brokers}-brokers", brokers, on_cluster, options, plan
        ) as loaded:
            for w in on_cluster:
                results[w.name] = measure_workload(loaded, w, body_bytes, options)
    return RoundResult(
        index + 1, tuple(w.name for w in order), tuple(results[w.name] for w in order)
    )


# -- the run and its report ------------------------------------------------------------


def summarize(rounds: list[RoundResult], keys: tuple[str, ...]) -> tuple[WorkloadMedians, ...]:
    """Medians over rounds, in a fixed order; ratios are ratios of medians."""
    names = [w.name for w in WORKLOADS if w.key in keys]

    def med(name: str, field: str) -> float:
        return statistics.median(
            getattr(r, field) for rnd in rounds for r in rnd.results if r.workload == name
        )

    rf1 = med(RF1.name, "records_per_s") if RF1.name in names else None
    return tuple(
        WorkloadMedians(
            workload=name,
            records_per_s=med(name, "records_per_s"),
            mb_per_s=med(name, "mb_per_s"),
            p50_ms=med(name, "p50_ms"),
            p99_ms=med(name, "p99_ms"),
            to_rf1=None if rf1 is None else med(name, "records_per_s") / rf1,
            leader_cpu_us=med(name, "leader_cpu_us"),
            followers_cpu_us=med(name, "followers_cpu_us"),
            client_cpu_us=med(name, "client_cpu_us"),
            leader_busy=med(name, "leader_busy"),
            client_busy=med(name, "client_busy"),
            errors=sum(r.errors for rnd in rounds for r in rnd.results if r.workload == name),
        )
        for name in names
    )


def describe_round(r: RoundResult) -> str:
    parts = [
        f"{x.workload}: {x.records_per_s:,.0f} records/s, p50 {x.p50_ms:.1f} ms, "
        f"p99 {x.p99_ms:.1f} ms"
        for x in r.results
    ]
    return f"round {r.round}: " + "; ".join(parts)


def run_replication_bench(
    options: ReplicationOptions, progress: Callable[[str], None] | None = None
) -> ReplicationReport:
    body_bytes = request_body_bytes(options)
    plan = plan_cpus(options.cpus)
    rounds: list[RoundResult] = []
    with (
        tempfile.TemporaryDirectory(prefix="raftka-bench-replication-") as tmp,
        client_pinned(plan),
    ):
        for index in range(options.rounds):
            rounds.append(run_round(index, Path(tmp), plan, body_bytes, options))
            if progress is not None:
                progress(describe_round(rounds[-1]))
    return ReplicationReport(
        options=options,
        cpu=plan,
        request_body_bytes=body_bytes,
        rounds=tuple(rounds),
        medians=summarize(rounds, options.workloads),
    )


def format_report(report: ReplicationReport) -> str:
    o = report.options
    lines = [
        f"Medians of {o.rounds} round{'s' if o.rounds > 1 else ''}: {o.window_s} s windows after "
        f"{o.warmup_s} s warm-up, {o.connections} connections to the leader of "
        f"{LOADED_PARTITIONS} partitions, {o.records_per_request} records of {o.record_size} B "
        f"per request ({report.request_body_bytes:,.0f} B), fsync={o.fsync}, "
        f"min_insync_replicas={MIN_INSYNC_REPLICAS} for RF=3",
        report.cpu.note,
        "",
        "| workload | records/s | MB/s | p50 ms | p99 ms | x RF=1 | leader CPU µs/req "
        "| followers CPU µs/req | leader busy | client busy |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in report.medians:
        lines.append(
            f"| {m.workload} | {m.records_per_s:,.0f} | {m.mb_per_s:.1f} | {m.p50_ms:.1f} | "
            f"{m.p99_ms:.1f} | {'-' if m.to_rf1 is None else f'{m.to_rf1:.2f}'} | "
            f"{m.leader_cpu_us:.0f} | "
            f"{m.followers_cpu_us:.0f} | {m.leader_busy:.2f} | {m.client_busy:.2f} |"
        )
    errors = sum(m.errors for m in report.medians)
    if errors:
        lines.append(f"\n{errors} produce requests answered an error (retried)")
    return "\n".join(lines)
