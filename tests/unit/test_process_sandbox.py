import threading

import pytest

from runsurge_worker.sandbox.base import Limits
from runsurge_worker.sandbox.process import ProcessSandbox


@pytest.fixture
def sandbox(tmp_path):
    sb = ProcessSandbox(work_dir=tmp_path)
    sb.start()
    yield sb
    sb.close()


def run(sandbox, code, limits=Limits(memory_bytes=1 << 30, timeout_s=30), cancel=None):
    task_dir = sandbox.task_root / "t"
    task_dir.mkdir(parents=True, exist_ok=True)
    (task_dir / "s.py").write_text(code)
    return sandbox.run(task_dir, "s.py", limits, cancel or threading.Event()), task_dir


def test_output_and_logs(sandbox):
    result, task_dir = run(sandbox, "print('hi'); open('o.txt','w').write('x')")
    assert result.exit_code == 0 and result.failure is None
    assert (task_dir / "log.out").read_text() == "hi\n" and (task_dir / "o.txt").read_text() == "x"


def test_memory_is_measured(sandbox):
    result, _ = run(sandbox, "b = bytearray(200 * 2**20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
                             "import time; time.sleep(2.5)")
    assert 190 * 2**20 < result.mem_peak_bytes < 260 * 2**20
    assert result.mem_avg_bytes > 100 * 2**20


def test_failure_timeout_and_memory_limit(sandbox):
    result, task_dir = run(sandbox, "raise ValueError('boom')")
    assert result.exit_code == 1 and "ValueError: boom" in (task_dir / "error.err").read_text()
    result, _ = run(sandbox, "import time; time.sleep(60)", Limits(memory_bytes=1 << 30, timeout_s=1))
    assert result.exit_code is None and result.failure == "timeout after 1s" and result.wall_s < 5
    result, _ = run(sandbox, "b = bytearray(300 * 2**20)\nimport time; time.sleep(5)", Limits(memory_bytes=100 << 20))
    assert result.failure.startswith("memory limit")


def test_cancel(sandbox):
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    result, _ = run(sandbox, "import time; time.sleep(60)", cancel=cancel)
    assert result.failure == "cancelled" and result.wall_s < 5
