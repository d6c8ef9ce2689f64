"""Which bytes of a run a worker may move through the master: the inputs and script it may stream
(only its own task's), and the results and logs it may upload (only for a run it holds, at most as
many objects as the task has results, max_output_files when it collects all, plus its two logs)."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from runsurge_master import environments, lifecycle, replicas
from runsurge_master.config import MasterConfig
from runsurge_master.denied import DeniedError
from runsurge_master.models import Task, TaskInput, TaskUpload
from runsurge_master.outcomes import uploads

log = logging.getLogger("runsurge.run_data")


def may_stream(s: Session, worker_id: str, task_id: str, data_id: str, script: bool) -> bool:
    """Whether the worker may read this object: its task's script, one of its inputs, or a wheel of
    its environment (served like an input)."""
    t = s.get(Task, task_id)
    if t is None or (t.worker_id != worker_id and replicas.active(s, t, worker_id) is None):
        return False
    if script:
        return t.script_data_id == data_id
    return (s.scalar(select(TaskInput.id).where(TaskInput.task_id == t.id, TaskInput.data_id == data_id)) is not None
            or _env_wheel(t, data_id))


def upload_attempt(s: Session, cfg: MasterConfig, worker_id: str, task_id: str, data_id: str) -> int:
    """The attempt the upload belongs to; DeniedError unless the worker holds the run and has room left."""
    t = s.get(Task, task_id)
    replica = replicas.active(s, t, worker_id)
    if replica is None and (t is None or t.worker_id != worker_id or t.status not in lifecycle.ACTIVE):
        raise DeniedError("PERMISSION_DENIED", "not your task")
    attempt = replica.attempt if replica else t.attempts
    done = uploads(s, t.id, worker_id, attempt)
    budget = (cfg.max_output_files if t.collect_all_outputs else sum(o.is_result for o in t.outputs)) + 2
    if data_id not in done and len(done) >= budget:
        log.warning("SECURITY refused upload from worker=%s task=%s: %d objects already", worker_id, t.id, len(done))
        raise DeniedError("RESOURCE_EXHAUSTED",
                          "this run already uploaded as many objects as its task has results and logs")
    return attempt


def record_upload(s: Session, worker_id: str, task_id: str, attempt: int, data_id: str, size: int) -> None:
    """The bytes are in the store: the object exists, and this run uploaded it (once)."""
    lifecycle.ensure_data(s, data_id, size, None)
    if data_id not in uploads(s, task_id, worker_id, attempt):
        s.add(TaskUpload(task_id=task_id, worker_id=worker_id, attempt=attempt, data_id=data_id))


def _env_wheel(t: Task, data_id: str) -> bool:
    env = environments.of_task(t)
    return env is not None and any(w["data_id"] == data_id for w in env.wheels)
