"""Benching: a worker that keeps faulting (refusing tasks, losing them, reporting worker errors,
across tasks and jobs) gets no new tasks for a while, and longer each time, so one bad machine
cannot keep taking and dropping other people's work. A success clears the streak.

    faults in a row (streak) < BENCH_AFTER: nothing
    streak = BENCH_AFTER + k: benched for BENCH_BASE_S × 2^k (at most BENCH_MAX_S)

Its owner sees why and until when (GET /api/workers, the dashboard's workers page).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from runsurge_master.models import Worker, utcnow

log = logging.getLogger("runsurge.benching")
BENCH_AFTER = 3
BENCH_BASE_S = 30.0
BENCH_MAX_S = 24 * 3600.0


def fault(w: Worker, reason: str) -> None:
    """One fault event of this worker (a worker lost with several tasks is one event)."""
    w.fault_streak = (w.fault_streak or 0) + 1
    if w.fault_streak >= BENCH_AFTER:
        seconds = min(BENCH_MAX_S, BENCH_BASE_S * 2 ** (w.fault_streak - BENCH_AFTER))
        w.benched_until = utcnow() + timedelta(seconds=seconds)
        w.bench_reason = f"{w.fault_streak} faults in a row; last: {reason}"[:500]
        log.warning("SECURITY worker=%s benched for %.0f s: %s", w.id, seconds, w.bench_reason)


def succeeded(w: Worker) -> None:
    w.fault_streak = 0
    w.bench_reason = None
    w.benched_until = None


def benched(w: Worker, now: datetime | None = None) -> bool:
    return w.benched_until is not None and w.benched_until > (now or utcnow())
