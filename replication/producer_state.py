"""Idempotent producers: per producer id, its epoch and the sequences of its last batches.

Pure: batches come in as `ProducerBatch` values (from a produce request on the leader, from
batch headers on a follower or during recovery); nothing here reads a log or a clock.
The rules are Kafka's (ProducerStateManager / ProducerAppendInfo):
- a batch whose sequences match one of the producer's last `MAX_BATCHES_PER_PRODUCER`
  batches is a retry: it is answered with the original offsets and never written again;
- otherwise its first sequence must follow the last one written, else 409
  OUT_OF_ORDER_SEQUENCE (a gap means a batch in between was lost);
- an epoch older than the producer's current one is fenced (409 INVALID_PRODUCER_EPOCH);
  a newer epoch starts again at sequence 0;
- a producer id with no state here (new, or its batches are gone) starts at any sequence.
Followers keep the same state from the batches they copy, so a new leader answers retries
of batches its predecessor wrote.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from raftka.metadata.errors import InvalidProducerEpoch, OutOfOrderSequence

# Kafka's max.in.flight.requests.per.connection bound for idempotence.
MAX_BATCHES_PER_PRODUCER = 5
NO_PRODUCER_ID = -1
SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class ProducerRef:
    """An idempotent producer's batch as a request names it: id, epoch, first sequence."""

    producer_id: int
    producer_epoch: int
    sequence: int


@dataclass(frozen=True, slots=True)
class ProducerBatch:
    producer_id: int
    producer_epoch: int
    first_sequence: int
    last_sequence: int
    first_offset: int
    last_offset: int


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A retry of a batch already in the log: answer with its offsets."""

    first_offset: int
    last_offset: int


@dataclass(slots=True)
class _Producer:
    epoch: int
    batches: deque[ProducerBatch] = field(
        default_factory=lambda: deque(maxlen=MAX_BATCHES_PER_PRODUCER)
    )


class ProducerStates:
    """The idempotence state of one partition's producers."""

    def __init__(self) -> None:
        self._producers: dict[int, _Producer] = {}

    def __len__(self) -> int:
        return len(self._producers)

    def check(
        self, producer_id: int, producer_epoch: int, first_sequence: int, record_count: int
    ) -> Duplicate | None:
        """Before a leader appends: None to append, a Duplicate to answer without appending;
        raises OutOfOrderSequence or InvalidProducerEpoch."""
        entry = self._producers.get(producer_id)
        if entry is None:
            return None
        last_sequence = first_sequence + record_count - 1
        if producer_epoch < entry.epoch:
            raise InvalidProducerEpoch(
                f"producer {producer_id} epoch {producer_epoch} is fenced: epoch "
                f"{entry.epoch} has written since"
            )
        if producer_epoch > entry.epoch:
            if first_sequence != 0:
                raise OutOfOrderSequence(
                    f"producer {producer_id} starts epoch {producer_epoch} at sequence "
                    f"{first_sequence}; a new epoch starts at 0"
                )
            return None
        for b in entry.batches:
            if b.first_sequence == first_sequence and b.last_sequence == last_sequence:
                return Duplicate(b.first_offset, b.last_offset)
        expected = entry.batches[-1].last_sequence + 1 if entry.batches else 0
        if first_sequence != expected:
            raise OutOfOrderSequence(
                f"producer {producer_id} epoch {producer_epoch} sent sequence "
                f"{first_sequence}, expected {expected}"
            )
        return None

    def record(self, batch: ProducerBatch) -> None:
        """A batch is in the log (appended as leader, copied as follower, or recovered)."""
        entry = self._producers.get(batch.producer_id)
        if entry is None or batch.producer_epoch > entry.epoch:
            entry = self._producers[batch.producer_id] = _Producer(batch.producer_epoch)
        elif batch.producer_epoch < entry.epoch:
            return  # an older epoch's batch replayed out of order: it changes nothing
        entry.batches.append(batch)

    def record_all(self, batches: Iterable[ProducerBatch]) -> None:
        for batch in batches:
            self.record(batch)

    def clear(self) -> None:
        self._producers.clear()

    # ---- snapshots (written by the replica so recovery does not replay the whole log) -----

    def to_snapshot(self, offset: int, last_epoch: int | None = None) -> dict[str, Any]:
        """The state as of log end offset `offset`, as plain JSON. `last_epoch` is the
        leader epoch of the batch just below `offset` (-1: none): recovery trusts the
        snapshot only while the log still holds that epoch there (ProducerSnapshot)."""
        return {
            "version": SNAPSHOT_VERSION,
            "offset": offset,
            "last_epoch": last_epoch,
            "producers": [
                [
                    pid,
                    p.epoch,
                    [
                        [b.first_sequence, b.last_sequence, b.first_offset, b.last_offset]
                        for b in p.batches
                    ],
                ]
                for pid, p in sorted(self._producers.items())
            ],
        }

    @staticmethod
    def from_snapshot(doc: Any) -> ProducerSnapshot:
        """The snapshot to_snapshot wrote; raises ValueError if malformed."""
        try:
            if doc["version"] != SNAPSHOT_VERSION:
                raise ValueError(f"unsupported producer snapshot version {doc['version']!r}")
            states = ProducerStates()
            for pid, epoch, batches in doc["producers"]:
                for fs, ls, fo, lo in batches:
                    states.record(ProducerBatch(int(pid), int(epoch), fs, ls, fo, lo))
                if not batches:
                    states._producers[int(pid)] = _Producer(int(epoch))
            last_epoch = doc.get("last_epoch")  # absent in snapshots written before it was
            return ProducerSnapshot(
                states, int(doc["offset"]), None if last_epoch is None else int(last_epoch)
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed producer snapshot: {exc!r}") from exc


@dataclass(frozen=True, slots=True)
class ProducerSnapshot:
    """Producer state as of a position in the log: `offset`, the log end offset it covers,
    and `last_epoch`, the leader epoch of the batch just below it (-1: none; None: not
    recorded, in snapshots written before it was).

    The log below `offset` can change after the snapshot is written (a follower truncates a
    divergent tail and copies other batches past `offset`); the snapshot then describes
    batches that are gone. Only the leader of an epoch writes that epoch's batches, and a
    replica copies one only once its log matches the leader's below it, so while the log
    still holds `last_epoch` just below `offset`, everything below is as it was."""

    states: ProducerStates
    offset: int
    last_epoch: int | None
