"""A real network for chaos runs: one Linux network namespace per broker on a bridge.

`NetworkLab` owns a bridge in the root namespace, one namespace and veth pair per node,
the cuts between nodes and the netem qdiscs it adds, and removes all of them on close,
whatever happened. It shells out to iproute2 (`ip`, `tc`) only, and touches nothing it
did not create: every name it makes starts with its own per-run prefix. It must never
run brokers (api/launcher.py does) nor decide when to inject a fault (chaos/nemesis.py).

How a cut works: a route for the peer's /32 inside the namespace through a gateway that
does not exist, whose neighbour entry is a fixed, unused MAC. Packets to the peer leave
with that MAC and every port of the bridge drops them, so a cut is a silent loss of
packets, as with a firewall's DROP: a new connection hangs until its timeout, an open one
stops moving, and nothing resets. A cut is applied in both namespaces. Unlike taking a
veth down it cuts one pair of nodes only, so a bridge partition (two halves sharing one
node) is expressible, and the harness in the root namespace (the clients) keeps reaching
every node.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType

# Host parts of the lab's /24: brokers take their id, these two are the lab's own.
BRIDGE_HOST = 254
SINK_GATEWAY_HOST = 253
MAX_NODE_ID = 250
# Locally administered and never used as a source, so the bridge never learns it: a frame
# sent to it is flooded and dropped by every port (no one owns it).
SINK_MAC = "02:72:6b:00:00:fd"
# Subnets 10.X.Y.0/24 are drawn from here at random and checked against the root
# namespace's addresses and routes, so parallel labs on one machine do not collide.
SUBNET_SECOND_OCTETS = range(160, 224)
SUBNET_ATTEMPTS = 50
COMMAND_TIMEOUT_S = 30.0
NAME_HEX_CHARS = 6  # "rk" + 6 hex + "h" + up to 3 digits: 12 chars, under IFNAMSIZ (15)


class NetworkUnavailable(RuntimeError):
    """This machine or user cannot build a lab (or a part of one); `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NetworkCommandFailed(RuntimeError):
    pass


# Without netem (a kernel built without CONFIG_NET_SCH_NETEM), a latency fault degrades
# the link instead: nftables drops this share of what the node sends, so TCP waits for
# retransmissions (200 ms and up each), and tbf caps its rate, so bursts queue. Delays
# then come from the loss and the queue, not from a fixed timer.
FALLBACK_MIN_LOSS_PERCENT = 10
FALLBACK_RATE_KBIT = 4_000
FALLBACK_BURST_BYTES = 16_384
NFT_TABLE = "raftka_chaos_latency"


@dataclass(frozen=True, slots=True)
class Latency:
    """netem on a node's link: every packet it sends waits `delay_ms` +/- `jitter_ms` and
    `loss_percent` of them are dropped."""

    delay_ms: int
    jitter_ms: int = 0
    loss_percent: float = 0.0

    @property
    def fallback_loss_percent(self) -> int:
        """The loss a kernel without netem gets instead (see `NetworkLab.add_latency`)."""
        return max(round(self.loss_percent), FALLBACK_MIN_LOSS_PERCENT)

    def netem_args(self) -> list[str]:
        args = ["delay", f"{self.delay_ms}ms"]
        if self.jitter_ms:
            args.append(f"{self.jitter_ms}ms")
        if self.loss_percent:
            args += ["loss", f"{self.loss_percent}%"]
        return args


@dataclass(frozen=True, slots=True)
class Node:
    node_id: int
    namespace: str
    address: str
    host_veth: str  # in the root namespace, a port of the bridge
    ns_veth: str  # inside the node's namespace


def unavailable_reason() -> str | None:
    """Why this process cannot build a lab, or None when it probably can (creating the
    first namespace is the real test: `NetworkLab.start` raises if it fails)."""
    if not sys.platform.startswith("linux"):
        return f"network namespaces need Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN); partition and latency faults are off"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"`{tool}` (iproute2) is not installed; .ci/system-deps installs it"
    return None


def _run(argv: Sequence[str], stdin: str | None = None) -> str:
    try:
        done = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetworkCommandFailed(f"{' '.join(argv)}: {exc}") from None
    if done.returncode != 0:
        raise NetworkCommandFailed(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def _free_subnet() -> str:
    """A 10.X.Y prefix used by no address or route of the root namespace."""
    taken = _run(["ip", "-4", "-o", "addr", "show"]) + _run(["ip", "-4", "route", "show"])
    networks = []
    for word in taken.split():
        with contextlib.suppress(ValueError):
            if word[0].isdigit():
                networks.append(ipaddress.ip_network(word, strict=False))
    for _ in range(SUBNET_ATTEMPTS):
        x = SUBNET_SECOND_OCTETS[secrets.randbelow(len(SUBNET_SECOND_OCTETS))]
        prefix = f"10.{x}.{secrets.randbelow(256)}"
        candidate = ipaddress.ip_network(f"{prefix}.0/24")
        if not any(candidate.overlaps(n) for n in networks):
            return prefix
    raise NetworkUnavailable("found no free 10.x.y.0/24 subnet for the lab's bridge")


class NetworkLab:
    """A bridge and one namespace per node. Use as a context manager; `close()` is
    idempotent and removes everything, also after a failed start."""

    def __init__(self, node_ids: Iterable[int], *, name: str | None = None) -> None:
        ids = sorted(set(node_ids))
        if not ids or ids[0] < 1 or ids[-1] > MAX_NODE_ID:
            raise ValueError(f"node ids must be within 1..{MAX_NODE_ID}, got {ids}")
        self.name = name or "rk" + secrets.token_hex(NAME_HEX_CHARS // 2)
        self.node_ids = ids
        self.subnet = ""
        self.nodes: dict[int, Node] = {}
        self.latency_unavailable: str | None = None
        self._cuts: set[frozenset[int]] = set()
        self._latency: dict[int, Latency] = {}
        self._started = False

    # -- life cycle --------------------------------------------------------------

    def __enter__(self) -> NetworkLab:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def bridge(self) -> str:
        return self.name

    @property
    def bridge_address(self) -> str:
        return f"{self.subnet}.{BRIDGE_HOST}"

    def start(self) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise NetworkUnavailable(reason)
        assert not self._started, "a lab starts once"
        self._started = True
        # Registered first so a harness that dies on an exception still cleans up.
        atexit.register(self.close)
        try:
            self.subnet = _free_subnet()
            _run(["ip", "link", "add", self.bridge, "type", "bridge"])
            _run(["ip", "addr", "add", f"{self.bridge_address}/24", "dev", self.bridge])
            _run(["ip", "link", "set", self.bridge, "up"])
            for node_id in self.node_ids:
                self._add_node(node_id)
        except NetworkCommandFailed as exc:
            self.close()
            raise NetworkUnavailable(f"could not build the network lab: {exc}") from None
        except BaseException:
            self.close()
            raise
        netem_missing = self._probe_netem()
        self.netem = netem_missing is None
        self.latency_unavailable = None if self.netem else self._probe_fallback(netem_missing)

    def _add_node(self, node_id: int) -> None:
        node = Node(
            node_id=node_id,
            namespace=f"{self.name}-b{node_id}",
            address=f"{self.subnet}.{node_id}",
            host_veth=f"{self.name}h{node_id}",
            ns_veth=f"{self.name}n{node_id}",
        )
        self.nodes[node_id] = node
        ns = node.namespace
        _run(["ip", "netns", "add", ns])
        _run(["ip", "link", "add", node.host_veth, "type", "veth", "peer", "name", node.ns_veth])
        _run(["ip", "link", "set", node.host_veth, "master", self.bridge, "up"])
        _run(["ip", "link", "set", node.ns_veth, "netns", ns])
        _run(["ip", "-n", ns, "addr", "add", f"{node.address}/24", "dev", node.ns_veth])
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        _run(["ip", "-n", ns, "link", "set", node.ns_veth, "up"])
        _run(["ip", "-n", ns, "route", "add", "default", "via", self.bridge_address])
        _run(
            ["ip", "-n", ns, "neigh", "replace", self._sink_gateway, "lladdr", SINK_MAC]
            + ["dev", node.ns_veth, "nud", "permanent"]
        )

    def _probe_netem(self) -> str | None:
        """netem is a kernel option (CONFIG_NET_SCH_NETEM) that some kernels lack: try it."""
        node = self.nodes[self.node_ids[0]]
        try:
            self._tc(node, ["qdisc", "add", "dev", node.ns_veth, "root", "netem", "delay", "1ms"])
            self._tc(node, ["qdisc", "del", "dev", node.ns_veth, "root"])
        except NetworkCommandFailed as exc:
            return (
                "this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM), so latency faults "
                f"cannot run here ({exc})"
            )
        return None

    def _probe_fallback(self, netem_missing: str | None) -> str | None:
        """Loss (nftables) and a rate limit (tbf) stand in for netem: both must work."""
        node = self.nodes[self.node_ids[0]]
        if shutil.which("nft") is None:
            return f"{netem_missing}; nor is `nft` (nftables) installed for the fallback"
        try:
            self._tc(node, ["qdisc", "add", "dev", node.ns_veth, "root", *self._tbf_args(100)])
            self._tc(node, ["qdisc", "del", "dev", node.ns_veth, "root"])
            self._nft(node, 0)
            self._nft_delete(node)
        except NetworkCommandFailed as exc:
            return f"{netem_missing}; and its fallback (tbf, nftables) fails: {exc}"
        return None

    @staticmethod
    def _tbf_args(max_queue_ms: int) -> list[str]:
        return [
            "tbf",
            "rate",
            f"{FALLBACK_RATE_KBIT}kbit",
            "burst",
            str(FALLBACK_BURST_BYTES),
            "latency",
            f"{max(max_queue_ms, 1)}ms",
        ]

    def _nft(self, node: Node, loss_percent: int) -> None:
        drop = "drop" if loss_percent >= 100 else f"numgen random mod 100 < {loss_percent} drop"
        rules = (
            f"table inet {NFT_TABLE} {{\n"
            "  chain out {\n"
            "    type filter hook output priority 0; policy accept;\n"
            f"    {drop}\n"
            "  }\n"
            "}\n"
        )
        _run(["ip", "netns", "exec", node.namespace, "nft", "-f", "-"], stdin=rules)

    def _nft_delete(self, node: Node) -> None:
        with contextlib.suppress(NetworkCommandFailed):  # no table: nothing to remove
            _run(
                ["ip", "netns", "exec", node.namespace, "nft", "delete", "table", "inet", NFT_TABLE]
            )

    def close(self) -> None:
        """Removes every namespace (with its veth pair) and the bridge; tolerates parts
        that were never made or are already gone."""
        if not self._started:
            return
        self._started = False
        atexit.unregister(self.close)
        for node in self.nodes.values():
            # Deleting the namespace destroys its veth end, and with it the host end.
            with contextlib.suppress(NetworkCommandFailed):
                _run(["ip", "netns", "del", node.namespace])
            with contextlib.suppress(NetworkCommandFailed):
                if self._link_exists(node.host_veth):
                    _run(["ip", "link", "del", node.host_veth])
        with contextlib.suppress(NetworkCommandFailed):
            if self._link_exists(self.bridge):
                _run(["ip", "link", "del", self.bridge])
        self._cuts.clear()
        self._latency.clear()

    @staticmethod
    def _link_exists(name: str) -> bool:
        try:
            _run(["ip", "link", "show", "dev", name])
        except NetworkCommandFailed:
            return False
        return True

    def leftovers(self) -> list[str]:
        """The lab's names still present on the machine (empty after `close`)."""
        found = []
        namespaces = _run(["ip", "netns", "list"]).split()
        found += [n for n in namespaces if n.startswith(self.name + "-")]
        links = _run(["ip", "-o", "link", "show"])
        for line in links.splitlines():
            parts = line.split(":")
            link = parts[1].strip().split("@")[0] if len(parts) > 1 else ""
            if link.startswith(self.name):
                found.append(link)
        return found

    # -- nodes -------------------------------------------------------------------

    def address(self, node_id: int) -> str:
        return self.nodes[node_id].address

    def namespace(self, node_id: int) -> str:
        return self.nodes[node_id].namespace

    def exec_prefix(self, node_id: int) -> list[str]:
        """Prepend to an argv to run it inside the node's namespace. `ip netns exec`
        execs in place, so the PID is the program's own and signals reach it."""
        return ["ip", "netns", "exec", self.namespace(node_id)]

    # -- cuts ----------------------------------------------------------------------

    @property
    def _sink_gateway(self) -> str:
        return f"{self.subnet}.{SINK_GATEWAY_HOST}"

    @property
    def cuts(self) -> frozenset[frozenset[int]]:
        return frozenset(self._cuts)

    def cut(self, a: int, b: int) -> None:
        """Stops every packet between nodes a and b, both ways."""
        if a == b or frozenset((a, b)) in self._cuts:
            return
        for src, dst in ((a, b), (b, a)):
            node = self.nodes[src]
            _run(
                ["ip", "-n", node.namespace, "route", "replace", f"{self.address(dst)}/32"]
                + ["via", self._sink_gateway, "dev", node.ns_veth]
            )
        self._cuts.add(frozenset((a, b)))

    def connect(self, a: int, b: int) -> None:
        """Undoes `cut(a, b)`."""
        for src, dst in ((a, b), (b, a)):
            with contextlib.suppress(NetworkCommandFailed):  # already gone
                _run(["ip", "-n", self.namespace(src), "route", "del", f"{self.address(dst)}/32"])
        self._cuts.discard(frozenset((a, b)))

    def partition(self, groups: Sequence[Collection[int]]) -> None:
        """Cuts every pair of nodes that sit in different groups; nodes in no group keep
        all their links."""
        for i, left in enumerate(groups):
            for right in groups[i + 1 :]:
                for a in left:
                    for b in right:
                        self.cut(a, b)

    def isolate(self, node_id: int) -> None:
        self.partition([[node_id], [n for n in self.node_ids if n != node_id]])

    def bridge_partition(self, left: Collection[int], right: Collection[int]) -> None:
        """Two halves that cannot talk, and the nodes in neither (the bridge) reaching both."""
        self.partition([left, right])

    def heal(self) -> None:
        """Restores every cut link."""
        for pair in list(self._cuts):
            a, b = sorted(pair)
            self.connect(a, b)

    # -- latency -------------------------------------------------------------------

    def _tc(self, node: Node, args: list[str]) -> str:
        return _run(["tc", "-n", node.namespace, *args])

    def add_latency(self, node_id: int, latency: Latency) -> None:
        """netem on the node's own end of its link: what it sends is delayed and lost (a
        round trip through it is delayed once, on its way out)."""
        if self.latency_unavailable is not None:
            raise NetworkUnavailable(self.latency_unavailable)
        node = self.nodes[node_id]
        if self.netem:
            args = ["netem", *latency.netem_args()]
        else:
            args = self._tbf_args(latency.delay_ms)
            self._nft(node, latency.fallback_loss_percent)
        self._tc(node, ["qdisc", "replace", "dev", node.ns_veth, "root", *args])
        self._latency[node_id] = latency

    def clear_latency(self, node_id: int) -> None:
        node = self.nodes[node_id]
        with contextlib.suppress(NetworkCommandFailed):  # no qdisc left to delete
            self._tc(node, ["qdisc", "del", "dev", node.ns_veth, "root"])
        if not self.netem:
            self._nft_delete(node)
        self._latency.pop(node_id, None)

    @property
    def latencies(self) -> dict[int, Latency]:
        return dict(self._latency)

    def heal_all(self) -> None:
        """Every link back and every delay gone."""
        self.heal()
        for node_id in list(self._latency):
            self.clear_latency(node_id)
