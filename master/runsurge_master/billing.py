"""Billing: a task's metered usage becomes a charge for the job's owner and earnings for the
contributor whose worker ran it, recorded in a double-entry ledger. The full rules are in
docs/billing.md; in short:

    charge = round_half_up( factor × ( cpu_hours × price_cpu_hour
                                       + reserved_GiB × wall_hours × price_gib_hour ) )
    fee    = floor(charge × platform_fee_percent / 100)      earning = charge − fee

Money is an integer number of micro-credits (1 credit = 1 000 000 µc); the arithmetic in between is
exact (fractions.Fraction), never float. Measurements arrive as float seconds and are turned into
integer microseconds first.

Ledger: every posting (a LedgerTransaction) has entries that sum to zero. Accounts:
    user:<id>          the job owner; a charge debits it, a payment credits it (negative = owes)
    contributor:<id>   the worker owner's earnings
    platform:fees      the platform's share; it also pays for recomputations (below)
    external:payments  where payments come from (there is no payment provider: the ledger records them)

When: a task is charged when it ends done, or failed by the user's own script (the contributor's
machine did the work). A task re-queued because its worker was lost, crashed or could not fetch
(a worker fault) is never charged. At most one posting per (task id, attempt) — a unique constraint
backs the check — and the user pays for a task at most once: if a finished task has to run again
because the only copy of its output was lost (lineage), that run's earnings are paid by the platform.

Quorum tasks (redundancy 2, quorum.py) are still charged ONCE: one `charge` posting for the task as a
whole (attempt 0) of the sum of its agreeing replicas' charges, credited to the platform, and one
`earning` posting per agreeing replica paying its contributor out of it, so the user pays
Σ earnings + Σ fees and the platform keeps the fees. The outvoted replica earns nothing; with no
majority (every result differs) nobody is billed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from fractions import Fraction

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.orm import Session

from runsurge_master.models import Job, LedgerEntry, LedgerTransaction, Task, TaskReplica, Worker

log = logging.getLogger("runsurge.billing")

MICRO = 1_000_000          # micro-credits per credit
GIB = 1 << 30
US_PER_HOUR = 3600 * 1_000_000
PLATFORM = "platform:fees"
EXTERNAL = "external:payments"


def user_account(user_id: str) -> str:
    return f"user:{user_id}"


def contributor_account(user_id: str) -> str:
    return f"contributor:{user_id}"


def format_credits(micro: int) -> str:
    """12345 → "0.012345" (exact: no float on the way)."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), MICRO)
    return f"{sign}{whole}.{frac:06d}"


class LedgerError(RuntimeError):
    """A posting that would break the ledger's invariants (a bug, never a user's mistake)."""


class PaymentConflictError(RuntimeError):
    """Someone else settled some of these charges at the same moment."""


# -- prices ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tariff:
    cpu_hour: int = 1_000_000   # µc per CPU-hour of CPU time used
    gib_hour: int = 250_000     # µc per GiB-hour of reserved memory
    fee_percent: int = 10       # the platform's share of each charge

    def __post_init__(self) -> None:
        if self.cpu_hour < 0 or self.gib_hour < 0:
            raise ValueError("prices must not be negative")
        if not 0 <= self.fee_percent <= 100:
            raise ValueError("platform_fee_percent must be between 0 and 100")

    @classmethod
    def from_config(cls, cfg) -> Tariff:  # a MasterConfig
        return cls(cpu_hour=int(cfg.price_cpu_hour), gib_hour=int(cfg.price_gib_hour),
                   fee_percent=int(cfg.platform_fee_percent))


@dataclass(frozen=True)
class Usage:
    cpu_us: int         # CPU time, microseconds
    wall_us: int        # run time, microseconds
    memory_bytes: int   # memory reserved for the task
    factor_milli: int   # the worker's price factor, in thousandths


@dataclass(frozen=True)
class Quote:
    usage: Usage
    charge: int   # µc the job owner pays
    fee: int      # µc the platform keeps
    earning: int  # µc the contributor earns


def usage_of(task: Task, worker: Worker, run: TaskReplica | None = None) -> Usage:
    """What the task's run (the task itself, or one of its quorum replicas) is billed for. Wall time is
    capped at the task's timeout and CPU time at wall time × the CPUs it was given, so a worker
    over-reporting cannot over-bill the user."""
    run = run or task
    wall_us = _micros(run.wall_s)
    if task.timeout_s:
        wall_us = min(wall_us, _micros(task.timeout_s))
    cpu_us = min(_micros(run.cpu_s), wall_us * max(1, task.cpus or 1))
    return Usage(cpu_us=cpu_us, wall_us=wall_us, memory_bytes=max(0, task.memory_bytes or 0),
                 factor_milli=max(0, worker.price_factor_milli if worker.price_factor_milli is not None else 1000))


def _micros(seconds: float | None) -> int:
    if seconds is None or seconds != seconds or seconds <= 0:  # None, NaN, negative
        return 0
    return round(seconds * 1_000_000)


def quote(tariff: Tariff, u: Usage) -> Quote:
    exact = Fraction(u.factor_milli, 1000) * (
        Fraction(u.cpu_us * tariff.cpu_hour, US_PER_HOUR)
        + Fraction(u.memory_bytes * u.wall_us * tariff.gib_hour, GIB * US_PER_HOUR))
    charge = int(exact + Fraction(1, 2))  # round half up (exact is never negative)
    fee = charge * tariff.fee_percent // 100
    return Quote(usage=u, charge=charge, fee=fee, earning=charge - fee)


# -- the ledger --------------------------------------------------------------------------------
def post(s: Session, txn: LedgerTransaction, legs: list[tuple[str, int]]) -> LedgerTransaction:
    """Add a posting with its entries. Refuses anything that does not balance to zero."""
    if any(not isinstance(amount, int) or isinstance(amount, bool) for _, amount in legs):
        raise LedgerError("ledger amounts are integers (micro-credits)")
    if sum(amount for _, amount in legs) != 0:
        raise LedgerError(f"unbalanced posting: {legs}")
    s.add(txn)
    s.flush()
    # One multi-row INSERT (this runs on every task's completion); through the ORM, one per entry.
    entries = [{"txn_id": txn.id, "account": account, "amount": amount} for account, amount in legs if amount]
    if entries:
        s.execute(insert(LedgerEntry), entries)
    return txn


def charge_task(s: Session, task: Task, outcome: str, tariff: Tariff) -> LedgerTransaction | None:
    """Bill the task's current attempt at `tariff` (the master's, from its config; call it in the
    transaction that records how it ended).
    Idempotent: a second call for the same attempt changes nothing and returns the first posting."""
    if task.redundancy > 1:
        return _charge_quorum(s, task, outcome, tariff)
    if task.worker_id is None:
        return None
    attempt = task.attempts or 0
    # One query (this runs on every task's completion) for both: this attempt's posting, if any, and
    # whether an earlier attempt was charged.
    postings = s.execute(select(LedgerTransaction.id, LedgerTransaction.attempt, LedgerTransaction.kind)
                         .where(LedgerTransaction.task_id == task.id)).all()
    existing = next((p.id for p in postings if p.attempt == attempt), None)
    if existing is not None:
        return s.get(LedgerTransaction, existing)
    worker = s.get(Worker, task.worker_id)
    q = quote(tariff, usage_of(task, worker))
    u = q.usage
    txn = LedgerTransaction(job_id=task.job_id, task_id=task.id, attempt=attempt, worker_id=worker.id,
                            contributor_id=worker.owner_id, cpu_us=u.cpu_us, wall_us=u.wall_us,
                            memory_bytes=u.memory_bytes, price_factor_milli=u.factor_milli, outcome=outcome)
    if not any(p.kind == "charge" for p in postings):
        txn.kind, txn.amount = "charge", q.charge
        legs = [(user_account(task.job.owner_id), -q.charge), (contributor_account(worker.owner_id), q.earning),
                (PLATFORM, q.fee)]
    else:  # a re-run to recover lost output: the user already paid for this task once
        txn.kind, txn.amount = "recompute", q.earning
        legs = [(PLATFORM, -q.earning), (contributor_account(worker.owner_id), q.earning)]
    post(s, txn, legs)
    log.info("billed task=%s attempt=%d kind=%s amount=%d", task.id, attempt, txn.kind, txn.amount)
    return txn


def billed(s: Session, task: Task) -> bool:
    """Whether the task's current attempt has its posting (a plain task's run is billed once)."""
    return s.scalar(select(LedgerTransaction.id).where(LedgerTransaction.task_id == task.id,
                                                       LedgerTransaction.attempt == (task.attempts or 0))) is not None


def _charge_quorum(s: Session, task: Task, outcome: str, tariff: Tariff) -> LedgerTransaction | None:
    """Bill the quorum task's agreeing replicas not billed yet (call it once the quorum decided): the
    task's one charge and an earning per replica, or, when the task was charged before (a lineage
    re-run), a platform-paid recompute per replica. Idempotent: billed replicas have a posting."""
    charge = s.scalar(select(LedgerTransaction).where(LedgerTransaction.task_id == task.id,
                                                      LedgerTransaction.kind == "charge"))
    billed = select(LedgerTransaction.attempt).where(LedgerTransaction.task_id == task.id,
                                                     LedgerTransaction.attempt.is_not(None))
    runs = s.scalars(select(TaskReplica).where(TaskReplica.task_id == task.id, TaskReplica.verdict == "agree",
                                               TaskReplica.attempt.not_in(billed))
                     .order_by(TaskReplica.attempt)).all()
    if not runs:
        return charge
    usages = [(r, w, usage_of(task, w, r)) for r in runs for w in [s.get(Worker, r.worker_id)]]
    # Replicas that agree did the same work: each is paid for the lowest metering among them, so one
    # over-reporting replica cannot raise the bill.
    low_cpu, low_wall = min(u.cpu_us for _, _, u in usages), min(u.wall_us for _, _, u in usages)
    quotes = [(r, w, quote(tariff, replace(u, cpu_us=low_cpu, wall_us=low_wall))) for r, w, u in usages]
    kind = "recompute"
    if charge is None:
        total = sum(q.charge for _, _, q in quotes)
        charge = post(s, LedgerTransaction(
            kind="charge", job_id=task.job_id, task_id=task.id, attempt=0, amount=total, outcome=outcome,
            cpu_us=sum(q.usage.cpu_us for _, _, q in quotes), wall_us=sum(q.usage.wall_us for _, _, q in quotes),
            memory_bytes=max(0, task.memory_bytes or 0)),
            [(user_account(task.job.owner_id), -total), (PLATFORM, total)])
        kind = "earning"
    for r, w, q in quotes:
        u = q.usage
        post(s, LedgerTransaction(kind=kind, job_id=task.job_id, task_id=task.id, attempt=r.attempt, worker_id=w.id,
                                  contributor_id=w.owner_id, amount=q.earning, cpu_us=u.cpu_us, wall_us=u.wall_us,
                                  memory_bytes=u.memory_bytes, price_factor_milli=u.factor_milli, outcome=outcome),
             [(PLATFORM, -q.earning), (contributor_account(w.owner_id), q.earning)])
    log.info("billed quorum task=%s replicas=%s kind=%s", task.id, [r.attempt for r in runs], kind)
    return charge


def pay_job(s: Session, job: Job) -> LedgerTransaction | None:
    """Settle every charge of the job not yet paid; None when nothing is due."""
    due = s.scalars(select(LedgerTransaction).where(
        LedgerTransaction.job_id == job.id, LedgerTransaction.kind == "charge",
        LedgerTransaction.paid_by_id.is_(None))).all()
    total = sum(t.amount for t in due)
    if total <= 0:
        return None
    pay = post(s, LedgerTransaction(kind="payment", job_id=job.id, amount=total),
               [(user_account(job.owner_id), total), (EXTERNAL, -total)])
    settled = s.execute(update(LedgerTransaction)
                        .where(LedgerTransaction.id.in_([t.id for t in due]), LedgerTransaction.paid_by_id.is_(None))
                        .values(paid_by_id=pay.id).execution_options(synchronize_session="fetch"))
    if settled.rowcount != len(due):
        raise PaymentConflictError("the bill changed while paying; try again")
    # A quorum task's earnings are paid with its charge.
    s.execute(update(LedgerTransaction)
              .where(LedgerTransaction.kind == "earning", LedgerTransaction.paid_by_id.is_(None),
                     LedgerTransaction.task_id.in_([t.task_id for t in due]))
              .values(paid_by_id=pay.id).execution_options(synchronize_session="fetch"))
    log.info("job paid job=%s amount=%d payment=%d", job.id, total, pay.id)
    return pay


def balances(s: Session) -> dict[str, int]:
    """Every account's balance (they always sum to zero)."""
    return {a: int(b) for a, b in s.execute(select(LedgerEntry.account, func.sum(LedgerEntry.amount))
                                           .group_by(LedgerEntry.account))}


def unbalanced_postings(s: Session) -> list[int]:
    """Ids of postings whose entries do not sum to zero (always empty; for checks and tests)."""
    return list(s.scalars(select(LedgerEntry.txn_id).group_by(LedgerEntry.txn_id)
                          .having(func.sum(LedgerEntry.amount) != 0)))


# -- reports -----------------------------------------------------------------------------------
def job_bill(s: Session, job: Job) -> dict:
    """One line per charge; a quorum task's line (attempt 0, no single worker) lists its billed replicas."""
    names = {t.id: t.name for t in job.tasks}
    earnings: dict[str, list[dict]] = {}
    for e in s.scalars(select(LedgerTransaction).where(LedgerTransaction.job_id == job.id,
                                                       LedgerTransaction.kind == "earning")
                       .order_by(LedgerTransaction.attempt)):
        earnings.setdefault(e.task_id, []).append({
            "worker_id": e.worker_id, "attempt": e.attempt, "cpu_s": e.cpu_us / 1e6, "wall_s": e.wall_us / 1e6,
            "price_factor": format_factor(e.price_factor_milli), "earned": e.amount})
    lines = []
    for t in s.scalars(select(LedgerTransaction).where(LedgerTransaction.job_id == job.id,
                                                       LedgerTransaction.kind == "charge")
                       .order_by(LedgerTransaction.id)):
        lines.append({
            "task_id": t.task_id, "task": names.get(t.task_id, ""), "attempt": t.attempt,
            "worker_id": t.worker_id, "outcome": t.outcome, "cpu_s": t.cpu_us / 1e6, "wall_s": t.wall_us / 1e6,
            "memory_bytes": t.memory_bytes,
            "price_factor": format_factor(t.price_factor_milli) if t.worker_id else None,
            "amount": t.amount, "paid": t.paid_by_id is not None or t.amount == 0,
            "replicas": earnings.get(t.task_id, [])})
    total = sum(line["amount"] for line in lines)
    paid = sum(line["amount"] for line in lines if line["paid"])
    return {"job_id": job.id, "lines": lines, "total": total, "paid": paid, "due": total - paid}


def format_factor(milli: int | None) -> str:
    milli = 1000 if milli is None else milli
    return f"{milli // 1000}.{milli % 1000:03d}"


def earnings(s: Session, user_id: str, limit: int = 200) -> dict:
    """The contributor's earnings: totals, per worker and per task (newest first, at most `limit`).
    An earning is paid once the job's owner paid the charge it came from (or at once, for a
    recomputation the platform paid), pending before that. Postings of kind charge (a plain task),
    earning (a quorum replica) and recompute credit contributors."""
    account = contributor_account(user_id)
    is_paid = case((LedgerTransaction.kind == "recompute", True),
                   (LedgerTransaction.paid_by_id.is_not(None), True), else_=False)
    base = (select(LedgerEntry.amount, LedgerTransaction, is_paid.label("paid"))
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.txn_id)
            .where(LedgerEntry.account == account))
    per_worker: dict[str, dict] = {}
    unpaid = LedgerTransaction.paid_by_id.is_(None)  # grouped on plain columns (portable to PostgreSQL)
    for worker_id, kind, due, amount, n in s.execute(
            select(LedgerTransaction.worker_id, LedgerTransaction.kind, unpaid, func.sum(LedgerEntry.amount),
                   func.count())
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.txn_id)
            .where(LedgerEntry.account == account)
            .group_by(LedgerTransaction.worker_id, LedgerTransaction.kind, unpaid)):
        w = per_worker.setdefault(worker_id, {"worker_id": worker_id, "pending": 0, "paid": 0, "tasks": 0})
        w["pending" if kind != "recompute" and due else "paid"] += int(amount)
        w["tasks"] += n
    hosts = dict(s.execute(select(Worker.id, Worker.host).where(Worker.id.in_(list(per_worker)))).all())
    for w in per_worker.values():
        w["host"] = hosts.get(w["worker_id"], "")
    tasks = [{"task_id": t.task_id, "job_id": t.job_id, "attempt": t.attempt, "worker_id": t.worker_id,
              "kind": t.kind, "outcome": t.outcome, "cpu_s": (t.cpu_us or 0) / 1e6, "wall_s": (t.wall_us or 0) / 1e6,
              "at": t.created_at, "amount": int(amount), "paid": bool(paid)}
             for amount, t, paid in s.execute(base.order_by(LedgerTransaction.id.desc()).limit(limit))]
    pending = sum(w["pending"] for w in per_worker.values())
    paid = sum(w["paid"] for w in per_worker.values())
    return {"total": pending + paid, "pending": pending, "paid": paid,
            "workers": sorted(per_worker.values(), key=lambda w: w["worker_id"] or ""), "tasks": tasks}
