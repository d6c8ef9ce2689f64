"""The guest's pre-started task interpreter (guestlauncher.py), run on the host against a folder.

In the guest it waits for the task before the task exists; whatever it runs must behave as
`python3 SCRIPT` started in the task folder would.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

from runsurge_worker.sandbox import agent


def _run(folder, script: str, source: str | None = None, env: str = "") -> tuple[int, str, str]:
    if source is not None:
        (folder / script).write_text(source)
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


def test_a_job_environment_goes_where_pythonpath_would_put_it(tmp_path):
    env = tmp_path / "env"
    (env / "tinypkg").mkdir(parents=True)
    (env / "tinypkg" / "__init__.py").write_text("VALUE = 1\n")
    task = tmp_path / "task"
    task.mkdir()
    src = ("import os, subprocess, sys, tinypkg\n"
           "child = subprocess.run([sys.executable, '-c', 'import tinypkg'], capture_output=True).returncode\n"
           "print(sys.path[1] == os.environ['PYTHONPATH'] == os.path.dirname(os.path.dirname(tinypkg.__file__)),"
           " child)\n")
    status, out, err = _run(task, "main.py", src, env=str(env))
    assert (status, out, err) == (0, "True 0\n", "")


def test_runs_the_script_as_python_would(tmp_path):
    status, out, err = _run(tmp_path, "main.py", (
        "import os, sys\n"
        "print(__name__, __file__ == os.path.join(os.getcwd(), 'main.py'), sys.argv, "
        "sys.path[0] == os.getcwd(), __doc__, __spec__)\n"
        "print(sorted(k for k in globals() if not k.startswith('__')))\n"
        "print('to stderr', file=sys.stderr)\n"))
    assert status == 0, err
    assert out == "__main__ True ['main.py'] True None None\n['os', 'sys']\n"
    assert err == "to stderr\n"


def test_uncaught_exception_traceback_has_only_the_scripts_frames(tmp_path):
    status, _, err = _run(tmp_path, "main.py", "def inner():\n    raise ValueError('boom')\ninner()\n")
    assert status == 1
    path = tmp_path / "main.py"
    assert err == ("Traceback (most recent call last):\n"
                   f'  File "{path}", line 3, in <module>\n    inner()\n'
                   f'  File "{path}", line 2, in inner\n'
                   "    raise ValueError('boom')\nValueError: boom\n")


@pytest.mark.parametrize("source, status, stderr", [
    ("import sys\nsys.exit(7)\n", 7, ""),
    ("raise SystemExit('bye')\n", 1, "bye\n"),
    ("x = (\n", 1, "SyntaxError"),
])
def test_exit_status_and_syntax_errors(tmp_path, source, status, stderr):
    got, _, err = _run(tmp_path, "main.py", source)
    assert got == status
    assert stderr in err and "<string>" not in err


def test_missing_script(tmp_path):
    status, _, err = _run(tmp_path, "nope.py")
    assert status == 2 and f"can't open file '{tmp_path / 'nope.py'}'" in err


def test_pickles_classes_of_main_like_a_script(tmp_path):
    status, out, err = _run(tmp_path, "main.py", (
        "import pickle\nclass A:\n    pass\nprint(type(pickle.loads(pickle.dumps(A()))).__name__)\n"))
    assert status == 0 and out == "A\n", err


def test_agent_command_carries_both_sources_and_starts_the_mount_first():
    argv = shlex.split(agent.agent_command())
    assert argv == ["exec", "python3", "-c", agent.AGENT_SOURCE, agent.LAUNCHER_SOURCE, "-"]
    cmd = agent.agent_command("mount -t cifs //a/b /mnt/runsurge -o 'x=1'")
    assert cmd.startswith("(mount -t cifs //a/b /mnt/runsurge -o 'x=1') >/dev/null "
                          "2>/run/runsurge/mount.err & exec ")
    assert cmd.endswith(" $!")  # the agent waits for the mount by its PID
