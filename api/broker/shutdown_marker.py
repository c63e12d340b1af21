"""Whether this broker's previous run may have lost acknowledged writes (KIP-966's idea).

A broker registers with `clean_shutdown`; the controller prefers leaders that did not lose
data. A killed process loses nothing that reached the page cache, so only an unclean stop
*across a reboot* (a power cut, a kernel crash) can shorten a log below what it
acknowledged, and only when acknowledgements do not wait for fsync. Owns two small files in
the broker's data folder: `clean-shutdown` (present only after a clean stop) and `boot-id`
(the machine's boot id when the broker last started). Blocking file work: call it from a
worker thread.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from raftka.storage.files import write_durably

CLEAN_SHUTDOWN_FILE = "clean-shutdown"
BOOT_ID_FILE = "boot-id"
# Linux's id of the current boot: it changes exactly when the machine restarts.
SYSTEM_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def current_boot_id() -> str:
    try:
        return SYSTEM_BOOT_ID.read_text().strip()
    except OSError:
        return ""  # not Linux: every unclean stop counts as a possible loss


class ShutdownMarker:
    def __init__(self, data_dir: Path, *, fsync_always: bool) -> None:
        self._dir = data_dir
        self._fsync_always = fsync_always

    def begin(self) -> bool:
        """At start: True unless the previous run may have lost acknowledged writes."""
        self._dir.mkdir(parents=True, exist_ok=True)
        marker = self._dir / CLEAN_SHUTDOWN_FILE
        boot_file = self._dir / BOOT_ID_FILE
        stopped_cleanly = marker.exists()
        try:
            previous_boot = boot_file.read_text().strip()
        except FileNotFoundError:
            previous_boot = None  # first start: nothing was ever acknowledged here
        boot = current_boot_id()
        lost_power = previous_boot is not None and (not boot or previous_boot != boot)
        clean = stopped_cleanly or self._fsync_always or not lost_power
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()
        # Also makes the unlink durable (it fsyncs the folder): a power cut from here on
        # must not find a stale marker.
        write_durably(boot_file, boot.encode() + b"\n")
        return clean

    def end(self) -> None:
        """After every log was closed cleanly."""
        write_durably(self._dir / CLEAN_SHUTDOWN_FILE, b"")
