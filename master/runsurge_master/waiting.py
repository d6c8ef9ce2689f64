"""Why a task is not running yet, in words with counts (like `condor_q -better-analyze`): shown by
`runsurge why`, `status`, `--wait`, the API (TaskOut.waiting, JobOut.waiting) and the dashboard.
Also the words for what a task on a worker is doing (its phase, TaskOut.phase), which its worker
reports in each heartbeat (live.py).

Read-only: it applies the scheduler's placement rules (placement.py, benching.py, lifecycle.avoided)
to the workers online now, and says which rule keeps each waiting task off every worker.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from runsurge_master import benching, lifecycle, replicas
from runsurge_master.jobspec import format_size
from runsurge_master.models import Task, TaskInput, Worker, utcnow
from runsurge_proto import master_pb2

PHASES = {master_pb2.TASK_PHASE_FETCHING_INPUTS: "fetching inputs",
          master_pb2.TASK_PHASE_BUILDING_ENVIRONMENT: "building environment",
          master_pb2.TASK_PHASE_WAITING_FOR_SLOT: "waiting for a free slot",
          master_pb2.TASK_PHASE_RUNNING: "running"}


def phase_text(phase: int | None) -> str | None:
    return PHASES.get(phase) if phase is not None else None


def reasons(s: Session, tasks: list[Task], min_trust: int, phases: dict[str, str] | None = None) -> dict[str, str]:
    """Task id → why it waits, for the tasks of one job that are not running (pending, ready, queued).
    `phases`: task id → what its worker last said it does (phase_text), for tasks queued there."""
    out: dict[str, str] = {}
    pending = [t for t in tasks if t.status == "pending"]
    if pending:
        names = {t.id: t.name for t in tasks}
        for task_id, producer_id in s.execute(select(TaskInput.task_id, TaskInput.producer_task_id).where(
                TaskInput.task_id.in_([t.id for t in pending]), TaskInput.producer_task_id.is_not(None),
                TaskInput.data_id.is_(None))):
            out.setdefault(task_id, set()).add(names.get(producer_id, producer_id))
        for task_id, producers in list(out.items()):
            out[task_id] = f"waiting for the output of task(s) {', '.join(sorted(producers))}"
    ready = [t for t in tasks if t.status == "ready"]
    queued = [t for t in tasks if t.status == "assigned" and t.redundancy == 1]  # a quorum's: its replicas say
    if not ready and not queued:
        return out
    workers = list(s.scalars(select(Worker).where(Worker.online)))
    for t in queued:  # on a worker, not started: prefetched behind its running tasks, or fetching inputs
        doing = (phases or {}).get(t.id) or "waiting there for a free slot or its inputs"
        out[t.id] = f"assigned to worker {(t.worker_id or '')[:8]}: {doing}"
    if not ready:
        return out
    if not workers:
        for t in ready:
            out[t.id] = "no worker is online"
        return out
    quorum = replicas.waiting(s, ready, min_trust)
    now = utcnow()
    benched = {w.id for w in workers if benching.benched(w, now)}
    avoid = lifecycle.avoided(s, [t.id for t in ready])
    used = _load(s, [w.id for w in workers])
    largest = max(w.memory_bytes for w in workers)
    ahead = 0
    for t in sorted(ready, key=lambda t: (t.created_at, t.seq)):
        if t.id in quorum:
            out[t.id] = quorum[t.id]
            continue
        big = [w for w in workers if w.memory_bytes >= t.memory_bytes]
        if not big:
            out[t.id] = (f"needs {format_size(t.memory_bytes)} of memory; no online worker offers that much "
                         f"(the largest offers {format_size(largest)}; {len(workers)} online): lower --memory or "
                         "add a bigger worker")
            continue
        usable = [w for w in big if w.id not in benched and w.id not in avoid.get(t.id, ())]
        if not usable:
            why = Counter("benched (it kept faulting)" if w.id in benched else "faulted on this task" for w in big)
            out[t.id] = (f"every online worker with {format_size(t.memory_bytes)} is unavailable: "
                         + ", ".join(f"{n} {reason}" for reason, n in sorted(why.items())))
            continue
        free = [w for w in usable if used.get(w.id, (0, 0))[0] < w.slots
                and w.memory_bytes - used.get(w.id, (0, 0))[1] >= t.memory_bytes]
        if free:
            out[t.id] = "being placed on a free worker"
            continue
        slots = sum(w.slots for w in usable)
        busy = sum(min(used.get(w.id, (0, 0))[0], w.slots) for w in usable)
        out[t.id] = (f"all {len(usable)} suitable worker(s) are busy ({busy}/{slots} slots in use)"
                     + (f"; {ahead} ready task(s) of this job ahead of it" if ahead else ""))
        ahead += 1
    return out


def summary(task_reasons: dict[str, str]) -> list[str]:
    """The job's waiting tasks grouped by reason, most first: "3 task(s): no worker is online"."""
    counts = Counter(_kind(r) for r in task_reasons.values())
    return [f"{n} task(s): {reason}" for reason, n in counts.most_common()]


def _kind(reason: str) -> str:
    return reason.split("; ", 1)[0] if reason.startswith("all ") else reason  # not "2 ahead of it" each


def _load(s: Session, worker_ids: list[str]) -> dict[str, tuple[int, int]]:
    """Worker id → (tasks and replicas it holds, memory they reserve), as the scheduler counts them."""
    used = {wid: (n, mem) for wid, n, mem in s.execute(
        select(Task.worker_id, func.count(), func.coalesce(func.sum(Task.memory_bytes), 0))
        .where(Task.status.in_(lifecycle.ACTIVE), Task.worker_id.in_(worker_ids)).group_by(Task.worker_id))}
    for wid, n, _running, mem in replicas.load(s, worker_ids):
        u = used.get(wid, (0, 0))
        used[wid] = (u[0] + n, u[1] + mem)
    return used
