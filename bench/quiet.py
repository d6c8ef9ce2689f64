"""How quiet the machine was during a benchmark: the CPU other programs used, shown beside the figures."""

from __future__ import annotations

import os
import time


def cpu_seconds() -> tuple[float, float]:
    """(busy CPU seconds of the whole machine, CPU seconds of this process and its reaped children)."""
    user, nice, system, _idle, _iowait, irq, softirq = map(int, open("/proc/stat").readline().split()[1:8])
    t = os.times()
    return ((user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK"),
            t.user + t.system + t.children_user + t.children_system)


class OtherLoad:
    """Starts at creation; `stop()` returns the line saying how many CPUs other programs used meanwhile."""

    def __init__(self) -> None:
        self._busy, self._own = cpu_seconds()
        self._wall = time.monotonic()

    def stop(self) -> str:
        busy, own = cpu_seconds()
        other = max(0.0, (busy - self._busy) - (own - self._own)) / (time.monotonic() - self._wall)
        return (f"other programs used {other:.2f} of {os.cpu_count()} CPUs on average during this run"
                + ("" if other < 0.1 else ": the machine was not quiet, figures are disturbed"))
