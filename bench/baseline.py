"""The bare aiohttp produce server that `raftka bench http` measures raftka against.

It does the least a produce endpoint must: `orjson.loads` the body, append the values to
one file with a single `os.write`, answer the offsets with `orjson.dumps`. No validation,
no log format, no replication, no fsync: the figure is the ceiling that aiohttp and orjson
set on one core (shared/notes/hot-path.md). It must never grow features, or it stops
being a baseline. Run it as `python -m raftka.bench.baseline --port P --data-dir D`.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiohttp import web

HOST = "127.0.0.1"
VALUES_FILE = "values.bin"
MAX_REQUEST_BYTES = 16 * 1024 * 1024  # raftka's default settings.max_request_bytes
LISTEN_BACKLOG = 1024
FILE_MODE = 0o644
PRODUCE_PATH = "/v1/topics/{topic}/partitions/{partition}/records"


@dataclass(slots=True)
class AppendOnlyFile:
    fd: int
    next_offset: int = 0

    def append(self, values: list[str]) -> int:
        """Writes the values; returns the offset of the first."""
        os.write(self.fd, b"".join(v.encode() for v in values))
        base = self.next_offset
        self.next_offset += len(values)
        return base


def create_app(log: AppendOnlyFile) -> web.Application:
    async def produce(request: web.Request) -> web.Response:
        records = orjson.loads(await request.read())["records"]
        base = log.append([r["value"] for r in records])
        offsets = [{"partition": 0, "offset": base + i} for i in range(len(records))]
        return web.Response(
            body=orjson.dumps({"offsets": offsets}), content_type="application/json"
        )

    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app.router.add_post(PRODUCE_PATH, produce)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(args.data_dir / VALUES_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        # run_app stops cleanly on SIGTERM and SIGINT.
        web.run_app(
            create_app(AppendOnlyFile(fd)),
            host=HOST,
            port=args.port,
            access_log=None,
            print=None,
            backlog=LISTEN_BACKLOG,
        )
    finally:
        os.close(fd)


if __name__ == "__main__":
    main()
