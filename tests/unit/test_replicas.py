"""Quorum tasks on a real database, driven through the scheduler's placement and the replicas' reports
(replicas.py): placement on different contributors, the decision, trust, billing (one charge per task),
faults, lineage, cancellation and restart reconciliation."""

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from runsurge_master import billing, lifecycle, replicas
from runsurge_master.auth import TokenService
from runsurge_master.billing import GIB, Tariff, quote
from runsurge_master.config import load_config
from runsurge_master.db import Database
from runsurge_master.jobspec import parse_spec
from runsurge_master.models import (
    DataLocation,
    DataObject,
    Job,
    LedgerTransaction,
    Task,
    TaskReplica,
    User,
    Worker,
    utcnow,
)
from runsurge_master.quorum import FAILED, NO_MAJORITY, TRUST_ODD
from runsurge_master.scheduler import Scheduler
from runsurge_proto import worker_pb2

TARIFF = Tariff(cpu_hour=1_000_000, gib_hour=250_000, fee_percent=10)
SCRIPT = "1" * 64
HONEST, LIE, OTHER = "a" * 64, "b" * 64, "c" * 64
SPEC = """redundancy = 2
[[tasks]]
name = "make"
script = "s.py"
outputs = ["x.txt"]
[[tasks]]
name = "use"
script = "s.py"
inputs = { "x" = "task:make/x.txt" }
outputs = ["y.txt"]
"""


class Net:
    """A job owner and contributors alice, bob, carol and mallory with one worker each (online or not)."""

    def __init__(self, tmp_path):
        self.db = Database(f"sqlite:///{tmp_path / 'q.db'}")
        self.db.upgrade()
        self.cfg = load_config(home=tmp_path / "m")
        self.sched = Scheduler(self.db, self.cfg, TokenService(Ed25519PrivateKey.generate()), tls=None)
        self.user, self.workers = {}, {}
        with self.db.session() as s:
            s.add_all([DataObject(id=d, size=10) for d in (SCRIPT, HONEST, LIE, OTHER)])
            for name in ("owner", "alice", "bob", "carol", "mallory"):
                u = User(email=f"{name}@x.org", password_hash="x")
                s.add(u)
                s.flush()
                self.user[name] = u.id
                if name != "owner":
                    w = Worker(owner_id=u.id, fingerprint=name * 4, host="127.0.0.1", grpc_port=1, memory_bytes=GIB,
                               cpus=1, slots=1, online=False)
                    s.add(w)
                    s.flush()
                    self.workers[name] = w.id

    def online(self, *names: str, up: bool = True) -> None:
        with self.db.session() as s:
            for n in names:
                w = s.get(Worker, self.workers[n])
                w.online, w.last_heartbeat = up, utcnow()

    def job(self, spec: str = SPEC) -> tuple[str, dict[str, str]]:
        with self.db.session() as s:
            job = lifecycle.create_job(s, self.user["owner"], parse_spec(spec, {"s.py"}, 1 << 20, 3600, 100),
                                       {"s.py": SCRIPT})
            s.flush()
            return job.id, {t.name: t.id for t in job.tasks}

    def plan(self) -> list[tuple[str, str, int]]:
        """(task id, contributor, attempt) of each replica the scheduler sends now."""
        names = {wid: n for n, wid in self.workers.items()}
        return [(d.request.task_id, names[d.worker_id], d.request.attempt) for d in self.sched.plan()]

    def report(self, task_id: str, who: str, result: str, wall_s: float = 360.0) -> list:
        """The replica on `who`'s worker reports: an output hash, FAILED, or "lost" (a worker fault)."""
        with self.db.session() as s:
            t = s.get(Task, task_id)
            r = replicas.active(s, t, self.workers[who])
            assert r is not None, f"no replica of {task_id} on {who}"
            r.wall_s, r.cpu_s, r.mem_peak_bytes = wall_s, wall_s, 1 << 20
            name = t.outputs[0].name
            outcome = {"lost": ("lost", "worker crashed"), FAILED: ("failed", "exit code 1")}.get(
                result, ("ok", {name: (result, 10)}))
            return replicas.report(s, t, r, *outcome, max_attempts=3, tariff=TARIFF)

    def task(self, task_id: str) -> Task:
        with self.db.session() as s:
            return s.get(Task, task_id)

    def trust(self, name: str) -> int:
        with self.db.session() as s:
            return s.get(Worker, self.workers[name]).trust

    def postings(self, task_id: str) -> list[LedgerTransaction]:
        with self.db.session() as s:
            return list(s.scalars(select(LedgerTransaction).where(LedgerTransaction.task_id == task_id)
                                  .order_by(LedgerTransaction.id)))

    def balances(self) -> dict[str, int]:
        with self.db.session() as s:
            assert billing.unbalanced_postings(s) == []
            b = billing.balances(s)
        assert sum(b.values()) == 0
        return {k: v for k, v in b.items() if v}


@pytest.fixture
def net(tmp_path):
    return Net(tmp_path)


def earning(wall_s: float = 360.0) -> tuple[int, int]:
    """(charge, earning) of one replica run of a task in SPEC (1 MiB reserved, CPU = wall)."""
    q = quote(TARIFF, billing.Usage(round(wall_s * 1e6), round(wall_s * 1e6), 1 << 20, 1000))
    return q.charge, q.earning


def test_replicas_go_to_two_contributors_and_the_task_waits_for_the_second(net):
    net.online("alice")
    job_id, tasks = net.job()
    assert net.plan() == []  # one contributor online: not even one replica starts
    with net.db.session() as s:
        assert "waiting for workers of 2 more different contributor(s) (1 available)" in \
            replicas.waiting(s, [s.get(Task, tasks["make"])], net.cfg.quorum_min_trust).values()
    net.online("bob", "carol")
    sent = net.plan()
    assert [(t, a) for t, _, a in sent] == [(tasks["make"], 1), (tasks["make"], 2)]
    assert len({who for _, who, _ in sent}) == 2
    t = net.task(tasks["make"])
    assert (t.status, t.worker_id, t.attempts) == ("assigned", None, 2)
    assert net.plan() == []  # all it needs are placed
    with net.db.session() as s:  # and they hold their workers' slots
        assert {wid for wid, n, _, _ in replicas.load(s, list(net.workers.values())) if n} == \
            {net.workers[who] for _, who, _ in sent}


def test_agreeing_replicas_finish_the_task_bill_it_once_and_hold_its_output(net):
    net.online("alice", "bob")
    job_id, tasks = net.job()
    first, second = (who for _, who, _ in sorted(net.plan(), key=lambda sent: sent[2]))  # by attempt
    assert {first, second} == {"alice", "bob"}
    net.report(tasks["make"], second, HONEST, wall_s=720.0)
    assert net.task(tasks["make"]).status == "assigned"  # one result is no quorum
    net.report(tasks["make"], first, HONEST, wall_s=360.0)
    t = net.task(tasks["make"])
    assert (t.status, t.worker_id, t.wall_s) == ("done", net.workers[first], 360.0)  # the first run's metering
    assert net.task(tasks["use"]).status == "ready"
    with net.db.session() as s:
        holders = set(s.scalars(select(DataLocation.worker_id).where(DataLocation.data_id == HONEST)))
        assert holders == {net.workers["alice"], net.workers["bob"]}  # dependants may fetch from either
        assert [w.tasks_done for w in s.scalars(select(Worker).where(Worker.id.in_(holders)))] == [1, 1]
    assert (net.trust("alice"), net.trust("bob")) == (1, 1)
    charge, *earnings = net.postings(tasks["make"])
    # Both are paid for the lowest agreeing metering (360 s): the replica that reported 720 s does not raise the bill.
    (c1, e1), (c2, e2) = earning(360.0), earning(360.0)
    assert (charge.kind, charge.attempt, charge.worker_id, charge.amount) == ("charge", 0, None, c1 + c2)
    assert [(e.kind, e.attempt, e.amount) for e in earnings] == [("earning", 1, e1), ("earning", 2, e2)]
    assert net.balances() == {f"user:{net.user['owner']}": -(c1 + c2), f"contributor:{net.user[first]}": e1,
                              f"contributor:{net.user[second]}": e2, "platform:fees": c1 + c2 - e1 - e2}
    with net.db.session() as s:
        bill = billing.job_bill(s, s.get(Job, job_id))
        assert [(line["task"], line["amount"], len(line["replicas"])) for line in bill["lines"]] == \
            [("make", c1 + c2, 2)]
        assert billing.earnings(s, net.user[second])["pending"] == e2
        assert billing.pay_job(s, s.get(Job, job_id)).amount == c1 + c2
    with net.db.session() as s:
        mine = billing.earnings(s, net.user[second])
        assert (mine["pending"], mine["paid"], mine["workers"][0]["worker_id"]) == (0, e2, net.workers[second])
        again = billing.charge_task(s, s.get(Task, tasks["make"]), "done", TARIFF)
        assert again.id == charge.id  # billing twice: no-op
    assert len(net.postings(tasks["make"])) == 3


def test_a_mismatch_runs_a_third_replica_and_the_odd_one_out_earns_nothing(net):
    net.online("alice", "mallory")
    job_id, tasks = net.job()
    assert {who for _, who, _ in net.plan()} == {"alice", "mallory"}
    net.report(tasks["make"], "mallory", LIE)
    net.report(tasks["make"], "alice", HONEST)
    t = net.task(tasks["make"])
    assert (t.status, net.task(tasks["use"]).status) == ("ready", "pending")
    assert net.plan() == []  # a third contributor is needed and none is online
    with net.db.session() as s:
        (why,) = replicas.waiting(s, [s.get(Task, tasks["make"])], net.cfg.quorum_min_trust).values()
        assert why.startswith("the results so far differ")
    net.online("bob")
    assert net.plan() == [(tasks["make"], "bob", 3)]
    net.report(tasks["make"], "bob", HONEST)
    assert net.task(tasks["make"]).status == "done"
    with net.db.session() as s:
        assert s.get(Task, tasks["make"]).outputs[0].data_id == HONEST  # the majority's output
    with net.db.session() as s:
        verdicts = {r.worker_id: r.verdict for r in s.scalars(select(TaskReplica))}
    assert verdicts == {net.workers["alice"]: "agree", net.workers["mallory"]: "odd", net.workers["bob"]: "agree"}
    assert (net.trust("alice"), net.trust("bob"), net.trust("mallory")) == (1, 1, -TRUST_ODD)
    charge, *earnings = net.postings(tasks["make"])
    c, e = earning()
    assert charge.amount == 2 * c and {p.worker_id for p in earnings} == {net.workers["alice"], net.workers["bob"]}
    assert f"contributor:{net.user['mallory']}" not in net.balances()
    # Now below the threshold, mallory gets no more replicas: the next task waits for carol.
    net.online("mallory", "bob", up=False)
    assert net.plan() == []
    net.online("carol")
    assert {who for _, who, _ in net.plan()} == {"alice", "carol"}


def test_three_different_results_fail_the_task_and_bill_nobody(net):
    net.online("alice", "bob", "carol")
    job_id, tasks = net.job()
    first, second = (who for _, who, _ in net.plan())
    net.report(tasks["make"], first, HONEST)
    net.report(tasks["make"], second, LIE)
    ((_, third, _),) = net.plan()
    net.report(tasks["make"], third, OTHER)
    t = net.task(tasks["make"])
    assert (t.status, t.error) == ("failed", NO_MAJORITY)
    with net.db.session() as s:
        assert s.get(Job, job_id).status == "failed"
        assert {r.verdict for r in s.scalars(select(TaskReplica))} == {"differ"}
    assert net.postings(tasks["make"]) == [] and net.balances() == {}
    assert {net.trust(n) for n in ("alice", "bob", "carol")} == {0}  # nobody can be told apart


def test_the_user_s_script_failing_on_both_replicas_is_billed_once(net):
    net.online("alice", "bob")
    job_id, tasks = net.job()
    net.plan()
    net.report(tasks["make"], "alice", FAILED)
    net.report(tasks["make"], "bob", FAILED)
    t = net.task(tasks["make"])
    assert (t.status, t.error) == ("failed", "exit code 1")
    charge, *earnings = net.postings(tasks["make"])
    assert (charge.kind, charge.outcome, len(earnings)) == ("charge", "failed", 2)
    assert net.task(tasks["use"]).status == "cancelled"


def test_a_lost_replica_runs_again_within_the_retry_budget(net):
    net.online("alice", "bob")
    job_id, tasks = net.job()
    attempt = {who: a for _, who, a in net.plan()}
    with net.db.session() as s:  # bob's worker stops beating: its replica is lost, alice's runs on
        net.sched.liveness.worker_lost(s, s.get(Worker, net.workers["bob"]), "worker stopped sending heartbeats")
    t = net.task(tasks["make"])
    assert t.status == "ready" and "heartbeats" in t.error
    assert net.plan() == []  # bob is offline, alice already runs it
    net.online("carol")
    assert net.plan() == [(tasks["make"], "carol", 3)]
    net.report(tasks["make"], "carol", HONEST)
    net.report(tasks["make"], "alice", HONEST)
    assert net.task(tasks["make"]).status == "done"
    assert [p.attempt for p in net.postings(tasks["make"])] == [0, attempt["alice"], 3]  # not the lost run


def test_worker_faults_beyond_the_budget_fail_the_task_and_cancel_its_other_replica(net):
    net.online("alice", "bob", "carol", "mallory")
    job_id, tasks = net.job()
    net.plan()
    cancels, lost = [], []
    for _ in range(3):
        with net.db.session() as s:
            task = s.get(Task, tasks["make"])
            victim = next(n for n in ("alice", "bob", "carol", "mallory") if replicas.active(s, task, net.workers[n]))
        cancels = net.report(tasks["make"], victim, "lost")
        lost.append(victim)
        placed = net.plan()
        assert not {who for _, who, _ in placed} & set(lost)  # never offered again to a worker that faulted on it
    t = net.task(tasks["make"])
    assert t.status == "failed" and t.error.startswith("gave up after faults on 3 different workers")
    with net.db.session() as s:
        assert s.scalar(select(func.count()).select_from(TaskReplica).where(TaskReplica.status.in_(
            ("assigned", "running")))) == 0
    assert len(cancels) == 1 and cancels[0][1] == tasks["make"]  # the survivor is told to stop
    assert net.postings(tasks["make"]) == []


def test_a_failing_job_cancels_every_replica(net):
    net.online("alice", "bob")
    job_id, tasks = net.job()
    net.plan()
    with net.db.session() as s:
        cancels = lifecycle.fail_job(s, s.get(Job, job_id), "cancelled by a test")
    assert sorted(cancels) == sorted((net.workers[n], tasks["make"]) for n in ("alice", "bob"))
    with net.db.session() as s:
        assert {r.status for r in s.scalars(select(TaskReplica))} == {"cancelled"}


def test_a_lineage_rerun_gets_a_new_quorum_paid_by_the_platform(net):
    net.online("alice", "bob")
    job_id, tasks = net.job()
    net.plan()
    for who in ("alice", "bob"):
        net.report(tasks["make"], who, HONEST)
    with net.db.session() as s:  # every holder of x.txt went away: the consumer re-runs its producer
        for who in ("alice", "bob"):
            net.sched.liveness.worker_lost(s, s.get(Worker, net.workers[who]), "gone")
        assert lifecycle.reopen_lost_producers(s, s.get(Task, tasks["use"]), set())
    net.online("alice", "carol")
    assert {who for _, who, _ in net.plan()} == {"alice", "carol"}  # a fresh round: earlier voters may run again
    net.report(tasks["make"], "alice", HONEST)
    net.report(tasks["make"], "carol", HONEST)
    assert net.task(tasks["make"]).status == "done"
    assert [p.kind for p in net.postings(tasks["make"])] == ["charge", "earning", "earning", "recompute", "recompute"]
    net.balances()


def test_restart_reconciliation_keeps_running_replicas_and_requeues_lost_ones(net, monkeypatch):
    net.online("alice", "bob")
    job_id, tasks = net.job()
    net.plan()
    running = {net.workers["alice"]: [tasks["make"], "stray"], net.workers["bob"]: []}

    class Stub:
        def __init__(self, worker_id):
            self.worker_id = worker_id

        async def GetWorkerStatus(self, *_, **__):
            return worker_pb2.WorkerStatus(running_task_ids=running[self.worker_id])

    monkeypatch.setattr(net.sched.channels, "stub", lambda worker_id, _address: Stub(worker_id))
    told = []
    monkeypatch.setattr(net.sched.channels, "cancel", told.extend)
    asyncio.run(net.sched.reconcile())
    with net.db.session() as s:
        task = s.get(Task, tasks["make"])
        assert replicas.active(s, task, net.workers["alice"]) is not None  # still running there
        assert replicas.active(s, task, net.workers["bob"]) is None and task.status == "ready"
    assert told == [(net.workers["alice"], "stray")]  # only what is nobody's task is cancelled
