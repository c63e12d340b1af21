"""`python -m raftka.api.kafka.bench`: records/s of the Kafka edge's conversions on one
core (docs/kafka-protocol.md quotes it): stored fragments -> RecordBatch v2 (fetch) and
RecordBatch v2 -> stored bodies (produce). Medians of several rounds."""

from __future__ import annotations

import statistics
import time

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from raftka.api.kafka.records import decode_produced, encode_fetched
from raftka.storage.batch import build_fragments

RECORDS_PER_BATCH = 200
BATCHES_PER_READ = 25  # ~0.6 MB of JSON: one Fetch partition's worth
ROUNDS = 15


def _value(i: int) -> bytes:
    return b'{"id":%d,"user":"user-%04d","payload":"%s"}' % (i, i % 1000, b"x" * 50)


def _stored_read() -> bytes:
    bodies = [
        (1_700_000_000_000 + i, b'"key":"k%d","value":%b,"headers":{}' % (i, _value(i)))
        for i in range(RECORDS_PER_BATCH * BATCHES_PER_READ)
    ]
    return b",".join(build_fragments(0, bodies))


def _produced_batch() -> bytes:
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 2**30)
    for i in range(RECORDS_PER_BATCH):
        builder.append(i, 1_700_000_000_000 + i, b"k%d" % i, _value(i), [])
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
    fetch = _rate(lambda: encode_fetched(read), RECORDS_PER_BATCH * BATCHES_PER_READ)
    produce = _rate(
        lambda: [decode_produced(produced, 0) for _ in range(BATCHES_PER_READ)],
        RECORDS_PER_BATCH * BATCHES_PER_READ,
    )
    print(f"Kafka fetch  (stored JSON -> RecordBatch v2): {fetch / 1e6:.2f} M records/s")
    print(f"Kafka produce (RecordBatch v2 -> stored JSON): {produce / 1e6:.2f} M records/s")


if __name__ == "__main__":
    main()
