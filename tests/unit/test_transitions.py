"""lifecycle.py's transition tables, enumerated on a real SQLite database: every listed transition of a
task, a quorum replica and a job moves it and does its bookkeeping; every pair the tables do not list
raises IllegalTransition and changes nothing."""

import itertools

import pytest
from sqlalchemy import inspect, select

from runsurge_master import lifecycle, metrics
from runsurge_master.billing import GIB, Tariff
from runsurge_master.db import Database
from runsurge_master.lifecycle import (
    JOB_TRANSITIONS,
    REPLICA_TRANSITIONS,
    TASK_TRANSITIONS,
    IllegalTransition,
    J,
    R,
    Stamp,
    T,
)
from runsurge_master.models import DataObject, Job, LedgerTransaction, Task, TaskReplica, User, Worker, utcnow

TARIFF = Tariff(cpu_hour=1_000_000, gib_hour=250_000, fee_percent=10)
KINDS = {Task: (T, TASK_TRANSITIONS), TaskReplica: (R, REPLICA_TRANSITIONS), Job: (J, JOB_TRANSITIONS)}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('transitions') / 't.db'}")
    db.upgrade()
    with db.session() as s:
        owner, contrib = User(email="o@x.org", password_hash="x"), User(email="c@x.org", password_hash="x")
        s.add_all([owner, contrib, DataObject(id="0" * 64, size=1)])
        s.flush()
        s.add(Worker(owner_id=contrib.id, fingerprint="f" * 16, host="127.0.0.1", grpc_port=1, memory_bytes=GIB,
                     cpus=1, slots=1))
    return db


def make(s, model, state: str):
    """A fresh object of `model` in `state` (a one-task job; the task has run a minute on the worker)."""
    owner = s.scalar(select(User).where(User.email == "o@x.org"))
    worker = s.scalar(select(Worker))
    job = Job(owner_id=owner.id, name="j", status=state if model is Job else J.RUNNING)
    s.add(job)
    s.flush()
    now = utcnow()
    task = Task(job_id=job.id, seq=0, name="t", script_name="s.py", script_data_id="0" * 64, memory_bytes=GIB,
                timeout_s=3600.0, status=state if model is Task else T.RUNNING, worker_id=worker.id, attempts=1,
                ready_at=now, assigned_at=now, started_at=now, wall_s=60.0, cpu_s=60.0, mem_peak_bytes=1 << 20)
    s.add(task)
    s.flush()
    if model is Job:
        return job
    if model is Task:
        return task
    replica = TaskReplica(task_id=task.id, attempt=1, worker_id=worker.id, status=state)
    s.add(replica)
    s.flush()
    return replica


def row(obj) -> dict:
    return {a.key: getattr(obj, a.key) for a in inspect(obj).mapper.column_attrs}


LISTED = [(m, frm, to) for m, (_, table) in KINDS.items() for frm, to in table]
UNLISTED = [(m, frm, to) for m, (states, table) in KINDS.items()
            for frm, to in itertools.product(states, states) if (frm, to) not in table]


@pytest.mark.parametrize(("model", "frm", "to"), LISTED, ids=lambda v: getattr(v, "__name__", str(v)))
def test_a_listed_transition_moves_and_does_its_bookkeeping(db, model, frm, to):
    handler = KINDS[model][1][(frm, to)]
    with db.session() as s:
        obj = make(s, model, frm)
        obj_id, before = obj.id, row(obj)
        lifecycle.transition(s, obj, to, TARIFF)  # charged at it if it ends done or failed
        latencies = list(s.info.get(metrics._PENDING, ()))
    with db.session() as s:
        obj = s.get(model, obj_id)
        after = row(obj)
        assert after["status"] == to
        if isinstance(handler, Stamp):
            assert all(after[c] is not None and after[c] != before[c] for c in handler.now)
            assert all(after[c] is None for c in handler.clear)
        if model is Task and to == T.READY:
            assert after["ready_at"] > before["ready_at"] and after["worker_id"] is None
        if model is Task and to == T.ASSIGNED:
            assert after["assigned_at"] > before["assigned_at"]
            assert len(latencies) == (1 if frm == T.READY else 0)  # a move between queues is not a placement
        if model is Task and to in (T.DONE, T.FAILED, T.CANCELLED):
            assert after["finished_at"] is not None
            charges = s.scalars(select(LedgerTransaction).where(LedgerTransaction.task_id == obj_id,
                                                                LedgerTransaction.kind == "charge")).all()
            # Billed once it ran to an end; a cancelled checkpoint's run ended with its save.
            assert len(charges) == (0 if to == T.CANCELLED and frm != T.CHECKPOINTED else 1)
        if model is Task and to == T.DONE:
            assert obj.job.status == J.DONE and obj.job.finished_at is not None  # its only task
        changed = {k for k in after if after[k] != before[k]}
        expected = {"status", *(handler.now + handler.clear if isinstance(handler, Stamp) else ())}
        if model is Task:
            expected |= {"ready_at", "worker_id"} if to == T.READY else {"assigned_at"} if to == T.ASSIGNED \
                else {"finished_at"} if to in (T.DONE, T.FAILED, T.CANCELLED) else set()
        assert changed <= expected, f"{changed - expected} changed too"


@pytest.mark.parametrize(("model", "frm", "to"), UNLISTED, ids=lambda v: getattr(v, "__name__", str(v)))
def test_an_unlisted_pair_raises_and_changes_nothing(db, model, frm, to):
    with db.session() as s:
        obj = make(s, model, frm)
        before = row(obj)
        with pytest.raises(IllegalTransition, match=f"{frm} -> {to} is not a transition"):
            lifecycle.transition(s, obj, to)
        assert row(obj) == before and not s.dirty


def test_the_tables_name_only_known_states():
    for states, table in KINDS.values():
        assert {state for pair in table for state in pair} <= set(states)
