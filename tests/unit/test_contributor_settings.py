"""The contributor's settings and the host watch: schedules, busy detection from real processes,
battery detection, the token bucket, pausing a real process tree, and bad settings refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from runsurge_worker.config import load_config
from runsurge_worker.hostload import HostLoad, on_battery, parse_users
from runsurge_worker.ratelimit import TokenBucket
from runsurge_worker.sandbox.pause import PauseBoard, cont_tree, process_tree, stop_tree
from runsurge_worker.schedule import Schedule

MON = datetime(2026, 12, 7)  # a Monday


def at(day: int, hh: int, mm: int = 0) -> datetime:
    return MON.replace(day=7 + day, hour=hh, minute=mm)


def test_a_window_across_midnight_belongs_to_the_day_it_starts():
    s = Schedule.parse("19:00-08:00", "mon-fri")
    assert s.allows(at(0, 19)) and s.allows(at(0, 23, 59)) and s.allows(at(1, 7, 59))
    assert not s.allows(at(0, 8)) and not s.allows(at(0, 18, 59)) and not s.allows(at(0, 12))
    assert s.allows(at(5, 7))  # Saturday morning: Friday's night
    assert not s.allows(at(5, 20)) and not s.allows(at(0, 7))  # Saturday evening; Monday morning (Sunday's)


def test_several_windows_and_day_ranges():
    s = Schedule.parse("12:00-13:00, 22:00-24:00", "sat,sun")
    assert s.allows(at(5, 12, 30)) and s.allows(at(6, 23)) and not s.allows(at(6, 13))
    assert not s.allows(at(2, 12, 30))
    assert Schedule.parse("", "").always and Schedule.parse("", "fri-mon").allows(at(0, 3))
    assert not Schedule.parse("", "fri-mon").allows(at(2, 3))


@pytest.mark.parametrize("hours,days,error", [
    ("19-08", "", "not a time like 19:00"), ("25:00-08:00", "", "not a time of day"),
    ("19:00", "", "not a window"), ("08:00-08:00", "", "empty window"), ("", "someday", "not a day"),
])
def test_bad_schedules_are_refused_with_what_is_wrong(hours, days, error):
    with pytest.raises(ValueError, match=error):
        Schedule.parse(hours, days)


@pytest.mark.parametrize("setting,value,error", [
    ("hours", "7pm-8am", "not a time"), ("outside_hours", "pause", "outside_hours"),
    ("busy_cpu_percent", "150", "between 0 and 100"), ("busy_users", "no-such-user-here", "no user"),
    ("download_limit_bps", "-1", "must not be negative"),
])
def test_bad_contributor_settings_are_refused(monkeypatch, tmp_path, setting, value, error):
    monkeypatch.setenv(f"RUNSURGE_{setting.upper()}", value)
    with pytest.raises(ValueError, match=error):
        load_config(home=tmp_path)


def test_other_processes_cpu_is_measured_and_the_worker_s_own_is_not():
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # a child: part of "our" tree
    try:
        ours = HostLoad(users={0})  # this process is the worker: the hog is its own
        everyone = HostLoad(own_pid=1 << 30, users={0})  # no such worker: the hog counts
        nobody = HostLoad(own_pid=1 << 30, users={65534})  # only nobody's processes count: not the hog
        for load in (ours, everyone, nobody):
            load.sample()
        time.sleep(1.0)
        mine, all_, nobodys = ours.sample(), everyone.sample(), nobody.sample()
        cores = 1 / everyone.ncpu
        assert all_ - mine >= 0.3 * cores  # the hog ran most of a CPU; only "everyone" counted it
        assert nobodys < 0.05
    finally:
        hog.kill()
        hog.wait()


def test_busy_users_names_and_uids():
    assert parse_users("") is None
    assert parse_users("root, 1234") == {0, 1234}


def test_on_battery_reads_the_power_supply_class(tmp_path):
    def supply(name: str, kind: str, online: str | None = None) -> None:
        d = tmp_path / name
        d.mkdir()
        (d / "type").write_text(kind + "\n")
        if online is not None:
            (d / "online").write_text(online + "\n")

    assert not on_battery(tmp_path)  # a desktop without supplies listed
    supply("BAT0", "Battery")
    supply("AC", "Mains", "1")
    assert not on_battery(tmp_path)
    (tmp_path / "AC" / "online").write_text("0\n")
    assert on_battery(tmp_path)
    assert not on_battery(Path("/nonexistent"))


def test_the_token_bucket_holds_the_rate():
    bucket = TokenBucket(4 << 20)  # 4 MiB/s, bursts of 1 MiB
    started = time.monotonic()
    for _ in range(12):
        bucket.take(1 << 20)
    assert time.monotonic() - started >= (12 - 1) / 4
    with pytest.raises(ValueError):
        TokenBucket(0)


def test_pausing_a_process_tree_stops_every_process_and_counts_the_time():
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        "c = subprocess.Popen([sys.executable, '-c', 'import os; os.setsid(); import time; time.sleep(60)'])\n"
        "print(c.pid, flush=True); time.sleep(60)\n")], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        child = int(parent.stdout.readline())
        board = PauseBoard()
        with board.run(stop_tree(parent.pid), cont_tree(parent.pid)) as pause:
            assert set(process_tree(parent.pid)) >= {parent.pid, child}
            board.suspend()
            for pid in (parent.pid, child):  # the child left the session: it is stopped all the same
                assert _wait_state(pid, "Tt") in "Tt"
            assert board.paused_count() == 1
            time.sleep(0.5)
            board.resume()
            for pid in (parent.pid, child):
                assert _wait_state(pid, "SR") in "SR"
            assert 0.5 <= pause.suspended_s() < pause.active_s() + pause.suspended_s()
        board.suspend()  # a run that has ended is no longer on the board
        assert board.paused_count() == 0
    finally:
        for pid in process_tree(parent.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        parent.wait()


def _wait_state(pid: int, want: str) -> str:
    """The process's state once it is one of `want` (signals are delivered asynchronously), or after 5 s."""
    deadline = time.monotonic() + 5
    while True:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in want or time.monotonic() > deadline:
            return state
        time.sleep(0.01)
