"""A job as the API shows it (JobOut with its tasks, replicas, waiting reasons, phases and cost), in a
fixed number of queries however many tasks the job has."""

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from runsurge_master import environments, lifecycle, replicas, waiting
from runsurge_master.live import LiveState
from runsurge_master.models import Job, LedgerTransaction, Task
from runsurge_master.quorum import FAILED
from runsurge_master.schemas import EnvironmentOut, JobOut, ReplicaOut, TaskOut


def costs(s: Session, job_ids: list[str]) -> dict[str, int]:
    """Job id → micro-credits charged (the sum of its bill's lines), in one query for a page of jobs."""
    return dict(s.execute(select(LedgerTransaction.job_id, func.sum(LedgerTransaction.amount))
                          .where(LedgerTransaction.job_id.in_(job_ids), LedgerTransaction.kind == "charge")
                          .group_by(LedgerTransaction.job_id)).all()) if job_ids else {}


def job_out(s: Session, job: Job, with_tasks: bool, min_trust: int,
             counts: tuple[int, int, int] | None = None, cost: int | None = None,
             live: LiveState | None = None) -> JobOut:
    """`min_trust`: the master's quorum_min_trust (which workers count as available for a quorum).
    `live`: what workers last reported (the tasks' phases).
    Without tasks: `counts` = (tasks, done, redundancy), as list_jobs reads them for all jobs at once.
    A fixed number of queries however many tasks the job has (no load per task)."""
    if with_tasks:
        tasks = s.scalars(select(Task).where(Task.job_id == job.id).order_by(Task.seq).options(
            selectinload(Task.inputs), selectinload(Task.outputs))).all()
        total, done = len(tasks), sum(t.status == "done" for t in tasks)
        redundancy = max((t.redundancy for t in tasks), default=1)
    else:
        total, done, redundancy = counts
    out = JobOut(id=job.id, name=job.name, status=job.status, error=job.error, created_at=job.created_at,
                 finished_at=job.finished_at, tasks_total=total, tasks_done=done, redundancy=redundancy,
                 cost=costs(s, [job.id]).get(job.id, 0) if cost is None else cost,
                 environment_id=job.environment_id)
    if with_tasks:
        names = {t.id: t.name for t in tasks}
        quorum = [t.id for t in tasks if t.redundancy > 1]
        runs = replicas.of_tasks(s, quorum) if quorum else {}
        phases = {t.id: text for t in tasks if t.status in lifecycle.ACTIVE and live is not None
                  and (text := waiting.phase_text(live.phase(t.worker_id, t.id)))}
        reasons = waiting.reasons(s, tasks, min_trust, phases) if job.status == "running" else {}
        envs = {t.id: environments.of_task(t) for t in tasks}
        out.waiting = waiting.summary(reasons)
        out.tasks = [TaskOut(
            id=t.id, name=t.name, status=t.status, worker_id=t.worker_id, attempts=t.attempts,
            inputs={i.name: i.data_id for i in t.inputs}, outputs={o.name: o.data_id for o in t.outputs},
            memory_bytes=t.memory_bytes, exit_code=t.exit_code, wall_s=t.wall_s, cpu_s=t.cpu_s,
            mem_avg_bytes=t.mem_avg_bytes, mem_peak_bytes=t.mem_peak_bytes, error=t.error,
            depends_on=sorted({names[i.producer_task_id] for i in t.inputs if i.producer_task_id}),
            started_at=t.started_at, finished_at=t.finished_at, restore_s=t.restore_s, redundancy=t.redundancy,
            waiting=reasons.get(t.id), phase=phases.get(t.id), environment=_environment_out(envs[t.id]),
            replicas=[_replica_out(r) for r in runs.get(t.id, [])] if t.redundancy > 1 else None)
            for t in tasks]
    return out


def _environment_out(env) -> EnvironmentOut | None:  # an Environment
    return None if env is None else EnvironmentOut(id=env.id, requirements=env.requirements.splitlines())


def _replica_out(r) -> ReplicaOut:  # a TaskReplica
    return ReplicaOut(worker_id=r.worker_id, attempt=r.attempt, status=r.status, verdict=r.verdict,
                      outputs={name: data_id for name, (data_id, _) in (r.outputs or {}).items()},
                      failed=r.result == FAILED, exit_code=r.exit_code, wall_s=r.wall_s, cpu_s=r.cpu_s, error=r.error)
