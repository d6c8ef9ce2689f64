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


TOUCH = "b = bytearray({mib} * 2**20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"


def test_a_peak_between_two_samples_is_measured_and_over_the_limit_fails(sandbox):
    """The script allocates, touches and exits at once: no sample sees it (the first comes after
    5 ms), yet its peak is known from the interpreter itself, exactly, every time."""
    for _ in range(5):
        result, _ = run(sandbox, TOUCH.format(mib=120))
        assert result.failure is None and 120 * 2**20 < result.mem_peak_bytes < 160 * 2**20
        result, _ = run(sandbox, TOUCH.format(mib=120), Limits(memory_bytes=100 << 20, timeout_s=30))
        assert result.exit_code is None and result.failure.startswith("memory limit exceeded (100 MiB)")


def test_a_script_that_rebinds_every_name_is_still_measured(sandbox):
    """The interpreter's report runs with the script's globals: it must need none of them."""
    hostile = TOUCH.format(mib=120) + "os = open = Exception = next = len = None\n"
    for _ in range(5):
        result, _ = run(sandbox, hostile)
        assert result.failure is None and 120 * 2**20 < result.mem_peak_bytes < 160 * 2**20
        result, _ = run(sandbox, hostile, Limits(memory_bytes=100 << 20, timeout_s=30))
        assert result.failure.startswith("memory limit exceeded")


def test_a_script_cannot_lower_its_peak_by_renaming_itself(sandbox):
    lie = TOUCH.format(mib=120) + ("import time; time.sleep(0.3)\n"
                                   "open('/proc/self/comm', 'w').write('hwm1')\nimport os; os._exit(0)\n")
    result, _ = run(sandbox, lie, Limits(memory_bytes=100 << 20, timeout_s=30))
    assert result.failure.startswith("memory limit exceeded")  # its own samples saw it
