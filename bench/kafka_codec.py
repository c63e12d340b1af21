"""`python -m raftka.bench.kafka_codec`: records/s of the Kafka edge's conversions on one
core (docs/kafka-protocol.md quotes it): stored batches -> RecordBatch v2 (fetch) and
RecordBatch v2 -> stored bodies (produce), beside the HTTP fetch's splice of the same
batches as a reference for how fast the machine is. Medians of CPU time per round."""

from __future__ import annotations

import statistics
import time

import orjson
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from raftka.api.kafka.records import decode_produced, encode_fetched
from raftka.storage.batch import build_fragments, decode_header, encode_batch

RECORDS_PER_BATCH = 200
BATCHES_PER_READ = 25  # ~0.6 MB of JSON: one Fetch partition's worth
ROUNDS = 15


def _value(i: int) -> bytes:
    return b'{"id":%d,"user":"user-%04d","payload":"%s"}' % (i, i % 1000, b"x" * 50)


def _stored_read() -> bytes:
    """What `read_raw` returns: stored batches as the HTTP produce route writes them."""
    batches = []
    for b in range(BATCHES_PER_READ):
        base = b * RECORDS_PER_BATCH
        bodies = [
            (1_700_000_000_000 + i, b'"key":"k%d","value":%b,"headers":{}' % (i, _value(i)))
            for i in range(base, base + RECORDS_PER_BATCH)
        ]
        ts = [t for t, _ in bodies]
        batches.append(
            encode_batch(
                base,
                build_fragments(base, bodies),
                first_timestamp=ts[0],
                max_timestamp=max(ts),
            )
        )
    return b"".join(batches)


def _produced_batch() -> bytes:
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 2**30)
    for i in range(RECORDS_PER_BATCH):
        builder.append(i, 1_700_000_000_000 + i, b"k%d" % i, _value(i), [])
    return bytes(builder.build())


def _http_splice(data: bytes) -> bytes:
    """What an HTTP fetch of whole batches costs the log: a join of payload slices."""
    view = memoryview(data)
    pieces = []
    pos = 0
    while pos < len(data):
        header = decode_header(data, pos, verify_crc=False)
        pieces.append(view[pos + header.payload_start : pos + header.size_bytes])
        pos += header.size_bytes
    return b",".join(pieces)


def _orjson_path(data: bytes) -> bytes:
    """The method notes/kafka-protocol.md measured (1.79 M records/s there): one
    orjson parse of the read, one dump per value, aiokafka's builder. A reference for
    this machine's speed beside the fast path."""
    records = orjson.loads(b"[" + _http_splice(data) + b"]")
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 2**31 - 1)
    for r in records:
        builder.append(
            r["offset"], r["timestamp"], orjson.dumps(r["key"]), orjson.dumps(r["value"]), []
        )
    return bytes(builder.build())


def _rate(fn: object, records: int) -> float:
    assert callable(fn)
    samples = []
    for _ in range(ROUNDS):
        start = time.process_time()  # CPU time: other processes on the box do not count
        fn()
        samples.append(records / (time.process_time() - start))
    return statistics.median(samples)


def main() -> None:
    read = _stored_read()
    produced = _produced_batch()
    records = RECORDS_PER_BATCH * BATCHES_PER_READ
    fetch = _rate(lambda: encode_fetched(read, 0, records), records)
    produce = _rate(
        lambda: [decode_produced(produced, 0) for _ in range(BATCHES_PER_READ)],
        records,
    )
    splice = _rate(lambda: _http_splice(read), records)
    reference = _rate(lambda: _orjson_path(read), records)
    print(f"HTTP fetch splice of the same batches: {splice / 1e6:.2f} M records/s")
    print(f"Kafka fetch, orjson path (reference): {reference / 1e6:.2f} M records/s")
    print(f"Kafka fetch  (stored JSON -> RecordBatch v2): {fetch / 1e6:.2f} M records/s")
    print(f"Kafka produce (RecordBatch v2 -> stored JSON): {produce / 1e6:.2f} M records/s")


if __name__ == "__main__":
    main()
