"""Prefetch on a real database, through the scheduler's placement: free slots are filled first, then
each worker's queue (evenly, with memory reserved); a task left waiting in a busy worker's queue
moves to an idle worker; metrics count a slot busy only once its task started."""

from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from runsurge_master import lifecycle, planning
from runsurge_master.auth import TokenService
from runsurge_master.config import load_config
from runsurge_master.db import Database
from runsurge_master.jobspec import parse_spec
from runsurge_master.models import DataObject, Task, User, Worker, utcnow
from runsurge_master.scheduler import Scheduler

MiB = 1 << 20
SCRIPT = "1" * 64


class Net:
    """A job owner and two online workers, "a" and "b", with one slot each."""

    def __init__(self, tmp_path, prefetch: int, memory: int = 1024 * MiB):
        self.db = Database(f"sqlite:///{tmp_path / 'p.db'}")
        self.db.upgrade()
        self.cfg = load_config(home=tmp_path / "m", prefetch=prefetch)
        self.sched = Scheduler(self.db, self.cfg, TokenService(Ed25519PrivateKey.generate()), tls=None)
        self.workers: dict[str, str] = {}
        with self.db.session() as s:
            s.add(DataObject(id=SCRIPT, size=10))
            owner = User(email="owner@x.org", password_hash="x")
            s.add(owner)
            s.flush()
            self.owner = owner.id
            for name in ("a", "b"):
                w = Worker(owner_id=owner.id, fingerprint=name * 8, host="127.0.0.1", grpc_port=1,
                           memory_bytes=memory, cpus=1, slots=1, online=True, last_heartbeat=utcnow())
                s.add(w)
                s.flush()
                self.workers[name] = w.id
        self.names = {wid: n for n, wid in self.workers.items()}

    def job(self, n: int, memory: str = "100MiB") -> dict[str, str]:
        spec = "".join(f'[[tasks]]\nname = "t{i}"\nscript = "s.py"\nmemory = "{memory}"\n' for i in range(n))
        with self.db.session() as s:
            job = lifecycle.create_job(s, self.owner, parse_spec(spec, {"s.py"}, MiB, 3600, 100), {"s.py": SCRIPT})
            s.flush()
            return {t.name: t.id for t in job.tasks}

    def plan(self) -> list[tuple[str, str]]:
        """(task id, worker name) of each assignment the scheduler sends now, in order."""
        return [(d.request.task_id, self.names[d.worker_id]) for d in self.sched.plan()]

    def set(self, task_id: str, **values) -> None:
        with self.db.session() as s:
            t = s.get(Task, task_id)
            for k, v in values.items():
                setattr(t, k, v)


def test_free_slots_are_filled_first_then_each_queue_evenly(tmp_path):
    net = Net(tmp_path, prefetch=2)
    tasks = net.job(8)
    placed = net.plan()
    assert len(placed) == 6  # 2 slots + 2 × 2 queued; the last two wait in the master's queue
    assert sorted(w for _, w in placed[:2]) == ["a", "b"]  # the slots first: one task on each worker
    assert sorted(w for _, w in placed) == ["a", "a", "a", "b", "b", "b"]
    assert [tid for tid, _ in placed] == [tasks[f"t{i}"] for i in range(6)]  # in submission order
    assert net.plan() == []  # every queue is full
    net.set(placed[0][0], status="done")  # a task ends on its worker: one more fits there
    assert net.plan() == [(tasks["t6"], placed[0][1])]


def test_queues_fill_evenly_not_one_worker_first(tmp_path):
    net = Net(tmp_path, prefetch=2)
    net.job(4)
    assert sorted(w for _, w in net.plan()) == ["a", "a", "b", "b"]


def test_without_prefetch_only_free_slots_are_filled(tmp_path):
    net = Net(tmp_path, prefetch=0)
    net.job(4)
    assert sorted(w for _, w in net.plan()) == ["a", "b"]
    assert net.plan() == []


def test_a_queued_task_reserves_its_memory(tmp_path):
    net = Net(tmp_path, prefetch=2, memory=250 * MiB)  # room for two 100 MiB tasks per worker
    net.job(8)
    assert sorted(w for _, w in net.plan()) == ["a", "a", "b", "b"]  # one running + one queued each


def test_a_task_left_in_a_busy_worker_s_queue_moves_to_an_idle_worker(tmp_path):
    net = Net(tmp_path, prefetch=1)
    tasks = net.job(3)
    placed = dict(net.plan())
    on_a = [tid for tid, w in placed.items() if w == "a"]
    on_b = [tid for tid, w in placed.items() if w == "b"]
    long, queued = on_a if len(on_a) == 2 else on_b  # the worker that got two: one runs, one waits
    busy = placed[long]
    idle = "b" if busy == "a" else "a"
    net.set(long, status="running")
    (short,) = [t for t in tasks.values() if placed[t] == idle]
    net.set(short, status="done")  # the other worker is done and nothing is ready
    assert net.plan() == []  # queued just now: it will start soon enough where it is
    net.set(queued, assigned_at=utcnow() - timedelta(seconds=planning.STEAL_AFTER_S + 1))
    with net.db.session() as s:
        dispatches, cancels = net.sched.planner.plan(s)
    assert [(d.request.task_id, net.names[d.worker_id]) for d in dispatches] == [(queued, idle)]
    assert cancels == [(net.workers[busy], queued)]  # its copy in the busy worker's queue is withdrawn
    with net.db.session() as s:
        t = s.get(Task, queued)
        assert (t.status, t.worker_id, t.attempts) == ("assigned", net.workers[idle], 2)
        assert dispatches[0].request.attempt == 2  # the old copy's report (attempt 1) is refused


def test_a_started_task_is_never_moved(tmp_path):
    net = Net(tmp_path, prefetch=1)
    net.job(1)
    ((tid, _),) = net.plan()
    net.set(tid, status="running", assigned_at=utcnow() - timedelta(seconds=60))
    assert net.plan() == []  # the other worker stays idle


@pytest.mark.parametrize("status, busy", [("assigned", 0), ("running", 1)])
def test_a_slot_is_busy_once_its_task_started(tmp_path, status, busy):
    from fastapi.testclient import TestClient
    from prometheus_client.parser import text_string_to_metric_families

    from runsurge_master.api import create_app
    from runsurge_master.main import build

    sv = build(load_config(home=tmp_path / "m2"))
    with TestClient(create_app(sv)) as client:
        with sv.db.session() as s:
            owner = User(email="o@x.org", password_hash="x")
            s.add(owner)
            s.flush()
            w = Worker(owner_id=owner.id, fingerprint="w" * 8, host="h", grpc_port=1, memory_bytes=MiB << 10,
                       cpus=1, slots=1, online=True)
            s.add_all([w, DataObject(id=SCRIPT, size=10)])
            s.flush()
            job = lifecycle.create_job(s, owner.id, parse_spec('[[tasks]]\nname = "t"\nscript = "s.py"\n', {"s.py"},
                                                                MiB, 3600, 10), {"s.py": SCRIPT})
            s.flush()
            t = s.scalar(select(Task).where(Task.job_id == job.id))
            t.status, t.worker_id = status, w.id
        samples = {(x.name, tuple(sorted(x.labels.items()))): x.value
                   for fam in text_string_to_metric_families(client.get("/metrics").text) for x in fam.samples}
    assert samples[("runsurge_worker_slots", (("state", "busy"),))] == busy
    assert samples[("runsurge_tasks", (("state", status),))] == 1
