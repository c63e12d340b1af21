"""`raftka.client.aio`: the asyncio flavour of the client (`async`/`await`).

The same names as `raftka.client`: `Producer`, `Consumer`, `Admin`, `Record` and the
errors. These classes are the client's one core; the sync flavour runs them on a
private event loop.
"""

from raftka.client.admin import Admin
from raftka.client.consumer import Consumer
from raftka.client.errors import *  # noqa: F403 - the same errors as raftka.client
from raftka.client.errors import __all__ as _errors
from raftka.client.producer import Producer, ProducerStats
from raftka.client.records import Record

__all__ = ["Admin", "Consumer", "Producer", "ProducerStats", "Record", *_errors]
