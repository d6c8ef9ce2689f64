import os
from pathlib import Path

from runsurge_worker.monitor import SERIES_POINTS, Meter, parse_stat_cpu_s, parse_status

STATUS = "Name:\tpython3\nVmPeak:\t  20000 kB\nVmSize:\t  19000 kB\nVmHWM:\t   9000 kB\nVmRSS:\t   8000 kB\n"


def test_status_values_are_bytes():
    assert parse_status(STATUS) == {"VmPeak": 20000 * 1024, "VmSize": 19000 * 1024,
                                    "VmHWM": 9000 * 1024, "VmRSS": 8000 * 1024}


def test_stat_cpu_handles_odd_command_names():
    fields = ["S"] + ["0"] * 10 + ["300", "100", "50", "50"] + ["0"] * 30
    text = "1234 (a) b (c)) " + " ".join(fields)
    assert parse_stat_cpu_s(text, clk_tck=100) == 5.0


def test_meter_on_this_process():
    m = Meter()
    status = Path(f"/proc/{os.getpid()}/status").read_text()
    m.add(status, Path(f"/proc/{os.getpid()}/stat").read_text())
    m.add(STATUS)
    assert m.samples == 2
    assert m.rss_peak >= parse_status(status)["VmRSS"]
    assert m.avg > 0 and m.cpu_s > 0
    m.add("Name: zombie\n")  # a zombie has no memory lines: ignored
    assert m.samples == 2


def test_the_usage_series_stays_bounded_evenly_spread_and_in_order():
    m = Meter()
    for i in range(5000):
        m.add(f"VmRSS:\t{1000 + i} kB\n")
    assert SERIES_POINTS // 2 <= len(m.series) <= SERIES_POINTS
    times = [t for t, _, _ in m.series]
    assert times == sorted(times)
    rss = [r for _, _, r in m.series]  # every other sample dropped, each time it filled: even steps
    steps = {b - a for a, b in zip(rss, rss[1:], strict=False)}
    assert len(steps) == 1
