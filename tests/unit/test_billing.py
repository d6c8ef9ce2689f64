"""Billing: the price formula, the ledger's invariants (every posting balances, one charge per task
run, never a charge for a worker's fault) and the HTTP routes (bill, pay, earnings)."""

import random

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from runsurge_master import billing, lifecycle
from runsurge_master.api import create_app
from runsurge_master.billing import GIB, Tariff, Usage, quote
from runsurge_master.config import load_config
from runsurge_master.db import Database
from runsurge_master.grpc_service import MasterServicer
from runsurge_master.jobspec import parse_spec
from runsurge_master.main import build
from runsurge_master.models import DataObject, Job, LedgerEntry, LedgerTransaction, Task, User, Worker, utcnow

HOUR_US = 3600 * 1_000_000
TARIFF = Tariff(cpu_hour=1_000_000, gib_hour=250_000, fee_percent=10)


# -- the formula -------------------------------------------------------------------------------
def test_one_cpu_hour_and_one_gib_hour_cost_the_two_prices():
    q = quote(TARIFF, Usage(cpu_us=HOUR_US, wall_us=HOUR_US, memory_bytes=GIB, factor_milli=1000))
    assert (q.charge, q.fee, q.earning) == (1_250_000, 125_000, 1_125_000)


def test_the_worker_factor_and_partial_hours_scale_exactly():
    q = quote(TARIFF, Usage(cpu_us=HOUR_US // 2, wall_us=HOUR_US, memory_bytes=GIB // 2, factor_milli=1500))
    assert q.charge == 1.5 * (500_000 + 125_000)  # 937 500
    assert quote(TARIFF, Usage(HOUR_US, HOUR_US, GIB, 0)).charge == 0  # a free worker


def test_rounding_is_half_up_to_the_micro_credit():
    one = Tariff(cpu_hour=1, gib_hour=0, fee_percent=0)
    assert quote(one, Usage(HOUR_US // 2, 0, 0, 1000)).charge == 1          # exactly 0.5 → 1
    assert quote(one, Usage(HOUR_US // 2 - 1, 0, 0, 1000)).charge == 0      # just under → 0
    assert quote(one, Usage(3 * HOUR_US // 2, 0, 0, 1000)).charge == 2      # 1.5 → 2


def test_charge_always_equals_fee_plus_earning_in_integers():
    rng = random.Random(7)
    for _ in range(2000):
        t = Tariff(rng.randrange(0, 10**8), rng.randrange(0, 10**8), rng.randrange(0, 101))
        u = Usage(rng.randrange(0, 10**11), rng.randrange(0, 10**11), rng.randrange(0, 1 << 40), rng.randrange(0, 5000))
        q = quote(t, u)
        assert all(type(v) is int for v in (q.charge, q.fee, q.earning))
        assert q.charge == q.fee + q.earning and 0 <= q.fee <= q.charge
        assert q.fee == q.charge * t.fee_percent // 100
        assert quote(t, Usage(u.cpu_us, u.wall_us, u.memory_bytes, u.factor_milli + 1000)).charge >= q.charge


def test_usage_is_capped_by_the_task_s_limits():
    w = Worker(price_factor_milli=1250)
    task = Task(wall_s=10.0, cpu_s=50.0, cpus=2, timeout_s=3600.0, memory_bytes=256 << 20)
    assert billing.usage_of(task, w) == Usage(cpu_us=20_000_000, wall_us=10_000_000, memory_bytes=256 << 20,
                                              factor_milli=1250)  # CPU ≤ wall × cpus
    task = Task(wall_s=5000.0, cpu_s=1.5, cpus=1, timeout_s=3600.0, memory_bytes=1)
    assert billing.usage_of(task, w).wall_us == 3600 * 1_000_000  # wall ≤ timeout
    task = Task(wall_s=None, cpu_s=float("nan"), cpus=1, timeout_s=60.0, memory_bytes=1)
    u = billing.usage_of(task, w)  # no report, or a nonsense one: nothing to bill
    assert (u.cpu_us, u.wall_us) == (0, 0)


def test_bad_tariffs_are_refused():
    with pytest.raises(ValueError):
        Tariff(fee_percent=101)
    with pytest.raises(ValueError):
        Tariff(cpu_hour=-1)
    cfg = load_config(home="/nonexistent", price_cpu_hour=7, price_gib_hour=3, platform_fee_percent=25)
    assert Tariff.from_config(cfg) == Tariff(7, 3, 25)


def test_credits_are_formatted_exactly():
    assert billing.format_credits(0) == "0.000000"
    assert billing.format_credits(1_234_567) == "1.234567"
    assert billing.format_credits(-5) == "-0.000005"
    assert billing.format_credits(10**18 + 1) == "1000000000000.000001"


# -- the ledger, driven through lifecycle on a real database ----------------------------------
class World:
    """A user, a contributor with a worker, and jobs whose tasks we run by hand."""

    def __init__(self, db: Database):
        self.db = db
        with db.session() as s:
            self.owner = User(email="owner@x.org", password_hash="x")
            self.contrib = User(email="contrib@x.org", password_hash="x")
            s.add_all([self.owner, self.contrib, DataObject(id="0" * 64, size=1)])
            s.flush()
            self.worker = Worker(owner_id=self.contrib.id, fingerprint="f" * 16, host="127.0.0.1", grpc_port=1,
                                 memory_bytes=GIB, cpus=2, slots=2)
            self.worker2 = Worker(owner_id=self.contrib.id, fingerprint="g" * 16, host="127.0.0.2", grpc_port=1,
                                  memory_bytes=GIB, cpus=2, slots=2, price_factor_milli=2000)
            s.add_all([self.worker, self.worker2])

    def job(self, n_tasks: int = 1) -> tuple[str, list[str]]:
        with self.db.session() as s:
            job = Job(owner_id=self.owner.id, name="j")
            s.add(job)
            s.flush()
            tasks = [Task(job_id=job.id, seq=i, name=f"t{i}", script_name="s.py", script_data_id="0" * 64,
                          memory_bytes=GIB, timeout_s=3600.0, status="ready") for i in range(n_tasks)]
            s.add_all(tasks)
            s.flush()
            return job.id, [t.id for t in tasks]

    def assign(self, task_id: str, worker: Worker | None = None) -> None:
        with self.db.session() as s:
            t = s.get(Task, task_id)
            t.status, t.worker_id, t.assigned_at = "assigned", (worker or self.worker).id, utcnow()
            t.attempts += 1

    def report(self, task_id: str, how: str, wall_s: float = 3600.0, cpu_s: float = 3600.0) -> None:
        with self.db.session() as s:
            t = s.get(Task, task_id)
            t.wall_s, t.cpu_s, t.mem_avg_bytes, t.mem_peak_bytes = wall_s, cpu_s, 1 << 20, 2 << 20
            if how == "done":
                lifecycle.finish_task_ok(s, t, {}, TARIFF)
            elif how == "script failed":
                lifecycle.fail_task(s, t, "exit code 1", TARIFF)
            elif how == "worker lost":
                lifecycle.requeue_task(s, t, "worker stopped sending heartbeats", max_attempts=3)
            else:
                raise AssertionError(how)

    def txns(self, task_id: str) -> list[LedgerTransaction]:
        with self.db.session() as s:
            return list(s.scalars(select(LedgerTransaction).where(LedgerTransaction.task_id == task_id)
                                  .order_by(LedgerTransaction.id)))

    def check_invariants(self) -> dict[str, int]:
        with self.db.session() as s:
            assert billing.unbalanced_postings(s) == []
            b = billing.balances(s)
            assert sum(b.values()) == 0
            zero_sum = s.scalar(select(func.count()).select_from(LedgerTransaction).where(
                ~LedgerTransaction.entries.any(), LedgerTransaction.amount != 0))
            assert zero_sum == 0  # a non-zero posting always has entries
            return b


@pytest.fixture
def world(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'b.db'}")
    db.upgrade()
    return World(db)


def test_a_done_task_is_charged_once_and_splits_into_earning_and_fee(world):
    _, (t,) = world.job()
    world.assign(t)
    world.report(t, "done")
    (txn,) = world.txns(t)
    assert (txn.kind, txn.attempt, txn.outcome, txn.amount) == ("charge", 1, "done", 1_250_000)
    b = world.check_invariants()
    assert b == {f"user:{world.owner.id}": -1_250_000, f"contributor:{world.contrib.id}": 1_125_000,
                 "platform:fees": 125_000}
    with world.db.session() as s:  # a repeated call for the same run changes nothing
        assert billing.charge_task(s, s.get(Task, t), "done", TARIFF).id == txn.id
    assert len(world.txns(t)) == 1


def test_the_database_refuses_a_second_posting_for_the_same_run(world):
    _, (t,) = world.job()
    world.assign(t)
    world.report(t, "done")
    with pytest.raises(IntegrityError), world.db.session() as s:
        job_id = s.get(Task, t).job_id
        s.add(LedgerTransaction(kind="charge", job_id=job_id, task_id=t, attempt=1, amount=0))
    assert len(world.txns(t)) == 1  # and nothing half-written remains


def test_a_worker_fault_is_not_billed_and_the_retry_is_billed_once(world):
    _, (t,) = world.job()
    world.assign(t)
    world.report(t, "worker lost", wall_s=100.0, cpu_s=100.0)
    assert world.txns(t) == []
    world.assign(t, world.worker2)
    world.report(t, "done")
    (txn,) = world.txns(t)
    assert (txn.attempt, txn.worker_id, txn.price_factor_milli, txn.amount) == (2, world.worker2.id, 2000, 2_500_000)
    world.check_invariants()


def test_giving_up_after_worker_faults_fails_the_job_without_a_charge(world):
    job_id, (t,) = world.job()
    with world.db.session() as s:
        worker3 = Worker(owner_id=world.contrib.id, fingerprint="h" * 16, host="127.0.0.3", grpc_port=1,
                         memory_bytes=GIB, cpus=2, slots=2)
        s.add(worker3)
    for _ in range(3):  # the budget counts distinct workers: one worker faulting again and again does not use it
        world.assign(t)
        world.report(t, "worker lost")
    with world.db.session() as s:
        assert (s.get(Job, job_id).status, s.get(Task, t).faults) == ("running", 1)
    for w in (world.worker2, worker3):
        world.assign(t, w)
        world.report(t, "worker lost")
    with world.db.session() as s:
        assert s.get(Job, job_id).status == "failed"
        assert "faults on 3 different workers" in s.get(Task, t).error
    assert world.txns(t) == []


def test_lineage_reruns_do_not_use_the_retry_budget(world):
    job_id, (t,) = world.job()
    for _ in range(3):  # done three times over, its output lost twice: no fault of the task's
        world.assign(t)
        world.report(t, "done")
    world.assign(t)
    world.report(t, "worker lost")  # the fourth run's worker vanishes: one fault, still retried
    with world.db.session() as s:
        task = s.get(Task, t)
        assert (task.attempts, task.faults, task.status) == (4, 1, "ready")
        assert s.get(Job, job_id).status != "failed"


def test_the_user_s_own_failing_script_is_billed(world):
    job_id, (t, other) = world.job(2)
    world.assign(t)
    world.report(t, "script failed", wall_s=36.0, cpu_s=36.0)
    (txn,) = world.txns(t)
    assert (txn.kind, txn.outcome, txn.amount) == ("charge", "failed", 12_500)  # 1 % of an hour
    assert world.txns(other) == []  # cancelled, never ran
    world.check_invariants()


def test_a_lineage_rerun_is_paid_by_the_platform_not_the_user(world):
    job_id, (t,) = world.job()
    world.assign(t)
    world.report(t, "done")
    world.assign(t, world.worker2)  # its only output was lost: the producer runs again
    world.report(t, "done")
    first, rerun = world.txns(t)
    assert (first.kind, rerun.kind, rerun.attempt) == ("charge", "recompute", 2)
    with world.db.session() as s:
        bill = billing.job_bill(s, s.get(Job, job_id))
    assert [line["attempt"] for line in bill["lines"]] == [1] and bill["total"] == 1_250_000
    b = world.check_invariants()
    assert b[f"user:{world.owner.id}"] == -1_250_000
    assert b[f"contributor:{world.contrib.id}"] == 1_125_000 + 2_250_000  # the re-run ran at factor 2
    assert b["platform:fees"] == 125_000 - 2_250_000


def test_paying_settles_the_bill_once_and_marks_the_earnings_paid(world):
    job_id, tasks = world.job(3)
    for t in tasks[:2]:
        world.assign(t)
        world.report(t, "done")
    with world.db.session() as s:
        e = billing.earnings(s, world.contrib.id)
        assert (e["pending"], e["paid"], len(e["tasks"])) == (2 * 1_125_000, 0, 2)
        pay = billing.pay_job(s, s.get(Job, job_id))
        assert pay.amount == 2_500_000
    with world.db.session() as s:
        assert billing.pay_job(s, s.get(Job, job_id)) is None  # nothing due: no second payment
        e = billing.earnings(s, world.contrib.id)
        assert (e["pending"], e["paid"]) == (0, 2 * 1_125_000)
        assert e["workers"] == [{"worker_id": world.worker.id, "host": "127.0.0.1", "pending": 0,
                                 "paid": 2 * 1_125_000, "tasks": 2}]
    b = world.check_invariants()
    assert b[f"user:{world.owner.id}"] == 0 and b["external:payments"] == -2_500_000
    world.assign(tasks[2])  # a later charge is due on its own
    world.report(tasks[2], "done")
    with world.db.session() as s:
        bill = billing.job_bill(s, s.get(Job, job_id))
        assert (bill["total"], bill["paid"], bill["due"]) == (3_750_000, 2_500_000, 1_250_000)
        assert billing.pay_job(s, s.get(Job, job_id)).amount == 1_250_000
    world.check_invariants()


def test_the_ledger_refuses_unbalanced_or_fractional_postings(world):
    job_id, _ = world.job()
    with world.db.session() as s:
        with pytest.raises(billing.LedgerError):
            billing.post(s, LedgerTransaction(kind="payment", job_id=job_id, amount=1), [("a", 1), ("b", -2)])
        with pytest.raises(billing.LedgerError):
            billing.post(s, LedgerTransaction(kind="payment", job_id=job_id, amount=1), [("a", 0.5), ("b", -0.5)])
    with world.db.session() as s:
        assert s.scalar(select(func.count()).select_from(LedgerEntry)) == 0


def test_ready_at_is_stamped_when_a_task_becomes_ready(world):
    spec = parse_spec('[[tasks]]\nname = "make"\nscript = "s.py"\noutputs = ["x"]\n[[tasks]]\nname = "use"\n'
                      'script = "s.py"\ninputs = { "x" = "task:make/x" }\n', {"s.py"}, 1 << 20, 3600, 100)
    with world.db.session() as s:
        make, use = lifecycle.create_job(s, world.owner.id, spec, {"s.py": "0" * 64}).tasks
        assert make.ready_at is not None and use.ready_at is None  # created ready; waits for its producer
        lifecycle.transition(s, use, lifecycle.T.READY)
        assert use.ready_at is not None


# -- HTTP --------------------------------------------------------------------------------------
@pytest.fixture
def api(tmp_path):
    sv = build(load_config(home=tmp_path / "m", price_cpu_hour=3_600_000, price_gib_hour=0, platform_fee_percent=20))
    with TestClient(create_app(sv)) as client:
        yield client, sv


def login(client, email):
    client.post("/api/auth/register", json={"email": email, "password": "horse-42-ok"})
    r = client.post("/api/auth/login", json={"email": email, "password": "horse-42-ok"})
    return {"authorization": f"Bearer {r.json()['access_token']}"}


def run_job_by_hand(client, sv, headers, contributor_email="c@x.org") -> dict:
    """Submit a one-task job over HTTP, then play the worker: the task ran 2 s of CPU."""
    job = client.post("/api/jobs", headers=headers, data={"mode": "single"},
                      files=[("files", ("job.py", b"print(1)", "text/x-python"))]).json()
    with sv.db.session() as s:
        contrib = s.scalar(select(User).where(User.email == contributor_email))
        w = Worker(owner_id=contrib.id, fingerprint="w" * 16, host="10.0.0.9", grpc_port=1, memory_bytes=GIB,
                   cpus=1, slots=1)
        s.add(w)
        s.flush()
        t = s.get(Task, job["tasks"][0]["id"])
        t.status, t.worker_id, t.attempts, t.wall_s, t.cpu_s = "running", w.id, 1, 2.5, 2.0
        lifecycle.finish_task_ok(s, t, {}, sv.scheduler.tariff)  # as the master's report handling would
    return job


def test_bill_pay_and_earnings_over_http(api):
    client, sv = api
    alice, contrib = login(client, "alice@x.org"), login(client, "c@x.org")
    job = run_job_by_hand(client, sv, alice)
    bill = client.get(f"/api/jobs/{job['id']}/bill", headers=alice).json()
    # 2 CPU-seconds at 3.6 credits per CPU-hour (the configured tariff) = 2000 µc; a 20 % fee
    assert [(line["task"], line["amount"], line["paid"], line["outcome"]) for line in bill["lines"]] == \
        [("main", 2000, False, "done")]
    assert (bill["total"], bill["due"], bill["total_credits"]) == (2000, 2000, "0.002000")
    e = client.get("/api/earnings", headers=contrib).json()
    assert (e["pending"], e["paid"], e["tasks"][0]["amount"]) == (1600, 0, 1600)
    r = client.post(f"/api/jobs/{job['id']}/pay", headers=alice)
    assert r.status_code == 200 and r.json()["amount"] == 2000 and r.json()["bill"]["due"] == 0
    r = client.post(f"/api/jobs/{job['id']}/pay", headers=alice)
    assert r.status_code == 409 and "nothing is due" in r.json()["detail"]
    e = client.get("/api/earnings", headers=contrib).json()
    assert (e["pending"], e["paid"], e["paid_credits"]) == (0, 1600, "0.001600")
    assert client.get("/api/earnings", headers=alice).json()["total"] == 0  # alice earned nothing
    with sv.db.session() as s:
        assert sum(billing.balances(s).values()) == 0


def test_bills_are_private(api):
    client, sv = api
    alice, bob = login(client, "alice@x.org"), login(client, "bob@x.org")
    login(client, "c@x.org")
    job = run_job_by_hand(client, sv, alice)
    for method, path in [("GET", f"/api/jobs/{job['id']}/bill"), ("POST", f"/api/jobs/{job['id']}/pay"),
                         ("GET", "/api/jobs/nope/bill"), ("POST", "/api/jobs/nope/pay")]:
        r = client.request(method, path, headers=bob)
        assert r.status_code == 404 and r.json() == {"detail": "no such job"}, path
    for method, path in [("GET", f"/api/jobs/{job['id']}/bill"), ("POST", f"/api/jobs/{job['id']}/pay"),
                         ("GET", "/api/earnings")]:
        assert client.request(method, path).status_code == 401
        assert client.request(method, path, headers={"authorization": "Bearer nope"}).status_code == 401
    assert client.get(f"/api/jobs/{job['id']}/bill", headers=alice).json()["due"] > 0  # bob paid nothing


def test_a_job_with_nothing_billed_cannot_be_paid(api):
    client, _ = api
    alice = login(client, "alice@x.org")
    job = client.post("/api/jobs", headers=alice, data={"mode": "single"},
                      files=[("files", ("job.py", b"print(1)", "text/x-python"))]).json()
    assert client.get(f"/api/jobs/{job['id']}/bill", headers=alice).json() == {
        "job_id": job["id"], "unit": "micro-credits", "lines": [], "total": 0, "paid": 0, "due": 0,
        "total_credits": "0.000000", "due_credits": "0.000000"}
    assert client.post(f"/api/jobs/{job['id']}/pay", headers=alice).status_code == 409


def test_the_configured_tariff_prices_charges_without_the_http_app_being_built(tmp_path):
    """Charges are made where runs end (the gRPC reports, the scheduler's lost replicas), at the tariff of
    the master's config those parts hold, not one found as a side effect of building the billing routes."""
    cfg = load_config(home=tmp_path / "m", price_cpu_hour=7, price_gib_hour=3, platform_fee_percent=25)
    sv = build(cfg)
    servicer = MasterServicer(sv.db, cfg, sv.tokens, sv.store, sv.scheduler, sv.tls)
    assert sv.scheduler.tariff == servicer.tariff == Tariff(cpu_hour=7, gib_hour=3, fee_percent=25)
