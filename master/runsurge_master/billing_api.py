"""HTTP routes for billing: a job's bill, paying it, a contributor's earnings (rules in billing.py).

No `from __future__ import annotations` (as in api.py): FastAPI must see the dependency annotation,
which is local to billing_router, as a real object. Amounts are integer micro-credits; each also
comes formatted in credits (`*_credits`, a decimal string) for people."""

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel
from sqlalchemy.exc import OperationalError

from runsurge_master import billing
from runsurge_master.http_security import own_job

log = logging.getLogger("runsurge.billing")


class BillReplica(BaseModel):
    """A quorum task's agreeing run, billed within its task's line (the outvoted one earns nothing)."""
    worker_id: str
    attempt: int
    cpu_s: float
    wall_s: float
    price_factor: str
    earned: int  # micro-credits paid to its contributor out of the line's amount


class BillLine(BaseModel):
    task_id: str
    task: str
    attempt: int  # 0: a quorum task, charged once for its agreeing replicas
    worker_id: str | None  # None for a quorum task (see replicas)
    outcome: str  # done | failed (the user's script failed) | cancelled (stopped by its owner: what it ran)
    cpu_s: float  # a quorum task: the sum over its billed replicas (so is wall_s)
    wall_s: float
    memory_bytes: int  # reserved
    price_factor: str | None  # the worker's, e.g. "1.000" (a quorum task: per replica)
    amount: int  # micro-credits
    paid: bool
    replicas: list[BillReplica] = []


class BillOut(BaseModel):
    job_id: str
    unit: str = "micro-credits"
    lines: list[BillLine]
    total: int
    paid: int
    due: int
    total_credits: str
    due_credits: str


class PaymentOut(BaseModel):
    payment_id: int
    amount: int
    amount_credits: str
    bill: BillOut


class WorkerEarnings(BaseModel):
    worker_id: str
    host: str
    tasks: int
    pending: int
    paid: int


class TaskEarning(BaseModel):
    task_id: str
    job_id: str
    attempt: int
    worker_id: str
    kind: str  # charge (the job's owner pays) | earning (a quorum replica's share of its task's charge)
    #           | recompute (the platform pays a re-run)
    outcome: str
    cpu_s: float
    wall_s: float
    at: datetime
    amount: int
    paid: bool


class EarningsOut(BaseModel):
    unit: str = "micro-credits"
    total: int
    pending: int
    paid: int
    total_credits: str
    pending_credits: str
    paid_credits: str
    workers: list[WorkerEarnings]
    tasks: list[TaskEarning]


def _bill_out(bill: dict) -> BillOut:
    return BillOut(**bill, total_credits=billing.format_credits(bill["total"]),
                   due_credits=billing.format_credits(bill["due"]))


def billing_router(sv, current_user: Callable[..., str]) -> APIRouter:  # api.Services
    """The routes; also makes this database's charges use the master's configured tariff."""
    billing.use_tariff(sv.db.engine, billing.Tariff.from_config(sv.cfg))
    router = APIRouter(tags=["billing"])
    UserId = Annotated[str, Depends(current_user)]  # noqa: N806 - a type alias

    @router.get("/api/jobs/{job_id}/bill")
    def job_bill(job_id: str, user: UserId) -> BillOut:
        """Per-task charges of the job (one line per billed run) and what is still due."""
        with sv.db.session() as s:
            return _bill_out(billing.job_bill(s, own_job(s, job_id, user)))

    @router.post("/api/jobs/{job_id}/pay")
    def pay(job_id: str, user: UserId) -> PaymentOut:
        """Record a payment of everything due on the job. Paying again is refused (409) until new
        charges are due, so a repeated request never pays twice."""
        try:
            with sv.db.session() as s:
                job = own_job(s, job_id, user)
                payment = billing.pay_job(s, job)
                if payment is None:
                    raise HTTPException(409, "nothing is due on this job")
                amount, payment_id = payment.amount, payment.id
                bill = billing.job_bill(s, job)
        except (billing.PaymentConflictError, OperationalError) as e:
            if isinstance(e, OperationalError) and "locked" not in str(e.orig):
                raise  # not a concurrent payment (SQLite refuses the second writer): a real error
            log.info("concurrent payment refused job=%s", job_id)
            raise HTTPException(409, "the bill changed while paying; reload it and try again") from None
        return PaymentOut(payment_id=payment_id, amount=amount, amount_credits=billing.format_credits(amount),
                          bill=_bill_out(bill))

    @router.get("/api/earnings")
    def my_earnings(user: UserId, limit: int = 200) -> EarningsOut:
        """What your workers earned: totals, per worker and per task (newest `limit` tasks), each
        pending (the job's owner has not paid yet) or paid."""
        with sv.db.session() as s:
            e = billing.earnings(s, user, limit=max(1, min(limit, 2000)))
        return EarningsOut(**e, total_credits=billing.format_credits(e["total"]),
                           pending_credits=billing.format_credits(e["pending"]),
                           paid_credits=billing.format_credits(e["paid"]))

    return router
