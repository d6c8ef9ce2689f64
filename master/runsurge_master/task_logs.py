"""A task's stdout or stderr for its owner: from the master's store once the task ended, and while it
runs from the worker running it (WorkerService.ReadTaskLog), read from a byte offset so a follower
(`runsurge logs --follow`, the job page) fetches only what is new."""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass

import grpc
from fastapi import HTTPException
from sqlalchemy import select

from runsurge_master import lifecycle
from runsurge_master.models import Task, TaskReplica, Worker
from runsurge_proto import worker_pb2

LIVE_READ_MAX = 1 << 20  # bytes asked of a worker per request; the follower asks again from next_offset


@dataclass
class LogChunk:
    text: str
    next_offset: int  # where the next read starts
    running: bool  # the task may still write more
    status: str  # the task's status


def read(sv, task_id: str, user: str, stream: str, offset: int) -> LogChunk:
    """`sv`: services.Services. 404 for a task not the user's, 503 when its worker cannot be reached."""
    with sv.db.session() as s:
        t = s.get(Task, task_id)
        if t is None or t.job.owner_id != user or t.job.status == "deleted":
            raise HTTPException(404, "no such task")
        status, data_id = t.status, (t.stdout_data_id if stream == "stdout" else t.stderr_data_id)
        worker = _running_on(s, t) if status in lifecycle.ACTIVE else None
        address = worker.address if worker is not None else None
        worker_id = worker.id if worker is not None else None
    if worker_id is None:  # ended (or not placed yet): the stored log, if any
        data = b""
        if data_id is not None and sv.store.has(data_id):
            with open(sv.store.path(data_id), "rb") as f:
                f.seek(offset)
                data = f.read()
        return LogChunk(data.decode("utf-8", "replace"), offset + len(data), status in lifecycle.OPEN, status)
    try:
        resp = sv.scheduler.channels.ask(worker_id, address, "ReadTaskLog", worker_pb2.ReadTaskLogRequest(
            task_id=task_id, stream=stream, offset=offset, max_bytes=LIVE_READ_MAX))
    except grpc.aio.AioRpcError as e:
        if e.code() == grpc.StatusCode.NOT_FOUND:  # it has just ended there (or not begun): ask again
            return LogChunk("", offset, True, status)
        raise _unreachable(worker_id) from None
    except (ConnectionError, concurrent.futures.TimeoutError):
        raise _unreachable(worker_id) from None
    data = bytes(resp.data[:LIVE_READ_MAX])  # a worker sending more than asked is cut to it
    data = data[:_whole_utf8(data)]  # a character cut in two comes whole next time
    return LogChunk(data.decode("utf-8", "replace"), offset + len(data), True, status)


def _running_on(s, t: Task) -> Worker | None:
    """The worker running the task: its worker, or a quorum task's first replica still in play."""
    worker_id = t.worker_id
    if t.redundancy > 1:
        worker_id = s.scalar(select(TaskReplica.worker_id).where(
            TaskReplica.task_id == t.id, TaskReplica.status.in_(lifecycle.ACTIVE)).order_by(TaskReplica.attempt))
    return s.get(Worker, worker_id) if worker_id else None


def _unreachable(worker_id: str) -> HTTPException:
    return HTTPException(503, f"the worker running this task ({worker_id[:8]}) cannot be reached now; "
                              "its log is kept when the task ends", headers={"Retry-After": "5"})


def _whole_utf8(data: bytes) -> int:
    """The length of `data` without a UTF-8 character cut off at its end."""
    for back in range(1, min(4, len(data)) + 1):
        b = data[-back]
        if b & 0xC0 != 0x80:  # not a continuation byte: a lead byte or ASCII
            need = 1 if b < 0x80 else 2 if b >> 5 == 0b110 else 3 if b >> 4 == 0b1110 else 4 if b >> 3 == 0b11110 else 1
            return len(data) - back if need > back else len(data)
    return len(data)
