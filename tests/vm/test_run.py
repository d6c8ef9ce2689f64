"""A task's life in a real VM: output comes back, memory is metered, failures are reported."""

from __future__ import annotations

import threading

import pytest

pytestmark = pytest.mark.vm


def test_script_runs_and_its_output_comes_back(run_task):
    result, task_dir = run_task(
        "import os, sys\n"
        "data = open('input.txt').read() if os.path.exists('input.txt') else 'none'\n"
        "open('result.txt', 'w').write('squares ' + ' '.join(str(i * i) for i in range(5)))\n"
        "print('uid', os.getuid(), 'cwd', os.getcwd())\n"
        "print('to stderr', file=sys.stderr)\n")
    assert result.failure is None and not result.infrastructure_error
    assert result.exit_code == 0
    assert (task_dir / "result.txt").read_text() == "squares 0 1 4 9 16"
    assert (task_dir / "log.out").read_text() == "uid 1000 cwd /mnt/runsurge\n"
    assert (task_dir / "error.err").read_text() == "to stderr\n"
    assert 0 < result.wall_s < 30
    assert result.cpu_s > 0


def test_200mb_allocation_is_metered(run_task):
    result, _ = run_task((
        "import time\n"
        "block = bytearray(b'x') * (200 << 20)  # touched, so resident\n"
        "time.sleep(12)\n"), memory_bytes=512 << 20)
    assert result.exit_code == 0, result
    mb = 1 << 20
    assert 195 * mb <= result.mem_peak_bytes <= 240 * mb, result
    # the samples taken while Python starts and allocates (slow page faults under TCG) pull the
    # average a little below the peak
    assert 160 * mb <= result.mem_avg_bytes <= 240 * mb, result


def test_raising_script_fails_with_its_traceback(run_task):
    result, task_dir = run_task(
        "def inner():\n"
        "    raise ValueError('boom-4711')\n"
        "inner()\n")
    assert result.exit_code == 1
    assert result.failure is None and not result.infrastructure_error
    err = (task_dir / "error.err").read_text()
    assert "Traceback (most recent call last)" in err
    assert "ValueError: boom-4711" in err and "in inner" in err


def test_exit_status_is_reported(run_task):
    result, _ = run_task("import sys\nsys.exit(7)\n")
    assert result.exit_code == 7 and result.failure is None


def test_sleep_past_timeout_is_killed(run_task):
    result, task_dir = run_task((
        "import time\nprint('sleeping', flush=True)\ntime.sleep(300)\nprint('woke')\n"),
        timeout_s=3)
    assert result.exit_code is None
    assert result.failure == "timeout after 3s"
    assert 3 <= result.wall_s < 10
    assert (task_dir / "log.out").read_text() == "sleeping\n"


def test_cancel_stops_the_run(run_task):
    cancel = threading.Event()
    threading.Timer(2.0, cancel.set).start()
    result, _ = run_task("import time\ntime.sleep(300)\n", cancel=cancel)
    assert result.failure == "cancelled" and result.exit_code is None
    assert result.wall_s < 10


def test_task_larger_than_the_vm_is_refused_for_elsewhere(run_task):
    result, _ = run_task("print('never')\n", memory_bytes=64 << 30)
    assert result.infrastructure_error and "MiB" in result.failure


def test_every_task_gets_a_fresh_vm(run_task):
    marker = "import os, uuid\n"
    probe = marker + (
        "prev = os.path.exists('/home/runsurge/mark')\n"
        "open('/home/runsurge/mark', 'w').write('x')\n"
        "print(prev, uuid.uuid4().hex, open('/proc/sys/kernel/random/uuid').read().strip())\n")
    first, d1 = run_task(probe)
    second, d2 = run_task(probe)
    assert first.exit_code == second.exit_code == 0
    out1, out2 = (d / "log.out" for d in (d1, d2))
    line1, line2 = out1.read_text().split(), out2.read_text().split()
    assert line1[0] == line2[0] == "False"  # nothing left over from the previous task
    assert line1[1] != line2[1] and line1[2] != line2[2]  # clones do not share RNG streams
