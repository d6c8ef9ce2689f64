"""What the master exposes to Prometheus at `/metrics` (text exposition format; routes/metrics.py).

Gauges are read from the database at scrape time (a few GROUP BY queries on indexed columns):
    runsurge_jobs{status}                 jobs by status (running, done, failed)
    runsurge_tasks{state}                 tasks by state (pending, ready, assigned = sent to a worker and
                                          not started yet: preparing or queued, running, done, ...)
    runsurge_workers_online               workers sending heartbeats
    runsurge_workers_registered           all workers ever registered
    runsurge_worker_slots{state}          task slots of online workers: total, busy (running a task)
Counters and histograms are kept by this process (they restart from zero with it, as Prometheus expects):
    runsurge_tasks_assigned_total         placements made by the scheduler
    runsurge_scheduling_latency_seconds   from a task becoming ready (Task.ready_at) to its assignment
                                          (with prefetch, maybe into a busy worker's queue: "running"
                                          above counts the tasks that started)
    runsurge_scheduling_pass_seconds      how long one scheduling pass that placed tasks took (the
                                          placement decision itself, without the wait in the queue)
    runsurge_task_calls_total{method}     AssignTasks calls made, CompleteTasks calls received
    runsurge_task_call_tasks_total{method}  the tasks (assignments, completions) they carried

The latency is observed by a session hook: after a transaction that set a task's status to
"assigned" commits, (assigned_at - ready_at) goes into the histogram. So no scheduler code has to
remember to report it, and a rolled-back placement is not counted.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from runsurge_master.models import Job, Task, TaskReplica, Worker

JOB_STATUSES = ("running", "done", "failed", "cancelled", "deleted")
TASK_STATES = ("pending", "ready", "assigned", "running", "checkpointed", "done", "failed", "cancelled")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

SCHEDULING_LATENCY = Histogram(
    "runsurge_scheduling_latency_seconds", "Time from a task becoming ready to its assignment to a worker",
    buckets=LATENCY_BUCKETS, registry=None)
PASS_SECONDS = Histogram(
    "runsurge_scheduling_pass_seconds", "Duration of a scheduling pass that placed at least one task",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10), registry=None)
# Batching at work: tasks per call = call_tasks / calls.
TASK_CALLS = Counter("runsurge_task_calls", "Task-carrying gRPC calls (AssignTasks made, CompleteTasks received)",
                     ["method"], registry=None)
TASK_CALL_TASKS = Counter("runsurge_task_call_tasks", "Tasks carried by those calls", ["method"], registry=None)
_PENDING = "runsurge.metrics.latencies"
_hooks_installed = False


def install_hooks() -> None:
    """Observe scheduling latency on every committed assignment (process-wide, installed once)."""
    global _hooks_installed
    if _hooks_installed:
        return
    event.listen(Session, "after_commit", _observe)
    event.listen(Session, "after_rollback", lambda s: s.info.pop(_PENDING, None))
    _hooks_installed = True


def observe_scheduling_latency(s: Session, seconds: float) -> None:
    """A task placed `seconds` after it became ready: observed once its transaction commits."""
    s.info.setdefault(_PENDING, []).append(seconds)


def _observe(s: Session) -> None:
    for seconds in s.info.pop(_PENDING, ()):
        SCHEDULING_LATENCY.observe(max(0.0, seconds))


class MasterCollector:
    """The gauges and counters of one master, read at scrape time (routes/metrics.py serves them)."""

    def __init__(self, sv) -> None:  # services.Services
        self.sv = sv

    def collect(self):
        with self.sv.db.session() as s:
            jobs = dict(s.execute(select(Job.status, func.count()).group_by(Job.status)).all())
            tasks = dict(s.execute(select(Task.status, func.count()).group_by(Task.status)).all())
            workers = dict(s.execute(select(Worker.online, func.count()).group_by(Worker.online)).all())
            slots = s.scalar(select(func.coalesce(func.sum(Worker.slots), 0)).where(Worker.online))
            # A slot is busy once its task started; assigned tasks may be queued beyond the slots (prefetch).
            busy = s.scalar(select(func.count()).select_from(Task).join(Worker, Worker.id == Task.worker_id)
                            .where(Worker.online, Task.status == "running"))
            busy += s.scalar(select(func.count()).select_from(TaskReplica)  # quorum tasks run as replicas
                             .join(Worker, Worker.id == TaskReplica.worker_id)
                             .where(Worker.online, TaskReplica.status == "running"))
        g = GaugeMetricFamily("runsurge_jobs", "Jobs by status", labels=["status"])
        for status in sorted(set(JOB_STATUSES) | set(jobs)):
            g.add_metric([status], jobs.get(status, 0))
        yield g
        g = GaugeMetricFamily("runsurge_tasks", "Tasks by state", labels=["state"])
        for state in sorted(set(TASK_STATES) | set(tasks)):
            g.add_metric([state], tasks.get(state, 0))
        yield g
        yield GaugeMetricFamily("runsurge_workers_online", "Workers sending heartbeats", value=workers.get(True, 0))
        yield GaugeMetricFamily("runsurge_workers_registered", "Workers ever registered",
                                value=sum(workers.values()))
        g = GaugeMetricFamily("runsurge_worker_slots", "Task slots of online workers", labels=["state"])
        g.add_metric(["total"], slots or 0)
        g.add_metric(["busy"], busy or 0)
        yield g
        yield CounterMetricFamily("runsurge_tasks_assigned", "Task placements made by the scheduler",
                                  value=self.sv.scheduler.planner.assigned_total)
        yield from SCHEDULING_LATENCY.collect()
        yield from PASS_SECONDS.collect()
        yield from TASK_CALLS.collect()
        yield from TASK_CALL_TASKS.collect()
