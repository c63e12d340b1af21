"""The Raft-replicated metadata log: the only module that knows pysyncobj.

`MetadataQuorum` runs a pysyncobj node (a voter, or a non-voting observer) whose single
replicated method feeds committed commands to the pure `state.apply`. It bridges
pysyncobj's tick thread to asyncio: submissions resolve asyncio futures through
`call_soon_threadsafe`, and every committed change reaches the listener on the tick
thread (the listener must hand it to its own loop). It never decides anything itself.

pysyncobj facts this module is built on (shared/notes/pysyncobj.md):
- a failure report (LEADER_CHANGED, a timeout) does not mean "not committed", so every
  command carries a `command_id` and the state machine answers a repeat with the first
  outcome: `submit` can retry safely;
- its journal is an mmap never synced on the write path, and term/vote are written
  without fsync: `_DurableFileJournal` syncs both before Raft counts them as stored;
- a journal without a full dump file comes back empty after compaction: use both;
- the journal is a file it grows with ftruncate and writes through an mmap: on a full
  disk (tmpfs, sparse files) a write to a page that cannot be allocated is a SIGBUS that
  kills the process. `_PreallocatedFile` allocates every byte before it is mapped, so a
  full disk is an ENOSPC the broker can answer by freeing its reserve.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import mmap
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pysyncobj import FAIL_REASON, SyncObj, SyncObjConf, SyncObjConsumer, replicated
from pysyncobj import journal as _pysyncobj_journal
from pysyncobj import syncobj as _pysyncobj_module
from pysyncobj.journal import FileJournal, MemoryJournal, MetaStorer, ResizableFile
from pysyncobj.pickle import dumps as pysyncobj_dumps

from raftka.metadata.commands import Command, CommandTooLarge, decode_command, encode_command
from raftka.metadata.errors import InvalidRequest, NoController, error_for_code
from raftka.metadata.model import MetadataState
from raftka.metadata.state import Applied, Rejected, apply

log = logging.getLogger(__name__)

# Failures after which the same command may simply be sent again (it carries its id).
_RETRIABLE_FAILURES = frozenset(
    {
        FAIL_REASON.MISSING_LEADER,
        FAIL_REASON.DISCARDED,
        FAIL_REASON.NOT_LEADER,
        FAIL_REASON.LEADER_CHANGED,
        FAIL_REASON.UNKNOWN_OUTCOME,
        FAIL_REASON.QUEUE_FULL,
    }
)
_FAILURE_NAMES = {v: k for k, v in vars(FAIL_REASON).items() if isinstance(v, int)}
SUBMIT_RETRY_BACKOFF_S = 0.05
SUBMIT_ATTEMPT_TIMEOUT_S = 2.0
# Compaction rewrites the journal and installs snapshots on laggards, where pysyncobj
# loses callbacks (notes, bug 1): keep it rare. Heartbeats are ~0.5 entries/s per broker.
LOG_COMPACTION_MIN_ENTRIES = 20_000
LOG_COMPACTION_MIN_TIME_S = 600
# The journal file grows by doubling, but by at most this much at a time, so the room a
# growth needs on a nearly full disk stays far below the broker's disk reserve.
JOURNAL_GROWTH_MAX_BYTES = 1 << 20
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})

# Frees room on a full disk (the broker's reserve file); returns whether it freed any.
MakeRoom = Callable[[], bool]
# pysyncobj opens the journal by path through module-level factories, with no way to pass
# anything else: each quorum registers its way to free room under its journal's path.
_ROOM_MAKERS: dict[str, MakeRoom] = {}


def _with_room(path: str, write: Callable[[], None]) -> None:
    """Runs `write`; on a full disk frees room through the hook registered for `path`
    and runs it once more (a second failure is raised)."""
    try:
        write()
        return
    except OSError as exc:
        make_room = _ROOM_MAKERS.get(path)
        if exc.errno not in _DISK_FULL_ERRNOS or make_room is None or not make_room():
            raise
        log.warning("the disk is full: freed the reserve for %s", path)
    write()


# ---------------------------------------------------------------------------
# Durability: sync the journal and the term/vote file before Raft relies on them.


class _DurableMetaStorer(MetaStorer):
    """Writes term and vote with fsync of the file and its folder (Raft's persistent state).
    On a full disk the old file stays whole, and the write is tried again once the
    broker's reserve is freed."""

    def storeMeta(self, meta: dict[str, Any]) -> None:  # noqa: N802 (pysyncobj's name)
        path = self.getPath()
        _with_room(path.removesuffix(".meta"), lambda: self._store(path, meta))

    @staticmethod
    def _store(path: str, meta: dict[str, Any]) -> None:
        tmp = path + ".tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(pysyncobj_dumps(meta))
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        os.replace(tmp, path)
        _fsync_dir(os.path.dirname(path) or ".")


class _PreallocatedFile(ResizableFile):
    """pysyncobj's journal file, with every byte allocated (posix_fallocate) before the
    mmap writes to it: growth fails with ENOSPC, never with a SIGBUS."""

    def __init__(
        self,
        fileName: str,  # noqa: N803 (pysyncobj's names)
        initialSize: int = 1024,  # noqa: N803
        resizeFactor: float = 2.0,  # noqa: N803
        defaultContent: bytes | None = None,  # noqa: N803
    ) -> None:
        self._path = fileName
        _with_room(
            fileName,
            lambda: ResizableFile.__init__(
                self, fileName, initialSize, resizeFactor, defaultContent
            ),
        )
        # A journal written before (or grown by ftruncate) may have holes: fill them.
        self._allocate(self._mm.size())

    @property
    def _mm(self) -> mmap.mmap:
        mm: mmap.mmap = self._ResizableFile__mm
        return mm

    def _allocate(self, size: int) -> None:
        fd = self._ResizableFile__f.fileno()
        _with_room(self._path, lambda: os.posix_fallocate(fd, 0, size))

    def write(self, offset: int, values: bytes) -> None:
        end = offset + len(values)
        size = self._mm.size()
        if end > size:
            new_size = max(end, min(2 * size, size + JOURNAL_GROWTH_MAX_BYTES))
            self._allocate(new_size)  # the file is new_size long, every byte allocated
            self._mm.resize(new_size)  # so the mapping covers exactly what is allocated
        super().write(offset, values)


# FileJournal builds its file through this module-level name; there is no hook.
_pysyncobj_journal.ResizableFile = _PreallocatedFile


class _DurableFileJournal(FileJournal):
    """pysyncobj's journal with an msync after every change: an entry a follower has
    acknowledged, or a leader has counted for itself, survives a power cut."""

    def __init__(self, journal_file: str) -> None:
        self._sync_each_add = True
        super().__init__(journal_file)
        self._FileJournal__metaStorer = _DurableMetaStorer(journal_file + ".meta")

    def add(self, command: bytes, idx: int, term: int) -> None:
        super().add(command, idx, term)
        if self._sync_each_add:
            self.flush()

    def deleteEntriesFrom(self, entryFrom: int) -> None:  # noqa: N802, N803
        super().deleteEntriesFrom(entryFrom)
        self.flush()

    def deleteEntriesTo(self, entryTo: int) -> None:  # noqa: N802, N803
        # Compaction rewrites the kept tail entry by entry: one sync at the end, not one
        # per entry. The dump that replaces the dropped head was written first.
        self._sync_each_add = False
        try:
            super().deleteEntriesTo(entryTo)
        finally:
            self._sync_each_add = True
        self.flush()


def _create_journal(journal_file: str | None = None) -> Any:
    return MemoryJournal() if journal_file is None else _DurableFileJournal(journal_file)


def _fsync_dir(path: str) -> None:
    # storage/files.py has the same five lines; metadata/ may not import storage/.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# pysyncobj builds its journal through this module-level factory; there is no hook.
_pysyncobj_module.createJournal = _create_journal


# ---------------------------------------------------------------------------
# Raft safety: never truncate entries that a re-sent AppendEntries already matches.
#
# pysyncobj 0.3.17's follower deletes every entry after prevLogIdx whenever it holds more,
# then appends the message's entries, without checking for a conflict (notes/pysyncobj.md,
# "Log truncation: a Raft safety bug"). A leader re-sending from an earlier index (its
# nextIndex reset, pipelined or size-limited sends) thus makes a follower drop entries it
# acknowledged, even applied ones ("truncating already-applied log entries"). Raft (figure
# 2, AppendEntries step 3) deletes only from the first entry whose term differs. We rewrite
# such a message before pysyncobj sees it: entries already present with the same term are
# skipped, and prevLogIdx moves past them, so pysyncobj deletes only from the first real
# conflict. When every entry is already present, local entries up to our commit index are
# kept too: committed entries are in every leader's log (Leader Completeness), and
# pysyncobj then deletes only uncommitted, unverified ones, so its commit index (bounded by
# the log end) never covers an entry the leader has not confirmed.

AppendEntry = tuple[Any, int, int]  # (command, index, term)


def skip_present_entries(
    message: dict[str, Any], local: list[AppendEntry], commit_index: int
) -> dict[str, Any]:
    """The AppendEntries message pysyncobj should handle, given our entries from
    message["prevLogIdx"] on (`local`) and our commit index. Pure."""
    entries: list[AppendEntry] = list(message.get("entries") or [])
    prev_index = message["prevLogIdx"]
    if not local or local[0][1] != prev_index or local[0][2] != message["prevLogTerm"]:
        return message  # pysyncobj itself answers a mismatch at prevLogIdx
    if len(local) == 1:
        return message  # nothing of ours past prevLogIdx: nothing can be wrongly deleted
    term_at = {entry[1]: entry[2] for entry in local}
    verified = prev_index
    remaining: list[AppendEntry] = []
    for k, entry in enumerate(entries):
        if term_at.get(entry[1]) == entry[2]:
            verified = entry[1]
            continue
        remaining = entries[k:]
        break
    if not remaining:
        verified = max(verified, min(commit_index, local[-1][1]))
    if verified == prev_index and len(remaining) == len(entries):
        return message
    rewritten = dict(message)
    rewritten["prevLogIdx"] = verified
    rewritten["prevLogTerm"] = term_at[verified]
    rewritten["entries"] = remaining
    return rewritten


_handle_message = SyncObj._SyncObj__onMessageReceived


def _on_message_received(self: SyncObj, node: Any, message: Any) -> None:
    if (
        isinstance(message, dict)
        and message.get("type") == "append_entries"
        and "prevLogIdx" in message
        and message.get("transmission") is None
        and message.get("term", -1) >= self._SyncObj__raftCurrentTerm
    ):
        local = self._SyncObj__getEntries(message["prevLogIdx"])
        commit_index = self._SyncObj__raftCommitIndex
        message = skip_present_entries(message, local, commit_index)
    _handle_message(self, node, message)


# The transport's callback is bound in SyncObj.__init__, so patching the class suffices.
SyncObj._SyncObj__onMessageReceived = _on_message_received


# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RaftTiming:
    election_timeout_min_s: float
    election_timeout_max_s: float
    heartbeat_interval_s: float
    connection_retry_s: float


@dataclass(frozen=True, slots=True)
class QuorumStatus:
    raft_term: int
    commit_index: int
    leader: str | None
    is_leader: bool
    has_quorum: bool
    ready: bool


@dataclass(frozen=True, slots=True)
class AppliedMetadata:
    """A state and the Raft index of the last command applied to reach it (entries that
    are not commands, such as a new leader's no-op, do not move it): equal on every
    broker that applied the same log prefix."""

    state: MetadataState
    applied_index: int


# Called on pysyncobj's thread with the new state, the events of one command, and
# `reset=True` when a snapshot replaced the whole state.
ChangeListener = Callable[[MetadataState, tuple[Any, ...], bool], None]


class _MetadataStore(SyncObjConsumer):
    """Holds the state; its one replicated method applies a committed command."""

    def __init__(self, listener: ChangeListener) -> None:
        super().__init__()
        # The state with the Raft index of the last command applied to it: one value, so
        # other threads never read a state with another state's index.
        self.applied = AppliedMetadata(MetadataState.empty(), 0)
        self._listener = listener

    @property
    def state(self) -> MetadataState:
        return self.applied.state

    @replicated
    def apply_command(self, text: str) -> Applied | Rejected:
        # pysyncobj counts an entry as applied after its command ran: this is its index.
        index = self._syncObj.raftLastApplied + 1
        try:
            command = decode_command(text)
        except ValueError as exc:
            self.applied = AppliedMetadata(self.state, index)
            return Rejected("INVALID_REQUEST", f"malformed metadata command: {exc}")
        outcome = apply(self.state, command)
        state = outcome.state if isinstance(outcome, Applied) else self.state
        self.applied = AppliedMetadata(state, index)
        if isinstance(outcome, Applied) and outcome.events:
            self._notify(outcome.state, outcome.events, False)
        return outcome

    def _notify(self, state: MetadataState, events: tuple[Any, ...], reset: bool) -> None:
        try:
            self._listener(state, events, reset)
        except Exception:  # a listener bug must not stop the Raft thread
            log.exception("metadata listener failed")

    def _serialize(self) -> dict[str, Any]:
        applied = self.applied
        return {
            "state": orjson.dumps(applied.state.to_snapshot()),
            "applied_index": applied.applied_index,
        }

    def _deserialize(self, data: dict[str, Any]) -> None:
        # Dumps written before applied_index existed say 0 until the next command.
        state = MetadataState.from_snapshot(orjson.loads(data["state"]))
        self.applied = AppliedMetadata(state, int(data.get("applied_index", 0)))
        self._notify(state, (), True)


class MetadataQuorum:
    """One broker's member of the metadata quorum (voter if `self_address` is set)."""

    def __init__(
        self,
        *,
        self_address: str | None,
        voter_addresses: list[str],
        data_dir: Path,
        timing: RaftTiming,
        listener: ChangeListener,
        make_room: MakeRoom | None = None,
        password: str | None = None,
    ) -> None:
        """`make_room` frees room on a full disk (the broker's reserve) when the journal
        or the term/vote file cannot be written; called on pysyncobj's thread. With
        `password` every Raft frame is encrypted and authenticated (Fernet): a frame from
        anything without it is dropped before it is unpickled."""
        data_dir.mkdir(parents=True, exist_ok=True)
        self._store = _MetadataStore(listener)
        self._ready = threading.Event()
        self._journal_file = str(data_dir / "raft.journal")
        if make_room is not None:
            _ROOM_MAKERS[self._journal_file] = make_room
        conf = SyncObjConf(
            journalFile=self._journal_file,
            fullDumpFile=str(data_dir / "raft.dump"),
            raftMinTimeout=timing.election_timeout_min_s,
            raftMaxTimeout=timing.election_timeout_max_s,
            appendEntriesPeriod=timing.heartbeat_interval_s,
            # Metadata is small and latency matters (a heartbeat is a commit): send
            # each entry at once instead of waiting for the next heartbeat (~100 ms).
            appendEntriesUseBatch=False,
            connectionRetryTime=timing.connection_retry_s,
            connectionTimeout=max(3.5, timing.election_timeout_max_s),
            # An isolated leader steps down after this long without a majority.
            leaderFallbackTimeout=max(1.0, 3 * timing.election_timeout_max_s),
            # Fail fast with MISSING_LEADER instead of queueing silently: submit retries.
            commandsWaitLeader=False,
            logCompactionMinEntries=LOG_COMPACTION_MIN_ENTRIES,
            logCompactionMinTime=LOG_COMPACTION_MIN_TIME_S,
            bindAddress=self_address,
            onReady=self._ready.set,
            password=password,
        )
        partners = [a for a in voter_addresses if a != self_address]
        self._syncobj = SyncObj(self_address, partners, conf=conf, consumers=[self._store])

    # -- reads (any thread) ------------------------------------------------

    @property
    def state(self) -> MetadataState:
        return self._store.state

    @property
    def applied(self) -> AppliedMetadata:
        return self._store.applied

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def is_leader(self) -> bool:
        return bool(self._syncobj._isLeader())

    @property
    def leader_address(self) -> str | None:
        leader = self._syncobj._getLeader()
        return None if leader is None else str(getattr(leader, "address", leader))

    def status(self) -> QuorumStatus:
        s = self._syncobj.getStatus()
        leader = s.get("leader")
        return QuorumStatus(
            raft_term=int(s.get("raft_term", 0)),
            commit_index=int(s.get("commit_idx", 0)),
            leader=None if leader is None else str(getattr(leader, "address", leader)),
            is_leader=self.is_leader,
            has_quorum=bool(s.get("has_quorum", False)),
            ready=self.ready,
        )

    # -- writes (the event loop) ---------------------------------------------

    async def submit(self, command: Command, timeout_s: float, *, resubmit: bool = True) -> Applied:
        """Commits `command` and returns its outcome, retrying transient Raft failures
        with the same command id until `timeout_s`. Raises the contract error of a
        rejection, InvalidRequest for a command too large for one log entry (never
        submitted), or NoController when no commit could be confirmed in time (the
        command may still commit later: it is idempotent).

        With `resubmit=False` the command enters the log at most once: any failure
        raises NoController at once. Entries submitted so keep the order of submission
        (Raft never reorders one node's entries), which a resubmitted copy would not."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            text = encode_command(command)
        except CommandTooLarge as exc:
            raise InvalidRequest(str(exc)) from None
        last_failure = "no answer"
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise NoController(
                    f"the metadata quorum did not commit the change in time ({last_failure})"
                )
            future: asyncio.Future[tuple[Any, int]] = loop.create_future()
            self._store.apply_command(text, callback=_resolver(loop, future))
            try:
                result, failure = await asyncio.wait_for(
                    future, min(remaining, SUBMIT_ATTEMPT_TIMEOUT_S)
                )
            except TimeoutError:
                last_failure = "timed out waiting for a commit"
                if not resubmit:
                    raise NoController(
                        f"the metadata quorum did not answer ({last_failure})"
                    ) from None
                continue
            if failure == FAIL_REASON.SUCCESS:
                if isinstance(result, Rejected):
                    raise error_for_code(result.code, result.message)
                assert isinstance(result, Applied)
                return result
            last_failure = _FAILURE_NAMES.get(failure, str(failure))
            if failure not in _RETRIABLE_FAILURES or not resubmit:
                raise NoController(f"the metadata quorum refused the change ({last_failure})")
            await asyncio.sleep(SUBMIT_RETRY_BACKOFF_S)

    def wait_ready(self, timeout_s: float) -> bool:
        return self._ready.wait(timeout_s)

    def close(self) -> None:
        """Stops the tick thread (which flushes and closes the journal); blocks briefly."""
        self._syncobj.destroy_synchronous()
        _ROOM_MAKERS.pop(self._journal_file, None)


def _resolver(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[tuple[Any, int]]
) -> Callable[[Any, int], None]:
    def on_result(result: Any, failure: int) -> None:
        def settle() -> None:
            if not future.done():
                future.set_result((result, failure))

        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(settle)

    return on_result
