"""`raftka bench groups`: offset commits per second from many group members, and how long a
dead member's partitions stay unconsumed.

Each run starts a fresh cluster (make_cluster, the default settings passed explicitly) with
two RF=3 topics and drives consumer groups over HTTP from this one process (asyncio, one
aiohttp session with a bounded connector), as stateless HTTP clients would: member i talks
to broker i mod B, which forwards to the group's coordinator.
- commits: N members join one group, heartbeat until `rebalance` is false, then each
  commits its partitions' offsets (increasing) in a closed loop, one request in flight,
  while heartbeating every session timeout / 3. Counted: 204 answers in the window, their
  latency as the client sees it, every other answer by status; CPU of every broker and of
  this driver, read from /proc over the window, so a saturated driver shows.
- rebalance: a few members consume a topic (long-polls, explicit commits) while a producer
  writes to every partition; one member is killed (its heartbeats and polls stop). Timed
  from the kill: the coordinator drops it (its session timeout), and every partition it
  owned is consumed again by a survivor (the hand-off).
This module only measures: every broker is stopped by PID (Cluster.close()) and every
directory removed, whatever happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from raftka.api.launcher import Cluster, make_cluster, wait_for
from raftka.bench.cpu import cpu_seconds, machine_cpu_seconds, own_cpu_seconds
from raftka.bench.errors import BenchError
from raftka.bench.failover import default_settings

COMMIT_TOPIC = "bench-commits"
COMMIT_GROUP = "bench-commits"
REBALANCE_TOPIC = "bench-rebalance"
REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2

COMMIT_SESSION_TIMEOUT_MS = 10_000  # the contract's default
HEARTBEATS_PER_SESSION = 3  # Kafka's heartbeat.interval.ms = session.timeout.ms / 3
WARMUP_S = 1.0
MAX_CONNECTIONS = 512  # the driver's connector: every member's commit and heartbeat at once
REQUEST_TIMEOUT_S = 30.0  # the brokers' request_timeout_ms answers first
ERROR_BACKOFF_S = 0.05
JOIN_CONCURRENCY = 16  # joins in flight (each is a metadata commit and a rebalance)
SETTLE_DEADLINE_S = 120.0
SETTLE_POLL_S = 0.2

REBALANCE_MEMBERS = 3
REBALANCE_PARTITIONS = 6
REBALANCE_SESSION_TIMEOUT_MS = 3_000
POLL_WAIT_MS = 500  # each member's long-poll
POLL_MAX_RECORDS = 1_000
PRODUCE_INTERVAL_S = 0.05  # one record to every partition this often
MONITOR_POLL_S = 0.02
STEADY_DEADLINE_S = 60.0
HANDOFF_DEADLINE_S = 60.0

MS_PER_S = 1000
US_PER_S = 1_000_000
COMMIT_INDEX_METRIC = b"raftka_raft_commit_index "


# -- options and results ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupsOptions:
    brokers: int = 3
    members: int = 100
    partitions: int = 100
    duration_s: float = 10.0
    runs: int = 3
    rebalance_members: int = REBALANCE_MEMBERS
    rebalance_partitions: int = REBALANCE_PARTITIONS
    session_timeout_ms: int = REBALANCE_SESSION_TIMEOUT_MS  # the rebalance group's
    # Committers talk to the group's coordinator (as a client that read GET /v1/groups/{g}
    # would) instead of to broker i mod B, which forwards.
    direct: bool = False

    def __post_init__(self) -> None:
        if self.brokers < REPLICATION_FACTOR:
            raise ValueError(f"brokers must be at least {REPLICATION_FACTOR} (RF=3 topics)")
        if self.runs < 1 or self.members < 1 or self.partitions < 1:
            raise ValueError("runs, members and partitions must be at least 1")
        if self.duration_s <= 0:
            raise ValueError("the duration must be positive")
        if self.rebalance_members < 2 or self.rebalance_partitions < self.rebalance_members:
            raise ValueError("the rebalance needs 2+ members and a partition for each")


@dataclass(frozen=True, slots=True)
class CommitRun:
    run: int
    coordinator: int
    members: int
    join_s: float  # the first join sent -> every member joined
    settle_s: float  # every member joined -> no member told `rebalance`
    window_s: float
    commits: int  # answered 204 in the window
    commits_per_s: float
    offsets_per_s: float  # partitions committed per second (a commit carries a member's all)
    p50_ms: float
    p99_ms: float
    max_ms: float
    # non-204 commit and non-200 heartbeat answers in the window, by status ("error": none)
    errors: dict[str, int]
    heartbeats: int
    metadata_entries: int  # the Raft commit index's growth over the window
    commits_per_entry: float
    # Window / entries: with one commit batch in flight, about one batch's commit latency.
    ms_per_entry: float
    driver_busy: float  # this process's CPU seconds per second (1.0 = one core)
    driver_cpu_us_per_commit: float
    broker_busy: dict[str, float]  # broker id -> CPU seconds per second
    coordinator_cpu_us_per_commit: float
    brokers_cpu_us_per_commit: float  # every broker together
    own_busy: float  # brokers + driver: CPU seconds per second
    # Every process on the machine (/proc/stat), so a busy neighbour shows: CPU seconds per
    # second, at most the CPU count.
    machine_busy: float


@dataclass(frozen=True, slots=True)
class RebalanceRun:
    run: int
    coordinator: int
    victim_partitions: tuple[int, ...]
    expiry_s: float  # kill -> the coordinator dropped the member (its session timeout)
    handoff_s: float  # dropped -> every one of its partitions consumed by a survivor
    total_s: float  # kill -> every one of its partitions consumed by a survivor
    per_partition_s: dict[str, float]  # partition -> kill -> first record a survivor got


@dataclass(frozen=True, slots=True)
class Medians:
    commits_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int  # over all runs
    commits_per_entry: float
    ms_per_entry: float
    driver_busy: float
    coordinator_busy: float
    coordinator_cpu_us_per_commit: float
    brokers_cpu_us_per_commit: float
    own_busy: float
    machine_busy: float
    rebalance_total_s: float
    rebalance_expiry_s: float
    rebalance_handoff_s: float
    rebalance_total_max_s: float


@dataclass(frozen=True, slots=True)
class GroupsReport:
    options: GroupsOptions
    machine: dict[str, Any]
    commit_runs: tuple[CommitRun, ...]
    rebalance_runs: tuple[RebalanceRun, ...]
    medians: Medians

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpus": len(os.sched_getaffinity(0)), "cpu_model": model}


# -- HTTP --------------------------------------------------------------------------------


async def call(
    session: aiohttp.ClientSession, method: str, url: str, body: Any = None
) -> tuple[int, Any]:
    """(status, parsed body or None); status 0 when no answer came (refused, timed out)."""
    try:
        async with session.request(
            method,
            url,
            data=None if body is None else orjson.dumps(body),
            headers={"Content-Type": "application/json"},
        ) as resp:
            payload = await resp.read()
            return resp.status, orjson.loads(payload) if payload else None
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
        return 0, None


def new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
    )


@dataclass(slots=True)
class Member:
    """A group member as a stateless HTTP client sees itself: ids and its assignment."""

    base: str  # the broker it talks to
    group: str
    topic: str
    member_id: str = ""
    generation: int = 0
    partitions: tuple[int, ...] = ()
    rebalance: bool = True

    @property
    def path(self) -> str:
        return f"{self.base}/v1/groups/{self.group}"

    def _learn(self, answer: dict[str, Any]) -> None:
        self.generation = answer["generation"]
        self.partitions = tuple(answer["assignment"].get(self.topic, []))

    async def join(self, session: aiohttp.ClientSession, body: dict[str, Any]) -> None:
        deadline = time.monotonic() + SETTLE_DEADLINE_S
        while True:
            status, answer = await call(session, "POST", f"{self.path}/members", body)
            if status == 200:
                self.member_id = answer["member_id"]
                self._learn(answer)
                return
            if status not in (0, 503) or time.monotonic() > deadline:
                raise BenchError(f"joining {self.group}: HTTP {status} {answer}")
            await asyncio.sleep(ERROR_BACKOFF_S)

    async def heartbeat(self, session: aiohttp.ClientSession) -> int:
        status, answer = await call(
            session,
            "POST",
            f"{self.path}/members/{self.member_id}/heartbeat",
            {"generation": self.generation},
        )
        if status == 200:
            self._learn(answer)
            self.rebalance = answer["rebalance"]
        return status

    async def leave(self, session: aiohttp.ClientSession) -> None:
        await call(session, "DELETE", f"{self.path}/members/{self.member_id}")

    def commit_body(self, offsets: dict[int, int]) -> dict[str, Any]:
        return {
            "member_id": self.member_id,
            "generation": self.generation,
            "offsets": [
                {"topic": self.topic, "partition": p, "offset": o} for p, o in offsets.items()
            ],
        }


async def join_all(
    session: aiohttp.ClientSession, members: list[Member], body: dict[str, Any]
) -> None:
    limit = asyncio.Semaphore(JOIN_CONCURRENCY)

    async def one(m: Member) -> None:
        async with limit:
            await m.join(session, body)

    await asyncio.gather(*(one(m) for m in members))


async def settle(session: aiohttp.ClientSession, members: list[Member]) -> None:
    """Heartbeats every member until none is told `rebalance` (a heartbeat at the current
    generation acknowledges it, which hands revoked partitions on)."""
    deadline = time.monotonic() + SETTLE_DEADLINE_S
    while True:
        await asyncio.gather(*(m.heartbeat(session) for m in members))
        generations = {m.generation for m in members}
        if not any(m.rebalance for m in members) and len(generations) == 1:
            return
        if time.monotonic() > deadline:
            raise BenchError(f"group {members[0].group} did not settle in {SETTLE_DEADLINE_S} s")
        await asyncio.sleep(SETTLE_POLL_S)


async def group_coordinator(session: aiohttp.ClientSession, base: str, group: str) -> int:
    status, answer = await call(session, "GET", f"{base}/v1/groups/{group}")
    if status != 200:
        raise BenchError(f"describing {group}: HTTP {status} {answer}")
    return int(answer["coordinator"])


async def commit_index(session: aiohttp.ClientSession, base: str) -> int:
    async with session.get(f"{base}/metrics") as resp:
        text = await resp.read()
    for line in text.splitlines():
        if line.startswith(COMMIT_INDEX_METRIC):
            return int(float(line[len(COMMIT_INDEX_METRIC) :]))
    raise BenchError("/metrics has no raftka_raft_commit_index")


# -- commits/s ---------------------------------------------------------------------------


@dataclass(slots=True)
class CommitWindow:
    counting: bool = False
    stopped: bool = False
    latencies_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    heartbeats: int = 0

    def error(self, status: int) -> None:
        if self.counting:
            key = "error" if status == 0 else str(status)
            self.errors[key] = self.errors.get(key, 0) + 1


async def raw_status(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """Sends one request on a keep-alive connection; returns the answer's status (its body,
    if any, is read and dropped). 0 when the connection failed."""
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
        marker = head.lower().find(b"content-length:")
        if marker >= 0:
            length = int(head[marker + len(b"content-length:") : head.index(b"\r\n", marker)])
            await reader.readexactly(length)
        return int(head[9:12])
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError):
        return 0


def commit_request(m: Member, host: str, offset: int) -> bytes:
    body = orjson.dumps(m.commit_body(dict.fromkeys(m.partitions, offset)))
    return (
        f"POST /v1/groups/{m.group}/offsets HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def commit_loop(session: aiohttp.ClientSession, m: Member, window: CommitWindow) -> None:
    """One commit in flight: every assigned partition at an offset one higher each time.
    Commits go over one raw keep-alive connection (as `bench http` drives produce): an
    aiohttp client costs about as much CPU per request as the broker's answer, and on a
    2-CPU machine that would be measured instead of the broker."""
    host = m.base.removeprefix("http://")
    address, _, port = host.rpartition(":")
    reader, writer = await asyncio.open_connection(address, int(port))
    offset = 0
    try:
        while not window.stopped:
            offset += 1
            started = time.perf_counter()
            status = await raw_status(reader, writer, commit_request(m, host, offset))
            elapsed = time.perf_counter() - started
            if status == 0:  # the connection broke: count it, open another one
                window.error(status)
                writer.close()
                await asyncio.sleep(ERROR_BACKOFF_S)
                reader, writer = await asyncio.open_connection(address, int(port))
            else:
                await _counted(session, m, window, status, elapsed)
    finally:
        writer.close()


async def _counted(
    session: aiohttp.ClientSession, m: Member, window: CommitWindow, status: int, elapsed: float
) -> None:
    if status == 204:
        if window.counting:
            window.latencies_s.append(elapsed)
        return
    window.error(status)
    if status == 409:  # a new generation: learn it, then commit again
        await m.heartbeat(session)
    await asyncio.sleep(ERROR_BACKOFF_S)


async def heartbeat_loop(
    session: aiohttp.ClientSession, m: Member, interval_s: float, window: CommitWindow
) -> None:
    while not window.stopped:
        await asyncio.sleep(interval_s)
        status = await m.heartbeat(session)
        if status != 200:
            window.error(status)
        elif window.counting:
            window.heartbeats += 1


async def measure_commits(
    cluster: Cluster, run: int, options: GroupsOptions, session: aiohttp.ClientSession
) -> CommitRun:
    urls = [cluster.brokers[b].url for b in sorted(cluster.brokers)]
    if options.direct:  # an empty group's description names its coordinator too
        urls = [cluster.brokers[await group_coordinator(session, urls[0], COMMIT_GROUP)].url]
    members = [
        Member(urls[i % len(urls)], COMMIT_GROUP, COMMIT_TOPIC) for i in range(options.members)
    ]
    join_body = {"topics": [COMMIT_TOPIC], "session_timeout_ms": COMMIT_SESSION_TIMEOUT_MS}
    started = time.monotonic()
    await join_all(session, members, join_body)
    joined = time.monotonic()
    await settle(session, members)
    settled = time.monotonic()
    assigned = sorted(p for m in members for p in m.partitions)
    if assigned != list(range(options.partitions)):
        raise BenchError(f"the settled group covers partitions {assigned}")
    coordinator = await group_coordinator(session, urls[0], COMMIT_GROUP)
    coordinator_url = cluster.brokers[coordinator].url

    window = CommitWindow()
    interval_s = COMMIT_SESSION_TIMEOUT_MS / HEARTBEATS_PER_SESSION / MS_PER_S
    committers = [asyncio.create_task(commit_loop(session, m, window)) for m in members]
    heartbeaters = [
        asyncio.create_task(heartbeat_loop(session, m, interval_s, window)) for m in members
    ]
    pids = {b: p.process.pid for b, p in cluster.brokers.items() if p.process is not None}
    try:
        await asyncio.sleep(WARMUP_S)
        index_before = await commit_index(session, coordinator_url)
        cpu_before = {b: cpu_seconds(pid) for b, pid in pids.items()}
        driver_before = own_cpu_seconds()
        machine_before = machine_cpu_seconds()[0]
        window.counting = True
        window_started = time.perf_counter()
        await asyncio.sleep(options.duration_s)
        window.counting = False
        elapsed = time.perf_counter() - window_started
        driver_cpu = own_cpu_seconds() - driver_before
        machine_cpu = machine_cpu_seconds()[0] - machine_before
        cpu = {b: cpu_seconds(pid) - cpu_before[b] for b, pid in pids.items()}
        entries = await commit_index(session, coordinator_url) - index_before
    finally:
        window.stopped = True
        for task in heartbeaters:
            task.cancel()
        await asyncio.gather(*committers, return_exceptions=True)
        await asyncio.gather(*heartbeaters, return_exceptions=True)
    limit = asyncio.Semaphore(JOIN_CONCURRENCY)

    async def leave(m: Member) -> None:
        async with limit:
            await m.leave(session)

    await asyncio.gather(*(leave(m) for m in members))

    done = len(window.latencies_s)
    if done < 2:
        raise BenchError(f"{done} commits answered 204 in {elapsed:.1f} s")
    latencies = sorted(window.latencies_s)
    cuts = statistics.quantiles(latencies, n=100)
    offsets_per_commit = options.partitions / options.members
    return CommitRun(
        run=run,
        coordinator=coordinator,
        members=options.members,
        join_s=joined - started,
        settle_s=settled - joined,
        window_s=elapsed,
        commits=done,
        commits_per_s=done / elapsed,
        offsets_per_s=done * offsets_per_commit / elapsed,
        p50_ms=statistics.median(latencies) * MS_PER_S,
        p99_ms=cuts[98] * MS_PER_S,
        max_ms=latencies[-1] * MS_PER_S,
        errors=dict(sorted(window.errors.items())),
        heartbeats=window.heartbeats,
        metadata_entries=entries,
        commits_per_entry=done / entries if entries else 0.0,
        ms_per_entry=elapsed / entries * MS_PER_S if entries else 0.0,
        driver_busy=driver_cpu / elapsed,
        driver_cpu_us_per_commit=driver_cpu / done * US_PER_S,
        broker_busy={str(b): s / elapsed for b, s in sorted(cpu.items())},
        coordinator_cpu_us_per_commit=cpu[coordinator] / done * US_PER_S,
        brokers_cpu_us_per_commit=sum(cpu.values()) / done * US_PER_S,
        own_busy=(sum(cpu.values()) + driver_cpu) / elapsed,
        machine_busy=machine_cpu / elapsed,
    )


# -- rebalance time ----------------------------------------------------------------------


@dataclass(slots=True)
class Consumer:
    """A consuming member: its polls record when a record of each partition arrived."""

    member: Member
    seen: dict[int, float] = field(default_factory=dict)  # partition -> latest arrival
    first_after: dict[int, float] = field(default_factory=dict)  # since `mark`
    mark: float | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def poll_loop(self, session: aiohttp.ClientSession) -> None:
        m = self.member
        url = (
            f"{m.path}/members/{m.member_id}/records"
            f"?max_records={POLL_MAX_RECORDS}&max_wait_ms={POLL_WAIT_MS}"
        )
        while True:
            status, answer = await call(session, "GET", url)
            if status != 200:
                await asyncio.sleep(ERROR_BACKOFF_S)
                continue
            now = time.monotonic()
            reached: dict[int, int] = {}
            for record in answer["records"]:
                p = record["partition"]
                self.seen[p] = now
                if self.mark is not None and p not in self.first_after:
                    self.first_after[p] = now
                reached[p] = max(reached.get(p, 0), record["offset"] + 1)
            if reached:  # explicit commits, as a careful consumer makes after processing
                await call(session, "POST", f"{m.path}/offsets", m.commit_body(reached))

    async def heartbeat_loop(self, session: aiohttp.ClientSession, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self.member.heartbeat(session)

    def start(self, session: aiohttp.ClientSession, heartbeat_interval_s: float) -> None:
        self.tasks = [
            asyncio.create_task(self.poll_loop(session)),
            asyncio.create_task(self.heartbeat_loop(session, heartbeat_interval_s)),
        ]

    async def kill(self) -> None:
        """Stops talking, as a crashed process would (no leave)."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def produce_loop(session: aiohttp.ClientSession, base: str, partitions: int) -> None:
    url = f"{base}/v1/topics/{REBALANCE_TOPIC}/records?acks=1"
    n = 0
    while True:
        body = {"records": [{"value": n, "partition": p} for p in range(partitions)]}
        await call(session, "POST", url, body)
        n += 1
        await asyncio.sleep(PRODUCE_INTERVAL_S)


async def wait_until(condition: Callable[[], bool], what: str, deadline_s: float) -> float:
    """Polls `condition` every MONITOR_POLL_S; returns when it first held (monotonic)."""
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            raise BenchError(f"timed out after {deadline_s} s waiting for {what}")
        await asyncio.sleep(MONITOR_POLL_S)
    return time.monotonic()


async def measure_rebalance(
    cluster: Cluster, run: int, options: GroupsOptions, session: aiohttp.ClientSession
) -> RebalanceRun:
    urls = [cluster.brokers[b].url for b in sorted(cluster.brokers)]
    group = f"bench-rebalance-{run}"
    consumers = [
        Consumer(Member(urls[i % len(urls)], group, REBALANCE_TOPIC))
        for i in range(options.rebalance_members)
    ]
    members = [c.member for c in consumers]
    join_body = {
        "topics": [REBALANCE_TOPIC],
        "session_timeout_ms": options.session_timeout_ms,
        "auto_offset_reset": "latest",
    }
    producer = asyncio.create_task(produce_loop(session, urls[0], options.rebalance_partitions))
    try:
        await join_all(session, members, join_body)
        await settle(session, members)
        interval_s = options.session_timeout_ms / HEARTBEATS_PER_SESSION / MS_PER_S
        for c in consumers:
            c.start(session, interval_s)
        since = time.monotonic()

        def steady() -> bool:
            flowing = {p for c in consumers for p, t in c.seen.items() if t > since}
            return len(flowing) == options.rebalance_partitions

        await wait_until(steady, "every partition consumed", STEADY_DEADLINE_S)
        coordinator = await group_coordinator(session, urls[0], group)
        victim, survivors = consumers[0], consumers[1:]
        victim_partitions = victim.member.partitions
        if not victim_partitions:
            raise BenchError(f"member {victim.member.member_id} has no partitions to hand off")

        killed_at = time.monotonic()
        for c in survivors:
            c.mark = killed_at
        await victim.kill()

        async def victim_gone() -> bool:
            status, answer = await call(session, "GET", f"{survivors[0].member.path}")
            return status == 200 and all(
                m["member_id"] != victim.member.member_id for m in answer["members"]
            )

        end = killed_at + HANDOFF_DEADLINE_S
        while not await victim_gone():
            if time.monotonic() > end:
                raise BenchError("the killed member was never dropped")
            await asyncio.sleep(MONITOR_POLL_S)
        expired_at = time.monotonic()

        def first_seen(p: int) -> float | None:
            times = [c.first_after[p] for c in survivors if p in c.first_after]
            return min(times) if times else None

        await wait_until(
            lambda: all(first_seen(p) is not None for p in victim_partitions),
            "the killed member's partitions consumed again",
            HANDOFF_DEADLINE_S,
        )
        per_partition = {p: (first_seen(p) or 0.0) - killed_at for p in victim_partitions}
        total = max(per_partition.values())
        for c in survivors:
            await c.kill()
        for m in members[1:]:
            await m.leave(session)
    finally:
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
        for c in consumers:
            await c.kill()
    return RebalanceRun(
        run=run,
        coordinator=coordinator,
        victim_partitions=tuple(victim_partitions),
        expiry_s=expired_at - killed_at,
        handoff_s=total - (expired_at - killed_at),
        total_s=total,
        per_partition_s={str(p): s for p, s in sorted(per_partition.items())},
    )


# -- the run and its report ------------------------------------------------------------


def start_cluster(root: Path, options: GroupsOptions) -> Cluster:
    cluster = make_cluster(root, voters=options.brokers, **default_settings())
    cluster.start_all()
    controller = cluster.wait_ready()
    for topic, partitions in (
        (COMMIT_TOPIC, options.partitions),
        (REBALANCE_TOPIC, options.rebalance_partitions),
    ):
        resp = cluster.request(
            controller,
            "POST",
            "/v1/topics",
            {
                "name": topic,
                "partitions": partitions,
                "replication_factor": REPLICATION_FACTOR,
                "config": {"min_insync_replicas": MIN_INSYNC_REPLICAS},
            },
        )
        if resp.status != 201:
            raise BenchError(f"creating {topic}: HTTP {resp.status} {resp.body}")

    def led() -> bool:
        described = cluster.get(controller, f"/v1/topics/{REBALANCE_TOPIC}")["partitions"]
        return all(p["leader"] is not None for p in described)

    wait_for(led, f"every partition of {REBALANCE_TOPIC} led")
    return cluster


async def one_run(
    cluster: Cluster, run: int, options: GroupsOptions
) -> tuple[CommitRun, RebalanceRun]:
    async with new_session() as session:
        commits = await measure_commits(cluster, run, options, session)
        rebalance = await measure_rebalance(cluster, run, options, session)
    return commits, rebalance


def summarize(commits: list[CommitRun], rebalances: list[RebalanceRun]) -> Medians:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    return Medians(
        commits_per_s=med([c.commits_per_s for c in commits]),
        p50_ms=med([c.p50_ms for c in commits]),
        p99_ms=med([c.p99_ms for c in commits]),
        errors=sum(sum(c.errors.values()) for c in commits),
        commits_per_entry=med([c.commits_per_entry for c in commits]),
        ms_per_entry=med([c.ms_per_entry for c in commits]),
        driver_busy=med([c.driver_busy for c in commits]),
        coordinator_busy=med([c.broker_busy[str(c.coordinator)] for c in commits]),
        coordinator_cpu_us_per_commit=med([c.coordinator_cpu_us_per_commit for c in commits]),
        brokers_cpu_us_per_commit=med([c.brokers_cpu_us_per_commit for c in commits]),
        own_busy=med([c.own_busy for c in commits]),
        machine_busy=med([c.machine_busy for c in commits]),
        rebalance_total_s=med([r.total_s for r in rebalances]),
        rebalance_expiry_s=med([r.expiry_s for r in rebalances]),
        rebalance_handoff_s=med([r.handoff_s for r in rebalances]),
        rebalance_total_max_s=max(r.total_s for r in rebalances),
    )


def describe_run(c: CommitRun, r: RebalanceRun) -> str:
    errors = sum(c.errors.values())
    return (
        f"run {c.run}: {c.commits_per_s:,.0f} commits/s from {c.members} members "
        f"(p50 {c.p50_ms:.1f} ms, p99 {c.p99_ms:.1f} ms, {errors} errors, "
        f"{c.commits_per_entry:.1f} commits per metadata entry, CPUs busy: driver "
        f"{c.driver_busy:.2f}, brokers + driver {c.own_busy:.2f}, machine {c.machine_busy:.2f}); "
        f"rebalance {r.total_s:.2f} s = expiry {r.expiry_s:.2f} s "
        f"+ hand-off {r.handoff_s:.2f} s"
    )


def run_groups_bench(
    options: GroupsOptions, progress: Callable[[str], None] | None = None
) -> GroupsReport:
    commits: list[CommitRun] = []
    rebalances: list[RebalanceRun] = []
    with tempfile.TemporaryDirectory(prefix="raftka-bench-groups-") as tmp:
        for run in range(1, options.runs + 1):
            cluster = start_cluster(Path(tmp) / f"run-{run}", options)
            try:
                c, r = asyncio.run(one_run(cluster, run, options))
            finally:
                cluster.close()
            commits.append(c)
            rebalances.append(r)
            if progress is not None:
                progress(describe_run(c, r))
    return GroupsReport(
        options=options,
        machine=machine(),
        commit_runs=tuple(commits),
        rebalance_runs=tuple(rebalances),
        medians=summarize(commits, rebalances),
    )


def report_tables(report: GroupsReport) -> list[Any]:
    """Rich renderables: the options line, the commits table, the rebalance table."""
    from rich.table import Table

    o, m = report.options, report.medians
    head = (
        f"{o.runs} run{'s' if o.runs > 1 else ''}, a fresh {o.brokers}-broker cluster each "
        f"(RF={REPLICATION_FACTOR}); {report.machine['cpus']} CPUs "
        f"({report.machine['cpu_model']}); brokers and this driver unpinned"
    )
    commits = Table(
        title=f"offset commits: {o.members} members, {o.partitions} partitions, "
        f"{o.duration_s:g} s windows, "
        + ("straight to the coordinator" if o.direct else "spread over every broker"),
        title_justify="left",
    )
    for column in (
        "run",
        "commits/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "commits/entry",
        "ms/entry",
        "coordinator busy",
        "coord. µs/commit",
        "brokers µs/commit",
        "driver busy",
        "ours busy",
        "machine busy",
    ):
        commits.add_column(column, justify="right")
    for c in report.commit_runs:
        commits.add_row(
            str(c.run),
            f"{c.commits_per_s:,.0f}",
            f"{c.p50_ms:.1f}",
            f"{c.p99_ms:.1f}",
            str(sum(c.errors.values())),
            f"{c.commits_per_entry:.1f}",
            f"{c.ms_per_entry:.1f}",
            f"{c.broker_busy[str(c.coordinator)]:.2f}",
            f"{c.coordinator_cpu_us_per_commit:.0f}",
            f"{c.brokers_cpu_us_per_commit:.0f}",
            f"{c.driver_busy:.2f}",
            f"{c.own_busy:.2f}",
            f"{c.machine_busy:.2f}",
        )
    commits.add_row(
        "median",
        f"{m.commits_per_s:,.0f}",
        f"{m.p50_ms:.1f}",
        f"{m.p99_ms:.1f}",
        str(m.errors),
        f"{m.commits_per_entry:.1f}",
        f"{m.ms_per_entry:.1f}",
        f"{m.coordinator_busy:.2f}",
        f"{m.coordinator_cpu_us_per_commit:.0f}",
        f"{m.brokers_cpu_us_per_commit:.0f}",
        f"{m.driver_busy:.2f}",
        f"{m.own_busy:.2f}",
        f"{m.machine_busy:.2f}",
        style="bold",
    )
    rebalance = Table(
        title=f"rebalance: {o.rebalance_members} members on {o.rebalance_partitions} "
        f"partitions, session_timeout_ms={o.session_timeout_ms}, one member killed",
        title_justify="left",
    )
    for column in ("run", "its partitions", "kill -> dropped", "-> consumed again", "total"):
        rebalance.add_column(column, justify="right")
    for r in report.rebalance_runs:
        rebalance.add_row(
            str(r.run),
            ",".join(str(p) for p in r.victim_partitions),
            f"{r.expiry_s:.2f} s",
            f"{r.handoff_s:.2f} s",
            f"{r.total_s:.2f} s",
        )
    rebalance.add_row(
        "median",
        "",
        f"{m.rebalance_expiry_s:.2f} s",
        f"{m.rebalance_handoff_s:.2f} s",
        f"{m.rebalance_total_s:.2f} s",
        style="bold",
    )
    return [head, commits, rebalance]
