"""The one broker launcher's cluster layout (api/launcher.py), without starting anything."""

from pathlib import Path

import pytest

from raftka.api import launcher


def test_every_listener_of_a_cluster_gets_its_own_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A port look-up returns ports that were free a moment ago, and a second look-up may
    return them again (as this stand-in always does): that once gave a Kafka listener its
    broker's HTTP port, and the broker could not start. All of a cluster's ports come from
    one look-up, so HTTP, Raft and Kafka ports of all brokers are distinct."""
    monkeypatch.setattr(launcher, "free_ports", lambda count: list(range(40_000, 40_000 + count)))
    cluster = launcher.make_cluster(tmp_path, 3, 2, kafka=True)
    addresses = [b.address for b in cluster.brokers.values()]
    listeners = [a.http for a in addresses] + [a.kafka for a in addresses]
    listeners += [a.raft for a in addresses if a.raft is not None]
    assert len(listeners) == 3 * 3 + 2 * 2
    assert len(set(listeners)) == len(listeners), listeners
