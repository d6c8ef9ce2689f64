"""The event-driven scheduler: wakes on submit / task done / worker joins (plus a slow safety tick),
places ready tasks (placement.place), and tells workers over gRPC. Also the liveness check.

All placement decisions happen in this one coroutine, so a task can never be assigned twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

import grpc
from sqlalchemy import delete, func, select
from sqlalchemy.orm import selectinload

from runsurge_master import lifecycle
from runsurge_master.auth import TokenService
from runsurge_master.config import MasterConfig
from runsurge_master.db import Database
from runsurge_master.models import DataLocation, DataObject, Heartbeat, Task, Worker, utcnow
from runsurge_master.placement import Capacity, ReadyTask, place
from runsurge_master.tls import MasterTLS
from runsurge_proto import common_pb2, worker_pb2, worker_pb2_grpc
from runsurge_proto.wire import CHANNEL_OPTIONS, bearer

log = logging.getLogger("runsurge.scheduler")
SAFETY_TICK_S = 5.0
CAPABILITY_TTL_S = 900  # a peer fetch starts right after assignment; this only bounds a leaked token
BATCH = 2000  # most ready tasks considered per pass


@dataclass
class Dispatch:
    worker_id: str
    address: str
    request: worker_pb2.AssignTaskRequest
    notices: list[common_pb2.DataLocation] = field(default_factory=list)


class Scheduler:
    def __init__(self, db: Database, cfg: MasterConfig, tokens: TokenService, tls: MasterTLS):
        self.db, self.cfg, self.tokens, self.tls = db, cfg, tokens, tls
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._channels: dict[str, tuple[str, grpc.aio.Channel]] = {}
        self._token = ("", 0.0)
        self._background: set[asyncio.Task] = set()
        self.assigned_total = 0

    # -- events --------------------------------------------------------------------------------
    def wake(self) -> None:
        """Safe from any thread (HTTP handlers run in a thread pool)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def cancel_remote(self, pairs: list[tuple[str, str]]) -> None:
        if pairs and self._loop is not None:
            self._loop.call_soon_threadsafe(self._spawn, self._cancel(pairs))

    def delete_remote(self, worker_id: str, data_ids: list[str]) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._spawn, self._delete(worker_id, data_ids))

    def _spawn(self, coro) -> None:  # noqa: ANN001
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        tick = min(SAFETY_TICK_S, self.cfg.heartbeat_interval_s)
        await self.reconcile()
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=tick)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                self.cancel_remote(self.check_liveness())
                for d in self.plan():
                    self._spawn(self._dispatch(d))
            except Exception:  # a bug here must not stop scheduling for good
                log.exception("scheduling pass failed")

    async def close(self) -> None:
        for _, ch in self._channels.values():
            await ch.close()

    # -- after a master restart ----------------------------------------------------------------
    async def reconcile(self) -> None:
        """The master was down: give workers a fresh liveness window, then ask each what it really
        runs. Tasks it no longer has go back to the queue; tasks it runs that are not its own (any
        more) are cancelled. Nothing is lost and nothing runs twice."""
        with self.db.session() as s:
            workers = s.scalars(select(Worker).where(Worker.online)).all()
            for w in workers:
                w.last_heartbeat = utcnow()
            targets = [(w.id, w.address) for w in workers]
        for worker_id, address in targets:
            try:
                status = await self.stub(worker_id, address).GetWorkerStatus(
                    worker_pb2.WorkerStatusRequest(), metadata=self._metadata(), timeout=5)
            except grpc.aio.AioRpcError as e:
                log.info("reconcile: worker=%s unreachable (%s); liveness will decide", worker_id, e.code().name)
                continue
            running = set(status.running_task_ids)
            with self.db.session() as s:
                ours = s.scalars(select(Task).where(Task.worker_id == worker_id,
                                                    Task.status.in_(lifecycle.ACTIVE))).all()
                cancels = [(worker_id, t) for t in running - {t.id for t in ours}]
                for t in ours:
                    if t.id not in running:
                        cancels += lifecycle.requeue_task(s, t, "lost while the master restarted",
                                                          self.cfg.max_attempts)
            log.info("reconciled worker=%s running=%d requeued=%d", worker_id, len(running),
                     sum(t.id not in running for t in ours))
            self.cancel_remote(cancels)
        self._wake.set()

    # -- liveness ------------------------------------------------------------------------------
    def check_liveness(self) -> list[tuple[str, str]]:
        cutoff = utcnow() - timedelta(seconds=self.cfg.heartbeat_interval_s * self.cfg.missed_heartbeats)
        cancels: list[tuple[str, str]] = []
        with self.db.session() as s:
            for w in s.scalars(select(Worker).where(Worker.online, Worker.last_heartbeat < cutoff)):
                log.warning("worker offline worker=%s (no heartbeat since %s)", w.id, w.last_heartbeat)
                cancels += self.worker_lost(s, w, "worker stopped sending heartbeats")
            s.execute(delete(Heartbeat).where(Heartbeat.at < utcnow() - timedelta(minutes=10)))
        return cancels

    def worker_lost(self, s, w: Worker, reason: str) -> list[tuple[str, str]]:  # noqa: ANN001
        """Offline: its cached data is unreachable and its tasks go back to the queue."""
        w.online = False
        s.execute(delete(DataLocation).where(DataLocation.worker_id == w.id))
        cancels = []
        for t in s.scalars(select(Task).where(Task.worker_id == w.id, Task.status.in_(lifecycle.ACTIVE))):
            cancels += lifecycle.requeue_task(s, t, f"{reason} (worker {w.id[:8]})", self.cfg.max_attempts)
        return cancels

    # -- placement -----------------------------------------------------------------------------
    def plan(self) -> list[Dispatch]:
        with self.db.session() as s:
            workers = {w.id: w for w in s.scalars(select(Worker).where(Worker.online))}
            if not workers:
                return []
            used = {wid: (n, mem) for wid, n, mem in s.execute(
                select(Task.worker_id, func.count(), func.coalesce(func.sum(Task.memory_bytes), 0))
                .where(Task.status.in_(lifecycle.ACTIVE), Task.worker_id.in_(workers))
                .group_by(Task.worker_id))}
            free = sum(max(0, w.slots - used.get(w.id, (0, 0))[0]) for w in workers.values())
            if not free:
                return []
            window = min(BATCH, max(64, 8 * free))  # enough to fill every slot, not the whole queue
            ready = s.scalars(select(Task).where(Task.status == "ready")
                              .options(selectinload(Task.inputs), selectinload(Task.outputs))
                              .order_by(Task.created_at, Task.seq).limit(window)).all()
            if not ready:
                return []
            wanted = {i.data_id for t in ready for i in t.inputs if i.data_id}
            holders: dict[str | None, set[str]] = {}
            sizes: dict[str, int] = {}
            if wanted:
                for data_id, wid, size in s.execute(
                        select(DataLocation.data_id, DataLocation.worker_id, DataObject.size)
                        .join(DataObject, DataObject.id == DataLocation.data_id)
                        .where(DataLocation.data_id.in_(wanted))):
                    if wid is None or wid in workers:
                        holders.setdefault(wid, set()).add(data_id)
                        sizes[data_id] = size
            reachable = set().union(*holders.values())
            lost = {t.id for t in ready if any(i.data_id not in reachable for i in t.inputs if i.data_id)}
            for t in ready:  # lineage: recompute inputs nobody reachable holds any more
                if t.id in lost:
                    lifecycle.reopen_lost_producers(s, t, set(workers))
            ready = [t for t in ready if t.id not in lost]
            caps = [Capacity(id=w.id, free_memory=w.memory_bytes - used.get(w.id, (0, 0))[1],
                             free_slots=w.slots - used.get(w.id, (0, 0))[0], holds=holders.get(w.id, set()))
                    for w in workers.values()]
            todo = [ReadyTask(id=t.id, memory_bytes=t.memory_bytes,
                              inputs={i.data_id: sizes.get(i.data_id, 0) for i in t.inputs if i.data_id})
                    for t in ready]
            by_id = {t.id: t for t in ready}
            dispatches = []
            for task_id, worker_id in place(todo, caps):
                t, w = by_id[task_id], workers[worker_id]
                t.status, t.worker_id, t.assigned_at = "assigned", w.id, utcnow()
                t.attempts += 1
                dispatches.append(self._dispatch_for(t, w, workers, holders, sizes))
            self.assigned_total += len(dispatches)
            return dispatches

    def _dispatch_for(self, t: Task, w: Worker, workers: dict[str, Worker],
                      holders: dict[str | None, set[str]], sizes: dict[str, int]) -> Dispatch:
        req = worker_pb2.AssignTaskRequest(
            task_id=t.id, job_id=t.job_id, script_data_id=t.script_data_id, script_name=t.script_name,
            inputs=[worker_pb2.TaskInput(name=i.name, data_id=i.data_id, size=sizes.get(i.data_id, 0))
                    for i in t.inputs],
            outputs=[worker_pb2.ExpectedOutput(name=o.name, upload_to_master=o.is_result) for o in t.outputs],
            collect_all_outputs=t.collect_all_outputs, attempt=t.attempts,
            limits=worker_pb2.TaskLimits(memory_bytes=t.memory_bytes, cpus=t.cpus, timeout_s=t.timeout_s,
                                         output_bytes=self.cfg.max_output_bytes))
        notices = []
        for i in t.inputs:
            # Prefer the assigned worker itself, then a peer, then the master.
            peers = [wid for wid, held in holders.items() if wid and i.data_id in held]
            src = w.id if w.id in peers else (peers[0] if peers else None)
            loc = common_pb2.DataLocation(data_id=i.data_id, size=sizes.get(i.data_id, 0), sha256=i.data_id)
            if src is None:
                loc.on_master = True
            else:
                loc.peer_worker_id, loc.peer_address = src, workers[src].address
                loc.capability = self.tokens.issue(w.id, "cap", CAPABILITY_TTL_S, data=i.data_id, task=t.id)
            notices.append(loc)
        return Dispatch(worker_id=w.id, address=w.address, request=req, notices=notices)

    # -- talking to workers --------------------------------------------------------------------
    def _metadata(self) -> tuple:
        token, born = self._token
        if time.monotonic() - born > 300:
            token = self.tokens.issue("master", "master", ttl_s=600)
            self._token = (token, time.monotonic())
        return bearer(token)

    def stub(self, worker_id: str, address: str) -> worker_pb2_grpc.WorkerServiceStub:
        known = self._channels.get(worker_id)
        if known is None or known[0] != address:
            if known:
                self._spawn(known[1].close())
            known = (address, grpc.aio.secure_channel(address, self.tls.channel_credentials(), options=CHANNEL_OPTIONS))
            self._channels[worker_id] = known
        return worker_pb2_grpc.WorkerServiceStub(known[1])

    async def _dispatch(self, d: Dispatch) -> None:
        stub = self.stub(d.worker_id, d.address)
        md = self._metadata()
        try:
            resp = await stub.AssignTask(d.request, metadata=md, timeout=15)
            if not resp.accepted:
                raise RuntimeError(f"worker refused the task: {resp.reason}")
            for loc in d.notices:
                await stub.NotifyData(worker_pb2.NotifyDataRequest(task_id=d.request.task_id, location=loc),
                                      metadata=md, timeout=15)
        except (grpc.aio.AioRpcError, RuntimeError) as e:
            reason = e.details() if isinstance(e, grpc.aio.AioRpcError) else str(e)
            log.warning("dispatch failed task=%s worker=%s: %s", d.request.task_id, d.worker_id, reason)
            with self.db.session() as s:
                t = s.get(Task, d.request.task_id)
                cancels = []
                if t.status in lifecycle.ACTIVE and t.worker_id == d.worker_id:
                    cancels = lifecycle.requeue_task(s, t, f"could not assign: {reason}", self.cfg.max_attempts)
                if isinstance(e, grpc.aio.AioRpcError) and e.code() == grpc.StatusCode.UNAVAILABLE:
                    w = s.get(Worker, d.worker_id)
                    if w.online:
                        cancels += self.worker_lost(s, w, "worker unreachable")
            self.cancel_remote(cancels)
            self._wake.set()

    async def _cancel(self, pairs: list[tuple[str, str]]) -> None:
        for worker_id, task_id in pairs:
            await self._tell(worker_id, "CancelTask", worker_pb2.CancelTaskRequest(task_id=task_id))

    async def _delete(self, worker_id: str, data_ids: list[str]) -> None:
        await self._tell(worker_id, "DeleteData", worker_pb2.DeleteDataRequest(data_ids=data_ids))

    async def _tell(self, worker_id: str, method: str, request) -> None:  # noqa: ANN001
        """A best-effort command: a worker that cannot be reached is handled by liveness."""
        with self.db.session() as s:
            w = s.get(Worker, worker_id)
            address = w.address if w else None
        if address is None:
            return
        try:
            await getattr(self.stub(worker_id, address), method)(request, metadata=self._metadata(), timeout=5)
        except grpc.aio.AioRpcError as e:
            log.info("%s not delivered to worker=%s: %s", method, worker_id, e.code().name)
