"""The contributor's side: the machine stays theirs. Every `tick_s` the governor looks at the host
(hostload.py) and the schedule (schedule.py) and decides the worker's state:

    taking work  →  suspended ("host busy: ...", "on battery", "outside schedule ..."), or stopping

Busy means other processes used at least `busy_cpu_percent` of the host for `suspend_after_s`; it
ends once they stayed below it for `resume_after_idle_s`. While suspended no task starts
(TaskRunner.hold), running tasks are stopped where they are (SandboxBackend.suspend; outside the
schedule only if `outside_hours = "suspend"`, else they finish), the heartbeat says why at once so
the master places nothing here and moves the queued tasks, and a task stopped longer than
`max_suspended_s` is given back to the master (released: run again elsewhere, nobody's fault,
not billed). The state is written to `status.json` in the worker's home for `runsurge-worker status`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from runsurge_worker.config import WorkerConfig
from runsurge_worker.hostload import HostLoad, on_battery, parse_users
from runsurge_worker.sandbox.base import SandboxBackend
from runsurge_worker.schedule import Schedule
from runsurge_worker.tasks import TaskRunner
from runsurge_worker.usersession import active_session

log = logging.getLogger("runsurge.worker.governor")
STATUS_FILE = "status.json"


class Governor:
    def __init__(self, cfg: WorkerConfig, runner: TaskRunner, sandbox: SandboxBackend,
                 changed: Callable[[], None], caps: dict | None = None):
        self.cfg, self.runner, self.sandbox, self.changed = cfg, runner, sandbox, changed
        self.schedule = Schedule.parse(cfg.hours, cfg.days)
        self.load = HostLoad(users=parse_users(cfg.busy_users))
        self.caps = caps or {}
        self.reason = ""  # why no new work: "" while taking work
        self.paused = False  # running tasks are stopped
        self.cpu_other = 0.0
        self._busy = False
        self._over_since: float | None = None  # other CPU above the threshold since
        self._under_since: float | None = None
        self._paused_since: float | None = None
        self._released = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.worker_id = ""

    def start(self) -> None:
        self.load.sample()  # the baseline
        self._thread = threading.Thread(target=self._loop, name="governor", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.cfg.governor_tick_s):
            try:
                self.tick()
            except Exception:  # the governor must keep the machine the owner's
                log.exception("governor tick failed")

    def _host_busy(self, now: float) -> bool:
        """Hysteresis: busy after `suspend_after_s` above the threshold, idle after `resume_after_idle_s`
        below it."""
        threshold = self.cfg.busy_cpu_percent / 100
        self.cpu_other = self.load.sample()
        if threshold <= 0:
            return False
        if self.cpu_other >= threshold:
            self._under_since = None
            self._over_since = self._over_since or now
            if now - self._over_since >= self.cfg.suspend_after_s:
                self._busy = True
        else:
            self._over_since = None
            self._under_since = self._under_since or now
            if now - self._under_since >= self.cfg.resume_after_idle_s:
                self._busy = False
        return self._busy

    def decide(self, now: float, when: datetime) -> tuple[str, bool]:
        """(why no new work, whether running tasks stop) for this moment."""
        if self._stop.is_set():
            return "stopping", False
        if self._host_busy(now):
            return f"host busy: {self.cpu_other:.0%} CPU used by other processes", True
        if self.cfg.suspend_when_user_active and (
                s := active_session(self.cfg.resume_after_idle_s, remote=self.cfg.suspend_when_remote_user_active)):
            return f"user active on {s.where()}", True
        if self.cfg.suspend_on_battery and on_battery():
            return "on battery", True
        if not self.schedule.allows(when):
            return f"outside schedule ({self.schedule.text})", self.cfg.outside_hours == "suspend"
        return "", False

    def tick(self) -> None:
        now = time.monotonic()
        reason, pause = self.decide(now, datetime.now())
        with self._lock:
            changed = reason != self.reason
            if changed:
                log.info("worker state: %s", f"suspended ({reason})" if reason else "taking work")
                self.reason = reason
                self.runner.hold(reason)
            if pause != self.paused:
                self.paused = pause
                self.sandbox.suspend() if pause else self.sandbox.resume()
                self._paused_since, self._released = (now if pause else None), False
            too_long = (self.paused and self.cfg.max_suspended_s > 0 and not self._released
                        and now - self._paused_since > self.cfg.max_suspended_s)
            if too_long:
                self._released = True
        if too_long:
            n = self.runner.release(f"suspended for more than {self.cfg.max_suspended_s:g} s by its owner's "
                                    "use of the machine", running_only=True)
            log.info("released %d suspended task(s) to the master", n)
        if changed:
            self.changed()
        self.write_status()

    def stopping(self) -> None:
        """The worker stops: take nothing new, let stopped tasks run so they can end and be released."""
        self._stop.set()
        with self._lock:
            self.reason = "stopping"
            self.runner.hold(self.reason)
            if self.paused:
                self.paused = False
                self.sandbox.resume()
        self.changed()
        self.write_status()

    def status(self) -> dict:
        with self._lock:
            state = "stopping" if self.reason == "stopping" else "suspended" if self.reason else "running"
            return {"state": state, "reason": self.reason, "tasks_paused": self.paused,
                    "worker_id": self.worker_id, "pid": os.getpid(), "updated": time.time(),
                    "cpu_other_percent": round(self.cpu_other * 100, 1), "tasks": self.runner.describe(),
                    "schedule": self.schedule.text or "always", "caps": self.caps,
                    "settings": {"busy_cpu_percent": self.cfg.busy_cpu_percent,
                                 "resume_after_idle_s": self.cfg.resume_after_idle_s,
                                 "max_suspended_s": self.cfg.max_suspended_s,
                                 "suspend_on_battery": self.cfg.suspend_on_battery,
                                 "suspend_when_user_active": self.cfg.suspend_when_user_active,
                                 "suspend_when_remote_user_active": self.cfg.suspend_when_remote_user_active,
                                 "outside_hours": self.cfg.outside_hours}}

    def write_status(self) -> None:
        path = Path(self.cfg.home) / STATUS_FILE
        tmp = path.with_name(f".{STATUS_FILE}.tmp")
        try:
            tmp.write_text(json.dumps(self.status(), indent=1) + "\n")
            os.replace(tmp, path)
        except OSError as e:
            log.warning("cannot write %s: %s", path, e)
