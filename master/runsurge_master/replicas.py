"""Quorum tasks in the database: their replicas (TaskReplica rows) from placement to the decision. The
rules (what agrees, who wins, trust, where a replica may go) are quorum.py's; this module applies them.

A quorum task is `ready` while replicas remain to be placed, `assigned`/`running` while all it needs
run, and ends like any task (done, failed, cancelled) once its replicas decided. Task.worker_id stays
NULL until then (then: the first agreeing replica's worker). Replica states: assigned → running →
done (it reported a result: a vote) | lost (a worker fault: no vote; the task's retry budget counts
them) | cancelled. A decision sets each voting replica's verdict (agree, odd, differ); replicas with
no verdict are the current round (a lineage re-run starts a new one). Tasks of redundancy 1 never get
here: every entry point returns before querying for them.
"""

from __future__ import annotations

import logging

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from runsurge_master import lifecycle, quorum
from runsurge_master.billing import Tariff
from runsurge_master.lifecycle import Cancels, R, T
from runsurge_master.models import METERING, Task, TaskReplica, Worker
from runsurge_master.placement import Capacity, ReadyTask
from runsurge_master.quorum import ReplicaNeed

log = logging.getLogger("runsurge.replicas")
ACTIVE = lifecycle.ACTIVE
IN_PLAY = ("assigned", "running", "done")  # with no verdict yet: the current round's replicas


# -- which replica is whose ----------------------------------------------------------------------
def active(s: Session, task: Task | None, worker_id: str) -> TaskReplica | None:
    """The quorum task's replica assigned to or running on this worker, if any."""
    if task is None or task.redundancy < 2:
        return None
    return s.scalars(select(TaskReplica).where(TaskReplica.task_id == task.id, TaskReplica.worker_id == worker_id,
                                               TaskReplica.status.in_(ACTIVE))).first()


def active_on(s: Session, worker_id: str) -> list[TaskReplica]:
    return list(s.scalars(select(TaskReplica).where(TaskReplica.worker_id == worker_id,
                                                    TaskReplica.status.in_(ACTIVE))))


def load(s: Session, worker_ids: list[str]) -> list[tuple[str, int, int, int]]:
    """(worker id, replicas assigned, of which running, memory reserved) per worker with active replicas."""
    return [tuple(row) for row in s.execute(
        select(TaskReplica.worker_id, func.count(), func.sum(case((TaskReplica.status == "running", 1), else_=0)),
               func.coalesce(func.sum(Task.memory_bytes), 0))
        .join(Task, Task.id == TaskReplica.task_id)
        .where(TaskReplica.status.in_(ACTIVE), TaskReplica.worker_id.in_(worker_ids))
        .group_by(TaskReplica.worker_id))]


def _in_play(s: Session, task_ids: list[str]) -> dict[str, list[tuple[TaskReplica, str]]]:
    """Task id → its current round's replicas, each with its worker's contributor, in run order."""
    out: dict[str, list[tuple[TaskReplica, str]]] = {}
    for r, owner in s.execute(select(TaskReplica, Worker.owner_id).join(Worker, Worker.id == TaskReplica.worker_id)
                              .where(TaskReplica.task_id.in_(task_ids), TaskReplica.verdict.is_(None),
                                     TaskReplica.status.in_(IN_PLAY))
                              .order_by(TaskReplica.attempt)):
        out.setdefault(r.task_id, []).append((r, owner))
    return out


def _results(replicas: list[TaskReplica]) -> list[tuple[int, str]]:
    return [(r.id, r.result) for r in replicas if r.status == "done"]


# -- placement (called by the scheduler) ---------------------------------------------------------
def needs(s: Session, tasks: list[tuple[str, int]]) -> dict[str, ReplicaNeed]:
    """For ready quorum tasks (id, redundancy): how many replicas to place now, and which contributors
    they must avoid (those running the task or holding an undecided result)."""
    if not tasks:
        return {}
    in_play = _in_play(s, [tid for tid, _ in tasks])
    out = {}
    for task_id, redundancy in tasks:
        reps = in_play.get(task_id, [])
        results = _results([r for r, _ in reps])
        wanted = quorum.decide(results, redundancy).wanted
        out[task_id] = ReplicaNeed(count=max(0, wanted - len(reps)), busy={owner for _, owner in reps},
                                   differ=len({key for _, key in results}) > 1)
    return out


def place(todo: list[ReadyTask], caps: list[Capacity], needs: dict[str, ReplicaNeed], workers: dict[str, Worker],
          min_trust: int) -> list[tuple[str, str]]:
    """placement.place for a window holding quorum tasks (quorum.place_in_order)."""
    return quorum.place_in_order(todo, caps, needs, {w.id: w.owner_id for w in workers.values()},
                                 {w.id for w in workers.values() if w.trust >= min_trust})


def start(s: Session, task: Task, worker_id: str, need: ReplicaNeed) -> None:
    """Record a replica just placed (its attempt: the task's run number, already counted); the task
    is assigned once all the replicas it needs are."""
    lifecycle.new_replica(s, task, worker_id)
    need.count -= 1
    if need.count <= 0 and task.status == T.READY:
        lifecycle.transition(s, task, T.ASSIGNED)


def started(s: Session, task_id: str, worker_id: str) -> None:
    """TaskStarted from a replica's worker."""
    if lifecycle.transition_rows(s, TaskReplica, (R.ASSIGNED,), R.RUNNING, TaskReplica.task_id == task_id,
                                 TaskReplica.worker_id == worker_id):
        lifecycle.transition_rows(s, Task, (T.ASSIGNED,), T.RUNNING, Task.id == task_id)


# -- reports and faults --------------------------------------------------------------------------
def report(s: Session, task: Task, replica: TaskReplica, outcome: str, detail, max_attempts: int,
           blame: str | None = None, *, tariff: Tariff) -> Cancels:
    """A replica's TaskComplete, classified by the gRPC service: ("lost" | "cancelled", reason),
    ("failed", error: the user's script failed) or ("ok", outputs: name → (data id, size)). `blame`:
    the worker a loss is counted against (default: the replica's). `tariff`: what a decided task is
    charged at."""
    if outcome == "released":  # its worker gave it back (stopping, suspended too long): no fault
        lifecycle.transition(s, replica, R.LOST, error=detail)
        return _settle(s, task, tariff)
    if outcome in ("lost", "cancelled"):  # a replica the master did not cancel has no business stopping
        return lose(s, task, replica, detail or "the worker cancelled it", max_attempts, blame, tariff=tariff)
    lifecycle.transition(s, replica, R.DONE)
    if outcome == "failed":
        replica.result, replica.error = quorum.FAILED, detail
    else:
        replica.result = quorum.result_key(detail)
        replica.outputs = {name: [data_id, size] for name, (data_id, size) in detail.items()}
    log.info("replica done task=%s attempt=%d worker=%s result=%s", task.id, replica.attempt, replica.worker_id,
             replica.result[:12])
    return _settle(s, task, tariff)


def lose(s: Session, task: Task, replica: TaskReplica, reason: str, max_attempts: int,
         blame: str | None = None, *, tariff: Tariff) -> Cancels:
    """The replica's worker could not finish it (lost, crashed, could not fetch): place another, unless
    the task used its retry budget (max_attempts worker faults), which fails the job unbilled."""
    lifecycle.transition(s, replica, R.LOST, error=reason)
    task.error = reason
    log.info("replica lost task=%s attempt=%d worker=%s reason=%s", task.id, replica.attempt, replica.worker_id, reason)
    failed = lifecycle.worker_fault(s, task, blame or replica.worker_id, reason, max_attempts)
    return failed if failed is not None else _settle(s, task, tariff)  # the others may decide it


def lose_all(s: Session, replicas: list[TaskReplica], reason: str, max_attempts: int, *, tariff: Tariff) -> Cancels:
    cancels: Cancels = []
    for r in replicas:
        if r.status in ACTIVE:  # not if an earlier one used up the task's retry budget (which cancels the rest)
            cancels += lose(s, s.get(Task, r.task_id), r, reason, max_attempts, tariff=tariff)
    return cancels


def _settle(s: Session, task: Task, tariff: Tariff) -> Cancels:
    """Decide the task if its replicas can, else make sure the replicas it still needs get placed."""
    reps = [r for r, _ in _in_play(s, [task.id]).get(task.id, [])]
    d = quorum.decide(_results(reps), task.redundancy)
    if d.winners:
        return _decided(s, task, reps, d, tariff)
    if d.no_majority:
        for r in reps:
            r.verdict = "differ"
        log.warning("quorum: no majority for task=%s among %d replicas", task.id, len(reps))
        return lifecycle.fail_task(s, task, quorum.NO_MAJORITY, tariff=None)  # nobody's result is vouched for
    if d.wanted > len(reps) and task.status not in (T.PENDING, T.READY):  # pending: lost inputs first (lineage)
        lifecycle.transition(s, task, T.READY)
    return []


def _decided(s: Session, task: Task, reps: list[TaskReplica], d: quorum.Decision, tariff: Tariff) -> Cancels:
    """The majority is the task's result; trust follows each replica's vote; the agreeing replicas'
    workers hold the outputs (dependants fetch from either) and are billed (billing.charge_task)."""
    cancels = lifecycle.cancel_replicas(s, task)  # none normally: a decision waits for every placed replica
    winners = [r for r in reps if r.id in d.winners]
    for r in reps:
        if r.id not in d.winners and r.id not in d.losers:
            continue
        agreed = r.id in d.winners
        r.verdict = "agree" if agreed else "odd"
        w = s.get(Worker, r.worker_id)
        before, w.trust = w.trust, quorum.trust_after(w.trust, agreed)
        if not agreed:
            log.warning("SECURITY quorum: worker=%s outvoted on task=%s; trust %d -> %d", w.id, task.id, before,
                        w.trust)
    first = winners[0]
    for name in METERING:
        setattr(task, name, getattr(first, name))
    task.worker_id = first.worker_id
    if first.result == quorum.FAILED:
        return cancels + lifecycle.fail_task(s, task, first.error or "the script failed", tariff)
    outputs = {name: (data_id, size) for name, (data_id, size) in first.outputs.items()}
    for r in winners:
        w = s.get(Worker, r.worker_id)
        w.tasks_done += 1
        if w.online:  # an offline worker's copies are gone (lineage recomputes them if needed)
            lifecycle.record_outputs(s, task, w.id, outputs)
    log.info("quorum: task=%s decided by %d of %d replicas", task.id, len(winners), len(reps))
    lifecycle.finish_task_ok(s, task, outputs, tariff)
    return cancels


# -- views ---------------------------------------------------------------------------------------
def of_tasks(s: Session, task_ids: list[str]) -> dict[str, list[TaskReplica]]:
    """Every replica of these tasks, in run order (for the job API)."""
    out: dict[str, list[TaskReplica]] = {}
    for r in s.scalars(select(TaskReplica).where(TaskReplica.task_id.in_(task_ids)).order_by(TaskReplica.attempt)):
        out.setdefault(r.task_id, []).append(r)
    return out


def waiting(s: Session, tasks: list[Task], min_trust: int) -> dict[str, str]:
    """Why ready quorum tasks wait, when it is for workers of other contributors (not just a free slot)."""
    todo = [(t.id, t.redundancy) for t in tasks if t.redundancy > 1 and t.status == "ready"]
    if not todo:
        return {}
    online = set(s.scalars(select(Worker.owner_id).where(Worker.online, Worker.trust >= min_trust).distinct()))
    out = {}
    for task_id, need in needs(s, todo).items():
        available = len(online - need.busy)
        if need.count > available:
            out[task_id] = (f"the results so far differ: waiting for a worker of another contributor to decide "
                            f"({available} available)" if need.differ else f"waiting for workers of {need.count} "
                            f"more different contributor(s) ({available} available)")
    return out
