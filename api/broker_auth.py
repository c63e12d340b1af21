"""How a broker proves to another that a request comes from a broker of this cluster.

A broker-to-broker request (a forward, a replica fetch, a session with the controller, an
offsets look-up) carries `X-Raftka-Broker-Auth: TIME:MAC`, where MAC is the HMAC-SHA256,
under a key derived from the cluster secret, of the time (Unix seconds), the method and
the path. The receiver recomputes it and compares in constant time, and accepts a time
within `MAX_CLOCK_SKEW_S` of its own: the secret never travels, and a captured header
opens only that method and path, for minutes (TLS stops the capture). Pure: the clock is
passed in; no I/O.

A cluster without a secret (allowed on loopback only, api/settings.py) cannot prove
anything: `verify` is then always false, so nothing a client sends buys a broker's
privileges (the forwarded body allowance); the internal routes stay open on loopback.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

BROKER_AUTH_HEADER = "X-Raftka-Broker-Auth"
# Brokers' clocks may differ by this much (NTP keeps them within milliseconds): a proof
# older or newer than that is refused.
MAX_CLOCK_SKEW_S = 300
# Separate keys for separate uses of the one secret (the Raft password is another).
_HTTP_KEY_LABEL = b"raftka broker-to-broker http v1"
_RAFT_KEY_LABEL = b"raftka raft password v1"


def derive_key(secret: str, label: bytes) -> bytes:
    return hmac.new(secret.encode(), label, hashlib.sha256).digest()


def raft_password(secret: str | None) -> str | None:
    """pysyncobj's `password` (Fernet over every Raft frame: a frame not sealed with it
    is dropped before it is unpickled), derived from the cluster secret."""
    return None if secret is None else derive_key(secret, _RAFT_KEY_LABEL).hex()


class BrokerAuth:
    def __init__(self, secret: str | None, clock: Callable[[], float] = time.time) -> None:
        self._key = None if secret is None else derive_key(secret, _HTTP_KEY_LABEL)
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def _mac(self, timestamp: str, method: str, path: str) -> str:
        assert self._key is not None
        message = f"{timestamp}\n{method.upper()}\n{path}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def headers(self, method: str, path: str) -> dict[str, str]:
        """The header that proves a request from this broker ({} without a secret)."""
        if self._key is None:
            return {}
        timestamp = str(int(self._clock()))
        return {BROKER_AUTH_HEADER: f"{timestamp}:{self._mac(timestamp, method, path)}"}

    def verify(self, method: str, path: str, header: str | None) -> bool:
        if self._key is None or not header:
            return False
        timestamp, _, mac = header.partition(":")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            return False
        if abs(self._clock() - int(timestamp)) > MAX_CLOCK_SKEW_S:
            return False
        return hmac.compare_digest(mac.encode(), self._mac(timestamp, method, path).encode())
