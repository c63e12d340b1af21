"""The storage layer's errors: one hierarchy, rooted at `StorageError`.

It holds data only. Mapping these to the HTTP contract is the API layer's job: storage
must never import the contract's error classes.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error raised by raftka.storage."""


class CorruptBatchError(StorageError):
    """A batch's length, magic or CRC32C is wrong (torn write, bit rot or a bad copy)."""


class CorruptCheckpointError(StorageError):
    """A checkpoint file (such as leader-epoch-checkpoint) is malformed."""


class OffsetOutOfRangeError(StorageError):
    """An offset outside [log_start_offset, log_end_offset] was asked for."""

    def __init__(self, offset: int, log_start_offset: int, log_end_offset: int) -> None:
        super().__init__(
            f"offset {offset} is outside the log's range [{log_start_offset}, {log_end_offset}]"
        )
        self.offset = offset
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset


class UnexpectedAppendOffsetError(StorageError):
    """A raw batch's base_offset is not the log_end_offset (Kafka's name for the same case)."""

    def __init__(self, base_offset: int, log_end_offset: int) -> None:
        super().__init__(f"batch base_offset {base_offset} != log_end_offset {log_end_offset}")
        self.base_offset = base_offset
        self.log_end_offset = log_end_offset


class SegmentFullError(StorageError):
    """The active segment cannot take the batch, or is being rolled; nothing was written.

    The caller runs PartitionLog.roll() in a worker thread (it fsyncs) and appends again.
    """


class LogClosedError(StorageError):
    """The log was closed (or deleted) and can no longer be used."""


class DiskFullError(StorageError):
    """The disk has no room for the write (or it would eat into the broker's reserve).

    Nothing was written: a batch that met ENOSPC halfway was cut back off the file.
    """
