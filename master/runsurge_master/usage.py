"""CPU and memory over time: the series a worker sends with TaskComplete (its metering samples,
thinned), kept per run of a task, and a worker's load over time built from its runs' series.

A worker is not trusted: a series is cut to MAX_POINTS, points that are not finite, go back in time or
in CPU are dropped, and every value is clipped to the run's bounded metering (metering.py): no point
after its wall time, no more CPU than it reports in all, no more memory than its peak."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from runsurge_master.models import TaskUsage

MAX_POINTS = 200  # what a worker sends (monitor.py thins to this); more are cut
WORKER_WINDOW = timedelta(hours=24)  # a worker's chart covers its runs that started this recently
WORKER_RUNS = 500  # and at most this many of them
WORKER_BUCKETS = 120  # points of a worker's chart


def clean(points, wall_s: float, cpu_s: float, peak_bytes: int) -> list[list[float]]:
    """[[t_s, cpu_s, rss_bytes], ...] from a worker's UsageSamples, bounded as the module says."""
    out: list[list[float]] = []
    last_t, last_cpu = -1.0, 0.0
    for p in list(points)[:MAX_POINTS]:
        t, cpu, rss = float(p.t_s), float(p.cpu_s), int(p.rss_bytes)
        if not (math.isfinite(t) and math.isfinite(cpu)) or t < 0:
            continue
        t = _floor3(min(t, wall_s))
        if t <= last_t:  # back in time (or past the run's end, where every point clips to it)
            continue
        cpu = _floor3(min(max(cpu, last_cpu), cpu_s))
        out.append([t, cpu, min(max(rss, 0), peak_bytes)])
        last_t, last_cpu = t, cpu
    return out


def record(s: Session, task_id: str, attempt: int, worker_id: str, started_at: datetime,
           samples: list[list[float]]) -> None:
    """Keep a run's series (a repeated report of the same run replaces nothing: the first stays)."""
    if not samples or s.scalar(select(TaskUsage.id).where(TaskUsage.task_id == task_id,
                                                          TaskUsage.attempt == attempt)) is not None:
        return
    s.add(TaskUsage(task_id=task_id, attempt=attempt, worker_id=worker_id, started_at=started_at, samples=samples))


def of_task(s: Session, task_id: str) -> list[TaskUsage]:
    return list(s.scalars(select(TaskUsage).where(TaskUsage.task_id == task_id).order_by(TaskUsage.attempt)))


def points(samples: list[list[float]]) -> list[tuple[float, float, float, int]]:
    """(t_s, CPU seconds, CPU cores in use since the previous point, rss bytes) for each point."""
    out, prev = [], None
    for t, cpu, rss in samples:
        cores = (cpu - prev[1]) / (t - prev[0]) if prev is not None and t > prev[0] else 0.0
        out.append((t, cpu, round(cores, 3), int(rss)))
        prev = (t, cpu)
    return out


def of_worker(s: Session, worker_id: str, now: datetime) -> list[tuple[datetime, float, int]]:
    """The worker's load over its recent runs: (time, CPU cores, resident bytes) at WORKER_BUCKETS
    even steps, each the sum over the runs going on then."""
    runs = list(s.scalars(select(TaskUsage).where(TaskUsage.worker_id == worker_id,
                                                  TaskUsage.started_at >= now - WORKER_WINDOW)
                          .order_by(TaskUsage.started_at.desc()).limit(WORKER_RUNS)))
    if not runs:
        return []
    spans = [(r.started_at, [(t, cores, rss) for t, _, cores, rss in points(r.samples)]) for r in runs]
    t0 = min(start for start, _ in spans)
    t1 = max(start + timedelta(seconds=pts[-1][0]) for start, pts in spans)
    total = max((t1 - t0).total_seconds(), 1e-3)
    step = total / (WORKER_BUCKETS - 1)
    cpu = [0.0] * WORKER_BUCKETS
    rss = [0] * WORKER_BUCKETS
    for start, pts in spans:
        offset = (start - t0).total_seconds()
        i = 0
        for b in range(WORKER_BUCKETS):
            at = b * step - offset  # seconds into this run
            if at < 0 or at > pts[-1][0]:
                continue
            while i < len(pts) - 1 and pts[i][0] < at:
                i += 1
            cpu[b] += pts[i][1]
            rss[b] += pts[i][2]
    return [(t0 + timedelta(seconds=b * step), round(cpu[b], 3), rss[b]) for b in range(WORKER_BUCKETS)]


def _floor3(x: float) -> float:  # rounded down, so a clipped value stays within its bound
    return math.floor(x * 1000) / 1000
