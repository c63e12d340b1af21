"""NetworkLab on real namespaces: links, cuts both ways, healing, bridge partitions,
netem, and a teardown that leaves nothing behind (the fixture checks it)."""

from collections.abc import Callable

import pytest

from raftka.chaos import netns
from raftka.chaos.netns import Latency, NetworkLab, NetworkUnavailable

from .netprobe import OpenConnection, connect, connect_from_host, connect_seconds, echo_servers

pytestmark = pytest.mark.integration

Lab = Callable[[list[int]], NetworkLab]


def test_two_namespaces_talk_and_the_harness_reaches_both(lab_factory: Lab) -> None:
    lab = lab_factory([1, 2])
    with echo_servers(lab):
        assert connect(lab, 1, 2) == "ok"
        assert connect(lab, 2, 1) == "ok"
        assert connect_from_host(lab, 1) == connect_from_host(lab, 2) == "ok"


def test_a_cut_stops_tcp_both_ways_and_heal_restores_it(lab_factory: Lab) -> None:
    lab = lab_factory([1, 2])
    with echo_servers(lab):
        lab.cut(1, 2)
        # Packets vanish, as with a firewall's DROP: the handshake times out.
        assert connect(lab, 1, 2) == "TimeoutError"
        assert connect(lab, 2, 1) == "TimeoutError"
        # The clients are outside the partition.
        assert connect_from_host(lab, 1) == connect_from_host(lab, 2) == "ok"
        lab.heal()
        assert lab.cuts == frozenset()
        assert connect(lab, 1, 2) == "ok"
        assert connect(lab, 2, 1) == "ok"


def test_an_open_connection_stalls_under_a_cut_and_moves_again_after(lab_factory: Lab) -> None:
    lab = lab_factory([1, 2])
    with echo_servers(lab):
        conn = OpenConnection(lab, 1, 2)
        try:
            assert conn.round_trip() == "ok"
            lab.cut(1, 2)
            # No reset: the bytes wait in TCP's retransmission queue.
            assert conn.round_trip() == "TimeoutError"
            lab.heal()
            # TCP retransmits on its backed-off timer, so the stalled bytes may need a few
            # seconds; then they arrive: the connection survived the cut.
            assert "ok" in [conn.round_trip() for _ in range(10)]
        finally:
            conn.close()


def test_a_majority_minority_split_cuts_only_across(lab_factory: Lab) -> None:
    lab = lab_factory([1, 2, 3, 4, 5])
    with echo_servers(lab):
        lab.partition([[1, 2], [3, 4, 5]])
        assert connect(lab, 1, 2) == "ok"
        assert connect(lab, 3, 5) == "ok"
        assert connect(lab, 2, 4) == "TimeoutError"
        assert connect(lab, 5, 1) == "TimeoutError"
        assert len(lab.cuts) == 6
        lab.heal()
        assert connect(lab, 2, 4) == "ok"


def test_a_bridge_partition_leaves_the_shared_node_reaching_both_halves(lab_factory: Lab) -> None:
    lab = lab_factory([1, 2, 3])
    with echo_servers(lab):
        lab.bridge_partition([1], [3])  # node 2 is the bridge
        assert connect(lab, 1, 3) == "TimeoutError"
        assert connect(lab, 3, 1) == "TimeoutError"
        for a, b in [(1, 2), (2, 1), (2, 3), (3, 2)]:
            assert connect(lab, a, b) == "ok", (a, b)
        lab.heal()
        assert connect(lab, 1, 3) == "ok"


def test_isolating_a_node_cuts_it_from_every_other(lab_factory: Lab) -> None:
    lab = lab_factory([1, 2, 3])
    with echo_servers(lab):
        lab.isolate(2)
        assert connect(lab, 2, 1) == connect(lab, 2, 3) == "TimeoutError"
        assert connect(lab, 1, 3) == "ok"
        assert connect_from_host(lab, 2) == "ok"


def test_latency_degrades_a_nodes_link_and_clears(lab_factory: Lab) -> None:
    lab = lab_factory([1, 2])
    assert lab.latency_unavailable is None, lab.latency_unavailable
    with echo_servers(lab):
        if lab.netem:
            delay_ms, slack_ms = 200, 20
            lab.add_latency(1, Latency(delay_ms=delay_ms, jitter_ms=0, loss_percent=0))
            # The SYN-ACK leaves node 1 through netem: one handshake waits the delay once.
            assert connect_seconds(lab, 1) * 1000 >= delay_ms - slack_ms
        else:
            # No netem in this kernel: loss (nftables) and a rate limit (tbf) stand in.
            # Everything node 1 sends is dropped: nothing reaches it any more.
            lab.add_latency(1, Latency(delay_ms=200, loss_percent=100))
            assert connect(lab, 2, 1) == "TimeoutError"
        lab.clear_latency(1)
        assert lab.latencies == {}
        assert connect(lab, 2, 1) == "ok"


def test_a_user_without_root_is_told_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    reason = netns.unavailable_reason()
    assert reason is not None and "root" in reason
    with pytest.raises(NetworkUnavailable, match="root"):
        NetworkLab([1, 2]).start()


def test_a_closed_lab_leaves_nothing_behind(lab_factory: Lab) -> None:
    lab = lab_factory([1, 2, 3])
    lab.partition([[1], [2, 3]])
    assert lab.leftovers()
    lab.close()
    assert lab.leftovers() == []
    lab.close()  # idempotent
