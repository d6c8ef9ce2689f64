"""The `bwrap` backend: a light sandbox (bubblewrap) for hosts without virtualization.

Not the default. It shares the host's kernel, so a kernel bug is a way out, which a VM does not
offer; in exchange a task starts in ~20 ms. What the task gets: every namespace unshared (no
network at all, own PIDs, IPC, UTS), a read-only view of /usr only (not the host's /etc, /home,
/var or the worker's state), a private /tmp, its own folder as the only writable place, no
capabilities, a seccomp deny list, and rlimits: address space (memory), processes, file size
(output cap), core dumps off. When the worker runs as root, each run also gets a uid of its own,
so the process limit counts that task's processes only.
"""

from __future__ import annotations

import itertools
import os
import resource
import signal
import subprocess
import threading
import time
from pathlib import Path

from ..monitor import Meter
from .base import SAMPLE_INTERVAL_S, STDERR_NAME, STDOUT_NAME, Limits, RunResult, SandboxBackend, memory_failure
from .guestrun import dir_bytes
from .pause import RunPause, cont_tree, stop_tree
from .seccomp import deny_filter

SANDBOX_DIR = "/work"
MAX_PROCESSES = 256
TMP_BYTES = 64 << 20
ENV_DIR = "/opt/runsurge-env"  # where a job's environment appears inside the sandbox
UID_BASE = 2_100_000  # per-run uids (root workers): far from any real account
# Python, its libraries and numpy reserve address space they never touch: this much comes on top
# of the task's memory limit in RLIMIT_AS; the sampled RSS is held to the limit itself.
ADDRESS_SPACE_SLACK = 128 << 20


def bwrap_argv(task_dir: Path, script: str, cpus: int, seccomp_fd: int | None, env: Path | None = None) -> list[str]:
    argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / top
        if path.is_symlink():  # merged /usr
            argv += ["--symlink", os.readlink(path), f"/{top}"]
        elif path.is_dir():
            argv += ["--ro-bind", str(path), f"/{top}"]
    for etc in ("ld.so.cache", "alternatives", "localtime", "python3", f"python3.{_minor()}"):
        argv += ["--ro-bind-try", f"/etc/{etc}", f"/etc/{etc}"]
    argv += ["--proc", "/proc", "--dev", "/dev", "--size", str(TMP_BYTES), "--tmpfs", "/tmp",
             "--bind", str(task_dir), SANDBOX_DIR, "--chdir", SANDBOX_DIR,
             "--hostname", "runsurge", "--clearenv",
             "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", SANDBOX_DIR,
             "--setenv", "LANG", "C.UTF-8", "--setenv", "OPENBLAS_NUM_THREADS", str(cpus),
             "--setenv", "OMP_NUM_THREADS", str(cpus)]
    if env is not None:  # the job's packages: read-only, first on sys.path after the script's folder
        argv += ["--ro-bind", str(env), ENV_DIR, "--setenv", "PYTHONPATH", ENV_DIR]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    return argv + ["python3", script]


def _minor() -> str:
    out = subprocess.run(["/usr/bin/python3", "-c", "import sys; print(sys.version_info[1])"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "11"


def _descendant_python(pid: int) -> int | None:
    """The python3 process under bwrap (the tree is bwrap -> bwrap (pid 1 inside) -> python3)."""
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            if Path(f"/proc/{p}/comm").read_text().strip().startswith("python3"):
                return p
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(c) for c in children)
    return None


class BwrapSandbox(SandboxBackend):
    name = "bwrap"
    supports_environments = True

    def __init__(self, work_dir: Path, **_ignored):
        self.work_dir = Path(work_dir)
        self._uids = itertools.cycle(range(UID_BASE, UID_BASE + 10_000))
        self._uid_lock = threading.Lock()
        self._seccomp = deny_filter()

    @property
    def task_root(self) -> Path:
        return self.work_dir / "tasks"

    def start(self) -> None:
        self.task_root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # The per-run uid must reach its folder by path (bwrap binds it by path): the task
            # area is traverse-only for others (0711); each task folder is 0700, its uid's own.
            for path in (self.work_dir, self.task_root):
                path.chmod(0o711)
            for parent in self.work_dir.resolve().parents:
                if not parent.stat().st_mode & 0o001:
                    raise RuntimeError(f"bwrap backend: {parent} must be traversable by other "
                                       "users (o+x) for the per-task uids to reach their folder")

    def _next_uid(self) -> int | None:
        if os.geteuid() != 0:
            return None
        with self._uid_lock:
            return next(self._uids)

    def run(self, task_dir: Path, script: str, limits: Limits,
            cancel: threading.Event, env: Path | None = None) -> RunResult:
        task_dir = Path(task_dir)
        uid = self._next_uid()
        if uid is not None:  # the task's own uid must be able to write its folder
            for path in [task_dir, *task_dir.rglob("*")]:
                os.lchown(path, uid, uid)
            task_dir.chmod(0o700)
        seccomp_fd = os.memfd_create("runsurge-seccomp", 0)
        os.write(seccomp_fd, self._seccomp)
        os.lseek(seccomp_fd, 0, os.SEEK_SET)
        argv = bwrap_argv(task_dir, script, limits.cpus, seccomp_fd, env)
        if uid is not None:
            argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                    "--inh-caps=-all", "--"] + argv

        def limit():  # runs in the child before exec
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes + ADDRESS_SPACE_SLACK,) * 2)
            resource.setrlimit(resource.RLIMIT_NPROC, (MAX_PROCESSES,) * 2)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.output_bytes,) * 2)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        with open(task_dir / STDOUT_NAME, "wb") as out, open(task_dir / STDERR_NAME, "wb") as err:
            if uid is not None:
                os.fchown(out.fileno(), uid, uid)
                os.fchown(err.fileno(), uid, uid)
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                        pass_fds=(seccomp_fd,), preexec_fn=limit,
                                        start_new_session=True)
            except OSError as exc:
                return RunResult(None, 0.0, 0.0, 0, 0, failure=f"sandbox error: {exc}",
                                 infrastructure_error=True)
            finally:
                os.close(seccomp_fd)
        with self.pauses.run(stop_tree(proc.pid), cont_tree(proc.pid)) as pause:
            return self._watch(proc, task_dir, limits, cancel, pause)

    @staticmethod
    def _limit_hit(meter: Meter, task_dir: Path, limits: Limits, elapsed: float) -> str | None:
        if elapsed > limits.timeout_s:
            return f"timeout after {limits.timeout_s:g}s"
        if meter.rss_peak > limits.memory_bytes:  # RLIMIT_AS alone would allow the slack
            return memory_failure(limits.memory_bytes)
        if dir_bytes(task_dir) > limits.output_bytes:
            return f"output larger than {limits.output_bytes} bytes"
        return None

    def _watch(self, proc: subprocess.Popen, task_dir: Path, limits: Limits,
               cancel: threading.Event, pause: RunPause) -> RunResult:
        meter = Meter()
        failure = None
        killed = False
        target = None
        next_sample = 0.0
        while True:
            # wait4, not poll(): the rusage of bwrap includes every process it waited for
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.monotonic()
            if failure is None and now >= next_sample:
                next_sample = now + SAMPLE_INTERVAL_S
                target = target or _descendant_python(proc.pid)
                if target:
                    try:
                        meter.add(Path(f"/proc/{target}/status").read_text(),
                                  Path(f"/proc/{target}/stat").read_text())
                    except OSError:
                        pass
                failure = self._limit_hit(meter, task_dir, limits, pause.active_s())
            if failure is None and cancel.is_set():
                failure = "cancelled"
            if failure is not None and not killed:
                killed = True
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # its pid namespace dies with it
                except ProcessLookupError:
                    pass
            cancel.wait(0.01)  # exit noticed within 10 ms, samples every 0.5 s
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        wall = pause.active_s()
        if failure is None and _ends_with_memory_error(task_dir / STDERR_NAME):
            failure = memory_failure(limits.memory_bytes)
        return RunResult(
            exit_code=None if failure else (code if code >= 0 else 128 - code),
            wall_s=wall, cpu_s=max(meter.cpu_s, usage.ru_utime + usage.ru_stime),
            mem_avg_bytes=meter.avg, mem_peak_bytes=meter.rss_peak, failure=failure, usage=meter.series)


def _ends_with_memory_error(stderr: Path) -> bool:
    """RLIMIT_AS makes allocations fail: Python then dies with a MemoryError traceback."""
    try:
        with open(stderr, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return False
    return bool(lines) and lines[-1].startswith("MemoryError")
