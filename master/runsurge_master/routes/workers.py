"""Workers: what one needs to join, and the caller's own workers and their load."""

from fastapi import APIRouter, HTTPException
from sqlalchemy import select

from runsurge_master import benching, usage
from runsurge_master.config import is_wildcard
from runsurge_master.deps import CurrentUser, ServicesDep, SessionDep
from runsurge_master.models import Worker, utcnow
from runsurge_master.schemas import JoinInfo, WorkerOut, WorkerUsageOut, WorkerUsagePointOut
from runsurge_pki.ca import fingerprint

router = APIRouter()


@router.get("/api/join")
def join(sv: ServicesDep) -> JoinInfo:
    """For `runsurge-worker --master-url URL --ca-fingerprint sha256:...`: the rest of the addresses."""
    host = sv.cfg.grpc_host
    return JoinInfo(grpc_host=None if is_wildcard(host) else host, grpc_port=sv.cfg.grpc_port,
                    enroll_port=sv.cfg.enroll_port, ca_pem=sv.tls.ca_pem.decode(),
                    ca_fingerprint=fingerprint(sv.tls.ca_pem))


@router.get("/api/workers/{worker_id}/usage", responses={404: {"description": "no such worker of yours"}})
def worker_usage(worker_id: str, user: CurrentUser, s: SessionDep) -> WorkerUsageOut:
    """CPU and memory of one of your workers over its tasks' runs of the last 24 hours."""
    w = s.get(Worker, worker_id)
    if w is None or w.owner_id != user:
        raise HTTPException(404, "no such worker of yours")
    return WorkerUsageOut(worker_id=w.id, points=[
        WorkerUsagePointOut(at=at, cpu_cores=cpu, rss_bytes=rss)
        for at, cpu, rss in usage.of_worker(s, w.id, utcnow())])


@router.get("/api/workers")
def my_workers(user: CurrentUser, sv: ServicesDep, s: SessionDep) -> list[WorkerOut]:
    return [WorkerOut(id=w.id, host=w.host, grpc_port=w.grpc_port, online=w.online, sandbox=w.sandbox,
                      memory_bytes=w.memory_bytes, cpus=w.cpus, slots=w.slots,
                      running_tasks=w.running_tasks, tasks_done=w.tasks_done, trust=w.trust,
                      last_heartbeat=w.last_heartbeat, benched=benching.benched(w),
                      benched_until=w.benched_until, bench_reason=w.bench_reason,
                      fault_streak=w.fault_streak or 0, suspended=w.suspended,
                      environments=sorted(sv.scheduler.live.environments(w.id)))
            for w in s.scalars(select(Worker).where(Worker.owner_id == user).order_by(Worker.registered_at))]
