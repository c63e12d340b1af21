"""Bounds on what requests in flight may hold: the bytes of their bodies (whole broker) and
the long-polls of one client. Counters only, on the event loop; no I/O.

A full budget refuses at once (429 TOO_MANY_REQUESTS, retriable) instead of queueing: a
slow or hostile client then costs the broker at most its share, and a normal client keeps
producing and fetching. /metrics reports both (api/metrics.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from raftka.metadata.errors import TooManyRequests


@dataclass(slots=True)
class InFlightBytes:
    """Bytes of request bodies read or being read and not yet answered."""

    limit: int
    held: int = 0
    refused: int = 0

    def reserve(self, n: int) -> None:
        if n > 0 and self.held + n > self.limit:
            self.refused += 1
            raise TooManyRequests(
                f"the broker holds {self.held} bytes of requests in flight and this one "
                f"would pass max_in_flight_request_bytes ({self.limit}); retry shortly"
            )
        self.held += n

    def release(self, n: int) -> None:
        self.held -= n


@dataclass(slots=True)
class LongPolls:
    """Long-polls (fetches and group reads with max_wait_ms > 0) in flight per client (a
    user's name, or the remote address on a cluster without users)."""

    per_client: int
    by_client: dict[str, int] = field(default_factory=dict)
    refused: int = 0

    @property
    def in_flight(self) -> int:
        return sum(self.by_client.values())

    def acquire(self, client: str) -> None:
        held = self.by_client.get(client, 0)
        if held >= self.per_client:
            self.refused += 1
            raise TooManyRequests(
                f"{client} already has {held} long-polls in flight "
                f"(max_long_polls_per_client); retry shortly"
            )
        self.by_client[client] = held + 1

    def release(self, client: str) -> None:
        held = self.by_client[client] - 1
        if held:
            self.by_client[client] = held
        else:
            del self.by_client[client]
