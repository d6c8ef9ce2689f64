"""`process`: the script as a plain subprocess in its task folder. NO ISOLATION: for development
and for measuring the control plane only; opt-in, and loud about it."""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

from runsurge_worker.monitor import Meter
from runsurge_worker.sandbox.base import (
    SAMPLE_INTERVAL_S,
    STDERR_NAME,
    STDOUT_NAME,
    Limits,
    RunResult,
    SandboxBackend,
    memory_failure,
)
from runsurge_worker.sandbox.pause import cont_tree, stop_tree

log = logging.getLogger("runsurge.sandbox.process")
# What the VM guest runs: the distribution's python3 (Debian's, with python3-numpy). Not this
# worker's own interpreter: a venv's .pth start-up hooks (editable installs) cost ~10 ms of CPU per
# task and would show user code the worker's own packages. That one only where there is no python3.
PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
WARNING = ("SANDBOX 'process' RUNS UNTRUSTED CODE DIRECTLY ON THIS MACHINE WITH NO ISOLATION. "
           "Use it only for development and benchmarks; contributors must use 'qemu' (or 'bwrap').")


class ProcessSandbox(SandboxBackend):
    name = "process"
    supports_environments = True

    def __init__(self, work_dir: Path, **_: object):
        self.task_root = work_dir / "tasks"

    def start(self) -> None:
        self.task_root.mkdir(parents=True, exist_ok=True)
        log.warning(WARNING)
        print(f"\n*** WARNING: {WARNING} ***\n", file=sys.stderr, flush=True)

    def run(self, task_dir: Path, script: str, limits: Limits, cancel: threading.Event,
            env: Path | None = None) -> RunResult:
        environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(task_dir)}
        if env is not None:  # the job's packages, ahead of the system's (after the script's folder)
            environ["PYTHONPATH"] = str(env)
        with open(task_dir / STDOUT_NAME, "wb") as out, open(task_dir / STDERR_NAME, "wb") as err:
            proc = subprocess.Popen([PYTHON, script], cwd=task_dir, stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL, start_new_session=True, env=environ)
        meter, failure = Meter(), None
        pidfd = os.pidfd_open(proc.pid)
        with self.pauses.run(stop_tree(proc.pid), cont_tree(proc.pid)) as pause:
            try:
                poller = select.poll()
                poller.register(pidfd, select.POLLIN)
                while True:
                    self._sample(proc.pid, meter)
                    if meter.rss_peak > limits.memory_bytes:
                        failure = memory_failure(limits.memory_bytes)
                    elif pause.active_s() > limits.timeout_s:
                        failure = f"timeout after {limits.timeout_s:g}s"
                    elif cancel.is_set():
                        failure = "cancelled"
                    if failure:
                        _kill_group(proc.pid)
                    # Sample densely at first so short scripts are metered too; returns at exit.
                    if poller.poll(min(SAMPLE_INTERVAL_S, 0.005 * 2 ** meter.samples) * 1000):
                        break
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
            finally:
                os.close(pidfd)
                _kill_group(proc.pid)  # leave no daemonised children behind
            wall = pause.active_s()
        # VmHWM restarts at exec; ru_maxrss would include the worker's own pages from before the exec.
        rss_peak = meter.rss_peak or usage.ru_maxrss * 1024
        return RunResult(exit_code=None if failure else proc.returncode, wall_s=wall,
                         cpu_s=usage.ru_utime + usage.ru_stime, mem_avg_bytes=meter.avg or rss_peak,
                         mem_peak_bytes=rss_peak, failure=failure, usage=meter.series)

    @staticmethod
    def _sample(pid: int, meter: Meter) -> None:
        try:
            meter.add(Path(f"/proc/{pid}/status").read_text(), Path(f"/proc/{pid}/stat").read_text())
        except (FileNotFoundError, ProcessLookupError):
            pass


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
