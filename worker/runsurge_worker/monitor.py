"""Memory and CPU metering from /proc, shared by every sandbox backend.

Backends read `/proc/PID/status` and `/proc/PID/stat` (locally, or over SSH inside a VM) and feed
the text to a `Meter`; the meter keeps the running average and the peak.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

CLK_TCK = os.sysconf("SC_CLK_TCK")
SERIES_POINTS = 200  # the most points of the usage series a run reports (the master refuses more)


def parse_status(text: str) -> dict[str, int]:
    """VmSize, VmRSS, VmPeak, VmHWM from /proc/PID/status, in bytes (missing keys are absent)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmSize", "VmRSS", "VmPeak", "VmHWM"):
            parts = rest.split()
            if parts and parts[0].isdigit():
                out[key] = int(parts[0]) * 1024  # the kernel reports kB
    return out


def parse_stat_cpu_s(text: str, clk_tck: int = CLK_TCK) -> float:
    """User+system CPU seconds of the process and its waited-for children from /proc/PID/stat."""
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = text.rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / clk_tck


@dataclass
class Meter:
    """Accumulates samples of resident memory; reports the average and the peak in bytes, and keeps
    the usage over time: `series` of (seconds since the meter began, CPU seconds, rss bytes). Past
    SERIES_POINTS it drops every other point and keeps every second sample after, so a long run's
    series stays evenly spread and bounded."""

    samples: int = 0
    rss_total: int = 0
    rss_peak: int = 0
    cpu_s: float = 0.0
    _last: dict[str, int] = field(default_factory=dict)
    series: list[tuple[float, float, int]] = field(default_factory=list)
    _began: float = field(default_factory=time.monotonic)
    _stride: int = 1

    def add(self, status_text: str, stat_text: str | None = None) -> None:
        values = parse_status(status_text)
        rss = values.get("VmRSS")
        if rss is None:  # a zombie has no memory lines left
            return
        self.samples += 1
        self.rss_total += rss
        self.rss_peak = max(self.rss_peak, rss, values.get("VmHWM", 0))
        if stat_text:
            self.cpu_s = max(self.cpu_s, parse_stat_cpu_s(stat_text))
        if self.samples % self._stride == 0:
            self.series.append((time.monotonic() - self._began, self.cpu_s, rss))
            if len(self.series) > SERIES_POINTS:
                self.series, self._stride = self.series[1::2], self._stride * 2  # keeps multiples of the new stride

    @property
    def avg(self) -> int:
        return self.rss_total // self.samples if self.samples else 0
