"""Which workers are still there: a worker silent for `missed_heartbeats` intervals is offline, its
tasks go back to the queue and its cached data is forgotten. Silence counts only while the master
itself was awake: after a stall of its own (a paused process, a blocked loop) every worker gets a
fresh window. Also expires checkpoints nobody resumed within the grace window."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from runsurge_master import benching, lifecycle, replicas
from runsurge_master.billing import Tariff
from runsurge_master.config import MasterConfig
from runsurge_master.lifecycle import Cancels
from runsurge_master.live import LiveState
from runsurge_master.models import DataLocation, Task, Worker, utcnow

log = logging.getLogger("runsurge.liveness")
SAFETY_TICK_S = 5.0


class Liveness:
    def __init__(self, cfg: MasterConfig, live: LiveState, tariff: Tariff):
        self.cfg, self.live, self.tariff = cfg, live, tariff
        self.tick = min(SAFETY_TICK_S, cfg.heartbeat_interval_s)  # how often check() runs
        self._last_check: float | None = None  # monotonic time of the last check
        self._stall_end: datetime = utcnow()  # when the master last woke from a stall of its own

    def master_stalled(self) -> bool:
        """Whether the master itself was late since the last check (an event loop blocked by a long
        pass, a paused process): checks run once a tick, so a longer gap means the beats of that time
        could not be heard, and silence then is no worker's fault. Heartbeats queued behind other work
        while the loop still ticks are NOT seen here (BENCHMARKS.md, Scale)."""
        now = time.monotonic()
        last, self._last_check = self._last_check, now
        if last is not None and now - last > self.tick + self.cfg.heartbeat_interval_s:
            log.warning("master stalled %.1f s: every worker gets a fresh liveness window", now - last - self.tick)
            self._stall_end = utcnow()
            return True
        return False

    def check(self, s: Session) -> Cancels:
        """Workers silent too long declared offline (the cancels to send); stale checkpoints released."""
        cutoff = utcnow() - timedelta(seconds=self.cfg.heartbeat_interval_s * self.cfg.missed_heartbeats)
        cancels: Cancels = []
        if self.master_stalled() or self._stall_end >= cutoff:  # a window counts only time the master was awake
            return cancels
        for w in s.scalars(select(Worker).where(Worker.online, Worker.last_heartbeat < cutoff)):
            log.warning("worker offline worker=%s (no heartbeat since %s)", w.id, w.last_heartbeat)
            cancels += self.worker_lost(s, w, "worker stopped sending heartbeats")
        lifecycle.expire_checkpoints(s, self.cfg.checkpoint_grace_s)  # the same pass places them
        return cancels

    def worker_lost(self, s: Session, w: Worker, reason: str) -> Cancels:
        """Offline: its cached data is unreachable and its tasks go back to the queue."""
        w.online = False
        self.live.forget(w.id)
        s.execute(delete(DataLocation).where(DataLocation.worker_id == w.id))
        cancels = []
        tasks = s.scalars(select(Task).where(Task.worker_id == w.id, Task.status.in_(lifecycle.ACTIVE))).all()
        for t in tasks:
            cancels += lifecycle.requeue_task(s, t, f"{reason} (worker {w.id[:8]})", self.cfg.max_attempts)
        lost = replicas.active_on(s, w.id)
        cancels += replicas.lose_all(s, lost, f"{reason} (worker {w.id[:8]})", self.cfg.max_attempts,
                                     tariff=self.tariff)
        if tasks or lost:  # one fault event, however many tasks it dropped
            benching.fault(w, reason)
        return cancels
