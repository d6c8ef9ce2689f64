"""The pre-started task interpreter (guestlauncher.py) every sandbox runs a task in: in the guest
(run here on the host against a folder) and warm in the `process` and `bwrap` sandboxes (warmpool.py).

It waits for the task before the task exists; whatever it runs must behave as `python3 SCRIPT`
started in the task folder would, in a process no earlier task touched.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from runsurge_worker.hostload import HostLoad
from runsurge_worker.sandbox import agent
from runsurge_worker.sandbox.base import Limits
from runsurge_worker.sandbox.bwrap import ENV_DIR, BwrapSandbox, bwrap_argv
from runsurge_worker.sandbox.pause import process_tree
from runsurge_worker.sandbox.process import PYTHON, ProcessSandbox


def _run_guest(folder, script: str, env: str = "") -> tuple[int, str, str]:
    code = agent.LAUNCHER_SOURCE.replace('MOUNT = "/mnt/runsurge"', f"MOUNT = {str(folder)!r}")
    go_r, go_w = os.pipe()
    ready_r, ready_w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-c", code, str(go_r), str(ready_w)],
                            pass_fds=(go_r, ready_w), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, cwd="/", env={"LANG": "C.UTF-8"})
    os.close(go_r)
    os.close(ready_w)
    try:
        os.write(go_w, b"m")  # the share is mounted
        assert os.read(ready_r, 1) == b"r"  # warm and waiting
        assert not any(p.name.startswith(".rs-warm") for p in folder.iterdir())
        os.write(go_w, f"{script}\0log.out\0error.err\0{env}".encode())
    finally:
        os.close(go_w)
        os.close(ready_r)
    status = proc.wait(30)
    return status, (folder / "log.out").read_text(), (folder / "error.err").read_text()


class Runner:
    """Runs a script the way one sandbox does; `folder` is the task folder as the script sees it."""

    def __init__(self, kind: str, base: Path):
        self.kind, self.base, self.count = kind, base, 0
        self.backend = None
        if kind == "process":
            self.backend = ProcessSandbox(base)
        elif kind == "bwrap":
            if shutil.which("bwrap") is None:
                pytest.fail("the bwrap sandbox's tests need bubblewrap (apt: bubblewrap)", pytrace=False)
            self.backend = BwrapSandbox(base)
        if self.backend is not None:
            self.backend.start()

    def task_dir(self) -> Path:
        self.count += 1
        folder = (self.backend.task_root if self.backend else self.base) / f"t{self.count}"
        folder.mkdir(parents=True)
        return folder

    def seen(self, task_dir: Path) -> Path:
        return Path("/work") if self.kind == "bwrap" else task_dir

    def __call__(self, script: str, source: str | None = None, env: Path | None = None):
        task_dir = self.task_dir()
        if source is not None:
            (task_dir / script).write_text(source)
        self.folder = self.seen(task_dir)
        if self.backend is None:
            return _run_guest(task_dir, script, "" if env is None else str(env))
        result = self.backend.run(task_dir, script, Limits(memory_bytes=512 << 20, timeout_s=60),
                                  threading.Event(), env=env)
        assert result.failure is None, result
        return (result.exit_code, (task_dir / "log.out").read_text(),
                (task_dir / "error.err").read_text())

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


@pytest.fixture(params=["guest", "process", "bwrap"])
def run(request, tmp_path):
    # Not under tmp_path for bwrap: pytest's base temp dir is private (0700), and a root worker
    # runs each task as its own uid, which must reach the task folder by path.
    base = Path(tempfile.mkdtemp(prefix="rs-launch-")) if request.param == "bwrap" else tmp_path
    runner = Runner(request.param, base)
    yield runner
    runner.close()
    if request.param == "bwrap":
        shutil.rmtree(base)


@pytest.fixture
def warm(run):
    """The host sandboxes only (their interpreters are pre-started by the worker itself)."""
    if run.kind == "guest":
        pytest.skip("host sandboxes only")
    return run


def test_a_job_environment_goes_where_pythonpath_would_put_it(run):
    env = run.base / "env"  # readable by a bwrap task's own uid
    (env / "tinypkg").mkdir(mode=0o755, parents=True)
    env.chmod(0o755)
    (env / "tinypkg" / "__init__.py").write_text("VALUE = 1\n")
    src = ("import os, subprocess, sys, tinypkg\n"
           "child = subprocess.run([sys.executable, '-c', 'import tinypkg'], capture_output=True).returncode\n"
           "print(sys.path[1] == os.environ['PYTHONPATH'] == os.path.dirname(os.path.dirname(tinypkg.__file__)),"
           " child)\n")
    status, out, err = run("main.py", src, env=env)
    assert (status, out, err) == (0, "True 0\n", "")


def test_runs_the_script_as_python_would(run):
    status, out, err = run("main.py", (
        "import os, sys\n"
        "print(__name__, __file__ == os.path.join(os.getcwd(), 'main.py'), sys.argv, "
        "sys.path[0] == os.getcwd(), __doc__, __spec__)\n"
        "print(sorted(k for k in globals() if not k.startswith('__')))\n"
        "print('to stderr', file=sys.stderr)\n"))
    assert status == 0, err
    assert out == "__main__ True ['main.py'] True None None\n['os', 'sys']\n"
    assert err == "to stderr\n"


def test_uncaught_exception_traceback_has_only_the_scripts_frames(run):
    status, _, err = run("main.py", "def inner():\n    raise ValueError('boom')\ninner()\n")
    assert status == 1
    path = run.folder / "main.py"
    assert err == ("Traceback (most recent call last):\n"
                   f'  File "{path}", line 3, in <module>\n    inner()\n'
                   f'  File "{path}", line 2, in inner\n'
                   "    raise ValueError('boom')\nValueError: boom\n")


@pytest.mark.parametrize("source, status, stderr", [
    ("import sys\nsys.exit(7)\n", 7, ""),
    ("raise SystemExit('bye')\n", 1, "bye\n"),
    ("x = (\n", 1, "SyntaxError"),
])
def test_exit_status_and_syntax_errors(run, source, status, stderr):
    got, _, err = run("main.py", source)
    assert got == status
    assert stderr in err and "<string>" not in err


def test_missing_script(run):
    status, _, err = run("nope.py")
    assert status == 2 and f"can't open file '{run.folder / 'nope.py'}'" in err


def test_pickles_classes_of_main_like_a_script(run):
    status, out, err = run("main.py", (
        "import pickle\nclass A:\n    pass\nprint(type(pickle.loads(pickle.dumps(A()))).__name__)\n"))
    assert status == 0 and out == "A\n", err


INTROSPECT = """import json, os, site, sys, threading
print(json.dumps({"modules": sorted(sys.modules), "path": sys.path, "argv": sys.argv,
                  "orig_argv": sys.orig_argv[1:], "environ": dict(os.environ), "file": __file__,
                  "cwd": os.getcwd(), "globals": sorted(globals()), "flags": list(sys.flags),
                  "user_site": site.getusersitepackages(), "threads": threading.active_count(),
                  "fds": sorted(os.listdir("/proc/self/fd")), "stdout": [sys.stdout.encoding,
                  sys.stdout.line_buffering], "argv0": sys.executable}))
"""


def _cold(runner, task_dir: Path, env: Path | None = None) -> dict:
    """The same script in the same folder started the plain way: `python3 main.py`."""
    if runner.kind == "process":
        environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(task_dir)}
        if env is not None:
            environ["PYTHONPATH"] = str(env)
        argv = [PYTHON, "main.py"]
    else:
        argv, environ = bwrap_argv(task_dir, ["python3", "main.py"], None, env), None
        if env is not None:
            argv[-2:-2] = ["--setenv", "PYTHONPATH", ENV_DIR]
        uid = task_dir.stat().st_uid  # the task's own uid, when the worker is root
        if uid != os.geteuid():
            argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--", *argv]
    out = subprocess.run(argv, cwd=task_dir, env=environ, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[0])


def test_the_warm_interpreter_is_what_a_cold_start_would_be(warm):
    env = warm.base / "env"  # a job's environment: its packages on sys.path after the script's folder
    env.mkdir(mode=0o755)
    (env / "jobpkg.py").write_text("VALUE = 'from the environment'\n")
    for use_env in (None, env):
        status, out, err = warm("main.py", INTROSPECT + "import jobpkg; print(jobpkg.VALUE)\n"
                                if use_env else INTROSPECT, env=use_env)
        assert status == 0, err
        got = json.loads(out.splitlines()[0])
        task_dir = next(p for p in warm.backend.task_root.iterdir() if p.name == f"t{warm.count}")
        assert got == _cold(warm, task_dir, use_env)
        assert got["fds"] == ["0", "1", "2", "3"]  # nothing of the worker's (3: the listing itself)
        if use_env:
            assert out.splitlines()[1] == "from the environment"


def test_a_task_sees_nothing_of_the_task_before(warm):
    status, _, err = warm("main.py", (
        "import json, sys, threading, time\n"
        "json.LEFT_BEHIND = sys.LEFT_BEHIND = 1\n"
        "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"))
    assert status == 0, err
    for _ in range(3):  # the pool's interpreters, those started before the first task and after
        status, out, err = warm("main.py", (
            "import json, sys, threading\n"
            "print(hasattr(json, 'LEFT_BEHIND'), hasattr(sys, 'LEFT_BEHIND'), threading.active_count())\n"))
        assert status == 0, err
        assert out == "False False 1\n"


def _waiting_interpreters() -> set[int]:
    """This process's pre-started launchers (`python3 -c LAUNCHER GO READY`), by pid."""
    out = set()
    for pid in process_tree(os.getpid())[1:]:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) > 2 and argv[1] == b"-c" and argv[2] == agent.LAUNCHER_SOURCE.encode():
            out.add(pid)
    return out


def _until(ok, what: str, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while not (value := ok()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return value


def _gone(pid: int) -> bool:
    try:  # a zombie is dead (its parent, gone too, leaves it to init to reap)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True


def test_waiting_interpreters_are_not_the_owner_s_load_and_none_outlives_the_backend(warm):
    size = warm.backend.pool.size
    waiting = _until(lambda: len(w := _waiting_interpreters()) >= size and w, "the pool's interpreters")
    # The suspend-when-busy figure leaves the worker's own tree out: its idle interpreters too.
    counted = {pid for pid, _ in HostLoad(own_pid=os.getpid())._scan()}
    assert waiting and not waiting & counted
    status, _, err = warm("main.py", "print('one task: its replacement starts meanwhile')\n")
    assert status == 0, err
    assert len([pid for pid in waiting if _gone(pid)]) == 1  # the task ran in one of them
    trees = {p for pid in _waiting_interpreters() | waiting for p in process_tree(pid)}
    trees |= set(process_tree(os.getpid())[1:])  # bwrap's and any replacement still starting
    warm.backend.close()  # what the worker does when it stops
    assert [pid for pid in trees if not _gone(pid)] == []
    assert not list(warm.backend.task_root.glob(".warm-*"))  # their folders too (bwrap)


def test_agent_command_carries_both_sources_and_starts_the_mount_first():
    argv = shlex.split(agent.agent_command())
    assert argv == ["exec", "python3", "-c", agent.AGENT_SOURCE, agent.LAUNCHER_SOURCE, "-"]
    cmd = agent.agent_command("mount -t cifs //a/b /mnt/runsurge -o 'x=1'")
    assert cmd.startswith("(mount -t cifs //a/b /mnt/runsurge -o 'x=1') >/dev/null "
                          "2>/run/runsurge/mount.err & exec ")
    assert cmd.endswith(" $!")  # the agent waits for the mount by its PID
