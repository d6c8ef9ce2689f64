"""Suspending running tasks while the contributor's machine is theirs again (governor.py decides when).

Every backend registers each run on its `PauseBoard` with how to stop and continue it (SIGSTOP /
SIGCONT of its process tree; QMP `stop` / `cont` of its VM). A run's `RunPause` counts the time it
spent suspended, so its wall time, its timeout and its bill leave the suspension out. A stopped VM
does not answer its guest agent: `awake()` holds a run running for one exchange with it, and waits
while it is suspended, so no call times out on a guest that is merely paused.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


class RunPause:
    def __init__(self, stop: Callable[[], None], cont: Callable[[], None]):
        self._stop, self._cont = stop, cont
        self._cond = threading.Condition()
        self.paused = False
        self._since = 0.0
        self._total = 0.0
        self.started = time.monotonic()

    def pause(self) -> None:
        with self._cond:  # waits for an exchange in flight (awake) to end
            if self.paused:
                return
            try:
                self._stop()
            except Exception as e:  # noqa: BLE001 - the run may just have ended
                log.warning("could not suspend a run: %s", e)
                return
            self.paused, self._since = True, time.monotonic()

    def resume(self) -> None:
        with self._cond:
            if not self.paused:
                return
            try:
                self._cont()
            except Exception as e:  # noqa: BLE001
                log.warning("could not resume a run: %s", e)
            self.paused = False
            self._total += time.monotonic() - self._since
            self._cond.notify_all()

    def suspended_s(self) -> float:
        with self._cond:
            return self._total + (time.monotonic() - self._since if self.paused else 0.0)

    def active_s(self) -> float:
        """Seconds the run has been running, suspensions left out."""
        return time.monotonic() - self.started - self.suspended_s()

    @contextmanager
    def awake(self, cancel: threading.Event) -> Iterator[bool]:
        """Keep the run running for one exchange with it; yields False if cancelled while suspended."""
        with self._cond:
            while self.paused and not cancel.is_set():
                self._cond.wait(0.2)
            yield not self.paused


class PauseBoard:
    """The runs of one backend, suspended and resumed together."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: set[RunPause] = set()
        self.suspended = False

    @contextmanager
    def run(self, stop: Callable[[], None], cont: Callable[[], None]) -> Iterator[RunPause]:
        pause = RunPause(stop, cont)
        with self._lock:
            self._runs.add(pause)
            suspended = self.suspended
        if suspended:  # started just as the machine became busy
            pause.pause()
        try:
            yield pause
        finally:
            with self._lock:
                self._runs.discard(pause)

    def _each(self, suspended: bool) -> None:
        with self._lock:
            self.suspended = suspended
            runs = list(self._runs)
        for pause in runs:  # not under the lock: a pause waits for its run's exchange in flight
            pause.pause() if suspended else pause.resume()

    def suspend(self) -> None:
        self._each(True)

    def resume(self) -> None:
        self._each(False)

    def running_count(self) -> int:
        with self._lock:
            return len(self._runs)

    def paused_count(self) -> int:
        with self._lock:
            return sum(p.paused for p in self._runs)


def process_tree(pid: int) -> list[int]:
    """`pid` and every descendant (bwrap's children may sit in sessions of their own)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                todo.extend(int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split())
        except OSError:
            continue
    return out


def signal_tree(pid: int, sig: int) -> None:
    """Send `sig` to the whole tree; passes repeat until no new process shows up (a child forked
    before its parent stopped is caught by the next pass)."""
    seen: set[int] = set()
    while True:
        todo = [p for p in process_tree(pid) if p not in seen]
        if not todo:
            return
        for p in todo:
            seen.add(p)
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass


def stop_tree(pid: int) -> Callable[[], None]:
    return lambda: signal_tree(pid, signal.SIGSTOP)


def cont_tree(pid: int) -> Callable[[], None]:
    return lambda: signal_tree(pid, signal.SIGCONT)
