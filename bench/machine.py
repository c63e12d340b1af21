"""What machine a benchmark ran on: CPU model, cores, Python, kernel, commit (read from
/proc, platform and git; anything unknown says so instead of failing the run)."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
GIT_TIMEOUT_S = 5.0
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Machine:
    cpu_model: str
    cores: int  # logical CPUs this process may run on
    python: str
    kernel: str
    commit: str

    def describe(self) -> str:
        return (
            f"{self.cpu_model}, {self.cores} cores, Python {self.python} "
            f"({platform.python_implementation()}), {platform.system()} {self.kernel}"
        )


def cpu_model() -> str:
    try:
        for line in CPUINFO.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or UNKNOWN


def commit() -> str:
    """The short commit of the working directory's checkout, with `+` when it has changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return UNKNOWN
    return head + ("+" if dirty else "")


def this_machine() -> Machine:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return Machine(cpu_model(), cores or 0, platform.python_version(), platform.release(), commit())
