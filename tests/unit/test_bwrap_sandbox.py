"""The bwrap backend with real bubblewrap: runs, limits, and what a hostile script cannot do."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
from pathlib import Path

import pytest

from runsurge_worker.sandbox.base import Limits
from runsurge_worker.sandbox.bwrap import BwrapSandbox

if shutil.which("bwrap") is None:
    pytest.fail("the bwrap backend's tests need bubblewrap (apt: bubblewrap)", pytrace=False)


@pytest.fixture
def run():
    # Not under tmp_path: pytest's base temp dir is private (0700), and a root worker runs each
    # task as its own uid, which must reach the task folder by path.
    work = Path(tempfile.mkdtemp(prefix="rs-bwrap-"))
    backend = BwrapSandbox(work)
    backend.start()
    counter = iter(range(1000))

    def run(source, **limits):
        task_dir = backend.task_root / f"t{next(counter)}"
        task_dir.mkdir()
        (task_dir / "main.py").write_text(source)
        limits.setdefault("memory_bytes", 256 << 20)
        limits.setdefault("timeout_s", 30)
        result = backend.run(task_dir, "main.py", Limits(**limits), threading.Event())
        return result, task_dir

    yield run
    backend.close()
    shutil.rmtree(work)


def test_output_and_logs_come_back(run):
    result, task_dir = run("import sys\nopen('r.txt', 'w').write('42')\nprint('hi')\n"
                           "print('err', file=sys.stderr)\n")
    assert result.exit_code == 0 and result.failure is None
    assert (task_dir / "r.txt").read_text() == "42"
    assert (task_dir / "log.out").read_text() == "hi\n"
    assert (task_dir / "error.err").read_text() == "err\n"
    assert result.wall_s < 5


def test_traceback_and_exit_code(run):
    result, task_dir = run("raise KeyError('nope')\n")
    assert result.exit_code == 1
    assert "KeyError: 'nope'" in (task_dir / "error.err").read_text()


def test_memory_is_metered_and_limited(run):
    ok, _ = run("import time\nb = bytearray(b'x') * (100 << 20)\ntime.sleep(1.5)\n")
    assert ok.exit_code == 0 and 95 << 20 <= ok.mem_peak_bytes <= 140 << 20
    bomb, _ = run("l = []\nwhile True:\n    l.append(bytearray(b'x') * (16 << 20))\n")
    assert bomb.failure == "memory limit exceeded (256 MiB)"


def test_timeout_kills(run):
    result, _ = run("import time\ntime.sleep(60)\n", timeout_s=1)
    assert result.failure == "timeout after 1s" and result.exit_code is None


def test_hostile_script_sees_no_host_and_no_network(run, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        result, task_dir = run(f"""
import os, socket
report = []
for name, fn in [
    ("host file", lambda: open({str(secret)!r}).read()),
    ("etc shadow", lambda: open("/etc/shadow").read()),
    ("home", lambda: os.listdir("/home")),
    ("write usr", lambda: open("/usr/evil", "w")),
    ("host port", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2)),
    ("mount", lambda: os.system("mount -t tmpfs x /tmp 2>/dev/null") == 0 or 1 / 0),
]:
    try:
        fn()
        report.append("ESCAPED " + name)
    except Exception:
        report.append("denied " + name)
print("\\n".join(report))
""")
    finally:
        listener.close()
    assert result.exit_code == 0, (task_dir / "error.err").read_text()
    lines = (task_dir / "log.out").read_text().splitlines()
    assert len(lines) == 6 and all(line.startswith("denied") for line in lines), lines


def test_fork_bomb_is_bounded(run):
    result, _ = run("import os\nwhile True:\n    try:\n        os.fork()\n"
                    "    except OSError:\n        pass\n", timeout_s=3)
    assert result.failure == "timeout after 3s"
