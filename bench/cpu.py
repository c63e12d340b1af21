"""CPU affinity and CPU time of whole processes, for the benchmarks (Linux /proc).

os.sched_setaffinity(pid) moves only the thread whose id is `pid`; a broker runs several
threads (pysyncobj, the fsync thread, executor threads), so these helpers act on every
thread. They only observe or place processes; they never start or stop one. `CpuPlan`
says where each benchmark puts its servers and its load client.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# /proc/PID/stat fields after the `(comm)` field: utime and stime are fields 14 and 15.
UTIME_FIELD, STIME_FIELD = 11, 12
# /proc/stat's "cpu" line: user nice system idle iowait irq softirq steal, in clock ticks.
IDLE_FIELD, IOWAIT_FIELD = 3, 4
CPU_MODES = ("shared", "leader", "none")


@dataclass(frozen=True, slots=True)
class CpuPlan:
    """Where a benchmark's processes run (None: not pinned). `shared`: every server on one
    CPU, the load client alone on another; `leader`: the loaded leader alone on one CPU,
    the other brokers and the client on another; `none`: the OS decides."""

    mode: str
    server_cpu: int | None
    client_cpu: int | None
    note: str

    def broker_cpu(self, is_loaded_leader: bool) -> int | None:
        if self.mode == "leader" and not is_loaded_leader:
            return self.client_cpu
        return self.server_cpu


def plan_cpus(mode: str = "shared") -> CpuPlan:
    if mode not in CPU_MODES:
        raise ValueError(f"cpus must be one of {', '.join(CPU_MODES)}")
    if mode == "none":
        return CpuPlan(mode, None, None, "nothing pinned: the OS schedules servers and client")
    if not hasattr(os, "sched_setaffinity"):
        return CpuPlan("none", None, None, "CPU pinning skipped: no os.sched_setaffinity here")
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return CpuPlan(
            "none",
            None,
            None,
            "CPU pinning skipped: one CPU available, servers and client share it",
        )
    server, client = allowed[:2]
    if mode == "shared":
        note = f"servers pinned to CPU {server}, load client to CPU {client}"
    else:
        note = (
            f"the loaded leader pinned to CPU {server}; the other brokers and the load client "
            f"to CPU {client}"
        )
    return CpuPlan(mode, server, client, note)


@contextmanager
def client_pinned(plan: CpuPlan) -> Iterator[None]:
    """This process on the client's CPU; its former affinity restored afterwards."""
    if plan.client_cpu is None:
        yield
        return
    former = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {plan.client_cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, former)


def set_process_affinity(pid: int, cpus: set[int]) -> None:
    """Every current thread of `pid`; threads created later inherit their creator's mask."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):  # the thread ended
            os.sched_setaffinity(int(task.name), cpus)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of `pid` so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[UTIME_FIELD]) + int(fields[STIME_FIELD])) / CLOCK_TICKS_PER_S


def own_cpu_seconds() -> float:
    """User + system CPU time of this process (every thread)."""
    t = os.times()
    return t.user + t.system


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, every process included
    (/proc/stat: busy is everything but idle and iowait; steal counts as busy)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[IDLE_FIELD] + fields[IOWAIT_FIELD]
    total = sum(fields)
    return (total - idle) / CLOCK_TICKS_PER_S, total / CLOCK_TICKS_PER_S
