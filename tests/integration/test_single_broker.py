"""One real broker process: what was acknowledged survives SIGKILL; SIGTERM stops cleanly."""

from collections.abc import Callable

from raftka.api.launcher import Cluster


def test_acknowledged_records_survive_sigkill_and_restart(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(voters=1)
    cluster.start_all()
    cluster.wait_ready()
    cluster.create_topic(1, "events", partitions=2, rf=1)
    sent = {0: [], 1: []}  # type: dict[int, list[int]]
    for i in range(40):
        partition = i % 2
        offsets = cluster.produce(1, "events", partition, [i])
        assert offsets == [len(sent[partition])]
        sent[partition].append(i)

    cluster.kill(1)
    cluster.start(1)
    cluster.wait_ready()

    for partition, values in sent.items():
        assert cluster.read_all(1, "events", partition) == values
    # The log goes on after the recovered tail, with no offset reused.
    assert cluster.produce(1, "events", 0, ["after"]) == [len(sent[0])]


def test_sigterm_stops_the_broker_cleanly_and_keeps_its_records(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = cluster_factory(voters=1)
    cluster.start_all()
    cluster.wait_ready()
    cluster.create_topic(1, "t", partitions=1, rf=1)
    cluster.produce(1, "t", 0, ["a", "b"])
    assert cluster.stop(1) == 0
    assert "broker 1 stopped" in cluster.log_tail(1)
    cluster.start(1)
    cluster.wait_ready()
    assert cluster.read_all(1, "t", 0) == ["a", "b"]
