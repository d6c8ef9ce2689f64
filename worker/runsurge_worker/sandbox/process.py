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
from runsurge_worker.sandbox.warmpool import Warm, WarmPool, launcher_argv

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
        self.pool = WarmPool(self._spawn)

    def start(self) -> None:
        self.task_root.mkdir(parents=True, exist_ok=True)
        log.warning(WARNING)
        print(f"\n*** WARNING: {WARNING} ***\n", file=sys.stderr, flush=True)
        for _ in range(self.pool.size):
            self.pool.fill(None)

    def close(self) -> None:
        self.pool.close()

    @staticmethod
    def _environ(home: Path) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}

    def _spawn(self, key: None, go_r: int, ready_w: int) -> Warm:
        """An interpreter for any task, started (in its own session) before the task."""
        proc = subprocess.Popen(launcher_argv(PYTHON, go_r, ready_w), cwd=self.task_root,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, pass_fds=(go_r, ready_w),
                                start_new_session=True, env=self._environ(self.task_root))
        return Warm(proc, -1, -1, key)

    def run(self, task_dir: Path, script: str, limits: Limits, cancel: threading.Event,
            env: Path | None = None) -> RunResult:
        try:
            warm = self.pool.take(None)
        except (OSError, RuntimeError) as exc:
            return RunResult(None, 0.0, 0.0, 0, 0, failure=f"sandbox error: {exc}",
                             infrastructure_error=True)
        proc, before_s = warm.proc, warm.cpu_s()
        # the job's packages (env) go after the script's folder, ahead of the system's
        warm.go(script, STDOUT_NAME, STDERR_NAME, None if env is None else str(env), str(task_dir),
                self._environ(task_dir))
        meter, failure = Meter(cpu_before=before_s), None
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
                reported = _reported_peak(proc.pid)  # before the reaping, which removes it
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
            finally:
                os.close(pidfd)
                _kill_group(proc.pid)  # leave no daemonised children behind
            wall = pause.active_s()
        # Not ru_maxrss: it counts the worker's own pages from before the interpreter's exec.
        rss_peak = max(meter.rss_peak, reported)
        if failure is None and rss_peak > limits.memory_bytes:  # it exited between two samples
            failure = memory_failure(limits.memory_bytes)
        return RunResult(exit_code=None if failure else proc.returncode, wall_s=wall,
                         cpu_s=max(0.0, usage.ru_utime + usage.ru_stime - before_s),
                         mem_avg_bytes=meter.avg or rss_peak, mem_peak_bytes=rss_peak, failure=failure,
                         usage=meter.series)

    @staticmethod
    def _sample(pid: int, meter: Meter) -> None:
        try:
            meter.add(Path(f"/proc/{pid}/status").read_text(), Path(f"/proc/{pid}/stat").read_text())
        except (FileNotFoundError, ProcessLookupError):
            pass


def _reported_peak(zombie: int) -> int:
    """The peak (bytes) the task's interpreter left in its name as its script ended
    (guestlauncher._report_peak); 0 when it could not (killed, os._exit)."""
    try:
        name = Path(f"/proc/{zombie}/comm").read_bytes().strip()
    except OSError:
        return 0
    digits = name[3:]
    return int(digits) * 1024 if name.startswith(b"hwm") and digits.isdigit() else 0


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
