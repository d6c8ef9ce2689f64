"""One scheduling pass's decisions in the database: which ready tasks go to which workers now
(placement.place, a pure function, over capacities read here), which queued tasks move to idle
workers, what each assignment says (AssignTaskRequest) and where its inputs are (NotifyData's
locations, each with a capability token for the peer that serves it). Sending is the scheduler's."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session, selectinload

from runsurge_master import benching, environments, lifecycle, replicas
from runsurge_master.auth import TokenService
from runsurge_master.config import MasterConfig
from runsurge_master.lifecycle import Cancels
from runsurge_master.live import LiveState
from runsurge_master.metrics import PASS_SECONDS
from runsurge_master.models import DataLocation, DataObject, Task, TaskInput, TaskReplica, Worker, utcnow
from runsurge_master.placement import Capacity, ReadyTask, place
from runsurge_proto import common_pb2, worker_pb2

log = logging.getLogger("runsurge.planning")
CAPABILITY_TTL_S = 900  # a peer fetch starts right after assignment; this only bounds a leaked token
# Most ready tasks considered per pass. A pass runs in the master's one writer, so heartbeats and
# reports wait for it: many short passes (the scheduler runs the next at once while one placed
# tasks) keep them flowing where one pass of 2,000 took seconds (bench/scale.py, N = 1,000).
BATCH = 256
STEAL_AFTER_S = 1.0  # a task queued (prefetched) this long on a busy worker may move to an idle one


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


class Planner:
    def __init__(self, cfg: MasterConfig, tokens: TokenService, live: LiveState):
        self.cfg, self.tokens, self.live = cfg, tokens, live
        self.assigned_total = 0  # placements made (runsurge_tasks_assigned_total)

    def plan(self, s: Session) -> tuple[list[Dispatch], Cancels]:
        """One pass in the caller's transaction: the dispatches, and the cancels for moved tasks."""
        began = time.perf_counter()
        dispatches, cancels = self._plan(s)
        if dispatches:  # the placement decision's own time (bench/scale.py), not the wait in the queue
            PASS_SECONDS.observe(time.perf_counter() - began)
        return dispatches, cancels

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
    def _input_ids(s: Session, task_ids: list[str]) -> dict[str, list[str]]:
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

    def notices(self, s, tasks: list[Task]) -> list[tuple[str, common_pb2.DataLocation]]:
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
