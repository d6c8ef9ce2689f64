"""How the worker delivers task reports to the master.

Completions go through ONE reporter thread in CompleteTasks calls: a report is sent at once when no
call is in flight, and the reports that arrive while one is in flight go together in the next call —
no fixed delay, so a lone task is never held back, and a burst costs few calls. A report is
forgotten only once the master acknowledged it (committed) or refused it (not, or no longer, this
worker's task: final). A report the master could not write, or a call that failed, is sent again
after a backoff.py delay, for up to REPORT_PATIENCE_S; after that the master's reconciliation
re-runs the task rather than lose it."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import grpc

from runsurge_proto import master_pb2
from runsurge_worker.backoff import Backoff

log = logging.getLogger("runsurge.worker.reports")
REPORT_PATIENCE_S = 600
# The master's "not your task (any more)": final, never retried.
REFUSED = (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.PERMISSION_DENIED)
MAX_PER_CALL = 256  # under the master's MAX_REPORTS_PER_CALL
R = master_pb2.ReportResult


def link_closed(e: ValueError) -> bool:
    """Whether a call failed because the worker, stopping, closed its link (grpc: "Cannot invoke RPC
    on closed channel!"): nothing to retry, the master's reconciliation decides."""
    return "closed channel" in str(e)


def retry_delays() -> Backoff:
    """The delays between attempts at one report (or one call of them): 0.25 s doubling to 10 s, jittered."""
    return Backoff(base_s=0.25, cap_s=10.0)


@dataclass
class _Pending:
    report: master_pb2.TaskCompleteRequest
    deadline: float  # time.monotonic() after which it is given up
    done: threading.Event = field(default_factory=threading.Event)


class CompletionReporter:
    def __init__(self, link):  # master_link.MasterLink
        self.link = link
        self._ready = threading.Condition()
        self._queue: list[_Pending] = []
        # A daemon, so a worker stopping while the master is away does not wait for it.
        threading.Thread(target=self._loop, name="report-completions", daemon=True).start()

    def send(self, report: master_pb2.TaskCompleteRequest) -> None:
        """Returns once the report is acknowledged, refused, or given up."""
        pending = _Pending(report, time.monotonic() + REPORT_PATIENCE_S)
        with self._ready:
            self._queue.append(pending)
            self._ready.notify()
        pending.done.wait()

    def _loop(self) -> None:
        delays = retry_delays()
        while True:
            with self._ready:
                while not self._queue:
                    self._ready.wait()
                batch, self._queue = self._queue[:MAX_PER_CALL], self._queue[MAX_PER_CALL:]
            try:
                again = self._deliver(batch)
            except Exception:  # a bug here must not leave every task waiting for its report
                log.exception("CompleteTasks for %d report(s) failed", len(batch))
                again = []
                for p in batch:
                    p.done.set()
            if not again:
                delays.reset()
                continue
            with self._ready:  # first in line again, with what arrived meanwhile
                self._queue[:0] = again
            time.sleep(delays.next())

    def _deliver(self, batch: list[_Pending]) -> list[_Pending]:
        """One CompleteTasks call; returns the reports to send again."""
        try:
            resp = self.link.stub.CompleteTasks(master_pb2.CompleteTasksRequest(reports=[p.report for p in batch]),
                                                metadata=self.link.metadata(), timeout=30)
        except grpc.RpcError as e:
            if e.code() in REFUSED:
                return self._drop(batch, f"refused: {e.details()}")
            return self._again(batch, f"{e.code().name} {e.details()}")
        except ValueError as e:
            if not link_closed(e):
                raise
            return self._drop(batch, "not sent: the worker is stopping")
        if len(resp.results) != len(batch):
            return self._again(batch, f"the master answered {len(resp.results)} of {len(batch)} reports")
        failed = []
        for p, r in zip(batch, resp.results, strict=True):
            if r.result == R.REPORT_RESULT_ACKNOWLEDGED:
                p.done.set()
            elif r.result == R.REPORT_RESULT_REFUSED:
                self._drop([p], f"refused: {r.reason}")
            else:
                failed.append(p)
        return self._again(failed, "the master could not record them") if failed else []

    @staticmethod
    def _drop(batch: list[_Pending], why: str) -> list[_Pending]:
        for p in batch:
            log.info("completion of task %s %s", p.report.task_id, why)
            p.done.set()
        return []

    @staticmethod
    def _again(batch: list[_Pending], why: str) -> list[_Pending]:
        now, again = time.monotonic(), []
        for p in batch:
            if now > p.deadline:
                log.error("completion of task %s given up after %d s: %s", p.report.task_id, REPORT_PATIENCE_S, why)
                p.done.set()
            else:
                again.append(p)
        if again:
            log.warning("CompleteTasks: %d report(s) to send again: %s", len(again), why)
        return again
