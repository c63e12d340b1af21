"""CPU affinity and CPU time of whole processes, for the benchmarks (Linux /proc).

os.sched_setaffinity(pid) moves only the thread whose id is `pid`; a broker runs several
threads (pysyncobj, the fsync thread, executor threads), so these helpers act on every
thread. They only observe or place processes; they never start or stop one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# /proc/PID/stat fields after the `(comm)` field: utime and stime are fields 14 and 15.
UTIME_FIELD, STIME_FIELD = 11, 12
# /proc/stat's "cpu" line: user nice system idle iowait irq softirq steal, in clock ticks.
IDLE_FIELD, IOWAIT_FIELD = 3, 4


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
