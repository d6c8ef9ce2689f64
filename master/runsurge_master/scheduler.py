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
from sqlalchemy import and_, case, delete, func, or_, select
from sqlalchemy.orm import selectinload

from runsurge_master import benching, environments, lifecycle, replicas
from runsurge_master.auth import TokenService
from runsurge_master.billing import Tariff
from runsurge_master.config import MasterConfig
from runsurge_master.db import Database
from runsurge_master.live import LiveState
from runsurge_master.metrics import PASS_SECONDS, TASK_CALL_TASKS, TASK_CALLS
from runsurge_master.models import DataLocation, DataObject, Heartbeat, Task, TaskInput, TaskReplica, Worker, utcnow
from runsurge_master.placement import Capacity, ReadyTask, place
from runsurge_master.tls import MasterTLS
from runsurge_pki.ca import expect_identity, worker_name
from runsurge_proto import common_pb2, worker_pb2, worker_pb2_grpc
from runsurge_proto.wire import CHANNEL_OPTIONS, bearer

log = logging.getLogger("runsurge.scheduler")
SAFETY_TICK_S = 5.0
CAPABILITY_TTL_S = 900  # a peer fetch starts right after assignment; this only bounds a leaked token
BATCH = 2000  # most ready tasks considered per pass
STEAL_AFTER_S = 1.0  # a task queued (prefetched) this long on a busy worker may move to an idle one
# With prefetch, at most one scheduling pass this often: workers start their queued tasks meanwhile,
# and one pass serves every completion since the last (measured: 0.55 passes per task instead of 1).
PASS_INTERVAL_S = 0.02


@dataclass
class Dispatch:
    worker_id: str
    address: str
    request: worker_pb2.AssignTaskRequest
    notices: list[common_pb2.DataLocation] = field(default_factory=list)


def by_worker(dispatches: list[Dispatch]) -> list[list[Dispatch]]:
    """One AssignTasks call per worker a pass placed tasks on (in placement order)."""
    groups: dict[str, list[Dispatch]] = {}
    for d in dispatches:
        groups.setdefault(d.worker_id, []).append(d)
    return list(groups.values())


class Scheduler:
    def __init__(self, db: Database, cfg: MasterConfig, tokens: TokenService, tls: MasterTLS):
        self.db, self.cfg, self.tokens, self.tls = db, cfg, tokens, tls
        self.tariff = Tariff.from_config(cfg)  # a lost replica may let the others decide (and bill) its task
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        # worker id → (address, channel, stub): a stub per dispatch would rebuild its callables each time
        self._channels: dict[str, tuple[str, grpc.aio.Channel, worker_pb2_grpc.WorkerServiceStub]] = {}
        self._token = ("", 0.0)
        self._background: set[asyncio.Task] = set()
        self.assigned_total = 0
        self.live = LiveState()  # what the last heartbeats said: environments held, task phases
        self._last_check: float | None = None  # monotonic time of the last liveness check
        self._stall_end = utcnow()  # when the master last woke from a stall of its own

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

    def ask(self, worker_id: str, address: str, method: str, request, timeout: float = 5.0):
        """Call a worker from an HTTP handler's thread and wait for its answer (grpc.aio.AioRpcError
        if it fails; ConnectionError if the gRPC side is not running)."""
        if self._loop is None:
            raise ConnectionError("the master's gRPC side is not running")

        async def call():
            return await getattr(self.stub(worker_id, address), method)(
                request, metadata=self._metadata(), timeout=timeout)
        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout + 1)

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        tick = min(SAFETY_TICK_S, self.cfg.heartbeat_interval_s)
        await self.reconcile()
        checked = passed = 0.0
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=tick)
                if self.cfg.prefetch:  # while busy, one pass serves every event since the last
                    await asyncio.sleep(passed + PASS_INTERVAL_S - time.monotonic())
            except TimeoutError:
                pass
            self._wake.clear()
            passed = time.monotonic()
            try:
                if passed - checked >= tick:  # once a tick, not on every task's completion
                    checked = passed
                    self.cancel_remote(self.check_liveness())
                for batch in by_worker(self.plan()):
                    self._spawn(self._dispatch(batch))
            except Exception:  # a bug here must not stop scheduling for good
                log.exception("scheduling pass failed")

    async def close(self) -> None:
        for _, ch, _ in self._channels.values():
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
                mine = replicas.active_on(s, worker_id)  # quorum replicas it should be running
                cancels = [(worker_id, t) for t in running - {t.id for t in ours} - {r.task_id for r in mine}]
                for t in ours:
                    if t.id not in running:
                        cancels += lifecycle.requeue_task(s, t, "lost while the master restarted",
                                                          self.cfg.max_attempts)
                cancels += replicas.lose_all(s, [r for r in mine if r.task_id not in running],
                                             "lost while the master restarted", self.cfg.max_attempts,
                                             tariff=self.tariff)
                notices = self._notices(s, [t for t in ours if t.id in running and t.status == "assigned"])
            log.info("reconciled worker=%s running=%d requeued=%d", worker_id, len(running),
                     sum(t.id not in running for t in ours))
            self.cancel_remote(cancels)
            for task_id, loc in notices:
                await self._tell(worker_id, "NotifyData", worker_pb2.NotifyDataRequest(task_id=task_id, location=loc))
        self._wake.set()

    def _notices(self, s, tasks: list[Task]) -> list[tuple[str, common_pb2.DataLocation]]:
        """Where the inputs of tasks a worker kept but has not started are, to say again: the master
        may have died between AssignTask and NotifyData, and the task would wait for them in vain
        (found by the chaos test). A worker ignores locations it already has."""
        if not tasks:
            return []
        workers = {w.id: w for w in s.scalars(select(Worker).where(Worker.online))}
        holders: dict[str | None, set[str]] = {}
        sizes: dict[str, int] = {}
        self._locate(s, self._input_ids(s, [t.id for t in tasks]), workers, holders, sizes)
        vouched = self._vouched(s, [t.id for t in tasks])
        return [(t.id, loc) for t in tasks
                for loc in self._dispatch_for(t, workers[t.worker_id], workers, holders, sizes, vouched).notices]

    # -- liveness ------------------------------------------------------------------------------
    def master_stalled(self) -> bool:
        """Whether the master itself was late since the last check (an event loop blocked by a long
        pass, a paused process): checks run once a tick, so a longer gap means the beats of that time
        could not be heard, and silence then is no worker's fault. Heartbeats queued behind other work
        while the loop still ticks are NOT seen here (BENCHMARKS.md, Scale)."""
        now = time.monotonic()
        last, self._last_check = self._last_check, now
        tick = min(SAFETY_TICK_S, self.cfg.heartbeat_interval_s)
        if last is not None and now - last > tick + self.cfg.heartbeat_interval_s:
            log.warning("master stalled %.1f s: every worker gets a fresh liveness window", now - last - tick)
            self._stall_end = utcnow()
            return True
        return False

    def check_liveness(self) -> list[tuple[str, str]]:
        cutoff = utcnow() - timedelta(seconds=self.cfg.heartbeat_interval_s * self.cfg.missed_heartbeats)
        cancels: list[tuple[str, str]] = []
        if self.master_stalled() or self._stall_end >= cutoff:  # a window counts only time the master was awake
            return cancels
        with self.db.session() as s:
            for w in s.scalars(select(Worker).where(Worker.online, Worker.last_heartbeat < cutoff)):
                log.warning("worker offline worker=%s (no heartbeat since %s)", w.id, w.last_heartbeat)
                cancels += self.worker_lost(s, w, "worker stopped sending heartbeats")
            if lifecycle.expire_checkpoints(s, self.cfg.checkpoint_grace_s):
                self.wake()
            s.execute(delete(Heartbeat).where(Heartbeat.at < utcnow() - timedelta(minutes=10)))
        return cancels

    def worker_lost(self, s, w: Worker, reason: str) -> list[tuple[str, str]]:
        """Offline: its cached data is unreachable and its tasks go back to the queue."""
        w.online = False
        self.live.forget(w.id)
        s.execute(delete(DataLocation).where(DataLocation.worker_id == w.id))
        cancels = []
        tasks = s.scalars(select(Task).where(Task.worker_id == w.id, Task.status.in_(lifecycle.ACTIVE))).all()
        for t in tasks:
            cancels += lifecycle.requeue_task(s, t, f"{reason} (worker {w.id[:8]})", self.cfg.max_attempts)
        lost = replicas.active_on(s, w.id)
        cancels += replicas.lose_all(s, lost, f"{reason} (worker {w.id[:8]})", self.cfg.max_attempts,
                                     tariff=self.tariff)
        if tasks or lost:  # one fault event, however many tasks it dropped
            benching.fault(w, reason)
        return cancels

    # -- placement -----------------------------------------------------------------------------
    def plan(self) -> list[Dispatch]:
        began = time.perf_counter()
        with self.db.session() as s:
            dispatches, cancels = self._plan(s)
        if dispatches:  # the placement decision's own time (bench/scale.py), not the wait in the queue
            PASS_SECONDS.observe(time.perf_counter() - began)
        self.cancel_remote(cancels)  # after the commit: a moved task is no longer the old worker's
        return dispatches

    def _plan(self, s) -> tuple[list[Dispatch], list[tuple[str, str]]]:
        """Fill free slots first (placement.place). With ready tasks left over, queue up to `prefetch`
        more on each worker, so its next task starts the moment a slot frees rather than a master
        round trip later; a queued task is assigned (its memory reserved) like a running one. A
        worker left with a free slot and nothing ready takes over a task that has waited too long
        in another worker's queue (_steal). Returns the dispatches and the cancels for moved tasks."""
        workers = {w.id: w for w in s.scalars(select(Worker).where(Worker.online))}
        if not workers:
            return [], []
        used = {wid: (n, running, mem) for wid, n, running, mem in s.execute(
            select(Task.worker_id, func.count(), func.sum(case((Task.status == "running", 1), else_=0)),
                   func.coalesce(func.sum(Task.memory_bytes), 0))
            .where(Task.status.in_(lifecycle.ACTIVE), Task.worker_id.in_(workers))
            .group_by(Task.worker_id))}
        for wid, n, running, mem in replicas.load(s, list(workers)):  # quorum replicas hold slots too
            u = used.get(wid, (0, 0, 0))
            used[wid] = (u[0] + n, u[1] + running, u[2] + mem)
        active = {wid: used.get(wid, (0, 0, 0))[0] for wid in workers}
        # A suspended worker (its owner's machine busy, outside its schedule, stopping) takes nothing new.
        free = {wid: 0 if w.suspended else max(0, w.slots - active[wid]) for wid, w in workers.items()}
        queue = {wid: 0 if w.suspended else max(0, w.slots + self.cfg.prefetch - active[wid]) - free[wid]
                 for wid, w in workers.items()}
        if not any(free.values()) and not any(queue.values()):
            return [], []
        window = min(BATCH, max(64, 8 * sum(free.values()) + sum(queue.values())))
        # Plain rows, not ORM objects: most of the window is not placed in this pass.
        ready = s.execute(select(Task.id, Task.memory_bytes, Task.redundancy).where(Task.status == "ready")
                          .order_by(Task.created_at, Task.seq).limit(window)).all()
        inputs = self._input_ids(s, [t.id for t in ready])
        holders: dict[str | None, set[str]] = {}
        sizes: dict[str, int] = {}
        self._locate(s, inputs, workers, holders, sizes)
        reachable = set().union(*holders.values())
        vouched = self._vouched(s, [t.id for t in ready])

        def available(tid: str, d: str) -> bool:
            allowed = vouched.get((tid, d))
            return d in reachable if allowed is None else any(d in holders.get(w, ()) for w in allowed)

        lost = {tid for tid, ids in inputs.items() if not all(available(tid, d) for d in ids)}
        for tid in lost:  # lineage: recompute inputs nobody reachable holds any more
            lifecycle.reopen_lost_producers(s, s.get(Task, tid), set(workers), lambda d, tid=tid: available(tid, d))
        now = utcnow()  # a benched worker still serves its data to peers, but takes no task
        caps = [Capacity(id=wid, free_memory=w.memory_bytes - used.get(wid, (0, 0, 0))[2], free_slots=free[wid],
                         holds=holders.get(wid, set()), environments=self.live.environments(wid))
                for wid, w in workers.items() if not benching.benched(w, now) and not w.suspended]
        avoid = lifecycle.avoided(s, [t.id for t in ready])
        envs = environments.of_tasks(s, [t.id for t in ready])
        todo = [ReadyTask(id=t.id, memory_bytes=t.memory_bytes, inputs={d: sizes.get(d, 0) for d in inputs[t.id]},
                          avoid=avoid.get(t.id, set()), environment=envs.get(t.id))
                for t in ready if t.id not in lost]
        needs = replicas.needs(s, [(t.id, t.redundancy) for t in ready if t.redundancy > 1 and t.id not in lost])
        placements = (replicas.place(todo, caps, needs, workers, self.cfg.quorum_min_trust) if needs
                      else place(todo, caps))
        idle = [Capacity(id=c.id, free_memory=c.free_memory, free_slots=c.free_slots) for c in caps if c.free_slots]
        placed = {tid for tid, _ in placements}
        while len(placed) < len(todo) and any(queue.values()):  # queues fill evenly: one per worker a round
            for c in caps:
                c.free_slots = min(1, queue[c.id])
            more = place([t for t in todo if t.id not in placed and t.id not in needs], caps)
            if not more:
                break
            for tid, wid in more:
                queue[wid] -= 1
                placed.add(tid)
            placements += more
        moved = self._steal(s, idle, workers, used, holders, sizes) if idle else []
        by_id = {}
        if placements:
            by_id = {t.id: t for t in s.scalars(select(Task).where(Task.id.in_([tid for tid, _ in placements]))
                                                 .options(selectinload(Task.inputs), selectinload(Task.outputs)))}
        dispatches = []
        if moved:
            vouched |= self._vouched(s, [t.id for t, _, _ in moved])
        for t, worker_id in [(by_id[tid], wid) for tid, wid in placements] + [(t, wid) for t, wid, _ in moved]:
            w = workers[worker_id]
            t.attempts += 1
            if t.id in needs:  # one more replica of a quorum task (whose worker_id stays unset)
                replicas.start(s, t, w.id, needs[t.id])
            else:
                lifecycle.transition(s, t, lifecycle.T.ASSIGNED, worker_id=w.id)
            dispatches.append(self._dispatch_for(t, w, workers, holders, sizes, vouched))
        self.assigned_total += len(dispatches)
        return dispatches, [(old, t.id) for t, _, old in moved]

    def _steal(self, s, idle: list[Capacity], workers: dict[str, Worker], used: dict[str, tuple[int, int, int]],
               holders: dict[str | None, set[str]], sizes: dict[str, int]) -> list[tuple[Task, str, str]]:
        """Prefetch's safety valve: a task queued on a worker whose slots all run (maybe one long task)
        for more than STEAL_AFTER_S moves to a worker with a free slot. Returns (task, new worker,
        old worker); the old worker is told to cancel its copy (a race lost to its start costs one
        short run: its report no longer matches the task's worker and attempt). A suspended worker's
        queued tasks move at once: they would wait for its owner, not for a slot."""
        full = [wid for wid, w in workers.items() if used.get(wid, (0, 0, 0))[1] >= w.slots]
        suspended = [wid for wid, w in workers.items() if w.suspended]
        if not full and not suspended:
            return []
        waiting = s.scalars(select(Task).where(
            Task.status == "assigned",
            or_(and_(Task.worker_id.in_(full), Task.assigned_at < utcnow() - timedelta(seconds=STEAL_AFTER_S)),
                Task.worker_id.in_(suspended)))
            .order_by(Task.assigned_at).limit(sum(c.free_slots for c in idle))).all()
        if not waiting:
            return []
        inputs = self._input_ids(s, [t.id for t in waiting])
        self._locate(s, inputs, workers, holders, sizes)
        moved = []
        avoid = lifecycle.avoided(s, [t.id for t in waiting])
        for t in waiting:
            for _, worker_id in place([ReadyTask(id=t.id, memory_bytes=t.memory_bytes,
                                                 avoid=avoid.get(t.id, set()))], idle):
                log.info("moving queued task=%s from worker=%s to idle worker=%s", t.id, t.worker_id, worker_id)
                moved.append((t, worker_id, t.worker_id))
        return moved

    @staticmethod
    def _input_ids(s, task_ids: list[str]) -> dict[str, list[str]]:
        """Task id → the data ids of its inputs."""
        inputs: dict[str, list[str]] = {tid: [] for tid in task_ids}
        if task_ids:
            for task_id, data_id in s.execute(select(TaskInput.task_id, TaskInput.data_id).where(
                    TaskInput.task_id.in_(task_ids), TaskInput.data_id.is_not(None))):
                inputs[task_id].append(data_id)
        return inputs

    @staticmethod
    def _vouched(s, task_ids: list[str]) -> dict[tuple[str, str], set[str]]:
        """(task id, data id) → the workers that may serve that input, for inputs another task produced:
        those that ran the producer (or an agreeing replica of it) and those that already fetched it for
        a task of the same job. Never the master, nor a worker that holds the same hash for someone
        else: a producer that named another user's object as its output must not hand it to this job."""
        rows = s.execute(select(TaskInput.task_id, TaskInput.data_id, TaskInput.producer_task_id, Task.job_id)
                         .join(Task, Task.id == TaskInput.task_id)
                         .where(TaskInput.task_id.in_(task_ids), TaskInput.producer_task_id.is_not(None),
                                TaskInput.data_id.is_not(None))).all() if task_ids else []
        if not rows:
            return {}
        producers = {p for _, _, p, _ in rows}
        ran: dict[str, set[str]] = {}
        for task_id, worker_id in s.execute(select(Task.id, Task.worker_id).where(Task.id.in_(producers))).all() + \
                s.execute(select(TaskReplica.task_id, TaskReplica.worker_id).where(
                    TaskReplica.task_id.in_(producers), TaskReplica.verdict == "agree")).all():
            if worker_id:
                ran.setdefault(task_id, set()).add(worker_id)
        fetched: dict[tuple[str, str], set[str]] = {}
        for job_id, data_id, worker_id in s.execute(
                select(Task.job_id, TaskInput.data_id, Task.worker_id).join(TaskInput, TaskInput.task_id == Task.id)
                .where(Task.job_id.in_({j for *_, j in rows}), Task.status == "done",
                       TaskInput.data_id.in_({d for _, d, _, _ in rows}))):
            fetched.setdefault((job_id, data_id), set()).add(worker_id)
        return {(t, d): ran.get(p, set()) | fetched.get((j, d), set()) for t, d, p, j in rows}

    @staticmethod
    def _locate(s, inputs: dict[str, list[str]], workers: dict[str, Worker],
                holders: dict[str | None, set[str]], sizes: dict[str, int]) -> None:
        """Add who holds each input (the master: None; only live workers count) and its size."""
        wanted = {d for ids in inputs.values() for d in ids}
        if not wanted:
            return
        for data_id, wid, size in s.execute(
                select(DataLocation.data_id, DataLocation.worker_id, DataObject.size)
                .join(DataObject, DataObject.id == DataLocation.data_id)
                .where(DataLocation.data_id.in_(wanted))):
            if wid is None or wid in workers:
                holders.setdefault(wid, set()).add(data_id)
                sizes[data_id] = size

    def _dispatch_for(self, t: Task, w: Worker, workers: dict[str, Worker], holders: dict[str | None, set[str]],
                      sizes: dict[str, int], vouched: dict[tuple[str, str], set[str]]) -> Dispatch:
        req = worker_pb2.AssignTaskRequest(
            task_id=t.id, job_id=t.job_id, script_data_id=t.script_data_id, script_name=t.script_name,
            inputs=[worker_pb2.TaskInput(name=i.name, data_id=i.data_id, size=sizes.get(i.data_id, 0))
                    for i in t.inputs],
            outputs=[worker_pb2.ExpectedOutput(name=o.name, upload_to_master=o.is_result) for o in t.outputs],
            collect_all_outputs=t.collect_all_outputs, attempt=t.attempts,
            limits=worker_pb2.TaskLimits(memory_bytes=t.memory_bytes, cpus=t.cpus, timeout_s=t.timeout_s,
                                         output_bytes=self.cfg.max_output_bytes,
                                         output_files=self.cfg.max_output_files))
        env = environments.of_task(t)
        if env is not None:  # the task's packages: wheels from the master's store (where they were resolved)
            req.environment_id = env.id
            self.live.sent(w.id, env.id)
            req.environment_wheels.extend(worker_pb2.TaskInput(name=w["filename"], data_id=w["data_id"],
                                                               size=w["size"]) for w in env.wheels)
        notices = []
        for i in t.inputs:
            # Prefer the assigned worker itself, then a peer, then the master.
            allowed = vouched.get((t.id, i.data_id))  # a produced input: only the workers _vouched names
            peers = [wid for wid, held in holders.items()
                     if wid and i.data_id in held and (allowed is None or wid in allowed)]
            src = w.id if w.id in peers else (peers[0] if peers else None)
            loc = common_pb2.DataLocation(data_id=i.data_id, size=sizes.get(i.data_id, 0), sha256=i.data_id)
            if src is None and allowed is not None:  # never the master's copy (placement waits for lineage)
                continue
            if src is None:
                loc.on_master = True
            else:
                loc.peer_worker_id, loc.peer_address = src, workers[src].address
                # A copy of the same hash the worker holds for someone else is no proof the producer had it.
                loc.from_source = allowed is not None and w.id not in allowed
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

    def forget_channel(self, worker_id: str) -> None:
        """The worker (re)registered: a new process is behind its address. A channel kept from
        before may be in reconnect backoff (we called it while it was down) and would fail the next
        calls at once, which made a freshly restarted worker look unreachable (found by the chaos test)."""
        known = self._channels.pop(worker_id, None)
        if known is not None:
            self._spawn(known[1].close())

    def stub(self, worker_id: str, address: str) -> worker_pb2_grpc.WorkerServiceStub:
        known = self._channels.get(worker_id)
        if known is None or known[0] != address:
            if known:
                self._spawn(known[1].close())
            channel = grpc.aio.secure_channel(address, self.tls.channel_credentials(),  # only that worker answers
                                              options=CHANNEL_OPTIONS + expect_identity(worker_name(worker_id)))
            known = (address, channel, worker_pb2_grpc.WorkerServiceStub(channel))
            self._channels[worker_id] = known
        return known[2]

    async def _dispatch(self, batch: list[Dispatch]) -> None:
        """The tasks one pass placed on one worker, in one AssignTasks call; then each accepted
        task's NotifyData. A failed call fails each of its tasks, a refused task only itself."""
        stub = self.stub(batch[0].worker_id, batch[0].address)
        md = self._metadata()
        TASK_CALLS.labels("AssignTasks").inc()
        TASK_CALL_TASKS.labels("AssignTasks").inc(len(batch))
        try:
            resp = await stub.AssignTasks(worker_pb2.AssignTasksRequest(tasks=[d.request for d in batch]),
                                          metadata=md, timeout=15)
            if len(resp.results) != len(batch):
                raise RuntimeError(f"the worker answered {len(resp.results)} of {len(batch)} tasks")
        except (grpc.aio.AioRpcError, RuntimeError) as e:
            for d in batch:
                self._undispatch(d, e)
            return
        for d, answer in zip(batch, resp.results, strict=True):
            try:
                if not answer.accepted:
                    raise RuntimeError(f"worker refused the task: {answer.reason}")
                for loc in d.notices:
                    await stub.NotifyData(worker_pb2.NotifyDataRequest(task_id=d.request.task_id, location=loc),
                                          metadata=md, timeout=15)
            except (grpc.aio.AioRpcError, RuntimeError) as e:
                self._undispatch(d, e)

    def _undispatch(self, d: Dispatch, e: grpc.aio.AioRpcError | RuntimeError) -> None:
        """A task that did not reach its worker goes back (or its replica is lost); an unreachable
        worker is offline, one that refused counts a fault."""
        reason = e.details() if isinstance(e, grpc.aio.AioRpcError) else str(e)
        log.warning("dispatch failed task=%s worker=%s: %s", d.request.task_id, d.worker_id, reason)
        with self.db.session() as s:
            t = s.get(Task, d.request.task_id)
            cancels = []
            if t.status in lifecycle.ACTIVE and t.worker_id == d.worker_id:
                cancels = lifecycle.requeue_task(s, t, f"could not assign: {reason}", self.cfg.max_attempts)
            elif (r := replicas.active(s, t, d.worker_id)) is not None and r.attempt == d.request.attempt:
                cancels = replicas.lose(s, t, r, f"could not assign: {reason}", self.cfg.max_attempts,
                                        tariff=self.tariff)
            w = s.get(Worker, d.worker_id)
            if isinstance(e, grpc.aio.AioRpcError) and e.code() == grpc.StatusCode.UNAVAILABLE:
                if w.online:
                    cancels += self.worker_lost(s, w, "worker unreachable")
            else:  # it answered, and would not take the task
                benching.fault(w, f"could not assign: {reason}")
        self.cancel_remote(cancels)
        self._wake.set()

    async def _cancel(self, pairs: list[tuple[str, str]]) -> None:
        for worker_id, task_id in pairs:
            await self._tell(worker_id, "CancelTask", worker_pb2.CancelTaskRequest(task_id=task_id))

    async def _delete(self, worker_id: str, data_ids: list[str]) -> None:
        await self._tell(worker_id, "DeleteData", worker_pb2.DeleteDataRequest(data_ids=data_ids))

    async def _tell(self, worker_id: str, method: str, request) -> None:
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
