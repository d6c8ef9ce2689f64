"""Cancelling a checkpointed task (issue 17), through lifecycle on a real SQLite database: the
checkpoint report's metering is kept on the task, the owner's cancel bills it once to the worker that
ran it, a later report of that run (its worker resumed it anyway, or re-sent a report) is refused, a
checkpoint released after its grace window bills nothing, and a job failing bills nothing for it."""

import pytest
from test_billing import TARIFF
from test_billing import World as BillingWorld

from runsurge_master import billing, lifecycle
from runsurge_master.billing import GIB
from runsurge_master.db import Database
from runsurge_master.lifecycle import J, T
from runsurge_master.metering import Metering
from runsurge_master.models import Job, Task, utcnow

# test_billing's tariff; 36 s of wall and CPU time (1 % of an hour) at 1 GiB reserved, on a worker at price factor 2:
# 2 × (10 000 + 2 500) µc.
SAVED = Metering(wall_s=36.0, cpu_s=36.0, mem_avg_bytes=1 << 20, mem_peak_bytes=2 << 20)
CHARGE, FEE = 25_000, 2_500


class World(BillingWorld):
    """test_billing's world; the task runs on its second worker (price factor 2), so its earning
    must not go to the first (`other`)."""

    def __init__(self, db: Database):
        super().__init__(db)
        self.worker_id, self.other = self.worker2.id, self.worker

    def checkpointed_job(self, n_tasks: int = 1) -> tuple[str, list[str]]:
        """A job whose first task ran on the worker and was saved there (the checkpoint report)."""
        job_id, task_ids = self.job(n_tasks)
        with self.db.session() as s:
            t = s.get(Task, task_ids[0])
            lifecycle.transition(s, t, T.ASSIGNED, worker_id=self.worker_id, attempts=1)
            lifecycle.transition(s, t, T.RUNNING)
            lifecycle.checkpoint_task(s, t, SAVED)
        return job_id, task_ids


@pytest.fixture
def world(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    db.upgrade()
    return World(db)


def test_the_checkpoint_report_s_metering_is_kept_on_the_task(world):
    _, (t,) = world.checkpointed_job()
    with world.db.session() as s:
        task = s.get(Task, t)
        assert (task.status, task.worker_id) == (T.CHECKPOINTED, world.worker_id)
        assert (task.wall_s, task.cpu_s, task.mem_avg_bytes, task.mem_peak_bytes) == (36.0, 36.0, 1 << 20, 2 << 20)
    assert world.txns(t) == []  # not billed while it may still resume


def test_cancelling_a_checkpointed_task_bills_what_ran_before_the_save_once_to_its_worker(world):
    job_id, (t, queued) = world.checkpointed_job(2)
    with world.db.session() as s:
        stops = lifecycle.cancel_job(s, s.get(Job, job_id), TARIFF)
        assert stops == []  # its worker is away: nothing to stop there
    with world.db.session() as s:
        task = s.get(Task, t)
        assert task.status == T.CANCELLED and task.worker_id == world.worker_id and task.finished_at is not None
        assert s.get(Task, queued).worker_id is None
    (txn,) = world.txns(t)
    assert (txn.kind, txn.outcome, txn.attempt, txn.worker_id) == ("charge", "cancelled", 1, world.worker_id)
    assert (txn.amount, txn.wall_us, txn.cpu_us, txn.price_factor_milli) == (CHARGE, 36_000_000, 36_000_000, 2000)
    assert world.txns(queued) == []
    with world.db.session() as s:
        assert billing.balances(s) == {f"user:{world.owner.id}": -CHARGE,
                                       f"contributor:{world.contrib.id}": CHARGE - FEE, "platform:fees": FEE}
        assert billing.unbalanced_postings(s) == []


def test_a_report_of_a_cancelled_checkpoint_s_run_is_refused(world):
    """The worker comes back and reports the run (it resumed it, or re-sends the checkpoint's report):
    it was billed at the cancel, so it is not a stopped run to record and bill again."""
    job_id, (t,) = world.checkpointed_job()
    with world.db.session() as s:
        lifecycle.cancel_job(s, s.get(Job, job_id), TARIFF)
    with world.db.session() as s:
        task = s.get(Task, t)
        assert not lifecycle.stopped_run_report(s, task, world.worker_id)
        task.started_at = utcnow()  # (what would change if it were accepted)
    assert len(world.txns(t)) == 1


def test_a_stopped_run_s_report_is_accepted_once(world):
    """A running task its owner cancels: the worker's report of the stopped run is billed; the same
    report re-sent (its answer was lost) is refused."""
    with world.db.session() as s:
        job = Job(owner_id=world.owner.id, name="j")
        s.add(job)
        s.flush()
        task = Task(job_id=job.id, seq=0, name="t", script_name="s.py", script_data_id="0" * 64,
                    memory_bytes=GIB, timeout_s=3600.0, status=T.READY)
        s.add(task)
        s.flush()
        lifecycle.transition(s, task, T.ASSIGNED, worker_id=world.worker_id, attempts=1)
        lifecycle.transition(s, task, T.RUNNING)
        assert lifecycle.cancel_job(s, job, TARIFF) == [(world.worker_id, task.id)]
        t = task.id
    with world.db.session() as s:
        task = s.get(Task, t)
        assert lifecycle.stopped_run_report(s, task, world.worker_id)
        assert not lifecycle.stopped_run_report(s, task, world.other.id)
        task.wall_s, task.cpu_s = SAVED.wall_s, SAVED.cpu_s
        billing.charge_task(s, task, "cancelled", TARIFF)
    with world.db.session() as s:
        assert not lifecycle.stopped_run_report(s, s.get(Task, t), world.worker_id)
    assert [x.amount for x in world.txns(t)] == [CHARGE]


def test_a_checkpoint_released_after_its_grace_bills_nothing_when_cancelled(world):
    job_id, (t,) = world.checkpointed_job()
    with world.db.session() as s:
        s.get(Task, t).checkpointed_at = utcnow().replace(year=2000)  # saved long before the window
        assert lifecycle.expire_checkpoints(s, grace_s=60) == 1
    with world.db.session() as s:
        task = s.get(Task, t)
        assert (task.status, task.worker_id) == (T.READY, None)
        lifecycle.cancel_job(s, task.job, TARIFF)
    assert world.txns(t) == []


def test_a_job_failing_bills_nothing_for_its_checkpointed_task(world):
    """Like a running task its failing job stops (billed only by its owner's cancel)."""
    job_id, (t, other) = world.checkpointed_job(2)
    with world.db.session() as s:
        lifecycle.transition(s, s.get(Task, other), T.ASSIGNED, worker_id=world.other.id, attempts=1)
        lifecycle.fail_task(s, s.get(Task, other), "exit code 1", tariff=None)
    with world.db.session() as s:
        task = s.get(Task, t)
        assert (task.status, task.job.status, task.worker_id) == (T.CANCELLED, J.FAILED, world.worker_id)
    assert world.txns(t) == []
