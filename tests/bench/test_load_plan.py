"""How the load client splits its work, before any connection is made."""

import orjson
import pytest

from raftka.bench.load import ProduceSpec, ProduceState, produce_body, split_ranges
from raftka.bench.targets import Endpoint, Target, endpoint_of, fetch_request, produce_request

T0 = Target(Endpoint("127.0.0.1", 9091), "t", 0)
T1 = Target(Endpoint("127.0.0.1", 9092), "t", 1)


def test_a_record_budget_is_claimed_in_batches_with_a_short_last_one() -> None:
    state = ProduceState(ProduceSpec(records=450, batch=200), 450)
    assert [state.claim() for _ in range(5)] == [200, 200, 50, 0, 0]


def test_a_timed_run_claims_full_batches_until_stopped() -> None:
    state = ProduceState(ProduceSpec(records=None, batch=7, window_s=1.0), None)
    assert state.claim() == 7
    state.stopped = True
    assert state.claim() == 0


@pytest.mark.parametrize(
    "spec",
    [
        {"records": 0},
        {"batch": 0},
        {"acks": "2"},
        {"records": None},  # a timed run needs a window
        {"concurrency": 0},
    ],
)
def test_bad_specs_are_refused(spec: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ProduceSpec(**spec)


def test_a_produce_body_holds_count_keyless_records_of_the_size() -> None:
    records = orjson.loads(produce_body(3, 100, 5))["records"]
    assert len(records) == 3
    assert all(set(r) == {"value"} and len(r["value"]) == 100 for r in records)
    assert produce_body(3, 100, 5) != produce_body(3, 100, 6)


def test_keyed_bodies_carry_distinct_user_keys_across_variants() -> None:
    first = orjson.loads(produce_body(3, 10, 0, keyed=True))["records"]
    second = orjson.loads(produce_body(3, 10, 1, keyed=True))["records"]
    assert [r["key"] for r in first + second] == [f"user-{i}" for i in range(6)]
    assert all(len(r["value"]) == 10 for r in first + second)


def test_ranges_split_each_partition_when_connections_outnumber_partitions() -> None:
    ranges = split_ranges([T0, T1], [(0, 10), (5, 6)], connections=4)
    assert [(r.target.partition, r.start, r.stop) for r in ranges] == [
        (0, 0, 5),
        (0, 5, 10),
        (1, 5, 6),  # a piece of nothing is left out
    ]
    assert split_ranges([T0], [(3, 3)], 1) == []


def test_requests_carry_the_partition_acks_and_token() -> None:
    target = Target(endpoint_of("http://127.0.0.1:9093", token="s3cret"), "orders", 2)
    request = produce_request(target, "all", b'{"records":[]}')
    head, body = request.split(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/topics/orders/partitions/2/records?acks=all HTTP/1.1\r\n")
    assert b"Authorization: Bearer s3cret" in head and b"Content-Length: 14" in head
    assert body == b'{"records":[]}'
    assert fetch_request(target, 7, 1024, 10).startswith(
        b"GET /v1/topics/orders/partitions/2/records?offset=7&max_bytes=1024&max_records=10 "
    )


def test_broker_urls_need_a_scheme_and_a_host() -> None:
    assert endpoint_of("http://localhost:1234").port == 1234
    assert endpoint_of("http://localhost").port == 80
    for bad in ("localhost:9091", "ftp://x:1", "http://:9"):
        with pytest.raises(ValueError):
            endpoint_of(bad)
