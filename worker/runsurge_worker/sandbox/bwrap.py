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
import shutil
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
from .warmpool import Warm, WarmPool, launcher_argv

SANDBOX_DIR = "/work"
MAX_PROCESSES = 256
TMP_BYTES = 64 << 20
ENV_DIR = "/opt/runsurge-env"  # where a job's environment appears inside the sandbox
UID_BASE = 2_100_000  # per-run uids (root workers): far from any real account
# Python, its libraries and numpy reserve address space they never touch: this much comes on top
# of the task's memory limit in RLIMIT_AS; the sampled RSS is held to the limit itself.
ADDRESS_SPACE_SLACK = 128 << 20


def bwrap_argv(task_dir: Path, command: list[str], seccomp_fd: int | None, env: Path | None = None) -> list[str]:
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
             "--hostname", "runsurge", "--clearenv"]
    for key, value in task_environ(1).items():
        argv += ["--setenv", key, value]
    if env is not None:  # the job's packages, read-only (the launcher puts them on sys.path)
        argv += ["--ro-bind", str(env), ENV_DIR]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    return argv + command


def task_environ(cpus: int) -> dict[str, str]:
    """The whole environment of the task's interpreter inside the sandbox (PWD: bwrap's --chdir
    sets it; PYTHONPATH, for a job's environment, the launcher)."""
    return {"PATH": "/usr/bin:/bin", "HOME": SANDBOX_DIR, "LANG": "C.UTF-8",
            "OPENBLAS_NUM_THREADS": str(cpus), "OMP_NUM_THREADS": str(cpus), "PWD": SANDBOX_DIR}


def _minor() -> str:
    out = subprocess.run(["/usr/bin/python3", "-c", "import sys; print(sys.version_info[1])"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "11"


def _env_key(env: Path | None) -> tuple[str, int] | None:
    """A warm sandbox has its environment bound by inode: a rebuilt environment is another key."""
    if env is None:
        return None
    try:
        return str(env), os.stat(env).st_ino
    except OSError:
        return str(env), 0


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
        self._slots = itertools.count()
        self.pool = WarmPool(self._spawn, _descendant_python, self._forget)

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
        for stale in self.task_root.glob(".warm-*"):  # a killed worker's
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink()
        for _ in range(self.pool.size):
            self.pool.fill(None)

    def close(self) -> None:
        self.pool.close()

    def _next_uid(self) -> int | None:
        if os.geteuid() != 0:
            return None
        with self._uid_lock:
            return next(self._uids)

    def _spawn(self, key: tuple[str, int] | None, go_r: int, ready_w: int) -> Warm:
        """A sandbox with its interpreter waiting, for a task of environment `key`: its own uid,
        namespaces and (empty) folder, which the task's folder takes the place of when it starts."""
        env = None if key is None else Path(key[0])
        uid = self._next_uid()
        slot = self.task_root / f".warm-{next(self._slots)}"
        slot.mkdir(mode=0o700)
        err_path = slot.with_suffix(".err")  # bwrap's own complaints, if it cannot start
        seccomp_fd = os.memfd_create("runsurge-seccomp", 0)
        try:
            if uid is not None:  # the task's own uid must be able to write its folder
                os.chown(slot, uid, uid)
            os.write(seccomp_fd, self._seccomp)
            os.lseek(seccomp_fd, 0, os.SEEK_SET)
            argv = bwrap_argv(slot, launcher_argv("python3", go_r, ready_w), seccomp_fd, env)
            if uid is not None:
                argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                        "--inh-caps=-all", "--"] + argv
            # The process limits by prlimit(1), not a preexec_fn: Python code between fork and exec in
            # this many-threaded process (gRPC, task threads) is what the subprocess docs warn may
            # deadlock the child, and Popen waits for its exec forever. The task's own limits come at
            # its start.
            argv = ["prlimit", f"--nproc={MAX_PROCESSES}", "--core=0", "--"] + argv
            with open(err_path, "wb") as err:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=err, pass_fds=(seccomp_fd, go_r, ready_w),
                                        start_new_session=True)
        except BaseException:
            shutil.rmtree(slot, ignore_errors=True)
            err_path.unlink(missing_ok=True)
            raise
        finally:
            os.close(seccomp_fd)
        return Warm(proc, -1, -1, key, extra={"slot": slot, "err": err_path, "uid": uid})

    @staticmethod
    def _forget(warm: Warm) -> None:
        shutil.rmtree(warm.extra["slot"], ignore_errors=True)
        warm.extra["err"].unlink(missing_ok=True)

    def run(self, task_dir: Path, script: str, limits: Limits,
            cancel: threading.Event, env: Path | None = None) -> RunResult:
        task_dir = Path(task_dir)
        try:
            warm = self.pool.take(_env_key(env))
        except (OSError, RuntimeError) as exc:
            return RunResult(None, 0.0, 0.0, 0, 0, failure=f"sandbox error: {exc}",
                             infrastructure_error=True)
        try:
            self._move_in(task_dir, warm)
            before_s = warm.cpu_s()
            # The task's own rlimits: its interpreter sets them on itself; its children inherit them.
            warm.go(script, STDOUT_NAME, STDERR_NAME, None if env is None else ENV_DIR, SANDBOX_DIR,
                    task_environ(limits.cpus),
                    (limits.memory_bytes + ADDRESS_SPACE_SLACK, limits.output_bytes))
        except OSError as exc:
            warm.discard()
            self._forget(warm)
            return RunResult(None, 0.0, 0.0, 0, 0, failure=f"sandbox error: {exc}",
                             infrastructure_error=True)
        with self.pauses.run(stop_tree(warm.proc.pid), cont_tree(warm.proc.pid)) as pause:
            return self._watch(warm, task_dir, limits, cancel, pause, before_s)

    @staticmethod
    def _move_in(task_dir: Path, warm: Warm) -> None:
        """The task's files into the sandbox's folder (bound at /work), which then takes the task
        folder's name: the same inode the sandbox sees, under the path the worker expects."""
        slot, uid = warm.extra["slot"], warm.extra["uid"]
        for entry in list(task_dir.iterdir()):
            if uid is not None:
                for path in [entry, *(entry.rglob("*") if entry.is_dir() else ())]:
                    os.lchown(path, uid, uid)
            os.rename(entry, slot / entry.name)
        os.rename(slot, task_dir)  # over the now empty task folder
        warm.extra["err"].unlink(missing_ok=True)

    @staticmethod
    def _limit_hit(meter: Meter, task_dir: Path, limits: Limits, elapsed: float) -> str | None:
        if elapsed > limits.timeout_s:
            return f"timeout after {limits.timeout_s:g}s"
        if meter.rss_peak > limits.memory_bytes:  # RLIMIT_AS alone would allow the slack
            return memory_failure(limits.memory_bytes)
        if dir_bytes(task_dir) > limits.output_bytes:
            return f"output larger than {limits.output_bytes} bytes"
        return None

    def _watch(self, warm: Warm, task_dir: Path, limits: Limits, cancel: threading.Event,
               pause: RunPause, before_s: float) -> RunResult:
        proc, target = warm.proc, warm.pid
        meter = Meter(cpu_before=before_s)
        failure = None
        killed = False
        next_sample = 0.0
        while True:
            # wait4, not poll(): the rusage of bwrap includes every process it waited for
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.monotonic()
            if failure is None and now >= next_sample:
                next_sample = now + SAMPLE_INTERVAL_S
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
            wall_s=wall, cpu_s=max(meter.cpu_s, usage.ru_utime + usage.ru_stime - before_s, 0.0),
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
