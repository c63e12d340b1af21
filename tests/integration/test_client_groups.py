"""raftka.client's group mode against real brokers: members split a topic's partitions,
commit, hand partitions over when one leaves, and resume from committed offsets."""

from collections import Counter
from collections.abc import Callable

from raftka.api.launcher import Cluster, wait_for
from raftka.client import Admin, Consumer, Producer, Record

# Heartbeats every second: rebalances settle within a few seconds.
SESSION_TIMEOUT_MS = 3000
PARTITIONS = 4


def _started(cluster_factory: Callable[..., Cluster], topic: str) -> str:
    cluster = cluster_factory(voters=1)
    cluster.start_all()
    cluster.wait_ready()
    url = cluster.brokers[1].url
    with Admin(url) as admin:
        admin.create_topic(topic, partitions=PARTITIONS)
    return url


def _produce(url: str, topic: str, values: range) -> None:
    with Producer(url) as producer:
        futures = [producer.send(topic, v, key=str(v)) for v in values]
        producer.flush()
        for f in futures:
            f.result(60)


def _member(url: str, topic: str, **options: object) -> Consumer:
    consumer = Consumer(
        url, group="g", topics=[topic], session_timeout_ms=SESSION_TIMEOUT_MS, **options
    )
    consumer.start()
    return consumer


def test_members_split_the_partitions_commit_and_hand_over_on_leave(
    cluster_factory: Callable[..., Cluster],
) -> None:
    url = _started(cluster_factory, "orders")
    everything = {("orders", p) for p in range(PARTITIONS)}
    a = _member(url, "orders")
    b = _member(url, "orders")
    try:
        wait_for(
            lambda: (
                a.assignment() | b.assignment() == everything
                and not a.assignment() & b.assignment()
                and a.assignment()
                and b.assignment()
            ),
            "the two members to split the partitions",
        )
        _produce(url, "orders", range(40))
        seen: dict[str, list[Record]] = {"a": [], "b": []}

        def read_all() -> bool:
            for name, member in (("a", a), ("b", b)):
                records = member.poll(0.2)
                seen[name] += records
                if records:
                    member.commit()
            return sum(len(v) for v in seen.values()) >= 40

        wait_for(read_all, "both members to read every record")
        assert Counter(r.value for v in seen.values() for r in v) == Counter(range(40))
        assert {(r.topic, r.partition) for r in seen["a"]} <= a.assignment()
        assert {(r.topic, r.partition) for r in seen["b"]} <= b.assignment()

        with Admin(url) as admin:
            described = admin.describe_group("g")
            assert {m["member_id"] for m in described["members"]} == {a.member_id, b.member_id}
            offsets = admin.group_offsets("g")
        assert sum(o["offset"] for o in offsets) == 40
        assert all(o["lag"] == 0 for o in offsets)

        b.close()
        wait_for(lambda: a.assignment() == everything, "the remaining member to get everything")
        _produce(url, "orders", range(40, 48))
        late: list[Record] = []
        wait_for(lambda: late.extend(a.poll(0.2)) or len(late) >= 8, "the new records")
        assert sorted(r.value for r in late) == list(range(40, 48))
    finally:
        a.close()
        b.close()
    with Admin(url) as admin:
        assert admin.describe_group("g")["members"] == []


def test_an_auto_committing_member_resumes_where_the_last_one_stopped(
    cluster_factory: Callable[..., Cluster],
) -> None:
    url = _started(cluster_factory, "jobs")
    _produce(url, "jobs", range(10))
    first: list[Record] = []
    with Consumer(url, group="g", topics=["jobs"], auto_commit=True) as consumer:
        wait_for(lambda: first.extend(consumer.poll(0.2)) or len(first) >= 10, "the first 10")
    _produce(url, "jobs", range(10, 15))
    second: list[Record] = []
    with Consumer(url, group="g", topics=["jobs"], auto_commit=True) as consumer:
        wait_for(lambda: second.extend(consumer.poll(0.2)) or len(second) >= 5, "the next 5")
        assert consumer.poll(0.5) == []
    assert sorted(r.value for r in first) == list(range(10))
    assert sorted(r.value for r in second) == list(range(10, 15))
