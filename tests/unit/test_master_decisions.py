"""The decisions the gRPC servicer used to hold, driven directly on a real database and a real CA,
without gRPC: registration (registration.py), heartbeats handled set-wise (heartbeats.py) and which
bytes a worker may move (run_data.py). The servicer only translates their answers."""

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event, select

from runsurge_master import heartbeats, lifecycle, run_data
from runsurge_master.auth import TokenService
from runsurge_master.billing import GIB
from runsurge_master.config import load_config
from runsurge_master.db import Database
from runsurge_master.denied import DeniedError
from runsurge_master.jobspec import parse_spec
from runsurge_master.models import DataLocation, DataObject, Task, TaskUpload, User, Worker, utcnow
from runsurge_master.registration import Registrar, check_registration
from runsurge_master.scheduler import Scheduler
from runsurge_master.tls import MasterTLS
from runsurge_pki.ca import make_csr, new_key
from runsurge_proto import master_pb2

SCRIPT, KNOWN, INPUT = "1" * 64, "2" * 64, "3" * 64
SPEC = """[[tasks]]
name = "only"
script = "s.py"
inputs = { "in.txt" = "in.txt" }
outputs = ["x.txt"]
"""


class Master:
    def __init__(self, tmp_path):
        self.db = Database(f"sqlite:///{tmp_path / 'm.db'}")
        self.db.upgrade()
        self.cfg = load_config(home=tmp_path / "m")
        self.tls = MasterTLS(self.cfg, self.db)
        self.sched = Scheduler(self.db, self.cfg, TokenService(Ed25519PrivateKey.generate()), self.tls)
        self.registrar = Registrar(self.tls, self.sched.liveness.worker_lost)
        with self.db.session() as s:
            s.add_all([DataObject(id=d, size=10) for d in (SCRIPT, KNOWN, INPUT)])
            s.flush()
            s.add_all([DataLocation(data_id=d, worker_id=None) for d in (SCRIPT, KNOWN, INPUT)])  # on the master
            owner, contributor = User(email="o@x.org", password_hash="x"), User(email="c@x.org", password_hash="x")
            s.add_all([owner, contributor])
            s.flush()
            self.owner, self.contributor = owner.id, contributor.id

    def register(self, fingerprint="f" * 16, owner=None, csr=None, **fields):
        r = master_pb2.NodeRegisterRequest(fingerprint=fingerprint, host="127.0.0.1", grpc_port=4000,
                                           memory_bytes=GIB, cpus=1, slots=1, sandbox="process",
                                           csr_pem=csr or make_csr(new_key(), "x"), **fields)
        with self.db.session() as s:
            return self.registrar.register(s, owner or self.contributor, r)

    def job(self) -> str:
        with self.db.session() as s:
            job = lifecycle.create_job(s, self.owner, parse_spec(SPEC, {"s.py", "in.txt"}, 1 << 20, 3600, 100),
                                    {"s.py": SCRIPT, "in.txt": INPUT})
            s.flush()
            return job.tasks[0].id

    def beat(self, *beats):
        with self.db.session() as s:
            return heartbeats.handle(s, list(beats), self.sched.live)


def beat(worker_id, **fields):
    return master_pb2.NodeHeartbeatRequest(worker_id=worker_id, **fields), True


@pytest.fixture
def m(tmp_path):
    return Master(tmp_path)


def test_a_new_worker_is_recorded_offline_until_its_first_beat_with_only_the_data_the_master_knows(m):
    done = m.register(cached_data_ids=[KNOWN, "9" * 64, "not an id"])
    assert b"BEGIN CERTIFICATE" in done.certificate_pem and done.cancels == []
    with m.db.session() as s:
        w = s.get(Worker, done.worker_id)
        assert (w.online, w.slots, w.cert_serial is not None) == (False, 1, True)
        assert set(s.scalars(select(DataLocation.data_id).where(DataLocation.worker_id == w.id))) == {KNOWN}
    ((resp, wake),) = m.beat(beat(done.worker_id))
    assert (resp.reregister, wake) == (False, True)  # online now: the scheduler has a worker to use
    with m.db.session() as s:
        assert s.get(Worker, done.worker_id).online


def test_a_restart_requeues_what_the_worker_ran_as_a_fault(m):
    worker_id = m.register().worker_id
    m.beat(beat(worker_id))
    task_id = m.job()
    (d,) = m.sched.plan()
    assert d.worker_id == worker_id
    again = m.register()  # the same fingerprint: the same worker, a new process
    assert again.worker_id == worker_id and again.cancels == []  # its old process, and the task with it, is gone
    with m.db.session() as s:
        t = s.get(Task, task_id)
        assert (t.status, t.worker_id, t.faults) == ("ready", None, 1)


def test_refused_registrations_change_nothing(m):
    with pytest.raises(DeniedError) as e:
        m.register(csr=b"not a csr")
    assert e.value.code == "INVALID_ARGUMENT"
    with pytest.raises(DeniedError) as e:
        m.register(owner="no-such-account")
    assert e.value.code == "UNAUTHENTICATED"
    with m.db.session() as s:
        assert s.scalars(select(Worker)).all() == []
    bad = master_pb2.NodeRegisterRequest(fingerprint="f" * 16, host="169.254.169.254", grpc_port=1,
                                         memory_bytes=1, cpus=1, slots=1)
    assert "host must be" in check_registration(bad)


def test_beats_of_many_workers_are_handled_in_one_transaction_each_answered_for_itself(m):
    ids = [m.register(fingerprint=f"{i:016d}").worker_id for i in range(3)]
    m.beat(*[beat(w) for w in ids])
    task_id = m.job()
    (d,) = m.sched.plan()
    holder, others = d.worker_id, [w for w in ids if w != d.worker_id]
    with m.db.session() as s:  # a worker declared offline meanwhile (its tasks were let go)
        m.sched.liveness.worker_lost(s, s.get(Worker, others[0]), "test")
    with m.db.session() as s:
        s.get(Worker, others[0]).last_heartbeat = utcnow()
    statements = []
    event.listen(m.db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    replies = m.beat(beat(holder, running_task_ids=[task_id, "stale"], running_tasks=2, suspended="owner busy"),
                     beat(others[0]), beat(others[1], running_task_ids=[task_id]),
                     (master_pb2.NodeHeartbeatRequest(worker_id=others[1]), False))
    (r0, wake0), (r1, _), (r2, _), (r3, _) = replies
    assert list(r0.cancel_task_ids) == ["stale"] and wake0  # its own task stays; a suspension wakes the scheduler
    assert r1.reregister  # offline meanwhile: it must register again
    assert list(r2.cancel_task_ids) == [task_id]  # not its task
    assert r3.reregister  # a certificate without an identity
    assert sum(q.startswith("SELECT workers.") for q in statements) == 1  # one read of all four workers
    assert sum(q.startswith("UPDATE workers") for q in statements) == 1  # one write (executemany by key)
    assert sum("FROM tasks" in q for q in statements) == 1  # one look-up of every task named
    with m.db.session() as s:
        w = s.get(Worker, holder)
        assert (w.running_tasks, w.suspended) == (2, "owner busy")


def test_concurrent_beats_share_the_writer_s_transactions(m):
    ids = [m.register(fingerprint=f"{i:016d}").worker_id for i in range(40)]
    commits = []
    event.listen(m.db.engine, "commit", lambda *_: commits.append(1))
    beats = heartbeats.Heartbeats(m.sched.commits, m.sched.live)

    async def all_beat():
        return await asyncio.gather(*(beats.beat(master_pb2.NodeHeartbeatRequest(worker_id=w), True) for w in ids))
    replies = asyncio.run(all_beat())
    assert [wake for _, wake in replies] == [True] * 40 and len(commits) <= 3  # the first alone, then the rest
    with m.db.session() as s:
        assert all(s.scalars(select(Worker.online)))


def test_a_worker_streams_only_its_own_task_s_bytes_and_uploads_only_within_its_budget(m):
    worker_id, stranger = m.register().worker_id, m.register(fingerprint="s" * 16).worker_id
    m.beat(beat(worker_id))
    task_id = m.job()
    m.sched.plan()
    with m.db.session() as s:
        assert run_data.may_stream(s, worker_id, task_id, INPUT, script=False)
        assert run_data.may_stream(s, worker_id, task_id, SCRIPT, script=True)
        assert not run_data.may_stream(s, worker_id, task_id, KNOWN, script=False)  # not its input
        assert not run_data.may_stream(s, stranger, task_id, INPUT, script=False)  # not its task
        with pytest.raises(DeniedError):
            run_data.upload_attempt(s, m.cfg, stranger, task_id, KNOWN)
    objects = [c * 64 for c in "abcd"]
    for data_id in objects[:3]:  # one result and two logs
        with m.db.session() as s:
            attempt = run_data.upload_attempt(s, m.cfg, worker_id, task_id, data_id)
            run_data.record_upload(s, worker_id, task_id, attempt, data_id, 5)
    with m.db.session() as s:
        with pytest.raises(DeniedError) as e:
            run_data.upload_attempt(s, m.cfg, worker_id, task_id, objects[3])
        assert e.value.code == "RESOURCE_EXHAUSTED"
        assert run_data.upload_attempt(s, m.cfg, worker_id, task_id, objects[0]) == attempt  # the same again: fine
        assert len(s.scalars(select(TaskUpload)).all()) == 3
