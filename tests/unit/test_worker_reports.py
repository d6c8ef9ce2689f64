"""A worker's TaskComplete report handled on a real database (outcomes.RunOutcomes, no gRPC): a CANCELLED
report the master did not ask for is a lost run, with the job's bookkeeping, not a silent end."""

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runsurge_master import lifecycle
from runsurge_master.auth import TokenService
from runsurge_master.billing import GIB, Tariff
from runsurge_master.config import load_config
from runsurge_master.db import Database
from runsurge_master.jobspec import parse_spec
from runsurge_master.models import DataObject, Job, Task, User, Worker, utcnow
from runsurge_master.outcomes import RunOutcomes
from runsurge_master.scheduler import Scheduler
from runsurge_master.store import ObjectStore
from runsurge_proto import master_pb2

SCRIPT = "1" * 64
SPEC = """[[tasks]]
name = "only"
script = "s.py"
outputs = ["x.txt"]
"""


def test_an_unasked_cancel_report_requeues_the_task_as_a_lost_run(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    db.upgrade()
    cfg = load_config(home=tmp_path / "m", price_cpu_hour=1_000_000, price_gib_hour=250_000, platform_fee_percent=10)
    tokens = TokenService(Ed25519PrivateKey.generate())
    sched = Scheduler(db, cfg, tokens, tls=None)
    outcomes = RunOutcomes(cfg, ObjectStore(tmp_path / "objects"), Tariff.from_config(cfg), sched.channels.delete)
    with db.session() as s:
        s.add(DataObject(id=SCRIPT, size=10))
        owner, contributor = User(email="o@x.org", password_hash="x"), User(email="c@x.org", password_hash="x")
        s.add_all([owner, contributor])
        s.flush()
        w = Worker(owner_id=contributor.id, fingerprint="c" * 16, host="127.0.0.1", grpc_port=1, memory_bytes=GIB,
                   cpus=1, slots=1, online=True, last_heartbeat=utcnow())
        s.add(w)
        job = lifecycle.create_job(s, owner.id, parse_spec(SPEC, {"s.py"}, 1 << 20, 3600, 100), {"s.py": SCRIPT})
        s.flush()
        job_id, task_id, worker_id = job.id, job.tasks[0].id, w.id
    (d,) = sched.plan()
    assert (d.request.task_id, d.worker_id) == (task_id, worker_id)
    with db.session() as s:
        outcomes.started(s, master_pb2.TaskStartedRequest(worker_id=worker_id, task_id=task_id))
    with db.session() as s:
        assert s.get(Task, task_id).status == "running"
        outcomes.completed(s, master_pb2.TaskCompleteRequest(
            worker_id=worker_id, task_id=task_id, status=master_pb2.TASK_STATUS_CANCELLED, wall_s=5, cpu_s=5,
            attempt=d.request.attempt))
    with db.session() as s:
        t, job = s.get(Task, task_id), s.get(Job, job_id)
        assert (t.status, t.worker_id, t.faults) == ("ready", None, 1)
        assert "the worker cancelled it" in t.error
        assert job.status == "running" and job.finished_at is None
