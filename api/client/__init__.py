"""`raftka.client`: the Python client of raftka (the sync flavour; `raftka.client.aio` is
the asyncio one).

`Producer`, `Consumer` and `Admin` speak only the public HTTP contract (docs/client.md,
API.md sections 2 and 3); errors are `RaftkaError` subclasses named after the contract's
codes. The package never imports a broker's internals: the CLI, the benchmarks and the
chaos harness use it as any user would.
"""

from raftka.client.errors import *  # noqa: F403 - every error class is part of the API
from raftka.client.errors import __all__ as _errors
from raftka.client.producer import ProducerStats
from raftka.client.records import Record
from raftka.client.sync import Admin, Consumer, Producer

__all__ = ["Admin", "Consumer", "Producer", "ProducerStats", "Record", *_errors]
