"""The CPU cap of the whole worker (`max_cpu_percent` of the host): the worker moves itself into a
cgroup of its own with a CPU quota before it starts anything, so its VMs, sandboxes and smbd,
started afterwards, are held to it together. cgroup v2 (`cpu.max`) where its cpu controller is
available, else cgroup v1's cpu controller (`cpu.cfs_quota_us`). Needs root (or a delegated
cgroup); without one the worker refuses to start rather than run uncapped.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("runsurge.worker.cpucap")
PERIOD_US = 100_000
PREFIX = "runsurge-worker-"


class CpuCapError(RuntimeError):
    pass


def _mounts() -> list[tuple[str, str, set[str]]]:
    out = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
            out.append((parts[1], parts[2], set(parts[3].split(","))))
    return out


def _root() -> tuple[Path, bool]:
    """(the hierarchy to use, whether it is v2)."""
    mounts = _mounts()
    for path, kind, _ in mounts:
        if kind == "cgroup2" and "cpu" in Path(path, "cgroup.controllers").read_text().split():
            return Path(path), True
    for path, kind, opts in mounts:
        if kind == "cgroup" and "cpu" in opts:
            return Path(path), False
    raise CpuCapError("no cgroup with the cpu controller on this machine")


class CpuCap:
    def __init__(self, percent: float):
        self.percent = percent
        root, self.v2 = _root()
        self.root = root
        for stale in root.glob(PREFIX + "*"):  # left by a worker that was killed: empty, removable
            if not Path("/proc", stale.name[len(PREFIX):]).exists():
                try:
                    stale.rmdir()
                except OSError:
                    pass
        self.dir = root / f"{PREFIX}{os.getpid()}"
        quota = max(1000, int(percent / 100 * (os.cpu_count() or 1) * PERIOD_US))
        try:
            if self.v2:
                control = root / "cgroup.subtree_control"
                if "cpu" not in control.read_text().split():
                    control.write_text("+cpu")
                self.dir.mkdir(exist_ok=True)
                (self.dir / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            else:
                self.dir.mkdir(exist_ok=True)
                (self.dir / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (self.dir / "cpu.cfs_quota_us").write_text(str(quota))
            (self.dir / "cgroup.procs").write_text(str(os.getpid()))
        except OSError as e:
            self.close()
            raise CpuCapError(f"cannot cap the worker's CPU in {self.dir}: {e}") from None
        log.info("CPU cap %g%% of the host (%d/%d µs) in %s", percent, quota, PERIOD_US, self.dir)

    def close(self) -> None:
        """Back to the top cgroup and remove ours (its other processes, VMs and sandboxes, are gone)."""
        try:
            (self.root / "cgroup.procs").write_text(str(os.getpid()))
            self.dir.rmdir()
        except OSError:
            pass


def open_cap(percent: float) -> CpuCap | None:
    return CpuCap(percent) if 0 < percent < 100 else None
