"""A digest of the metadata state, so brokers (and tests, and the chaos checker) can tell
whether they hold the same state: equal states give equal digests on every broker.

This module owns how a state is hashed, never when: the caller computes it lazily and off
the event loop. States are immutable and `state.apply` replaces only the records a
command changed, so successive states share most of their records: `StateDigester` keeps
each record's hash for as long as that very record object is in the state, and a new
digest costs hashing the changed records plus one pass over the keys. Every part of the
state is replicated (nothing in it is node-local), so all of it is hashed. The digest is
comparable between brokers of one raftka version, not across versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from raftka.metadata.events import event_to_json
from raftka.metadata.model import SNAPSHOT_VERSION, CommandOutcome, MetadataState

DIGEST_BYTES = 16


def _hash(value: Any) -> bytes:
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(text, digest_size=DIGEST_BYTES).digest()


def _to_json(record: Any) -> Any:
    return record.to_json()


def _outcome_json(outcome: CommandOutcome) -> dict[str, Any]:
    # The form to_snapshot gives it.
    return {"command_id": outcome.command_id, "events": [event_to_json(e) for e in outcome.events]}


class StateDigester:
    """Digests successive states, reusing the hashes of records they share. Not
    thread-safe: one caller at a time (the state it reads is immutable)."""

    def __init__(self) -> None:
        # id(record) -> (record, its hash); holding the record keeps its id unique.
        self._hashes: dict[int, tuple[object, bytes]] = {}
        self._last: tuple[MetadataState, str] | None = None

    def cached(self, state: MetadataState) -> str | None:
        """The digest of `state` if it is the last one digested (cheap: no hashing)."""
        last = self._last
        return last[1] if last is not None and last[0] is state else None

    def digest(self, state: MetadataState) -> str:
        """A hex digest of the whole state: O(changed records + keys)."""
        cached = self.cached(state)
        if cached is not None:
            return cached
        kept: dict[int, tuple[object, bytes]] = {}
        total = hashlib.blake2b(digest_size=DIGEST_BYTES)
        total.update(
            _hash(
                {
                    "version": SNAPSHOT_VERSION,
                    "next_producer_id": state.next_producer_id,
                    "fencing": [[b, *state.fencing[b]] for b in sorted(state.fencing)],
                }
            )
        )
        sections: tuple[tuple[bytes, Iterable[Any], Callable[[Any], Any]], ...] = (
            (b"brokers", _sorted_values(state.brokers), _to_json),
            (b"topics", _sorted_values(state.topics), _to_json),
            (b"groups", _sorted_values(state.groups), _to_json),
            (b"recent_command_ids", state.recent_command_ids, _outcome_json),
        )
        for name, records, to_json in sections:
            total.update(name)
            for record in records:
                total.update(self._record_hash(record, to_json, kept))
        self._hashes = kept
        digest = total.hexdigest()
        self._last = (state, digest)
        return digest

    def _record_hash(
        self, record: object, to_json: Callable[[Any], Any], kept: dict[int, tuple[object, bytes]]
    ) -> bytes:
        entry = self._hashes.get(id(record))
        if entry is None or entry[0] is not record:
            entry = (record, _hash(to_json(record)))
        kept[id(record)] = entry
        return entry[1]


def _sorted_values(mapping: Any) -> list[Any]:
    return [mapping[key] for key in sorted(mapping)]


def state_digest(state: MetadataState) -> str:
    """The digest of one state, from scratch (what StateDigester.digest equals)."""
    return StateDigester().digest(state)
