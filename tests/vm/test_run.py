"""A task's life in a real VM: output comes back, memory is metered, failures are reported."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import new_task

from runsurge_worker.sandbox.base import Limits

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
    assert "<string>" not in err  # no frame of the pre-started interpreter's own code


def test_script_runs_as_python3_script_would(run_task):
    # The interpreter was started before the task: it must look like `python3 main.py` in the folder.
    result, task_dir = run_task(
        "import os, sys\n"
        "print(__name__, __file__, sys.argv, sys.path[0], os.getcwd(), __doc__)\n"
        "print(sorted(k for k in globals() if not k.startswith('__')))\n"
        "print(os.getuid(), os.getppid() != 1, sorted(os.environ))\n")
    assert result.exit_code == 0, (task_dir / "error.err").read_text()
    lines = (task_dir / "log.out").read_text().splitlines()
    assert lines[0] == "__main__ /mnt/runsurge/main.py ['main.py'] /mnt/runsurge /mnt/runsurge None"
    assert lines[1] == "['os', 'sys']"
    assert lines[2] == "1000 True ['HOME', 'LANG', 'PATH']"


def test_syntax_error_and_missing_script_are_reported_like_python(backend):
    task_dir = new_task(backend, "x = (\n")
    result = backend.run(task_dir, "main.py", Limits(256 << 20, timeout_s=60), threading.Event())
    assert result.exit_code == 1
    err = (task_dir / "error.err").read_text()
    assert err.startswith('  File "/mnt/runsurge/main.py", line 1') and "SyntaxError" in err
    task_dir = new_task(backend, "")
    result = backend.run(task_dir, "missing.py", Limits(256 << 20, timeout_s=60), threading.Event())
    assert result.exit_code == 2
    assert "can't open file '/mnt/runsurge/missing.py'" in (task_dir / "error.err").read_text()


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
        "print(prev, uuid.uuid4().hex, open('/proc/sys/kernel/random/uuid').read().strip(),\n"
        "      open('/proc/sys/kernel/random/boot_id').read().strip(),\n"
        "      open('/etc/machine-id').read().strip(), __import__('socket').gethostname(),\n"
        "      hash('same text'), __import__('time').time())\n")
    first, d1 = run_task(probe)
    second, d2 = run_task(probe)
    assert first.exit_code == second.exit_code == 0, (d1 / "error.err").read_text()
    out1, out2 = (d / "log.out" for d in (d1, d2))
    line1, line2 = out1.read_text().split(), out2.read_text().split()
    assert line1[0] == line2[0] == "False"  # nothing left over from the previous task
    # Clones of one snapshot share no RNG stream, boot id, machine id, host name or str hash seed.
    for i in range(1, 7):
        assert line1[i] != line2[i], (i, line1, line2)
    assert len(line1[4]) == 32 and line1[5].startswith("runsurge-")
    assert abs(float(line2[7]) - time.time()) < 60  # the clock is the host's, not the snapshot's


def test_a_running_tasks_log_and_usage_are_read_where_the_vm_has_its_folder(backend):
    """The VM backends move the task folder to their VM's slot while it runs: live_dir says where, so
    the worker's ReadTaskLog finds the log the guest is writing. The run's usage series comes back."""
    task_dir = new_task(backend, "import os, time\nprint('line 0', flush=True)\n"
                                 "while not os.path.exists('go'):\n    time.sleep(0.1)\nprint('line 1', flush=True)\n")
    results = []
    runner = threading.Thread(target=lambda: results.append(backend.run(
        task_dir, "main.py", Limits(memory_bytes=256 << 20, timeout_s=300), threading.Event())))
    runner.start()
    try:
        deadline = time.monotonic() + 240
        while not ((backend.live_dir(task_dir) / "log.out").is_file()
                   and (backend.live_dir(task_dir) / "log.out").read_text() == "line 0\n"):
            assert time.monotonic() < deadline and runner.is_alive(), "no live log"
            time.sleep(0.2)
        assert backend.live_dir(task_dir) != task_dir and not task_dir.exists()
        (backend.live_dir(task_dir) / "go").touch()
    finally:
        runner.join(300)
    (result,) = results
    assert result.exit_code == 0, result
    assert backend.live_dir(task_dir) == task_dir and (task_dir / "log.out").read_text() == "line 0\nline 1\n"
    assert len(result.usage) >= 2 and all(rss > 0 for _, _, rss in result.usage)
