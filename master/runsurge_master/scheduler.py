"""The scheduler: one coroutine that wakes on submit / report / worker join (plus a slow safety tick)
and runs a pass: liveness once a tick (liveness.py), then placement (planning.py), in ONE transaction
through the master's one writer of worker reports (group_commit.py, on a thread: never on the event
loop). Then it sends each worker what the pass placed there (one AssignTasks call, then NotifyData),
over the worker channels (worker_channels.py). After a master restart it first reconciles with every
worker what it really runs.

All placement decisions happen in this one coroutine, so a task can never be assigned twice.
"""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
from sqlalchemy import select
from sqlalchemy.orm import Session

from runsurge_master import benching, lifecycle, replicas
from runsurge_master.auth import TokenService
from runsurge_master.billing import Tariff
from runsurge_master.config import MasterConfig
from runsurge_master.db import Database
from runsurge_master.group_commit import GroupCommit
from runsurge_master.lifecycle import Cancels
from runsurge_master.live import LiveState
from runsurge_master.liveness import Liveness
from runsurge_master.metrics import TASK_CALL_TASKS, TASK_CALLS
from runsurge_master.models import Task, Worker, utcnow
from runsurge_master.planning import Dispatch, Planner, by_worker
from runsurge_master.tls import MasterTLS
from runsurge_master.worker_channels import WorkerChannels
from runsurge_proto import worker_pb2

log = logging.getLogger("runsurge.scheduler")
# With prefetch, at most one scheduling pass this often: workers start their queued tasks meanwhile,
# and one pass serves every completion since the last (measured: 0.55 passes per task instead of 1).
PASS_INTERVAL_S = 0.02


class Scheduler:
    def __init__(self, db: Database, cfg: MasterConfig, tokens: TokenService, tls: MasterTLS):
        self.db, self.cfg = db, cfg
        self.tariff = Tariff.from_config(cfg)  # a lost replica may let the others decide (and bill) its task
        self.live = LiveState()  # what the last heartbeats said: environments held, task phases
        self.commits = GroupCommit(db)  # the one writer: worker reports and scheduling passes
        self.channels = WorkerChannels(db, tokens, tls)
        self.liveness = Liveness(cfg, self.live, self.tariff)
        self.planner = Planner(cfg, tokens, self.live)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Safe from any thread (HTTP handlers run in a thread pool)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def plan(self) -> list[Dispatch]:
        """One placement pass in a transaction of its own, not sent (for callers off the loop: tests)."""
        with self.db.session() as s:
            dispatches, cancels = self.planner.plan(s)
        self.channels.cancel(cancels)  # after the commit: a moved task is no longer the old worker's
        return dispatches

    async def run(self) -> None:
        self._loop = self.channels.loop = asyncio.get_running_loop()
        await self.reconcile()
        checked = passed = 0.0
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.liveness.tick)
                if self.cfg.prefetch:  # while busy, one pass serves every event since the last
                    await asyncio.sleep(passed + PASS_INTERVAL_S - time.monotonic())
            except TimeoutError:
                pass
            self._wake.clear()
            passed = time.monotonic()
            check = passed - checked >= self.liveness.tick  # once a tick, not on every task's completion
            if check:
                checked = passed
            try:
                dispatches, cancels = await self.commits.run(lambda s, check=check: self._pass(s, check))
                if dispatches:  # a pass places at most planning.BATCH: more may be ready for free slots
                    self._wake.set()
                self.channels.cancel(cancels)
                for batch in by_worker(dispatches):
                    self.channels.spawn(self._dispatch(batch))
            except Exception:  # a bug here must not stop scheduling for good
                log.exception("scheduling pass failed")

    def _pass(self, s: Session, check: bool) -> tuple[list[Dispatch], Cancels]:
        cancels = self.liveness.check(s) if check else []
        dispatches, moved = self.planner.plan(s)
        return dispatches, cancels + moved

    async def close(self) -> None:
        await self.channels.close()

    # -- after a master restart ----------------------------------------------------------------
    async def reconcile(self) -> None:
        """The master was down: give workers a fresh liveness window, then ask each what it really
        runs. Tasks it no longer has go back to the queue; tasks it runs that are not its own (any
        more) are cancelled. Nothing is lost and nothing runs twice."""
        for worker_id, address in await self.commits.run(_fresh_windows):
            try:
                status = await self.channels.stub(worker_id, address).GetWorkerStatus(
                    worker_pb2.WorkerStatusRequest(), metadata=self.channels.metadata(), timeout=5)
            except grpc.aio.AioRpcError as e:
                log.info("reconcile: worker=%s unreachable (%s); liveness will decide", worker_id, e.code().name)
                continue
            running = set(status.running_task_ids)
            cancels, notices = await self.commits.run(lambda s, w=worker_id, r=running: self._reconcile(s, w, r))
            self.channels.cancel(cancels)
            for task_id, loc in notices:
                await self.channels.tell(worker_id, "NotifyData",
                                         worker_pb2.NotifyDataRequest(task_id=task_id, location=loc))
        self._wake.set()

    def _reconcile(self, s: Session, worker_id: str, running: set[str]):
        ours = s.scalars(select(Task).where(Task.worker_id == worker_id, Task.status.in_(lifecycle.ACTIVE))).all()
        mine = replicas.active_on(s, worker_id)  # quorum replicas it should be running
        cancels = [(worker_id, t) for t in running - {t.id for t in ours} - {r.task_id for r in mine}]
        for t in ours:
            if t.id not in running:
                cancels += lifecycle.requeue_task(s, t, "lost while the master restarted", self.cfg.max_attempts)
        cancels += replicas.lose_all(s, [r for r in mine if r.task_id not in running],
                                     "lost while the master restarted", self.cfg.max_attempts, tariff=self.tariff)
        notices = self.planner.notices(s, [t for t in ours if t.id in running and t.status == lifecycle.T.ASSIGNED])
        log.info("reconciled worker=%s running=%d requeued=%d", worker_id, len(running),
                 sum(t.id not in running for t in ours))
        return cancels, notices

    # -- sending a pass's placements -------------------------------------------------------------
    async def _dispatch(self, batch: list[Dispatch]) -> None:
        """The tasks one pass placed on one worker, in one AssignTasks call; then each accepted
        task's NotifyData. A failed call fails each of its tasks, a refused task only itself."""
        stub = self.channels.stub(batch[0].worker_id, batch[0].address)
        md = self.channels.metadata()
        TASK_CALLS.labels("AssignTasks").inc()
        TASK_CALL_TASKS.labels("AssignTasks").inc(len(batch))
        try:
            resp = await stub.AssignTasks(worker_pb2.AssignTasksRequest(tasks=[d.request for d in batch]),
                                          metadata=md, timeout=15)
            if len(resp.results) != len(batch):
                raise RuntimeError(f"the worker answered {len(resp.results)} of {len(batch)} tasks")
        except (grpc.aio.AioRpcError, RuntimeError) as e:
            for d in batch:
                await self._undispatch(d, e)
            return
        for d, answer in zip(batch, resp.results, strict=True):
            try:
                if not answer.accepted:
                    raise RuntimeError(f"worker refused the task: {answer.reason}")
                for loc in d.notices:
                    await stub.NotifyData(worker_pb2.NotifyDataRequest(task_id=d.request.task_id, location=loc),
                                          metadata=md, timeout=15)
            except (grpc.aio.AioRpcError, RuntimeError) as e:
                await self._undispatch(d, e)

    async def _undispatch(self, d: Dispatch, e: grpc.aio.AioRpcError | RuntimeError) -> None:
        """A task that did not reach its worker goes back (or its replica is lost); an unreachable
        worker is offline, one that refused counts a fault."""
        reason = e.details() if isinstance(e, grpc.aio.AioRpcError) else str(e)
        unreachable = isinstance(e, grpc.aio.AioRpcError) and e.code() == grpc.StatusCode.UNAVAILABLE
        log.warning("dispatch failed task=%s worker=%s: %s", d.request.task_id, d.worker_id, reason)
        self.channels.cancel(await self.commits.run(lambda s: self._take_back(s, d, reason, unreachable)))
        self._wake.set()

    def _take_back(self, s: Session, d: Dispatch, reason: str, unreachable: bool) -> Cancels:
        t = s.get(Task, d.request.task_id)
        cancels = []
        if t.status in lifecycle.ACTIVE and t.worker_id == d.worker_id:
            cancels = lifecycle.requeue_task(s, t, f"could not assign: {reason}", self.cfg.max_attempts)
        elif (r := replicas.active(s, t, d.worker_id)) is not None and r.attempt == d.request.attempt:
            cancels = replicas.lose(s, t, r, f"could not assign: {reason}", self.cfg.max_attempts, tariff=self.tariff)
        w = s.get(Worker, d.worker_id)
        if unreachable:
            if w.online:
                cancels += self.liveness.worker_lost(s, w, "worker unreachable")
        else:  # it answered, and would not take the task
            benching.fault(w, f"could not assign: {reason}")
        return cancels


def _fresh_windows(s: Session) -> list[tuple[str, str]]:
    """After a restart every online worker gets a fresh liveness window; the ones to ask."""
    workers = s.scalars(select(Worker).where(Worker.online)).all()
    for w in workers:
        w.last_heartbeat = utcnow()
    return [(w.id, w.address) for w in workers]
