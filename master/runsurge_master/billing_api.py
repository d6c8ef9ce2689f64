"""HTTP routes for billing: a job's bill, paying it, a contributor's earnings (rules in billing.py).

No `from __future__ import annotations` (as in api.py): FastAPI must see the dependency annotation,
which is local to billing_router, as a real object. Amounts are integer micro-credits; each also
comes formatted in credits (`*_credits`, a decimal string) for people."""

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError

from runsurge_master import billing
from runsurge_master.http_security import own_job

log = logging.getLogger("runsurge.billing")


class BillReplica(BaseModel):
    """A quorum task's agreeing run, billed within its task's line (the outvoted one earns nothing)."""
    worker_id: str = Field(description='the worker that ran it', examples=['5f0c2a9e4b7d4e1f9a3c6b8d2e4f6a8c'])
    attempt: int = Field(description='its run number', examples=[1])
    cpu_s: float = Field(description='CPU seconds billed', examples=[2.1])
    wall_s: float = Field(description='seconds billed', examples=[2.5])
    price_factor: str = Field(description="its worker's price factor", examples=['1.000'])
    earned: int = Field(description="micro-credits paid to its contributor out of the line's amount", examples=[24])


class BillLine(BaseModel):
    task_id: str = Field(description='the task', examples=['9a3c6b8d2e4f6a8c5f0c2a9e4b7d4e1f'])
    task: str = Field(description='its name', examples=['total'])
    attempt: int = Field(description='the run billed (0: a quorum task, charged once for its agreeing replicas)',
                         examples=[1])
    worker_id: str | None = Field(description='the worker that ran it (null for a quorum task: see replicas)',
                                  examples=['5f0c2a9e4b7d4e1f9a3c6b8d2e4f6a8c'])
    outcome: str = Field(description="done | failed (the user's script failed) | cancelled (stopped by its owner: what "
                                     "it ran)",
                         examples=['done'])
    cpu_s: float = Field(description='CPU seconds billed (a quorum task: the sum over its billed replicas)',
                         examples=[2.1])
    wall_s: float = Field(description='seconds billed (a quorum task: the sum over its billed replicas)',
                          examples=[2.5])
    memory_bytes: int = Field(description='memory reserved', examples=[268435456])
    price_factor: str | None = Field(description="the worker's price factor (a quorum task: per replica)",
                                     examples=['1.000'])
    amount: int = Field(description='micro-credits', examples=[53])
    paid: bool = Field(description="the job's owner paid it", examples=[False])
    replicas: list[BillReplica] = Field(default_factory=list, description="a quorum task's billed replicas")


class BillOut(BaseModel):
    job_id: str = Field(description='the job', examples=['bd46d5c1a2f34e7f9c0b8a1d2e3f4a5b'])
    unit: str = Field("micro-credits", description='the unit of every amount', examples=['micro-credits'])
    lines: list[BillLine] = Field(description='one line per billed run')
    total: int = Field(description='micro-credits charged', examples=[53])
    paid: int = Field(description='micro-credits paid', examples=[0])
    due: int = Field(description='micro-credits still due', examples=[53])
    total_credits: str = Field(description='total in credits (exact decimal)', examples=['0.000053'])
    due_credits: str = Field(description='due in credits (exact decimal)', examples=['0.000053'])


class PaymentOut(BaseModel):
    payment_id: int = Field(description="the payment's id", examples=[7])
    amount: int = Field(description='micro-credits paid', examples=[53])
    amount_credits: str = Field(description='amount in credits (exact decimal)', examples=['0.000053'])
    bill: BillOut = Field(description='the bill after the payment')


class WorkerEarnings(BaseModel):
    worker_id: str = Field(description='your worker', examples=['5f0c2a9e4b7d4e1f9a3c6b8d2e4f6a8c'])
    host: str = Field(description='its address', examples=['192.168.1.20'])
    tasks: int = Field(description='tasks it was paid for', examples=[12])
    pending: int = Field(description='micro-credits not paid yet', examples=[120])
    paid: int = Field(description='micro-credits paid', examples=[480])


class TaskEarning(BaseModel):
    task_id: str = Field(description='the task', examples=['9a3c6b8d2e4f6a8c5f0c2a9e4b7d4e1f'])
    job_id: str = Field(description='its job', examples=['bd46d5c1a2f34e7f9c0b8a1d2e3f4a5b'])
    attempt: int = Field(description='its run number', examples=[1])
    worker_id: str = Field(description='your worker that ran it', examples=['5f0c2a9e4b7d4e1f9a3c6b8d2e4f6a8c'])
    kind: str = Field(description="charge (the job's owner pays) | earning (a quorum replica's share) | recompute (the "
                                  "platform pays a re-run)",
                      examples=['charge'])
    #           | recompute (the platform pays a re-run)
    outcome: str = Field(description='done | failed | cancelled', examples=['done'])
    cpu_s: float = Field(description='CPU seconds', examples=[2.1])
    wall_s: float = Field(description='seconds it ran', examples=[2.5])
    at: datetime = Field(description='when it was billed (UTC)', examples=['2026-12-07T08:15:00'])
    amount: int = Field(description='micro-credits earned', examples=[48])
    paid: bool = Field(description="the job's owner paid it", examples=[True])


class EarningsOut(BaseModel):
    unit: str = Field("micro-credits", description='the unit of every amount', examples=['micro-credits'])
    total: int = Field(description='micro-credits earned', examples=[600])
    pending: int = Field(description='micro-credits not paid yet', examples=[120])
    paid: int = Field(description='micro-credits paid', examples=[480])
    total_credits: str = Field(description='total in credits (exact decimal)', examples=['0.000600'])
    pending_credits: str = Field(description='pending in credits', examples=['0.000120'])
    paid_credits: str = Field(description='paid in credits', examples=['0.000480'])
    workers: list[WorkerEarnings] = Field(description='per worker')
    tasks: list[TaskEarning] = Field(description='per task, newest first (the latest `limit`)')


def _bill_out(bill: dict) -> BillOut:
    return BillOut(**bill, total_credits=billing.format_credits(bill["total"]),
                   due_credits=billing.format_credits(bill["due"]))


def billing_router(sv, current_user: Callable[..., str]) -> APIRouter:  # services.Services
    router = APIRouter(tags=["billing"])
    UserId = Annotated[str, Depends(current_user)]  # noqa: N806 - a type alias

    @router.get("/api/jobs/{job_id}/bill")
    def job_bill(job_id: str, user: UserId) -> BillOut:
        """Per-task charges of the job (one line per billed run) and what is still due."""
        with sv.db.session() as s:
            return _bill_out(billing.job_bill(s, own_job(s, job_id, user)))

    @router.post("/api/jobs/{job_id}/pay", responses={409: {"description": "nothing is due, or the bill changed "
                                                                       "while paying (reload it)"}})
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
