"""Heartbeats, many at a time: the beats that arrive while the master's writer is busy are handled
together in its next transaction (group_commit.py; ahead of the reports that wait) with a few
set-wise statements (one SELECT of their workers, one UPDATE by primary key of all of them, one
SELECT of the tasks they name), not an ORM load, a flush and a query per beat: at 1,000 workers
that is 500 beats a second (bench/scale.py).

A beat's reply decides: re-register (the worker was declared offline meanwhile, or its certificate is
from before identities), and which tasks it names that are no longer its own (to cancel). A beat
also records the last-seen time (liveness.py reads it), running tasks and memory, the suspension
reason (a change wakes the scheduler) and the data its disk cap evicted; what needs no durability
(environments held, task phases) goes to live.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from runsurge_master import lifecycle, replicas
from runsurge_master.group_commit import GroupCommit
from runsurge_master.live import MAX_ITEMS, LiveState
from runsurge_master.models import DataLocation, Task, Worker, utcnow
from runsurge_proto import master_pb2
from runsurge_proto.wire import is_data_id

log = logging.getLogger("runsurge.heartbeats")
Beat = tuple[master_pb2.NodeHeartbeatRequest, bool]  # the request, whether the caller's certificate names it
Reply = tuple[master_pb2.NodeHeartbeatResponse, bool]  # the reply, whether the scheduler has news
IN_CHUNK = 5000  # ids per IN (...) list: under every engine's bound on parameters


class Heartbeats:
    def __init__(self, commits: GroupCommit, live: LiveState):
        self.commits, self.live = commits, live
        self._waiting: list[tuple[Beat, asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    async def beat(self, request: master_pb2.NodeHeartbeatRequest, has_identity: bool) -> Reply:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.append(((request, has_identity), future))
        if self._flusher is None:  # a task of its own: a caller that gives up does not strand the others
            self._flusher = loop.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    replies = await self.commits.run(lambda s, b=batch: handle(s, [beat for beat, _ in b], self.live),
                                                      urgent=True)
                except Exception as exc:  # noqa: BLE001 - every caller of the batch hears of it
                    replies = [exc] * len(batch)
                for (_, future), reply in zip(batch, replies, strict=True):
                    if not future.done():
                        future.set_exception(reply) if isinstance(reply, Exception) else future.set_result(reply)
        finally:
            self._flusher = None


def handle(s: Session, beats: list[Beat], live: LiveState) -> list[Reply]:
    """The beats applied in the caller's transaction, in order; one reply each."""
    ids = {r.worker_id for r, _ in beats}
    known = {row.id: row._asdict() for chunk in _chunks(ids) for row in s.execute(
        select(Worker.id, Worker.online, Worker.last_heartbeat, Worker.registered_at, Worker.suspended)
        .where(Worker.id.in_(chunk)))}
    now = utcnow()
    updates: dict[str, dict] = {}
    replies: list[Reply] = []
    for r, has_identity in beats:
        resp, wake = master_pb2.NodeHeartbeatResponse(), False
        w = known.get(r.worker_id)
        if w is None or (not w["online"] and w["last_heartbeat"] > w["registered_at"]) or not has_identity:
            # declared offline meanwhile (its tasks and data were let go), or a certificate from before
            # identities: enrol again
            resp.reregister = True
            replies.append((resp, False))
            continue
        if not w["online"]:
            w["online"], wake = True, True
            log.info("worker online worker=%s", r.worker_id)
        w["last_heartbeat"] = now
        live.heard(r.worker_id, r)
        suspended = r.suspended[:200] or None
        if suspended != w["suspended"]:  # a worker taking work again, or its queued tasks to move
            log.info("worker=%s %s", r.worker_id, f"suspended: {suspended}" if suspended else "takes work again")
            w["suspended"], wake = suspended, True
        updates[r.worker_id] = {"id": r.worker_id, "online": True, "last_heartbeat": now,
                                "running_tasks": r.running_tasks, "memory_used_bytes": r.memory_used_bytes,
                                "suspended": w["suspended"]}
        dropped = [d for d in r.dropped_data_ids[:MAX_ITEMS] if is_data_id(d)]
        if dropped:  # its disk cap evicted them: peers must fetch them elsewhere (or lineage re-runs)
            s.execute(delete(DataLocation).where(DataLocation.worker_id == r.worker_id,
                                                 DataLocation.data_id.in_(dropped)))
        replies.append((resp, wake))
    if updates:
        s.execute(update(Worker), list(updates.values()))
        for obj in list(s.identity_map.values()):  # rows loaded earlier in this transaction are stale now
            if isinstance(obj, Worker) and obj.id in updates:
                s.expire(obj)
    _cancellations(s, [(r, resp) for (r, _), (resp, _) in zip(beats, replies, strict=True) if not resp.reregister])
    return replies


def _cancellations(s: Session, beats: list[tuple[master_pb2.NodeHeartbeatRequest, master_pb2.NodeHeartbeatResponse]]):
    """Each beat's reply names the tasks it runs that are not (any more) its own: its own are the
    active tasks assigned to it and its quorum task replicas."""
    named = {t for r, _ in beats for t in r.running_task_ids[:MAX_ITEMS]}
    holder = {tid: wid for chunk in _chunks(named) for tid, wid in s.execute(
        select(Task.id, Task.worker_id).where(Task.id.in_(chunk), Task.status.in_(lifecycle.ACTIVE)))}
    for r, resp in beats:
        running = list(r.running_task_ids[:MAX_ITEMS])
        mine = {t for t in running if holder.get(t) == r.worker_id}
        if len(mine) < len(running):  # the others may be quorum replicas
            mine |= {x.task_id for x in replicas.active_on(s, r.worker_id)}
        resp.cancel_task_ids.extend(t for t in running if t not in mine)


def _chunks(ids: Iterable[str]) -> list[list[str]]:
    items = list(ids)
    return [items[i:i + IN_CHUNK] for i in range(0, len(items), IN_CHUNK)]
