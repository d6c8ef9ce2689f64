"""What the master keeps of a worker's metering: a TaskComplete's figures clamped to what the master
can bound itself (docs/billing.md, "What is trusted"). A worker's clock and /proc readings are its
word; the master's own clock and the task's reservation are not.

    wall   ≤ the master's assign → complete interval (+ SLACK_S), and ≤ the task's timeout (+ SLACK_S)
    cpu    ≤ wall × the CPUs the task reserved
    memory ≤ the memory the task reserved (peak and average; average ≤ peak)

A report outside a bound is clamped and logged. A wall time beyond the master's own interval costs
the worker trust (quorum.trust_after): no honest worker measures one. CPU and memory over their bounds
do not (a process sandbox does not pin CPUs, and a run killed for its memory limit reports the peak
that got it killed); they are only clamped.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime

log = logging.getLogger("runsurge.metering")
SLACK_S = 2.0  # clocks tick at slightly different rates; a report this far over a bound is not a lie


@dataclass(frozen=True)
class Metering:
    wall_s: float
    cpu_s: float
    mem_avg_bytes: int
    mem_peak_bytes: int


def bounded(wall_s: float, cpu_s: float, mem_avg: int, mem_peak: int, *, assigned_at: datetime | None,
            now: datetime, timeout_s: float | None, cpus: int, memory_bytes: int) -> tuple[Metering, list[str], bool]:
    """The figures to keep, what was clamped (empty: within every bound), and whether the report lied
    about time (a wall time the master's clock rules out)."""
    problems = []

    def clamp(name: str, value: float, top: float) -> float:
        if not math.isfinite(value) or value < 0:  # the interceptor refuses NaN/inf; negatives end here
            problems.append(f"{name}={value!r} is not a measurement")
            return 0.0
        if value > top:
            problems.append(f"{name}={value:g} above the bound {top:g}")
            return top
        return value

    top = math.inf
    if assigned_at is not None:
        top = max(0.0, (now - assigned_at).total_seconds()) + SLACK_S
    if timeout_s:
        top = min(top, timeout_s + SLACK_S)
    wall = clamp("wall_s", wall_s, top)
    lied = bool(problems)
    cpu = clamp("cpu_s", cpu_s, wall * max(1, cpus or 1))
    peak = int(clamp("mem_peak_bytes", mem_peak, max(0, memory_bytes)))
    avg = int(clamp("mem_avg_bytes", mem_avg, peak))
    return Metering(wall_s=wall, cpu_s=cpu, mem_avg_bytes=avg, mem_peak_bytes=peak), problems, lied
