"""A task of the caller's: its logs (live from its worker while it runs) and its metering."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import PlainTextResponse

from runsurge_master import task_logs as task_logs_module
from runsurge_master import usage
from runsurge_master.deps import CurrentUser, ServicesDep, SessionDep
from runsurge_master.models import Task
from runsurge_master.schemas import TaskUsageOut, UsagePointOut, UsageRunOut

router = APIRouter()


@router.get("/api/tasks/{task_id}/logs", response_class=PlainTextResponse, responses={
    200: {"description": "the log from `offset` (text); X-Log-Offset: where the next read starts, "
                         "X-Task-Running: 1 while more may come, X-Task-Status: the task's status"},
    400: {"description": "stream is neither stdout nor stderr"},
    503: {"description": "the task runs on a worker the master cannot reach now (Retry-After)"}})
def task_logs(task_id: str, user: CurrentUser, sv: ServicesDep,
              stream: Annotated[str, Query(description="stdout or stderr", examples=["stdout"])] = "stdout",
              offset: Annotated[int, Query(ge=0, le=1 << 62, description="the first byte wanted "
                                           "(the X-Log-Offset of the previous read)")] = 0) -> PlainTextResponse:
    """A task's output so far: while it runs, read from the worker running it; once it ended, the
    log the master keeps. Follow a running task by reading again from X-Log-Offset."""
    if stream not in ("stdout", "stderr"):
        raise HTTPException(400, "stream must be stdout or stderr")
    chunk = task_logs_module.read(sv, task_id, user, stream, offset)
    return PlainTextResponse(chunk.text, headers={
        "X-Task-Status": chunk.status, "X-Log-Offset": str(chunk.next_offset),
        "X-Task-Running": "1" if chunk.running else "0"})


@router.get("/api/tasks/{task_id}/usage")
def task_usage(task_id: str, user: CurrentUser, s: SessionDep) -> TaskUsageOut:
    """CPU and memory over each run of a task, from its worker's metering samples (after the run)."""
    t = s.get(Task, task_id)
    if t is None or t.job.owner_id != user or t.job.status == "deleted":
        raise HTTPException(404, "no such task")
    return TaskUsageOut(task_id=t.id, runs=[UsageRunOut(
        attempt=r.attempt, worker_id=r.worker_id, started_at=r.started_at,
        points=[UsagePointOut(t_s=t_s, cpu_s=cpu, cpu_cores=cores, rss_bytes=rss)
                for t_s, cpu, cores, rss in usage.points(r.samples)])
        for r in usage.of_task(s, t.id)])
