"""The nemesis: which faults a chaos run injects, when, and how each is applied and healed.

`plan_faults` is pure: a seed, a duration, the fault kinds and the broker ids in, a
schedule out, the same for the same input. One fault is active at a time and each is
healed and followed by a settle gap, so no schedule can keep a majority down. Targets
that only exist at run time (the controller, a partition's leader) are resolved by
`Nemesis` from `GET /v1/cluster` and `GET /v1/topics/{t}`, with a planned number to pick
among candidates. `Nemesis` applies and heals steps on a `Cluster` and its `NetworkLab`
and reports each start and stop through `record`; it never judges what the cluster did
(the checker does) and never issues client operations (the workload does).
"""

from __future__ import annotations

import contextlib
import enum
import http.client
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from raftka.api.launcher import Cluster
from raftka.chaos.netns import Latency, NetworkCommandFailed, NetworkLab, NetworkUnavailable


class FaultKind(enum.StrEnum):
    KILL = "kill"  # SIGKILL, restarted later with its data
    PAUSE = "pause"  # SIGSTOP, SIGCONT later
    PARTITION = "partition"  # kernel-level cuts between brokers
    LATENCY = "latency"  # netem delay and loss on one broker's link


# The variants of each kind; a run cycles through them in a seeded order.
VARIANTS: dict[FaultKind, tuple[str, ...]] = {
    FaultKind.KILL: ("random", "controller", "leader"),
    FaultKind.PAUSE: ("random", "controller", "leader"),
    FaultKind.PARTITION: ("isolate_one", "majority_minority", "isolate_controller", "bridge"),
    FaultKind.LATENCY: ("delay_loss",),
}
NETWORK_KINDS = frozenset({FaultKind.PARTITION, FaultKind.LATENCY})
MIN_PARTITION_BROKERS = 3  # a cut must leave a majority somewhere, and a bridge needs 3

# Times in milliseconds, so a schedule is exact integers. A slot is a fault's active time
# plus the settle gap after its heal (time to re-elect, restart, catch up).
ACTIVE_MIN_MS = 1_000
ACTIVE_MAX_MS = 10_000
SETTLE_MIN_MS = 3_000
SETTLE_MAX_MS = 10_000
MIN_SLOT_MS = ACTIVE_MIN_MS + SETTLE_MIN_MS
LEAD_IN_MAX_MS = 2_000  # the workload runs alone a moment before the first fault
LATENCY_DELAYS_MS = (50, 100, 200, 500)
LATENCY_LOSS_PERCENTS = (0.0, 1.0, 5.0, 20.0)
PICK_RANGE = 2**31
RESOLVE_TIMEOUT_S = 2.0  # a probe of cluster state; a paused broker must not hold it up
POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class FaultStep:
    """One fault: start at `start_ms` after the run begins, heal `active_ms` later, then
    leave the cluster alone `settle_ms`. `targets` and `groups` are empty when the target
    is resolved at run time (controller, leader); `pick` chooses among run-time candidates."""

    index: int
    kind: FaultKind
    variant: str
    start_ms: int
    active_ms: int
    settle_ms: int
    targets: tuple[int, ...] = ()
    groups: tuple[tuple[int, ...], ...] = ()  # partitions: the sides (bridge: left, bridge, right)
    latency: Latency | None = None
    pick: int = 0

    @property
    def heal_ms(self) -> int:
        return self.start_ms + self.active_ms

    @property
    def end_ms(self) -> int:
        return self.heal_ms + self.settle_ms


def schedule_bound_ms(duration_s: float, kinds: int) -> int:
    """No schedule ends later than this: the duration, or the minimal slots that fit every
    kind once when the duration is shorter."""
    duration_ms = int(duration_s * 1000)
    return max(duration_ms, _lead_in_ms(duration_ms) + kinds * MIN_SLOT_MS)


def _lead_in_ms(duration_ms: int) -> int:
    return min(LEAD_IN_MAX_MS, duration_ms // 10)


def usable_kinds(
    kinds: Iterable[str], unavailable: Mapping[FaultKind, str]
) -> tuple[list[FaultKind], list[str]]:
    """The asked kinds this machine can inject, and one warning per kind dropped."""
    usable: list[FaultKind] = []
    warnings: list[str] = []
    for kind in _parse_kinds(kinds):
        if kind in unavailable:
            warnings.append(f"{kind} faults are off: {unavailable[kind]}")
        else:
            usable.append(kind)
    return usable, warnings


def _parse_kinds(kinds: Iterable[str]) -> list[FaultKind]:
    parsed: list[FaultKind] = []
    for k in kinds:
        try:
            kind = FaultKind(k)
        except ValueError:
            raise ValueError(
                f"unknown fault kind {k!r} (known: {[str(x) for x in FaultKind]})"
            ) from None
        if kind not in parsed:
            parsed.append(kind)
    return parsed


def plan_faults(
    seed: int, duration_s: float, kinds: Iterable[str], brokers: Sequence[int]
) -> list[FaultStep]:
    """A fault schedule for a run of `duration_s`: every kind at least once (the first
    round, in a seeded order), then seeded random kinds while slots still fit. Steps never
    overlap: each starts after the previous one's settle gap."""
    wanted = _parse_kinds(kinds)
    ids = sorted(set(brokers))
    if not ids:
        raise ValueError("a fault schedule needs at least one broker")
    if FaultKind.PARTITION in wanted and len(ids) < MIN_PARTITION_BROKERS:
        raise ValueError(f"partition faults need at least {MIN_PARTITION_BROKERS} brokers")
    if not wanted:
        return []
    rng = random.Random(seed)
    duration_ms = max(0, int(duration_s * 1000))
    variant_cycles = {k: _shuffled(rng, VARIANTS[k]) for k in wanted}
    used = {k: 0 for k in wanted}
    steps: list[FaultStep] = []
    t = _lead_in_ms(duration_ms)

    def add(kind: FaultKind, slot_ms: int) -> None:
        nonlocal t
        cycle = variant_cycles[kind]
        variant = cycle[used[kind] % len(cycle)]
        used[kind] += 1
        active = rng.randint(
            ACTIVE_MIN_MS, max(ACTIVE_MIN_MS, min(ACTIVE_MAX_MS, slot_ms - SETTLE_MIN_MS))
        )
        settle = rng.randint(
            SETTLE_MIN_MS, max(SETTLE_MIN_MS, min(SETTLE_MAX_MS, slot_ms - active))
        )
        steps.append(_step(rng, len(steps), kind, variant, t, active, settle, ids))
        t += active + settle

    # The first round shares the duration evenly, so every kind fits when it can.
    first_slot = max(MIN_SLOT_MS, (duration_ms - t) // len(wanted))
    for kind in _shuffled(rng, wanted):
        add(kind, first_slot)
    while duration_ms - t >= MIN_SLOT_MS:
        add(rng.choice(wanted), duration_ms - t)
    return steps


def _shuffled(rng: random.Random, items: Sequence[Any]) -> list[Any]:
    out = list(items)
    rng.shuffle(out)
    return out


def _step(
    rng: random.Random,
    index: int,
    kind: FaultKind,
    variant: str,
    start_ms: int,
    active_ms: int,
    settle_ms: int,
    ids: list[int],
) -> FaultStep:
    targets: tuple[int, ...] = ()
    groups: tuple[tuple[int, ...], ...] = ()
    latency = None
    if variant == "random" or variant == "isolate_one" or kind is FaultKind.LATENCY:
        targets = (rng.choice(ids),)
    if variant == "isolate_one":
        groups = (targets, tuple(i for i in ids if i not in targets))
    elif variant == "majority_minority":
        order = _shuffled(rng, ids)
        minority = tuple(sorted(order[: (len(ids) - 1) // 2]))
        targets = minority
        groups = (minority, tuple(i for i in ids if i not in minority))
    elif variant == "bridge":
        order = _shuffled(rng, ids)
        shared, rest = order[0], order[1:]
        half = len(rest) // 2
        targets = (shared,)
        groups = (tuple(sorted(rest[:half])), (shared,), tuple(sorted(rest[half:])))
    if kind is FaultKind.LATENCY:
        delay = rng.choice(LATENCY_DELAYS_MS)
        latency = Latency(
            delay_ms=delay, jitter_ms=delay // 5, loss_percent=rng.choice(LATENCY_LOSS_PERCENTS)
        )
    return FaultStep(
        index=index,
        kind=kind,
        variant=variant,
        start_ms=start_ms,
        active_ms=active_ms,
        settle_ms=settle_ms,
        targets=targets,
        groups=groups,
        latency=latency,
        pick=rng.randrange(PICK_RANGE),
    )


def partition_cuts(variant: str, groups: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """The pairs a partition cuts: every pair across sides, except that a bridge's middle
    group keeps its links to both halves."""
    sides = [groups[0], groups[2]] if variant == "bridge" else list(groups)
    return [
        (min(a, b), max(a, b))
        for i, left in enumerate(sides)
        for right in sides[i + 1 :]
        for a in left
        for b in right
    ]


@dataclass
class ActiveFault:
    """A step as applied: its resolved targets and sides, for healing and the history."""

    step: FaultStep
    targets: tuple[int, ...]
    groups: tuple[tuple[int, ...], ...] = ()
    healed: bool = False

    def value(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "fault": str(self.step.kind),
            "variant": self.step.variant,
            "targets": list(self.targets),
        }
        if self.groups:
            value["groups"] = [list(g) for g in self.groups]
        if self.step.latency is not None:
            lat = self.step.latency
            value["latency"] = {
                "delay_ms": lat.delay_ms,
                "jitter_ms": lat.jitter_ms,
                "loss_percent": lat.loss_percent,
            }
        return value


@dataclass
class Nemesis:
    """Applies and heals `FaultStep`s on a running cluster. `network` is None where
    namespaces are unavailable; `network_unavailable` then says why."""

    cluster: Cluster
    record: Callable[[dict[str, Any]], None]
    clock: Callable[[], float]
    network: NetworkLab | None = None
    network_unavailable: str | None = None
    topics: Sequence[str] = ()
    active: list[ActiveFault] = field(default_factory=list)

    @property
    def unavailable(self) -> dict[FaultKind, str]:
        """Kinds this nemesis cannot inject, each with the reason to print."""
        if self.network is None:
            reason = self.network_unavailable or "the brokers do not run in a network lab"
            return {k: reason for k in NETWORK_KINDS}
        if self.network.latency_unavailable is not None:
            return {FaultKind.LATENCY: self.network.latency_unavailable}
        return {}

    def plan(
        self, seed: int, duration_s: float, kinds: Iterable[str]
    ) -> tuple[list[FaultStep], list[str]]:
        """A schedule of the asked kinds this nemesis can inject on its cluster, and one
        warning per kind it dropped (for the runner to print)."""
        usable, warnings = usable_kinds(kinds, self.unavailable)
        return plan_faults(seed, duration_s, usable, sorted(self.cluster.brokers)), warnings

    # -- resolving run-time targets ---------------------------------------------

    def _ask(self, path: str) -> Any:
        """GET from the first broker that answers (killed or paused ones do not)."""
        last: Exception | None = None
        for broker_id, b in sorted(self.cluster.brokers.items()):
            if not b.running:
                continue
            try:
                resp = self.cluster.request(broker_id, "GET", path, timeout_s=RESOLVE_TIMEOUT_S)
            except (OSError, http.client.HTTPException) as exc:
                last = exc
                continue
            if resp.status == 200:
                return resp.body
        raise RuntimeError(f"no broker answered GET {path} (last error: {last})")

    def controller(self) -> int | None:
        with contextlib.suppress(RuntimeError):
            controller = self._ask("/v1/cluster")["controller"]
            return int(controller) if controller is not None else None
        return None

    def leader(self, pick: int) -> int | None:
        """The leader of one partition, chosen by `pick` among the partitions of
        `topics` that have a leader."""
        leaders: list[tuple[str, int, int]] = []
        for topic in sorted(self.topics):
            with contextlib.suppress(RuntimeError, KeyError):
                for p in self._ask(f"/v1/topics/{topic}")["partitions"]:
                    if p["leader"] is not None:
                        leaders.append((topic, p["partition"], int(p["leader"])))
        return leaders[pick % len(leaders)][2] if leaders else None

    def _resolve_one(self, step: FaultStep) -> int:
        ids = sorted(self.cluster.brokers)
        found: int | None = None
        if step.variant in ("controller", "isolate_controller"):
            found = self.controller()
        elif step.variant == "leader":
            found = self.leader(step.pick)
        elif step.targets:
            found = step.targets[0]
        # No controller or leader known right now: a planned choice keeps the run going.
        return found if found is not None else ids[step.pick % len(ids)]

    # -- applying and healing -------------------------------------------------------

    def apply(self, step: FaultStep) -> ActiveFault:
        kind = step.kind
        if kind in self.unavailable:
            raise NetworkUnavailable(self.unavailable[kind])
        groups = step.groups
        if kind is FaultKind.PARTITION and step.variant == "isolate_controller":
            target = self._resolve_one(step)
            groups = ((target,), tuple(b for b in sorted(self.cluster.brokers) if b != target))
            targets: tuple[int, ...] = (target,)
        elif kind is FaultKind.PARTITION:
            targets = step.targets
        else:
            targets = (self._resolve_one(step),)
        fault = ActiveFault(step, targets, groups)
        if kind is FaultKind.KILL:
            self.cluster.kill(targets[0])
        elif kind is FaultKind.PAUSE:
            self.cluster.pause(targets[0])
        elif kind is FaultKind.PARTITION:
            assert self.network is not None
            for a, b in partition_cuts(step.variant, groups):
                self.network.cut(a, b)
        elif kind is FaultKind.LATENCY:
            assert self.network is not None and step.latency is not None
            self.network.add_latency(targets[0], step.latency)
        self.active.append(fault)
        self._record("start", fault)
        return fault

    def heal(self, fault: ActiveFault) -> None:
        kind = fault.step.kind
        if kind is FaultKind.KILL:
            self.cluster.start(fault.targets[0])  # the same data directory: a restart
        elif kind is FaultKind.PAUSE:
            self.cluster.resume(fault.targets[0])
        elif kind is FaultKind.PARTITION:
            assert self.network is not None
            for a, b in partition_cuts(fault.step.variant, fault.groups):
                self.network.connect(a, b)
        elif kind is FaultKind.LATENCY:
            assert self.network is not None
            self.network.clear_latency(fault.targets[0])
        fault.healed = True
        self.active.remove(fault)
        self._record("stop", fault)

    def heal_all(self) -> None:
        """Heals whatever is still active (a run that stops early, or fails)."""
        for fault in list(self.active):
            with contextlib.suppress(NetworkCommandFailed, AssertionError, OSError):
                self.heal(fault)

    def _record(self, f: str, fault: ActiveFault) -> None:
        self.record(
            {
                "process": "nemesis",
                "type": "info",
                "f": f,
                "value": fault.value(),
                "time": self.clock(),
            }
        )

    def run(
        self,
        schedule: Sequence[FaultStep],
        *,
        should_stop: Callable[[], bool] = lambda: False,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> list[ActiveFault]:
        """Runs a schedule from now: each step at its start (or as soon as the previous
        one is healed, if that ran late), healed after its active time. Every fault is
        healed on the way out, also on an exception or `should_stop`."""
        begin = monotonic()
        applied: list[ActiveFault] = []

        def wait_until(ms: int) -> None:
            while not should_stop() and (left := begin + ms / 1000 - monotonic()) > 0:
                sleep(min(left, POLL_S))

        try:
            for step in schedule:
                wait_until(step.start_ms)
                if should_stop():
                    break
                fault = self.apply(step)
                applied.append(fault)
                wait_until(step.heal_ms)
                self.heal(fault)
            if schedule and not should_stop():
                wait_until(schedule[-1].end_ms)
        finally:
            self.heal_all()
        return applied
