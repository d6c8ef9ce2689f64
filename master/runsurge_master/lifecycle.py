"""The state machine of tasks, quorum replicas and jobs. Every state change of any of them is made
here, by `transition` (one object) or `transition_rows` (one UPDATE, on TaskStarted's hot path), each
inside the caller's transaction. A change not in the table raises IllegalTransition and changes
nothing; one in it does its bookkeeping (timestamps, the job's end, the scheduling latency metric,
billing) and logs one DEBUG line. The named steps below (finish_task_ok, fail_task, requeue_task, ...)
are the events that cause transitions, with the INFO lines operators read.

Task: pending (waits for a producer) → ready → assigned (sent to a worker, maybe queued there) →
running → done | failed | cancelled. A worker fault or release puts an assigned or running task back
to ready; a queued task may move to another worker (assigned → assigned). A running task whose worker
stopped and saved its VM is checkpointed: it stays that worker's for the grace window and runs on when
the worker comes back (→ running), or is released after it (→ ready); cancelled meanwhile, it is
billed for what ran before its save (the checkpoint report's metering). Lineage re-runs a done producer
(done → ready) whose output was lost, and its ready consumer waits for it again (→ pending). A quorum
task (redundancy > 1) runs as replicas (replicas.py) and may be decided while ready or pending, as
its replicas report.
Replica: assigned → running → done (a vote) | lost (a worker fault) | cancelled.
Job: running → done | failed | cancelled (by its owner); a finished job may then be deleted; a done job
runs again (→ running) when lineage re-runs one of its tasks.

Callers: the HTTP API (create, cancel, delete), the gRPC service (reports, registration), the
scheduler (placement, liveness, reconciliation) and replicas.py (quorum tasks).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from runsurge_master import billing, metrics
from runsurge_master.billing import Tariff
from runsurge_master.jobspec import JobSpec
from runsurge_master.metering import Metering
from runsurge_master.models import (
    DataLocation,
    DataObject,
    Job,
    Task,
    TaskFault,
    TaskInput,
    TaskOutput,
    TaskReplica,
    Worker,
    utcnow,
)

log = logging.getLogger("runsurge.lifecycle")


class TaskState(StrEnum):
    PENDING = "pending"
    READY = "ready"
    ASSIGNED = "assigned"
    RUNNING = "running"
    CHECKPOINTED = "checkpointed"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ReplicaState(StrEnum):
    ASSIGNED = "assigned"
    RUNNING = "running"
    DONE = "done"
    LOST = "lost"
    CANCELLED = "cancelled"


class JobState(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DELETED = "deleted"


T, R, J = TaskState, ReplicaState, JobState
ACTIVE = (T.ASSIGNED, T.RUNNING)  # a worker holds it (a replica in these states too)
OPEN = (T.PENDING, T.READY, T.ASSIGNED, T.RUNNING, T.CHECKPOINTED)
Cancels = list[tuple[str, str]]  # (worker id, task id) to tell CancelTask, after the commit


class IllegalTransition(RuntimeError):  # noqa: N818 (the issue's name for it)
    """A state change the table does not list: a bug in the caller."""


# -- bookkeeping ---------------------------------------------------------------------------------
class Stamp:
    """Bookkeeping that only sets columns to now (or clears them): the same for one object and for
    the rows of a set-based UPDATE (transition_rows)."""

    def __init__(self, *now: str, clear: tuple[str, ...] = ()) -> None:
        self.now, self.clear = now, clear

    def values(self) -> dict:
        at = utcnow()
        return {c: at for c in self.now} | dict.fromkeys(self.clear)

    def __call__(self, s: Session, obj, frm: str, tariff: Tariff | None) -> None:
        for column, value in self.values().items():
            setattr(obj, column, value)


def _task_ready(s: Session, task: Task, frm: str, tariff: Tariff | None) -> None:
    """Queued for placement by anyone: since when is the scheduling latency's start."""
    task.ready_at = utcnow()
    task.worker_id = None


def _task_assigned(s: Session, task: Task, frm: str, tariff: Tariff | None) -> None:
    """Placed (a plain task: on the worker_id given with it; a quorum task: once all its replicas are)."""
    task.assigned_at = utcnow()
    if frm == T.READY and task.ready_at is not None:  # a move between queues is not a new placement
        metrics.observe_scheduling_latency(s, (task.assigned_at - task.ready_at).total_seconds())


def _task_done(s: Session, task: Task, frm: str, tariff: Tariff | None) -> None:
    """Billed; the job is done with its last task (one COUNT, not every task row of the job loaded
    per completion: O(N^2) over a job)."""
    if tariff is None:
        raise TypeError(f"task {task.id}: a done task is charged, at the tariff given with its transition")
    task.finished_at = utcnow()
    billing.charge_task(s, task, T.DONE, tariff)
    job = task.job
    if job.status == J.RUNNING and not s.scalar(
            select(func.count()).select_from(Task).where(Task.job_id == job.id, Task.status != T.DONE)):
        transition(s, job, J.DONE)
        log.info("job done job=%s", job.id)


def _task_failed(s: Session, task: Task, frm: str, tariff: Tariff | None) -> None:
    """Charged at `tariff` when the user's own script failed (its run used the contributor's machine);
    None when the fault was the workers' (see billing.py)."""
    task.finished_at = utcnow()
    if tariff is not None:
        billing.charge_task(s, task, T.FAILED, tariff)


def _task_cancelled(s: Session, task: Task, frm: str, tariff: Tariff | None) -> None:
    """Its job ended. A checkpointed task's run ended with its save, and its worker's report of it (the
    metering checkpoint_task kept) is the last one: it is charged here at `tariff` (the owner's cancel;
    None: not charged, like a run a failing job stopped). Other runs are billed by their stopped-run
    report (stopped_run_report), if they started."""
    task.finished_at = utcnow()
    if frm == T.CHECKPOINTED and tariff is not None:
        billing.charge_task(s, task, "cancelled", tariff)


def _nothing(s: Session, obj, frm: str, tariff: Tariff | None) -> None:
    pass


Handler = Callable[[Session, object, str, Tariff | None], None]
_finished = Stamp("finished_at")
_started = Stamp("started_at")

# {(from, to): bookkeeping}, one table per kind of object, after dask/distributed's _TRANSITIONS_TABLE.
TASK_TRANSITIONS: dict[tuple[str, str], Handler] = {
    (T.PENDING, T.READY): _task_ready,            # its inputs are all there
    (T.READY, T.PENDING): _nothing,               # an input was lost: its producer runs again first
    (T.READY, T.ASSIGNED): _task_assigned,        # placed
    (T.ASSIGNED, T.ASSIGNED): _task_assigned,     # moved from a busy worker's queue to an idle worker
    (T.ASSIGNED, T.RUNNING): _started,            # TaskStarted
    (T.CHECKPOINTED, T.RUNNING): Stamp(clear=("checkpointed_at",)),  # resumed: the run's start is kept
    (T.ASSIGNED, T.CHECKPOINTED): Stamp("checkpointed_at"),  # a start not reported yet comes with its end
    (T.RUNNING, T.CHECKPOINTED): Stamp("checkpointed_at"),
    (T.ASSIGNED, T.READY): _task_ready,           # requeued (worker fault) or released
    (T.RUNNING, T.READY): _task_ready,
    (T.CHECKPOINTED, T.READY): _task_ready,       # its worker did not resume it
    (T.DONE, T.READY): _task_ready,               # lineage: its output was lost
    (T.ASSIGNED, T.DONE): _task_done,             # a short run's start is folded into its end
    (T.RUNNING, T.DONE): _task_done,
    (T.READY, T.DONE): _task_done,                # quorum: decided while waiting for one more replica
    (T.PENDING, T.DONE): _task_done,              # quorum: decided while a lost input was recomputed
    (T.PENDING, T.FAILED): _task_failed,          # quorum: retry budget used or no majority
    (T.READY, T.FAILED): _task_failed,
    (T.ASSIGNED, T.FAILED): _task_failed,
    (T.RUNNING, T.FAILED): _task_failed,
    **{(state, T.CANCELLED): _task_cancelled for state in OPEN},  # its job ended
}
REPLICA_TRANSITIONS: dict[tuple[str, str], Handler] = {
    (R.ASSIGNED, R.RUNNING): _started,
    **{(state, end): _finished for state in (R.ASSIGNED, R.RUNNING) for end in (R.DONE, R.LOST, R.CANCELLED)},
}
JOB_TRANSITIONS: dict[tuple[str, str], Handler] = {
    **{(J.RUNNING, end): _finished for end in (J.DONE, J.FAILED, J.CANCELLED)},
    **{(end, J.DELETED): _nothing for end in (J.DONE, J.FAILED, J.CANCELLED)},
    (J.DONE, J.RUNNING): _nothing,  # lineage re-runs a producer whose output was lost
}
TABLES: dict[type, dict[tuple[str, str], Handler]] = {
    Task: TASK_TRANSITIONS, TaskReplica: REPLICA_TRANSITIONS, Job: JOB_TRANSITIONS}


def transition(s: Session, obj: Task | TaskReplica | Job, to: str, tariff: Tariff | None = None,
               **fields) -> None:
    """Move `obj` to state `to` and do that transition's bookkeeping. `fields`: columns set with it
    (error=..., worker_id=... of an assignment). `tariff`: what a task that ends done (required) or
    failed (None: not charged) is charged at."""
    frm = obj.status
    handler = TABLES[type(obj)].get((frm, to))
    if handler is None:
        raise IllegalTransition(f"{type(obj).__name__} {obj.id}: {frm} -> {to} is not a transition")
    obj.status = to
    for column, value in fields.items():
        setattr(obj, column, value)
    handler(s, obj, frm, tariff)
    log.debug("%s=%s %s -> %s", type(obj).__name__.lower(), obj.id, frm, to)


def transition_rows(s: Session, model: type[Task] | type[TaskReplica], froms: tuple[str, ...], to: str,
                    *where) -> int:
    """transition() as one UPDATE, for the rows matching `where` that are in one of `froms` (TaskStarted
    is on every task's path: no ORM load). Only transitions whose bookkeeping is a Stamp may be made so.
    Returns how many rows moved."""
    handlers = {TABLES[model].get((frm, to)) for frm in froms}
    if None in handlers:
        raise IllegalTransition(f"{model.__name__}: not every one of {', '.join(froms)} -> {to} is a transition")
    (stamp,) = handlers
    if not isinstance(stamp, Stamp):
        raise TypeError(f"{model.__name__} -> {to} has per-object bookkeeping: use transition()")
    moved = s.execute(update(model).where(model.status.in_(froms), *where).values(status=to, **stamp.values()))
    log.debug("%s rows: %d %s -> %s", model.__name__.lower(), moved.rowcount, "|".join(froms), to)
    return moved.rowcount


def create_job(s: Session, owner_id: str, spec: JobSpec, uploads: dict[str, str],
               environments: dict[str, str | None] | None = None, environment_id: str | None = None) -> Job:
    """Rows for a validated spec. `uploads` maps uploaded file name → data id (already stored);
    `environments` task name → its environment id (resolved), `environment_id` the job-wide one."""
    environments = environments or {}
    job = Job(owner_id=owner_id, name=spec.name, status=J.RUNNING, environment_id=environment_id)
    s.add(job)
    s.flush()
    consumed = spec.consumed()
    tasks: dict[str, Task] = {}
    for seq, t in enumerate(spec.tasks):
        task = Task(job_id=job.id, seq=seq, name=t.name, script_name=t.script,
                    script_data_id=uploads[t.script], memory_bytes=t.memory_bytes,
                    memory_estimated=not t.memory_stated, cpus=t.cpus,
                    timeout_s=t.timeout_s, collect_all_outputs=t.outputs is None, redundancy=spec.redundancy or 1,
                    status=T.PENDING if spec.producers_of(t) else T.READY, environment_id=environments.get(t.name))
        if task.status == T.READY:  # created ready: its scheduling latency starts now
            task.ready_at = utcnow()
        s.add(task)
        tasks[t.name] = task
    s.flush()
    # Inputs and outputs as two multi-row INSERTs: through the ORM, each row is an INSERT of its own.
    outputs = [{"task_id": tasks[t.name].id, "name": out, "is_result": (t.name, out) not in consumed}
               for t in spec.tasks for out in t.outputs or ()]
    inputs = [{"task_id": tasks[t.name].id, "name": local, "data_id": uploads[src.upload] if src.upload else None,
               "producer_task_id": tasks[src.task].id if src.task else None, "producer_output": src.output}
              for t in spec.tasks for local, src in t.inputs.items()]
    for model, rows in ((TaskOutput, outputs), (TaskInput, inputs)):
        if rows:
            s.execute(insert(model), rows)
    return job


def new_replica(s: Session, task: Task, worker_id: str) -> TaskReplica:
    """A quorum task's replica just placed on `worker_id` (its attempt: the task's run number)."""
    replica = TaskReplica(task_id=task.id, attempt=task.attempts, worker_id=worker_id, status=R.ASSIGNED)
    s.add(replica)
    return replica


def ensure_data(s: Session, data_id: str, size: int, worker_id: str | None) -> None:
    """Record that `worker_id` (None: the master) holds the object. The master's own copy was measured
    as it was stored: its size corrects one a worker reported before."""
    obj = s.get(DataObject, data_id)
    if obj is None:
        s.add(DataObject(id=data_id, size=size))
        s.flush()
    elif worker_id is None and obj.size != size:
        obj.size = size
    exists = s.scalar(select(DataLocation.id).where(
        DataLocation.data_id == data_id,
        DataLocation.worker_id.is_(None) if worker_id is None else DataLocation.worker_id == worker_id))
    if exists is None:
        s.add(DataLocation(data_id=data_id, worker_id=worker_id))


def record_outputs(s: Session, task: Task, worker_id: str, outputs: dict[str, tuple[str, int]]) -> None:
    """After a successful run: the worker keeps what it fetched and what it wrote, so later tasks can use
    those copies; the task's results were also uploaded to the master."""
    for inp in task.inputs:
        ensure_data(s, inp.data_id, s.get(DataObject, inp.data_id).size, worker_id)
    results = set(outputs) if task.collect_all_outputs else {o.name for o in task.outputs if o.is_result}
    for name, (data_id, size) in outputs.items():
        ensure_data(s, data_id, size, worker_id)
        if name in results:
            ensure_data(s, data_id, size, None)


def finish_task_ok(s: Session, task: Task, outputs: dict[str, tuple[str, int]], tariff: Tariff) -> None:
    """Record outputs (name → (data id, size)) and release the tasks waiting for them."""
    transition(s, task, T.DONE, tariff)  # billed at `tariff`, and the job done with its last task
    declared = {o.name: o for o in task.outputs}
    for name, (data_id, size) in outputs.items():
        out = declared.get(name)
        if out is None:  # collect-all task: every new file is a result
            out = TaskOutput(name=name, is_result=True)
            task.outputs.append(out)
        out.data_id, out.size = data_id, size
    s.flush()
    for out in task.outputs:
        s.execute(update(TaskInput)
                  .where(TaskInput.producer_task_id == task.id, TaskInput.producer_output == out.name)
                  .values(data_id=out.data_id))
    for consumer_id in set(s.scalars(select(TaskInput.task_id).where(TaskInput.producer_task_id == task.id))):
        consumer = s.get(Task, consumer_id)
        if consumer.status == T.PENDING and all(i.data_id for i in consumer.inputs):
            transition(s, consumer, T.READY)


def _end_job(s: Session, job: Job, status: str, error: str, drop_queued_workers: bool,
             tariff: Tariff | None) -> list[tuple[str, str]]:
    """The job ends as `status`: its open tasks are cancelled; returns (worker id, task id) of the runs
    (and quorum replicas) to stop. `drop_queued_workers`: a task that had not started forgets its worker
    (a checkpointed one keeps it: its run is charged, and earned by that worker). `tariff`: what a
    checkpointed task is charged at (None: not charged)."""
    transition(s, job, status, error=error)
    to_cancel = []
    for t in job.tasks:
        if t.status in ACTIVE and t.worker_id:
            to_cancel.append((t.worker_id, t.id))
        if t.status in OPEN and t.redundancy > 1:
            to_cancel += cancel_replicas(s, t)
        if t.status in OPEN:
            if drop_queued_workers and t.status not in (*ACTIVE, T.CHECKPOINTED):
                t.worker_id = None
            transition(s, t, T.CANCELLED, tariff)
    return to_cancel


def fail_job(s: Session, job: Job, error: str) -> list[tuple[str, str]]:
    """Fail the job; returns (worker id, task id) of tasks still running, to be cancelled."""
    if job.status != J.RUNNING:
        return []
    to_cancel = _end_job(s, job, J.FAILED, error, drop_queued_workers=False, tariff=None)
    log.info("job failed job=%s error=%s", job.id, error.splitlines()[0] if error else "")
    return to_cancel


def cancel_job(s: Session, job: Job, tariff: Tariff) -> list[tuple[str, str]]:
    """The owner stops the job: queued and waiting tasks are dropped, running ones (and quorum replicas)
    are stopped on their workers (the returned (worker id, task id) pairs). A stopped task keeps its
    worker, so that worker's last report of it is still billed for what ran (stopped_run_report); a
    checkpointed task is billed now, at `tariff`, for what ran before its save."""
    to_cancel = _end_job(s, job, J.CANCELLED, "cancelled by its owner", drop_queued_workers=True, tariff=tariff)
    log.info("job cancelled job=%s stopping=%d", job.id, len(to_cancel))
    return to_cancel


def stopped_run_report(s: Session, task: Task, worker_id: str) -> bool:
    """Whether a worker's report is the end of a run its owner's cancel stopped (billed for what ran).
    Accepted once: a run already billed (its report came before, or it was checkpointed when its job
    was cancelled) is refused, so a re-sent report or a cancelled checkpoint's resumed run changes
    neither its metering nor its bill."""
    return (task.status == T.CANCELLED and task.job.status == J.CANCELLED and task.worker_id == worker_id
            and task.redundancy == 1 and not billing.billed(s, task))


def fail_task(s: Session, task: Task, error: str, tariff: Tariff | None) -> list[tuple[str, str]]:
    """The task failed and so does its job. `tariff`: what it is charged at when the user's own script
    failed (its run used the contributor's machine); None when the fault was the workers' (see billing.py)."""
    transition(s, task, T.FAILED, tariff, error=error)
    to_cancel = cancel_replicas(s, task) if task.redundancy > 1 else []
    return to_cancel + fail_job(s, task.job, f"task {task.name!r} failed: {error}")


MEMORY_KILL = "memory limit"  # how every sandbox's failure starts when it killed a task at its limit


def retry_with_more_memory(s: Session, task: Task, error: str) -> bool:
    """A task whose memory RunSurge chose was killed at that limit: not the user's mistake. Run it
    again at once with twice the memory (up to the largest online worker's), unbilled; the killed
    run's peak stays recorded for the estimates until the retry's own replaces it. False when the
    memory was the user's word, or no worker offers more: then the task fails as usual."""
    if not (error.startswith(MEMORY_KILL) and task.memory_estimated and task.redundancy == 1):
        return False
    largest = s.scalar(select(func.max(Worker.memory_bytes)).where(Worker.online.is_(True))) or 0
    more = min(2 * task.memory_bytes, largest)
    if more <= task.memory_bytes:
        return False
    log.info("memory retry task=%s %d -> %d MiB", task.id, task.memory_bytes >> 20, more >> 20)
    task.error = (f"killed at its memory limit ({task.memory_bytes >> 20} MiB, RunSurge's estimate): "
                  f"running again with {more >> 20} MiB")
    task.memory_bytes = more
    transition(s, task, T.READY)
    return True


def cancel_replicas(s: Session, task: Task) -> list[tuple[str, str]]:
    """A quorum task stops (decided, failed, its job failed): its replicas still running stop too."""
    to_cancel = []
    for r in s.scalars(select(TaskReplica).where(TaskReplica.task_id == task.id, TaskReplica.status.in_(ACTIVE))):
        transition(s, r, R.CANCELLED)
        to_cancel.append((r.worker_id, task.id))
    return to_cancel


def worker_fault(s: Session, task: Task, worker_id: str, reason: str,
                 max_attempts: int) -> list[tuple[str, str]] | None:
    """A worker refused, lost or could not finish the task (plain runs and quorum replicas alike): the
    task is never offered to that worker again (placement avoids it), and its retry budget counts the
    distinct workers that faulted on it, so one worker faulting again and again cannot use it up.
    Budget used: the task fails unbilled with its job, and the cancels are returned; else None."""
    if s.scalar(select(TaskFault.id).where(TaskFault.task_id == task.id, TaskFault.worker_id == worker_id)) is None:
        s.add(TaskFault(task_id=task.id, worker_id=worker_id, reason=reason[:500]))
        s.flush()
    task.faults = s.scalar(select(func.count()).select_from(TaskFault).where(TaskFault.task_id == task.id))
    if task.faults >= max_attempts:
        return fail_task(s, task, f"gave up after faults on {task.faults} different workers; last: {reason}",
                         tariff=None)
    return None


def avoided(s: Session, task_ids: list[str]) -> dict[str, set[str]]:
    """Task id → the workers that faulted on it (placement never offers it to them again)."""
    out: dict[str, set[str]] = {}
    if task_ids:
        for task_id, worker_id in s.execute(select(TaskFault.task_id, TaskFault.worker_id)
                                            .where(TaskFault.task_id.in_(task_ids))):
            out.setdefault(task_id, set()).add(worker_id)
    return out


def requeue_task(s: Session, task: Task, reason: str, max_attempts: int,
                 blame: str | None = None) -> list[tuple[str, str]]:
    """The worker could not finish the task (lost, crashed, refused, could not fetch): run it elsewhere,
    unless it already used its retry budget, which fails the job. `blame`: the worker whose fault it was
    (default: the task's; a peer that served corrupt bytes, when its victim reports it)."""
    failed = worker_fault(s, task, blame or task.worker_id, reason, max_attempts)
    log.info("requeue task=%s attempt=%d faults=%d reason=%s", task.id, task.attempts, task.faults, reason)
    if failed is not None:
        return failed
    transition(s, task, T.READY, error=f"{reason}; it runs again on a worker that has not faulted on it")
    return []


def release_task(s: Session, task: Task, reason: str) -> None:
    """The worker gave the task back, not its fault (its owner stopped it or kept the machine busy too
    long): it runs again on any worker, with no fault counted and nothing billed for the run."""
    log.info("released task=%s by worker=%s: %s", task.id, task.worker_id, reason)
    transition(s, task, T.READY, started_at=None, checkpointed_at=None, error=f"{reason}; it runs again")


def reopen_lost_producers(s: Session, task: Task, live_workers: set[str],
                          available: Callable[[str], bool] | None = None) -> bool:
    """Lineage: if an input produced by another task is held by nobody reachable, re-run its
    producer (and the producer's own lost inputs, when the scheduler gets to it). True if reopened.
    `available(data_id)`: whether a worker that may serve it holds it (the scheduler's rule: the
    producer's workers, not anyone holding the same hash); by default any live worker's copy."""
    reopened = False
    for inp in task.inputs:
        if not inp.producer_task_id or not inp.data_id:
            continue
        if available is not None:
            if available(inp.data_id):
                continue
        else:
            holders = s.scalars(select(DataLocation.worker_id).where(DataLocation.data_id == inp.data_id)).all()
            if any(h in live_workers for h in holders):  # a worker's copy: the master's never serves an output
                continue
        producer = s.get(Task, inp.producer_task_id)
        if producer.status == T.DONE:
            log.info("lineage: re-running task=%s for lost data=%s", producer.id, inp.data_id[:12])
            transition(s, producer, T.READY)
            if task.job.status == J.DONE:
                transition(s, task.job, J.RUNNING)
        reopened = True
    if reopened:
        if task.status != T.PENDING:
            transition(s, task, T.PENDING)
        for inp in task.inputs:
            if inp.producer_task_id and s.get(Task, inp.producer_task_id).status != T.DONE:
                inp.data_id = None
    return reopened


def checkpoint_task(s: Session, task: Task, metering: Metering) -> None:
    """Its worker stopped and saved the run to resume it: the task stays that worker's (not ACTIVE:
    the worker's loss does not re-queue it) until it comes back or the grace window ends. `metering`
    (bounded, metering.py): what ran before the save, kept on the task: what a cancel while it is saved
    bills (a resumed run's report replaces it with the sum of its segments)."""
    log.info("checkpointed task=%s on worker=%s wall=%.2fs", task.id, task.worker_id, metering.wall_s)
    task.wall_s, task.cpu_s = metering.wall_s, metering.cpu_s
    task.mem_avg_bytes, task.mem_peak_bytes = metering.mem_avg_bytes, metering.mem_peak_bytes
    if task.started_at is None:  # its start was folded into this report
        task.started_at = utcnow() - timedelta(seconds=metering.wall_s)
    transition(s, task, T.CHECKPOINTED)


def resume_checkpoints(s: Session, worker_id: str, resuming: set[str]) -> None:
    """The worker registered again: the checkpoints it says it resumes run on (the run's start is
    kept: it is one run); any other checkpoint it held is gone, so that task runs elsewhere."""
    for task in s.scalars(select(Task).where(Task.worker_id == worker_id, Task.status == T.CHECKPOINTED)):
        if task.id in resuming:
            log.info("resumed task=%s on worker=%s", task.id, worker_id)
            transition(s, task, T.RUNNING)
        else:
            release_task(s, task, "its worker came back without its checkpoint")


def expire_checkpoints(s: Session, grace_s: float) -> int:
    """Checkpoints whose worker did not come back within `grace_s` run again elsewhere (released: no
    fault, nothing billed). Returns how many."""
    cutoff = utcnow() - timedelta(seconds=grace_s)
    tasks = s.scalars(select(Task).where(Task.status == T.CHECKPOINTED, Task.checkpointed_at < cutoff)).all()
    for task in tasks:
        release_task(s, task, f"its worker did not resume its checkpoint within {grace_s:g} s")
    return len(tasks)
