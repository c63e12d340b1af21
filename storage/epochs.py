"""The leader-epoch cache of one partition: which leader epoch wrote the log from which offset.

Kafka's `LeaderEpochFileCache`: ordered (epoch, start_offset) entries, both strictly
increasing, and the text form of its `leader-epoch-checkpoint` file. Followers use it to
find where their log diverged from the leader's. Pure: it never touches a file or a
clock and never scans the log; PartitionLog decides what to assign, when to truncate
and when to write the text form.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from raftka.storage.errors import CorruptCheckpointError

UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1
CHECKPOINT_VERSION = 0

_NUMBER = re.compile(r"[0-9]+", re.ASCII)
_ENTRY = re.compile(r"([0-9]+) ([0-9]+)", re.ASCII)


@dataclass(frozen=True, slots=True)
class EpochEntry:
    """The leader of `epoch` wrote the log from `start_offset` on (until the next entry)."""

    epoch: int
    start_offset: int


def _check_increasing(entries: list[EpochEntry]) -> bool:
    return all(
        a.epoch < b.epoch and a.start_offset < b.start_offset
        for a, b in zip(entries, entries[1:], strict=False)
    )


class LeaderEpochCache:
    """(epoch, start_offset) entries; epochs and start offsets both strictly increase."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Iterable[EpochEntry] = ()) -> None:
        self._entries = list(entries)
        if any(e.epoch < 0 or e.start_offset < 0 for e in self._entries):
            raise ValueError(f"negative epoch or start offset in {self._entries}")
        if not _check_increasing(self._entries):
            raise ValueError(f"entries must strictly increase: {self._entries}")

    def entries(self) -> tuple[EpochEntry, ...]:
        return tuple(self._entries)

    @property
    def latest_epoch(self) -> int:
        """The newest epoch, or UNDEFINED_EPOCH when the cache is empty."""
        return self._entries[-1].epoch if self._entries else UNDEFINED_EPOCH

    # ---- changes: each returns whether it changed anything -----------------------------

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that `epoch` starts at `start_offset`.

        The latest epoch again changes nothing, and an older epoch is ignored (a stale
        leader's batch must not rewrite history). A newer one first removes the entries
        starting at or after `start_offset` (Kafka's cleanup of non-monotonic entries:
        an epoch announced at the log end offset that never wrote a batch), then goes
        last.
        """
        if epoch < 0 or start_offset < 0:
            raise ValueError(f"invalid leader epoch entry ({epoch}, {start_offset})")
        if epoch <= self.latest_epoch:
            return False
        while self._entries and self._entries[-1].start_offset >= start_offset:
            self._entries.pop()
        self._entries.append(EpochEntry(epoch, start_offset))
        return True

    def truncate_from_end(self, end_offset: int) -> bool:
        """Drop entries starting at or after `end_offset` (the log was truncated to it)."""
        before = len(self._entries)
        while self._entries and self._entries[-1].start_offset >= end_offset:
            self._entries.pop()
        return len(self._entries) != before

    def truncate_from_start(self, start_offset: int) -> bool:
        """Forget what lies below `start_offset` (the log start moved up to it).

        Entries wholly below it go; the one in force at `start_offset` then starts there.
        """
        changed = False
        while len(self._entries) > 1 and self._entries[1].start_offset <= start_offset:
            del self._entries[0]
            changed = True
        if self._entries and self._entries[0].start_offset < start_offset:
            self._entries[0] = EpochEntry(self._entries[0].epoch, start_offset)
            changed = True
        return changed

    def clear(self) -> bool:
        changed = bool(self._entries)
        self._entries.clear()
        return changed

    # ---- the question followers ask ----------------------------------------------------

    def end_offset_for(self, requested_epoch: int, log_end_offset: int) -> tuple[int, int]:
        """(epoch, end offset) for `requested_epoch`, exactly as Kafka's `endOffsetFor`.

        The end offset is where the next epoch starts (log_end_offset for the latest
        one), and the epoch returned is the newest one at or below the requested one.
        UNDEFINED for UNDEFINED, or for an epoch newer than any known.
        """
        undefined = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        if requested_epoch == UNDEFINED_EPOCH:
            return undefined
        if self._entries and requested_epoch == self._entries[-1].epoch:
            return requested_epoch, log_end_offset
        higher = bisect_right(self._entries, requested_epoch, key=lambda e: e.epoch)
        if higher == len(self._entries):
            return undefined
        end = self._entries[higher].start_offset
        if higher == 0:
            # Older than anything kept (retention removed it): the follower must not keep
            # anything past the first epoch the leader still knows.
            return requested_epoch, end
        return self._entries[higher - 1].epoch, end

    # ---- the leader-epoch-checkpoint file's text ---------------------------------------

    def to_text(self, end_offset: int | None = None) -> str:
        """Kafka's checkpoint form: the version, the entry count, one "epoch offset" per line.

        With `end_offset`, only the entries that start below it: what a log ending there
        keeps of the file when it opens (truncate_from_end), so an epoch announced at the
        log end with no batch in it yet need not be written.
        """
        entries = self._entries
        if end_offset is not None:
            entries = [e for e in entries if e.start_offset < end_offset]
        lines = [str(CHECKPOINT_VERSION), str(len(entries))]
        lines += [f"{e.epoch} {e.start_offset}" for e in entries]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str) -> LeaderEpochCache:
        """Parse `to_text`'s form; CorruptCheckpointError on anything else."""
        lines = text.splitlines()
        if len(lines) < 2 or not all(_NUMBER.fullmatch(line) for line in lines[:2]):
            raise CorruptCheckpointError(f"no version and entry count in {text[:40]!r}")
        if int(lines[0]) != CHECKPOINT_VERSION:
            raise CorruptCheckpointError(f"unknown checkpoint version {lines[0]}")
        if int(lines[1]) != len(lines) - 2:
            raise CorruptCheckpointError(f"{lines[1]} entries announced, {len(lines) - 2} found")
        entries = []
        for line in lines[2:]:
            match = _ENTRY.fullmatch(line)
            if match is None:
                raise CorruptCheckpointError(f"malformed entry {line!r}")
            entries.append(EpochEntry(int(match[1]), int(match[2])))
        if not _check_increasing(entries):
            raise CorruptCheckpointError(f"entries do not strictly increase: {entries}")
        return cls(entries)
