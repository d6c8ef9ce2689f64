"""Garbage collection of the master's object store: an object no job references any more is deleted,
so nobody can fill the store with objects that are referenced by nothing (a worker's unrelated
uploads, an outvoted quorum replica's results, an abandoned upload's temporary file).

Referenced: a task's script, inputs and outputs; the logs of tasks and of quorum replicas still in
play or agreeing; every environment's wheels; what a run still in progress uploaded (the upload
rows of ended runs are dropped).
Objects (and temporary files) younger than `grace_s` are kept, so a submission or an upload between
storing its bytes and writing its rows is safe.
"""

from __future__ import annotations

import asyncio
import logging
import stat
import time

from sqlalchemy import delete, or_, select

from runsurge_master import environments, lifecycle
from runsurge_master.db import Database
from runsurge_master.models import DataLocation, DataObject, Job, Task, TaskInput, TaskOutput, TaskReplica, TaskUpload
from runsurge_master.store import ObjectStore
from runsurge_proto.wire import is_data_id

log = logging.getLogger("runsurge.gc")


def referenced(s, deleted_jobs: bool = False) -> set[str]:
    """Object ids the store must keep; `deleted_jobs`: also those only deleted jobs' rows name (their
    bytes may go, but their DataObject rows stay: the deleted job's task rows, kept for its bill, point to them)."""
    ids: set[str] = set()
    for column in (Task.script_data_id, Task.stdout_data_id, Task.stderr_data_id, TaskInput.data_id,
                   TaskOutput.data_id):
        q = select(column).where(column.is_not(None)).distinct()
        if column.class_ is not Task:
            q = q.join(Task, Task.id == column.class_.task_id)
        if not deleted_jobs:
            q = q.join(Job, Job.id == Task.job_id).where(Job.status != "deleted")
        ids.update(s.scalars(q))
    kept = or_(TaskReplica.verdict.is_(None), TaskReplica.verdict == "agree")  # not outvoted or undecidable
    for stdout, stderr, outputs in s.execute(select(TaskReplica.stdout_data_id, TaskReplica.stderr_data_id,
                                                    TaskReplica.outputs).where(kept)):
        ids.update(d for d in (stdout, stderr) if d)
        ids.update(data_id for data_id, _ in (outputs or {}).values())
    active, _ = _uploads(s)
    ids.update(active.values())
    ids.update(environments.referenced_wheels(s))
    return ids


def _uploads(s) -> tuple[dict[int, str], list[int]]:
    """Uploads of runs still in progress (row id → data id), and the row ids of the others."""
    runs = {(t, w, a) for t, w, a in s.execute(select(Task.id, Task.worker_id, Task.attempts)
                                               .where(Task.status.in_(lifecycle.ACTIVE)))}
    runs |= {(t, w, a) for t, w, a in s.execute(select(TaskReplica.task_id, TaskReplica.worker_id,
                                                       TaskReplica.attempt)
                                                .where(TaskReplica.status.in_(lifecycle.ACTIVE)))}
    active, ended = {}, []
    for row_id, task_id, worker_id, attempt, data_id in s.execute(select(
            TaskUpload.id, TaskUpload.task_id, TaskUpload.worker_id, TaskUpload.attempt, TaskUpload.data_id)):
        if (task_id, worker_id, attempt) in runs:
            active[row_id] = data_id
        else:
            ended.append(row_id)
    return active, ended


def collect(db: Database, store: ObjectStore, grace_s: float) -> list[str]:
    """Delete unreferenced objects older than `grace_s`; returns their ids."""
    cutoff = time.time() - grace_s
    with db.session() as s:
        keep = referenced(s)
        rows_only = referenced(s, deleted_jobs=True) - keep
    gone = []
    for path in store.root.glob("*/*"):
        try:
            st = path.lstat()
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(st.st_mode):  # the planner's working folders under incoming/
            continue
        old = st.st_mtime < cutoff
        if path.parent.name == "incoming" or path.name.startswith(".part-"):  # an abandoned upload
            if old:
                path.unlink(missing_ok=True)
        elif is_data_id(path.name) and old and path.name not in keep:
            path.unlink(missing_ok=True)
            gone.append(path.name)
    s_pruned = 0
    with db.session() as s:
        for i in range(0, len(gone), 500):
            chunk = gone[i:i + 500]
            s.execute(delete(DataLocation).where(DataLocation.worker_id.is_(None), DataLocation.data_id.in_(chunk)))
            held = set(s.scalars(select(DataLocation.data_id).where(DataLocation.data_id.in_(chunk))))
            held |= rows_only
            s_pruned += s.execute(delete(DataObject).where(DataObject.id.in_(set(chunk) - held))).rowcount
        # Uploads of ended runs are history: what the task kept, the task itself references.
        _, ended = _uploads(s)
        for i in range(0, len(ended), 500):
            s.execute(delete(TaskUpload).where(TaskUpload.id.in_(ended[i:i + 500])))
    if gone:
        log.info("gc: deleted %d unreferenced objects (%d rows)", len(gone), s_pruned)
    return gone


def forget_job(s, job: Job) -> tuple[set[str], dict[str, list[str]]]:
    """A deleted job's stored data (call it once the job is marked deleted): the objects no other job
    uses (scripts, uploads, results, logs) lose their location rows. Returns their ids, for the caller
    to unlink from the store after the commit, and worker id → the ids that worker should drop."""
    mine = set()
    for column in (Task.script_data_id, Task.stdout_data_id, Task.stderr_data_id):
        mine |= set(s.scalars(select(column).where(Task.job_id == job.id, column.is_not(None))))
    for model in (TaskInput, TaskOutput):
        mine |= set(s.scalars(select(model.data_id).join(Task, Task.id == model.task_id)
                              .where(Task.job_id == job.id, model.data_id.is_not(None))))
    gone = mine - referenced(s)  # the job is already marked deleted: what is left is other jobs'
    drop: dict[str, list[str]] = {}
    for data_id, worker_id in s.execute(select(DataLocation.data_id, DataLocation.worker_id)
                                        .where(DataLocation.data_id.in_(gone))):
        if worker_id:
            drop.setdefault(worker_id, []).append(data_id)
    s.execute(delete(DataLocation).where(DataLocation.data_id.in_(gone)))
    log.info("deleted job=%s: %d objects", job.id, len(gone))
    return gone, drop


async def run(db: Database, store: ObjectStore, interval_s: float, grace_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(collect, db, store, grace_s)
        except Exception:  # a bug here must not stop collection for good
            log.exception("store gc failed")
