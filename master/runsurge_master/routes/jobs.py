"""Jobs of the caller: list, read, cancel, delete, their results and where their data lives.
(Submitting and planning: submissions.py.)"""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse
from sqlalchemy import case, func, select

from runsurge_master import lifecycle, store_gc
from runsurge_master.deps import CurrentUser, ServicesDep, SessionDep
from runsurge_master.http_security import own_job
from runsurge_master.models import DataLocation, Job, Task
from runsurge_master.routes.job_views import costs, job_out
from runsurge_master.schemas import JobOut, LocationOut, ResultOut

router = APIRouter()


@router.get("/api/jobs")
def list_jobs(user: CurrentUser, sv: ServicesDep, s: SessionDep,
              limit: Annotated[int, Query(ge=1, le=500, description="jobs per page")] = 50,
              offset: Annotated[int, Query(ge=0, le=1 << 31, description="jobs to skip")] = 0) -> list[JobOut]:
    """Your jobs, newest first; `offset` skips that many (pages of `limit`, at most 500)."""
    jobs = s.scalars(select(Job).where(Job.owner_id == user, Job.status != "deleted")
                     .order_by(Job.created_at.desc(), Job.id).offset(offset).limit(limit)).all()
    counts = {job_id: (total, done, redundancy) for job_id, total, done, redundancy in s.execute(select(
        Task.job_id, func.count(), func.sum(case((Task.status == "done", 1), else_=0)),
        func.max(Task.redundancy)).where(Task.job_id.in_([j.id for j in jobs])).group_by(Task.job_id))}
    charged = costs(s, [j.id for j in jobs])
    return [job_out(s, j, with_tasks=False, min_trust=sv.cfg.quorum_min_trust,
                    counts=counts.get(j.id, (0, 0, 1)), cost=charged.get(j.id, 0)) for j in jobs]


@router.get("/api/jobs/{job_id}")
def get_job(job_id: str, user: CurrentUser, sv: ServicesDep, s: SessionDep) -> JobOut:
    return job_out(s, own_job(s, job_id, user), with_tasks=True, min_trust=sv.cfg.quorum_min_trust,
                   live=sv.scheduler.live)


@router.post("/api/jobs/{job_id}/cancel", responses={404: {"description": "no such job"},
                                                     409: {"description": "the job already finished"}})
def cancel_job(job_id: str, user: CurrentUser, sv: ServicesDep, s: SessionDep) -> JobOut:
    """Stop a running job: queued tasks are dropped, running ones stopped on their workers; the bill
    counts only what ran (done tasks, the stopped runs for the time they ran, and checkpointed runs
    for the time they ran before their save)."""
    job = own_job(s, job_id, user)
    if job.status != "running":
        raise HTTPException(409, f"job {job.id} already {job.status}: nothing to cancel")
    stops = lifecycle.cancel_job(s, job, sv.scheduler.tariff)
    s.flush()
    out = job_out(s, job, with_tasks=True, min_trust=sv.cfg.quorum_min_trust)
    s.commit()  # workers are told to stop only what the database says is cancelled
    sv.scheduler.channels.cancel(stops)
    return out


@router.delete("/api/jobs/{job_id}", status_code=204, responses={404: {"description": "no such job"},
                                                                 409: {"description": "the job still runs"}})
def delete_job(job_id: str, user: CurrentUser, sv: ServicesDep, s: SessionDep) -> None:
    """Delete a finished job with its stored data (scripts, uploads, results, logs); its bill stays."""
    job = own_job(s, job_id, user)
    if job.status == "running":
        raise HTTPException(409, f"job {job.id} still runs: cancel it first (runsurge cancel {job.id[:8]})")
    lifecycle.transition(s, job, lifecycle.J.DELETED)
    s.flush()
    gone, drop = store_gc.forget_job(s, job)
    s.commit()  # before the files go: a failed request deletes nothing
    for data_id in gone:
        sv.store.path(data_id).unlink(missing_ok=True)
    for worker_id, data_ids in drop.items():
        sv.scheduler.channels.delete(worker_id, data_ids)


@router.get("/api/jobs/{job_id}/results")
def list_results(job_id: str, user: CurrentUser, s: SessionDep) -> list[ResultOut]:
    job = own_job(s, job_id, user)
    return [ResultOut(task=t.name, name=o.name, data_id=o.data_id, size=o.size or 0)
            for t in job.tasks for o in t.outputs if o.is_result and o.data_id]


@router.get("/api/jobs/{job_id}/results/{task_name}/{file_name}")
def download_result(job_id: str, task_name: str, file_name: str, user: CurrentUser, sv: ServicesDep,
                    s: SessionDep) -> FileResponse:
    job = own_job(s, job_id, user)
    match = [o.data_id for t in job.tasks if t.name == task_name
             for o in t.outputs if o.name == file_name and o.is_result and o.data_id]
    if not match or not sv.store.has(match[0]):
        raise HTTPException(404, "no such result")
    return FileResponse(sv.store.path(match[0]), filename=file_name, media_type="application/octet-stream")


@router.get("/api/jobs/{job_id}/locations")
def data_locations(job_id: str, user: CurrentUser, s: SessionDep) -> list[LocationOut]:
    """Who holds each of the job's data objects (the master and/or workers' caches)."""
    job = own_job(s, job_id, user)
    ids = {i.data_id for t in job.tasks for i in t.inputs if i.data_id}
    ids |= {o.data_id for t in job.tasks for o in t.outputs if o.data_id}
    holders: dict[str, list[str]] = {d: [] for d in ids}
    for data_id, worker_id in s.execute(select(DataLocation.data_id, DataLocation.worker_id)
                                        .where(DataLocation.data_id.in_(ids))):
        holders[data_id].append(worker_id or "master")
    return [LocationOut(data_id=d, holders=sorted(h)) for d, h in sorted(holders.items())]
