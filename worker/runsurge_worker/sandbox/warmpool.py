"""Warm interpreters for the host sandboxes (`process`, `bwrap`), as the VM pool keeps one per VM.

Each entry is a `python3 -c <guestlauncher.py>` started fresh by the worker (close_fds, its own
session) before any task exists, blocked on its go pipe once it says "r". A task takes one, and
the pool starts a replacement in the background, so the interpreter's start (~9 ms of CPU, 13 ms
of wall here) is off the task's path. Nothing is ever reused: every task gets a process no earlier
task touched. (A fork server of an initialised interpreter would cost ~0.6 ms of CPU per task
instead, but its children share the server's hash seed and memory image, and under bwrap they
could not get a namespace, uid and folder of their own.)

Entries are keyed by what must be fixed at the interpreter's start: under bwrap, the job's
environment tree bound into the sandbox (the `process` sandbox has one key, None: the launcher puts
any tree on sys.path at the task's start). A key nobody has asked for lately gives its place to the
one asked for: the tasks of one job share one environment.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path

from .pause import process_tree, signal_tree

log = logging.getLogger(__name__)
LAUNCHER_SOURCE = (Path(__file__).resolve().parent / "guestlauncher.py").read_text()
POOL_SIZE = 2  # warm interpreters per backend: two tasks may start back to back without a wait
KILL_WAIT_S = 5.0  # at most this long for a discarded sandbox to be gone (a worker's stop waits for it)
_STOP = object()  # the filler thread's last request


def launcher_argv(python: str, go_fd: int, ready_fd: int) -> list[str]:
    return [python, "-c", LAUNCHER_SOURCE, str(go_fd), str(ready_fd)]


@dataclass
class Warm:
    """One waiting interpreter. `proc` is what the worker waits for and kills (its session
    leader); `pid` is the interpreter itself (the same, or python3 under bwrap)."""

    proc: subprocess.Popen
    go_w: int
    ready_r: int
    key: Hashable
    extra: dict = field(default_factory=dict)
    pid: int = 0

    def wait_ready(self, find_pid: Callable[[int], int | None]) -> bool:
        """Block until the interpreter is up and waiting; False if it died first."""
        if self.ready_r >= 0:
            try:
                ok = os.read(self.ready_r, 1) == b"r"
            finally:
                os.close(self.ready_r)
                self.ready_r = -1
            if not ok:
                return False
            self.pid = find_pid(self.proc.pid) or 0
        return bool(self.pid) and self.proc.poll() is None

    def cpu_s(self) -> float:
        """CPU the interpreter spent before its task: not the task's to pay for. From schedstat (ns,
        exact for a process blocked as this one is), not stat: its 10 ms ticks are the whole start."""
        try:
            return int(Path(f"/proc/{self.pid}/schedstat").read_text().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            return 0.0

    def go(self, script: str, stdout: str, stderr: str, env: str | None, folder: str,
           environ: dict[str, str], rlimits: tuple[int, int] | None = None) -> None:
        """Let the interpreter run `script` in `folder` with the environment tree `env` (as the
        interpreter sees its path) where PYTHONPATH would put it; `rlimits` (address space, file
        size) it sets on itself first."""
        limits = ",".join(map(str, rlimits)) if rlimits else ""
        fields = [script, stdout, stderr, env or "", folder, limits,
                  *(f"{k}={v}" for k, v in environ.items())]
        try:
            os.write(self.go_w, "\0".join(fields).encode())
        finally:
            os.close(self.go_w)
            self.go_w = -1

    def discard(self) -> None:
        for fd in (self.go_w, self.ready_r):
            if fd >= 0:
                os.close(fd)
        self.go_w = self.ready_r = -1
        # The whole tree (bwrap's inner processes have sessions of their own), and until it is
        # dead: processes of a pid namespace take a while to go once killed.
        pidfds = []
        for pid in process_tree(self.proc.pid):
            try:
                pidfds.append(os.pidfd_open(pid))
            except OSError:
                pass
        signal_tree(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        deadline = time.monotonic() + KILL_WAIT_S
        for fd in pidfds:
            select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            os.close(fd)


class WarmPool:
    """`spawn(key, go_r, ready_w)` starts one interpreter with those fds passed and returns its
    Warm (without the fds, which the pool owns); `find_pid(leader)` finds the interpreter in the
    leader's tree once it is up; `forget(warm)` releases what spawn made besides the process."""

    def __init__(self, spawn: Callable[[Hashable, int, int], Warm],
                 find_pid: Callable[[int], int | None] = lambda pid: pid,
                 forget: Callable[[Warm], None] = lambda warm: None, size: int = POOL_SIZE):
        self._spawn, self._find_pid, self._forget, self.size = spawn, find_pid, forget, size
        self._lock = threading.Condition()
        self._ready: list[Warm] = []  # oldest first
        self._filling = 0  # interpreters asked for and not yet ready (or dropped)
        self._closed = False
        # One thread starts them all and lives as long as the pool: bwrap's --die-with-parent
        # (PR_SET_PDEATHSIG) kills a sandbox as soon as the *thread* that started it ends.
        self._asked: queue.SimpleQueue = queue.SimpleQueue()
        self._filler: threading.Thread | None = None

    def _start(self, key: Hashable) -> Warm:
        go_r, go_w = os.pipe()
        ready_r, ready_w = os.pipe()
        try:
            warm = self._spawn(key, go_r, ready_w)
        except BaseException:
            for fd in (go_w, ready_r):
                os.close(fd)
            raise
        finally:
            os.close(go_r)
            os.close(ready_w)
        warm.go_w, warm.ready_r = go_w, ready_r
        try:
            os.write(go_w, b"h")  # no share to warm up on: say "r" and wait for the task
        except BrokenPipeError:
            pass  # it is gone already: wait_ready says so
        return warm

    def fill(self, key: Hashable) -> None:
        """Start one interpreter for `key` in the background (the task path never waits for it)."""
        with self._lock:
            if self._closed or self._filling + len(self._ready) >= 2 * self.size:
                return
            self._filling += 1
            self._asked.put(key)
            if self._filler is None:
                self._filler = threading.Thread(target=self._fill_loop, daemon=True, name="warm-fill")
                self._filler.start()

    def _fill_loop(self) -> None:
        while (key := self._asked.get()) is not _STOP:
            self._fill(key)

    def _fill(self, key: Hashable) -> None:
        warm = None
        try:
            if not self._closed:  # (asked for before close(): nothing to start any more)
                warm = self._start(key)
            if warm is not None and not warm.wait_ready(self._find_pid):
                raise RuntimeError(f"warm interpreter exited with {warm.proc.wait()}")
        except Exception as exc:  # noqa: BLE001 - the next task starts its own instead
            log.warning("could not start a warm interpreter: %s", exc)
            if warm is not None:
                self._drop(warm)
            warm = None
        unwanted = []
        with self._lock:
            if warm is not None and not self._closed:
                self._ready.append(warm)
                while len(self._ready) > self.size:  # the oldest other key gives way
                    old = next((w for w in self._ready if w.key != key), self._ready[0])
                    self._ready.remove(old)
                    unwanted.append(old)
            elif warm is not None:
                unwanted.append(warm)
        try:
            for old in unwanted:
                self._drop(old)
        finally:  # only now: close() waits for this, so nothing is left running after it
            with self._lock:
                self._filling -= 1
                self._lock.notify_all()

    def take(self, key: Hashable) -> Warm:
        """A waiting interpreter for `key` (started now if none is warm), replaced in the background."""
        with self._lock:
            warm = next((w for w in self._ready if w.key == key), None)
            if warm is not None:
                self._ready.remove(warm)
        self.fill(key)
        if warm is not None and warm.wait_ready(self._find_pid):
            return warm
        if warm is not None:
            self._drop(warm)
        warm = self._start(key)  # cold: the same interpreter, started on the task's path
        if not warm.wait_ready(self._find_pid):
            code = warm.proc.wait()
            self._drop(warm)
            raise RuntimeError(f"the task's interpreter exited with {code} before its task")
        return warm

    def _drop(self, warm: Warm) -> None:
        warm.discard()
        self._forget(warm)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            while self._filling:
                self._lock.wait(1)
            ready, self._ready = self._ready, []
        for warm in ready:
            self._drop(warm)
        self._asked.put(_STOP)  # not before: the filler's end would kill its sandboxes under us
