"""A VM task suspended while the contributor's machine is busy (QMP stop/cont): the guest is paused,
the task resumes where it was and finishes with the right output, and its wall time leaves the
suspension out. (The governor that decides to suspend is the same for every backend:
tests/integration/test_contributor.py drives it with real worker processes.)"""

from __future__ import annotations

import threading
import time

import pytest
from conftest import new_task
from contributor import until

from runsurge_worker.sandbox.base import Limits
from runsurge_worker.sandbox.qmp import Qmp

pytestmark = pytest.mark.vm

# Ends after 3 s of its own CPU time, whatever the wall clock says.
CPU_TASK = """import time
n = 0
while time.process_time() < 3:
    n += 1
open("result.txt", "w").write("crunched")
"""


def _status(vm) -> str:
    qmp = Qmp(vm.qmp_socket, timeout=10)
    try:
        return qmp.execute("query-status")["status"]
    finally:
        qmp.close()


def test_a_suspended_vm_task_resumes_and_its_wall_time_leaves_the_pause_out(backend):
    task_dir = new_task(backend, CPU_TASK)
    out = {}
    runner = threading.Thread(target=lambda: out.setdefault("result", backend.run(
        task_dir, "main.py", Limits(memory_bytes=256 << 20, timeout_s=120), threading.Event())))
    runner.start()
    until(lambda: backend.pauses.running_count(), "the task's run", 120, 0.05)
    [vm] = until(lambda: list(backend._running), "the task's VM", 120, 0.05)
    started = time.monotonic()
    backend.suspend()
    try:
        assert _status(vm) == "paused"
        assert backend.pauses.paused_count() == 1
        time.sleep(4)  # the owner keeps the machine busy for 4 s
        assert runner.is_alive()
    finally:
        backend.resume()
    assert _status(vm) == "running"
    runner.join(timeout=180)
    result = out["result"]
    elapsed = time.monotonic() - started
    assert result.failure is None and result.exit_code == 0, result
    assert (task_dir / "result.txt").read_text() == "crunched"
    assert result.cpu_s > 1  # metered in the guest (its clock runs unevenly under TCG)
    assert result.wall_s < elapsed - 3.5, (result.wall_s, elapsed)
