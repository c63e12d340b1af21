"""One partition replica on this broker: its log, its role, and the local data path.

Owns what happens to one replica on the event loop: appends as leader (with idempotent
producers and acks=all waits) and as follower, what consumers may read (below the high
watermark), the answers to followers' fetches, long-poll wake-ups (consumers on the high
watermark, followers on the log end offset), and role changes fenced by epoch. The rules
themselves are pure and live in `leader.py`, `follower.py` and `producer_state.py`.

Disk work that can block (a segment roll, a truncation) runs in a worker thread; while it
runs, appends and role changes wait for it, so the log is never used from two threads at
once. Nothing here asks the controller anything: ISR changes go out through the function
the manager gives (`propose_isr`).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from raftka.metadata.errors import (
    InsufficientStorage,
    LeaderNotAvailable,
    NotEnoughReplicas,
    OffsetOutOfRange,
    RequestTimedOut,
)
from raftka.replication.follower import (
    Append,
    Backoff,
    FetchAnswer,
    FollowerStep,
    StartAt,
    TruncateTo,
)
from raftka.replication.leader import (
    UNDEFINED_EPOCH,
    FetchVerdict,
    FollowerFetch,
    PartitionLeader,
    check_follower_fetch,
)
from raftka.replication.producer_state import (
    NO_PRODUCER_ID,
    ProducerBatch,
    ProducerRef,
    ProducerSnapshot,
    ProducerStates,
)
from raftka.storage.batch import (
    HEADER_BYTES,
    BatchHeader,
    JsonRecords,
    Records,
    split_batches,
)
from raftka.storage.disk import DiskSpace, is_disk_full
from raftka.storage.errors import DiskFullError, OffsetOutOfRangeError, SegmentFullError
from raftka.storage.log import AppendInfo, PartitionLog, ReadResult

log = logging.getLogger(__name__)

Clock = Callable[[], int]  # monotonic milliseconds
# Runs blocking disk work (a roll, a truncation) and gives its future: a worker thread in the
# broker; at once, in order, in a deterministic simulation.
RunBlocking = Callable[..., "asyncio.Future[Any]"]
# What a record adds to its body in a batch, at most (offset delta, timestamp, framing):
# for the free-space check before an append, which only needs an upper bound.
RECORD_OVERHEAD_BYTES = 64


def run_in_worker_thread(fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    return asyncio.get_running_loop().run_in_executor(None, fn, *args)


@dataclass(frozen=True, slots=True)
class PartitionRole:
    """What the metadata says about this partition, as this broker must act on it."""

    leader: int | None
    leader_epoch: int
    partition_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    min_insync_replicas: int


NO_ROLE = PartitionRole(
    leader=None, leader_epoch=-1, partition_epoch=-1, replicas=(), isr=(), min_insync_replicas=1
)


@dataclass(frozen=True, slots=True)
class Appended:
    """Where a leader's batch went (a retried idempotent batch reports its first write)."""

    base_offset: int
    last_offset: int
    duplicate: bool = False
    # The leader epoch it was appended (or found) in: only that epoch's high watermark may
    # acknowledge it (pass it to wait_for_commit).
    leader_epoch: int = -1


class PartitionReplica:
    def __init__(
        self,
        topic: str,
        partition: int,
        topic_id: str,
        partition_log: PartitionLog,
        *,
        broker_id: int,
        high_watermark: int,
        producers: ProducerStates,
        replica_lag_time_max_ms: int,
        clock: Clock,
        propose_isr: Callable[[PartitionReplica, tuple[int, ...]], None],
        run_blocking: RunBlocking | None = None,
        disk: DiskSpace | None = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.topic_id = topic_id
        self.log = partition_log
        self.broker_id = broker_id
        self.producers = producers
        self.role = NO_ROLE
        self.high_watermark = min(high_watermark, partition_log.log_end_offset)
        self._replica_lag_time_max_ms = replica_lag_time_max_ms
        self._clock = clock
        self._propose_isr = propose_isr
        self._run_blocking = run_blocking or run_in_worker_thread
        self._disk = disk  # None: no free-space checks (tests, simulations)
        self._leader: PartitionLeader | None = None
        # Our ISR change was refused as stale: someone else may lead now. We stop acting as
        # leader until the metadata gives us a newer role.
        self._leader_fenced = False
        self._closed = False
        # A roll or truncation running in a worker thread, and roles that wait for it.
        self._log_op: asyncio.Future[Any] | None = None
        self._truncating = False
        self._pending_role: PartitionRole | None = None
        self._hw_moved = asyncio.Event()  # consumers' long-polls
        self._fetch_waiters: set[asyncio.Future[None]] = set()  # followers' long-polls
        self._commit_waiters: list[tuple[int, int, asyncio.Future[None]]] = []  # acks=all
        self._waiter_ids = itertools.count()

    # ---- role --------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self._leader is not None and not self._leader_fenced and not self._closed

    @property
    def is_follower(self) -> bool:
        return (
            not self._closed
            and self.role.leader is not None
            and self.role.leader != self.broker_id
            and self._pending_role is None
        )

    @property
    def log_start_offset(self) -> int:
        return self.log.log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.log_end_offset

    @property
    def leader_state(self) -> PartitionLeader | None:
        return self._leader

    def become(self, role: PartitionRole) -> bool:
        """Takes a role from the metadata; False if refused as stale (older epochs can come
        back when a snapshot is installed). Waits behind a running roll or truncation."""
        if self._closed:
            return False
        current = self._pending_role or self.role
        if (
            role.leader_epoch < current.leader_epoch
            or role.partition_epoch < current.partition_epoch
        ):
            log.info(
                "%s-%d: ignoring a stale role (epochs %d/%d, have %d/%d)",
                self.topic,
                self.partition,
                role.leader_epoch,
                role.partition_epoch,
                current.leader_epoch,
                current.partition_epoch,
            )
            return False
        if self._log_op is not None:
            self._pending_role = role
            return True
        self._apply_role(role)
        return True

    def _apply_role(self, role: PartitionRole) -> None:
        old = self.role
        self.role = role
        now_ms = self._clock()
        leads = role.leader == self.broker_id
        if leads and (self._leader is None or role.leader_epoch != old.leader_epoch):
            self._become_leader(role, now_ms)
        elif leads and self._leader is not None:
            self._leader.committed(role.replicas, role.isr, role.partition_epoch, now_ms)
            if role.partition_epoch > old.partition_epoch:
                self._leader_fenced = False
            self._advance_high_watermark()
            self._settle_commit_waiters()  # a shrink below min_insync_replicas fails them
        elif self._leader is not None or old.leader != role.leader:
            self._leader = None
            self._leader_fenced = False
            self._fail_commit_waiters(
                LeaderNotAvailable(f"{self.topic}-{self.partition} is no longer led here")
            )
            self._wake_readers()
            self._wake_fetchers()

    def _become_leader(self, role: PartitionRole, now_ms: int) -> None:
        leo = self.log.log_end_offset
        # Kafka records the new epoch at the log end before any append: a follower holding
        # an old leader's tail past this offset is told to truncate to it.
        self.log.assign_epoch(role.leader_epoch, leo)
        self._leader = PartitionLeader(
            broker_id=self.broker_id,
            replicas=role.replicas,
            isr=role.isr,
            partition_epoch=role.partition_epoch,
            epoch_start_offset=leo,
            high_watermark=min(self.high_watermark, leo),
            now_ms=now_ms,
            replica_lag_time_max_ms=self._replica_lag_time_max_ms,
        )
        self._leader_fenced = False
        self._advance_high_watermark()
        self._wake_readers()
        self._wake_fetchers()

    def _moved_on_from(self, based_on: PartitionRole | None) -> bool:
        """Whether a newer role arrived since `based_on`, the role a proposal was made in:
        the metadata and the controller's answer race, and an answer about a state we
        already left says nothing about the current one (Kafka ignores it too)."""
        if based_on is None:
            return False
        current = self._pending_role or self.role
        return (current.leader_epoch, current.partition_epoch) != (
            based_on.leader_epoch,
            based_on.partition_epoch,
        )

    def fence_leadership(self, reason: str, *, based_on: PartitionRole | None = None) -> None:
        """Our ISR change (proposed in role `based_on`) was refused as stale: stop acting
        as leader until a newer role, unless that newer role is already here."""
        if self._leader is None or self._moved_on_from(based_on):
            return
        log.warning("%s-%d: stops leading: %s", self.topic, self.partition, reason)
        self._leader_fenced = True
        self._fail_commit_waiters(LeaderNotAvailable(f"{self.topic}-{self.partition}: {reason}"))
        self._wake_readers()

    def isr_change_failed(
        self, *, based_on: PartitionRole | None = None, outcome_unknown: bool = False
    ) -> None:
        """Our ISR change (proposed in role `based_on`) failed: refused, or with its outcome
        unknown (PartitionLeader.isr_change_failed says what each means). A newer role
        already settled it, and may have a newer change pending."""
        if self._leader is not None and not self._moved_on_from(based_on):
            self._leader.isr_change_failed(self._clock(), outcome_unknown=outcome_unknown)

    def maybe_change_isr(self) -> None:
        """Asks for an ISR shrink or expansion when the leader's rules call for one."""
        if not self.is_leader or self._leader is None:
            return
        proposal = self._leader.isr_change_to_propose(self._clock())
        if proposal is not None:
            self._propose_isr(self, proposal)

    # ---- appending as leader -----------------------------------------------------------

    def check_can_append(self, acks: str) -> None:
        """Raises before anything is written, so a refused request leaves no trace."""
        if not self.is_leader:
            raise LeaderNotAvailable(
                f"broker {self.broker_id} does not lead {self.topic}-{self.partition}"
            )
        if self._disk is not None and not self._disk.has_room():
            self._disk.refuse()
            raise self._insufficient_storage(
                f"{self._disk.free_bytes()} bytes free, reserve {self._disk.reserve_bytes}"
            )
        if acks == "all" and len(self.role.isr) < self.role.min_insync_replicas:
            raise NotEnoughReplicas(
                f"{self.topic}-{self.partition} has {len(self.role.isr)} in-sync replicas, "
                f"fewer than min_insync_replicas={self.role.min_insync_replicas}"
            )

    async def append(
        self,
        records: Records,
        *,
        acks: str = "1",
        producer: ProducerRef | None = None,
    ) -> Appended:
        """Appends records as one batch (or finds the batch a retry repeats)."""
        while True:
            await self._log_idle()
            self.check_can_append(acks)
            if producer is not None:
                dup = self.producers.check(
                    producer.producer_id, producer.producer_epoch, producer.sequence, len(records)
                )
                if dup is not None:
                    return Appended(dup.first_offset, dup.last_offset, True, self.role.leader_epoch)
            try:
                if self._disk is not None:
                    size = (
                        HEADER_BYTES + _bodies_bytes(records) + RECORD_OVERHEAD_BYTES * len(records)
                    )
                    self._disk.check_room(size)
                info = self._append_now(records, producer)
            except SegmentFullError:
                await self._roll()
                continue
            except DiskFullError as exc:
                raise self._insufficient_storage(exc) from exc
            return Appended(info.base_offset, info.last_offset, False, self.role.leader_epoch)

    async def _roll(self) -> None:
        """Rolls the log in a worker thread; a full disk refuses the write (nothing of the
        batch was written, and the segment stays active: a later roll finishes the job)."""
        try:
            await self._run_log_op(self.log.roll)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            raise self._insufficient_storage(exc) from exc

    def _insufficient_storage(self, why: Exception | str) -> InsufficientStorage:
        return InsufficientStorage(
            f"broker {self.broker_id} cannot append to {self.topic}-{self.partition}: {why}"
        )

    def disk_has_room(self) -> bool:
        """Whether this replica's disk may take more records (followers stop fetching
        while it may not, so they fall out of the ISR instead of failing)."""
        return self._disk is None or self._disk.has_room()

    def _append_now(self, records: Records, producer: ProducerRef | None) -> AppendInfo:
        if producer is None:
            info = self.log.append(records, leader_epoch=self.role.leader_epoch)
        else:
            info = self.log.append(
                records,
                leader_epoch=self.role.leader_epoch,
                producer_id=producer.producer_id,
                producer_epoch=producer.producer_epoch,
                base_sequence=producer.sequence,
            )
            self.producers.record(
                ProducerBatch(
                    producer.producer_id,
                    producer.producer_epoch,
                    producer.sequence,
                    producer.sequence + len(records) - 1,
                    info.base_offset,
                    info.last_offset,
                )
            )
        self._wake_fetchers()
        self._advance_high_watermark()
        return info

    async def wait_for_commit(self, appended: Appended, timeout_s: float) -> None:
        """acks=all: returns once the high watermark passed the appended batch with the ISR
        at least min_insync_replicas strong; raises NotEnoughReplicas, RequestTimedOut, or
        LeaderNotAvailable if this replica stops leading meanwhile.

        Leadership can move between the append and this call (the produce route awaits an
        fsync in between): a replica that no longer leads, or leads in another epoch than
        the append's, refuses at once. Its follower step may have truncated the batch, and
        a later epoch's high watermark would then acknowledge other records at those
        offsets."""
        end_offset = appended.last_offset + 1
        if not self.is_leader or appended.leader_epoch != self.role.leader_epoch:
            raise LeaderNotAvailable(
                f"{self.topic}-{self.partition}: leadership moved since the append"
            )
        if self.high_watermark < end_offset:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry = (end_offset, next(self._waiter_ids), future)
            heapq.heappush(self._commit_waiters, entry)
            try:
                await asyncio.wait_for(future, timeout_s)
            except TimeoutError:
                raise RequestTimedOut(
                    f"{self.topic}-{self.partition}: the in-sync replicas did not all copy "
                    f"offsets below {end_offset} within {timeout_s:g} s"
                ) from None
            finally:
                if not future.done() or future.cancelled():
                    self._drop_abandoned_waiters()
        if not self.is_leader:
            raise LeaderNotAvailable(f"{self.topic}-{self.partition} is no longer led here")
        if len(self.role.isr) < self.role.min_insync_replicas:
            raise NotEnoughReplicas(
                f"{self.topic}-{self.partition}: written, but the ISR shrank to "
                f"{len(self.role.isr)} below min_insync_replicas={self.role.min_insync_replicas}"
            )

    def _advance_high_watermark(self) -> None:
        if self._leader is None:
            return
        if self._leader.advance_high_watermark(self.log.log_end_offset):
            self._high_watermark_moved(self._leader.high_watermark)

    def _high_watermark_moved(self, high_watermark: int) -> None:
        # Followers' fetches are not woken: they learn the high watermark with their next
        # records (or when their long-poll ends), as in Kafka. Waking them for it cost every
        # acks=all write a third fetch round trip per follower (docs/replication.md).
        self.high_watermark = high_watermark
        self._wake_readers()
        self._settle_commit_waiters()

    def _drop_abandoned_waiters(self) -> None:
        """Timed-out or cancelled waiters stay in the heap until the high watermark passes
        them; while it is stuck, compact so the heap stays bounded by live waiters."""
        live = [w for w in self._commit_waiters if not w[2].done()]
        if len(live) * 2 < len(self._commit_waiters):
            heapq.heapify(live)
            self._commit_waiters = live

    def _settle_commit_waiters(self) -> None:
        waiters = self._commit_waiters
        while waiters and waiters[0][0] <= self.high_watermark:
            _, _, future = heapq.heappop(waiters)
            if not future.done():
                future.set_result(None)

    def _fail_commit_waiters(self, error: Exception) -> None:
        waiters, self._commit_waiters = self._commit_waiters, []
        for _, _, future in waiters:
            if not future.done():
                future.set_exception(error)

    # ---- answering followers (as leader) -----------------------------------------------

    def answer_follower(
        self,
        replica_id: int,
        leader_epoch: int,
        fetch_offset: int,
        last_fetched_epoch: int,
        max_bytes: int,
    ) -> FetchAnswer:
        """A follower's fetch of this partition: checks it, records the follower's progress
        (which may move the high watermark) and reads whole batches from fetch_offset."""
        leader = self._leader
        if leader is None or not self.is_leader:
            return self._answer(FetchVerdict.NOT_LEADER)
        check = check_follower_fetch(
            self.log,
            self.role.leader_epoch,
            self.role.replicas,
            FollowerFetch(replica_id, leader_epoch, fetch_offset, last_fetched_epoch),
        )
        if check.verdict is not FetchVerdict.READ:
            return self._answer(check.verdict, check.diverging_epoch)
        leo = self.log.log_end_offset
        if leader.on_follower_fetch(replica_id, fetch_offset, leo, self._clock()):
            self._high_watermark_moved(leader.high_watermark)
        records = b""
        if fetch_offset < leo and max_bytes > 0:  # past the answer's byte budget: no records
            records = self.log.read_raw(fetch_offset, max_bytes)
        if replica_id not in leader.maximal_isr:
            self.maybe_change_isr()  # it may have just caught up
        return self._answer(FetchVerdict.READ, None, records)

    def _answer(
        self,
        verdict: FetchVerdict,
        diverging_epoch: tuple[int, int] | None = None,
        records: bytes = b"",
    ) -> FetchAnswer:
        return FetchAnswer(
            verdict,
            self.high_watermark,
            self.log.log_start_offset,
            self.log.log_end_offset,
            diverging_epoch,
            records,
        )

    def follower_has_news(self, fetch_offset: int) -> bool:
        """Would a follower at this position learn something now (records, or that we
        stopped leading)? If not, its fetch may wait: a higher high watermark alone is no
        news (it comes with the next records, or when the long-poll ends)."""
        if not self.is_leader:
            return True
        return self.log.log_end_offset > fetch_offset

    def add_fetch_waiter(self, waiter: asyncio.Future[None]) -> None:
        self._fetch_waiters.add(waiter)

    def remove_fetch_waiter(self, waiter: asyncio.Future[None]) -> None:
        self._fetch_waiters.discard(waiter)

    def _wake_fetchers(self) -> None:
        for waiter in self._fetch_waiters:
            if not waiter.done():
                waiter.set_result(None)

    # ---- following ---------------------------------------------------------------------

    def fetch_position(self) -> tuple[int, int]:
        """(fetch offset, last fetched epoch) for the next fetch from the leader."""
        return self.log.log_end_offset, self.log.latest_epoch

    async def apply_follower_step(self, step: FollowerStep) -> bool:
        """Does what the follower's rules decided; returns whether it made progress."""
        if not self.is_follower:
            return False  # the role changed since the fetch: its answer no longer applies
        if isinstance(step, Append):
            return await self._append_as_follower(step)
        if isinstance(step, TruncateTo):
            before = (self.log.log_end_offset, self.log.latest_epoch)
            if step.offset < before[0]:
                log.warning(
                    "%s-%d: truncating to %d (log end %d): divergent from the leader's log",
                    self.topic,
                    self.partition,
                    step.offset,
                    before[0],
                )
            await self._truncate(self.log.truncate_to, step.offset)
            # No change means the divergence persists as it was: let the fetcher back off.
            return (self.log.log_end_offset, self.log.latest_epoch) != before
        if isinstance(step, StartAt):
            log.warning(
                "%s-%d: starting over at the leader's log start %d",
                self.topic,
                self.partition,
                step.offset,
            )
            await self._truncate(self.log.truncate_fully_and_start_at, step.offset)
            return True
        assert isinstance(step, Backoff)
        return False

    async def _append_as_follower(self, step: Append) -> bool:
        # Every batch's CRC is checked before any of them is acted on.
        headers = [header for header, _ in split_batches(step.records)]
        data = memoryview(step.records)
        starts = list(itertools.accumulate((h.size_bytes for h in headers), initial=0))  # in data
        i = 0
        appended = False
        while i < len(headers):
            header = headers[i]
            if header.next_offset <= self.log.log_end_offset:
                i += 1
                continue  # already here (an answer to a repeated fetch)
            if header.base_offset < self.log.log_end_offset:
                # Batch boundaries differ from the leader's: cut back to its batch's start.
                await self._truncate(self.log.truncate_to, header.base_offset)
            await self._log_idle()
            if not self.is_follower:
                return appended
            if self._disk is not None:
                self._disk.check_room(len(data) - starts[i])
            try:
                # The rest in one write (as many as the active segment takes).
                taken = self.log.append_batches(data[starts[i] :], headers[i:])
            except SegmentFullError:
                await self._run_log_op(self.log.roll)
                continue
            appended = True
            for header in headers[i : i + taken]:
                if header.producer_id != NO_PRODUCER_ID:
                    self.producers.record(producer_batch_of(header))
            i += taken
        hw = min(step.high_watermark, self.log.log_end_offset)
        if hw > self.high_watermark:
            self.high_watermark = hw
            appended = True
        return appended

    async def _truncate(self, cut: Callable[[int], object], offset: int) -> None:
        """Cuts the log in a worker thread, where the producer state is rebuilt from what
        remains too; the high watermark is bounded by the new end before any role waiting
        for the cut is applied."""

        def job() -> ProducerStates:
            cut(offset)
            return rebuild_producer_states(self.log)

        await self._run_log_op(job, truncating=True)

    # ---- reading as leader ---------------------------------------------------------------

    def read(self, offset: int, *, max_records: int, max_bytes: int) -> ReadResult:
        """Records from `offset` below the high watermark. Any offset up to the log end is
        valid: past the high watermark a consumer just gets nothing yet (as in Kafka)."""
        if self._truncating:
            raise LeaderNotAvailable(f"{self.topic}-{self.partition} is being truncated")
        try:
            return self.log.read(
                offset, max_bytes=max_bytes, max_records=max_records, max_offset=self.high_watermark
            )
        except OffsetOutOfRangeError:
            raise self._out_of_range(offset) from None

    async def wait_for_records(self, offset: int, timeout_s: float) -> None:
        """Returns once a record at `offset` is readable, the replica closes or stops
        leading, or after `timeout_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not self._closed and self.is_leader and self.high_watermark <= offset:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            event = self._hw_moved
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return

    def offset_for_timestamp(self, timestamp_ms: int) -> int | None:
        offset = self.log.offset_for_timestamp(timestamp_ms)
        return offset if offset is not None and offset < self.high_watermark else None

    def _wake_readers(self) -> None:
        # One event per high-watermark move: every waiter wakes, the next ones wait anew.
        event, self._hw_moved = self._hw_moved, asyncio.Event()
        event.set()

    def _out_of_range(self, offset: int) -> OffsetOutOfRange:
        return OffsetOutOfRange(
            f"offset {offset} is outside {self.topic}-{self.partition}'s range "
            f"[{self.log_start_offset}, {self.log.log_end_offset}]",
            log_start_offset=self.log_start_offset,
            high_watermark=self.high_watermark,
        )

    # ---- disk work off the event loop ----------------------------------------------------

    async def _log_idle(self) -> None:
        while self._log_op is not None:
            op = self._log_op
            if op.done():
                # Its done-callback is only scheduled (an inline runner's future is done at
                # once): settle it here, since awaiting a done future never yields and this
                # loop would spin for ever.
                self._log_op_done(op)
                continue
            # The op's owner reports a failure; we only wait for it to end.
            with contextlib.suppress(Exception):
                await asyncio.shield(op)

    async def _run_log_op(
        self, fn: Callable[..., Any], *args: Any, truncating: bool = False
    ) -> Any:
        """Runs `fn(*args)` in a worker thread while appends and role changes wait. The
        thread is never abandoned halfway: a cancelled caller stops waiting, the op goes on."""
        await self._log_idle()
        future = self._run_blocking(fn, *args)
        self._log_op = future
        self._truncating = truncating
        future.add_done_callback(self._log_op_done)
        result = await asyncio.shield(future)
        # Settled before the caller goes on (the high watermark bounded by a truncation, a
        # waiting role applied), whichever runner ran it: a worker thread's future ran this
        # callback already, an inline runner's has it only scheduled.
        self._log_op_done(future)
        return result

    def _log_op_done(self, future: asyncio.Future[Any]) -> None:
        if self._log_op is not future:
            return
        self._log_op = None
        if self._truncating:
            self._truncating = False
            self.high_watermark = min(self.high_watermark, self.log.log_end_offset)
            if not future.cancelled() and future.exception() is None:
                self.producers = future.result()
        if self._pending_role is not None:
            role, self._pending_role = self._pending_role, None
            if not self._closed:
                self._apply_role(role)

    async def wait_idle(self) -> None:
        await self._log_idle()

    # ---- closing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stops serving: wakes every waiter (the topic may be gone). The caller closes the
        log once `wait_idle` returns, in a worker thread."""
        self._closed = True
        self._leader = None
        self._fail_commit_waiters(
            LeaderNotAvailable(f"{self.topic}-{self.partition} was closed on this broker")
        )
        self._wake_readers()
        self._wake_fetchers()


def epoch_before(partition_log: PartitionLog, offset: int) -> int:
    """The leader epoch of the batch just below `offset` (-1: none), from the epoch cache."""
    epoch = UNDEFINED_EPOCH
    for entry in partition_log.epoch_entries():
        if entry.start_offset >= offset:
            break
        epoch = entry.epoch
    return epoch


def rebuild_producer_states(
    partition_log: PartitionLog, snapshot: ProducerSnapshot | None = None
) -> ProducerStates:
    """Producer state from a snapshot (if it still describes the log: ProducerSnapshot) plus
    the batch headers after it. Blocks on disk reads: run it in a worker thread.

    Found by the simulation: a snapshot taken before a truncation once answered a retry as a
    duplicate at offsets that by then held other records (the write acknowledged there)."""
    if (
        snapshot is None
        or snapshot.last_epoch is None
        or not partition_log.log_start_offset <= snapshot.offset <= partition_log.log_end_offset
        or epoch_before(partition_log, snapshot.offset) != snapshot.last_epoch
    ):
        states, snapshot_offset = ProducerStates(), partition_log.log_start_offset
    else:
        states, snapshot_offset = snapshot.states, snapshot.offset
    for header in partition_log.batches(snapshot_offset):
        if header.base_offset >= snapshot_offset and header.producer_id != NO_PRODUCER_ID:
            states.record(producer_batch_of(header))
    return states


def producer_batch_of(header: BatchHeader) -> ProducerBatch:
    """What a stored batch's header says of its idempotent producer."""
    return ProducerBatch(
        header.producer_id,
        header.producer_epoch,
        header.base_sequence,
        header.base_sequence + header.record_count - 1,
        header.base_offset,
        header.last_offset,
    )


def _bodies_bytes(records: Records) -> int:
    if isinstance(records, JsonRecords):
        return records.bodies_bytes()
    return sum(map(len, map(itemgetter(1), records)))
