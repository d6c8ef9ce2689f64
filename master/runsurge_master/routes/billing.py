"""Billing: a job's bill, paying it, a contributor's earnings (rules in billing.py)."""

import logging

from fastapi import APIRouter, HTTPException
from sqlalchemy.exc import OperationalError

from runsurge_master import billing
from runsurge_master.deps import CurrentUser, ServicesDep, SessionDep
from runsurge_master.http_security import own_job
from runsurge_master.schemas import BillOut, EarningsOut, PaymentOut

log = logging.getLogger("runsurge.billing")
router = APIRouter(tags=["billing"])


def _bill_out(bill: dict) -> BillOut:
    return BillOut(**bill, total_credits=billing.format_credits(bill["total"]),
                   due_credits=billing.format_credits(bill["due"]))


@router.get("/api/jobs/{job_id}/bill")
def job_bill(job_id: str, user: CurrentUser, s: SessionDep) -> BillOut:
    """Per-task charges of the job (one line per billed run) and what is still due."""
    return _bill_out(billing.job_bill(s, own_job(s, job_id, user)))


@router.post("/api/jobs/{job_id}/pay", responses={409: {"description": "nothing is due, or the bill changed "
                                                                   "while paying (reload it)"}})
def pay(job_id: str, user: CurrentUser, sv: ServicesDep) -> PaymentOut:
    """Record a payment of everything due on the job. Paying again is refused (409) until new
    charges are due, so a repeated request never pays twice."""
    try:  # its own transaction: a concurrent payment is refused at the commit, not after the response
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
def my_earnings(user: CurrentUser, s: SessionDep, limit: int = 200) -> EarningsOut:
    """What your workers earned: totals, per worker and per task (newest `limit` tasks), each
    pending (the job's owner has not paid yet) or paid."""
    e = billing.earnings(s, user, limit=max(1, min(limit, 2000)))
    return EarningsOut(**e, total_credits=billing.format_credits(e["total"]),
                       pending_credits=billing.format_credits(e["pending"]),
                       paid_credits=billing.format_credits(e["paid"]))
