"""How a run ended, decided from its worker's report (TaskStarted, TaskComplete), and what follows:
the metering bounded by what the master knows itself, outputs checked, the worker's trust and
benching, the task's next state through lifecycle (or its quorum replica's through replicas). Each
function takes the session of the report's transaction (group_commit.py) and no gRPC: the servicer
only translates messages to these calls and their results back."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from runsurge_master import benching, billing, lifecycle, metering, quorum, replicas, usage
from runsurge_master.billing import Tariff
from runsurge_master.config import MasterConfig
from runsurge_master.group_commit import RefusedError
from runsurge_master.jobspec import SpecError, check_file_name
from runsurge_master.lifecycle import Cancels
from runsurge_master.models import DataLocation, Task, TaskReplica, TaskUpload, Worker, utcnow
from runsurge_master.store import ObjectStore
from runsurge_proto import master_pb2
from runsurge_proto.wire import is_data_id

log = logging.getLogger("runsurge.outcomes")
S = master_pb2.TaskStatus


class RunOutcomes:
    """`forget_copy(worker id, data ids)`: tell a worker to drop copies the master no longer trusts."""

    def __init__(self, cfg: MasterConfig, store: ObjectStore, tariff: Tariff,
                 forget_copy: Callable[[str, list[str]], None]):
        self.cfg, self.store, self.tariff, self.forget_copy = cfg, store, tariff, forget_copy

    @staticmethod
    def started(s: Session, request) -> None:  # one UPDATE, no ORM load: this is on every task's path
        if not lifecycle.transition_rows(s, Task, (lifecycle.T.ASSIGNED,), lifecycle.T.RUNNING,
                                         Task.id == request.task_id, Task.worker_id == request.worker_id):
            replicas.started(s, request.task_id, request.worker_id)  # if it is a quorum task's replica

    def completed(self, s: Session, request) -> Cancels:
        """The report applied; refused (RefusedError, nothing changed) unless the run is the caller's."""
        t = s.get(Task, request.task_id)
        replica = replicas.active(s, t, request.worker_id)  # a quorum task's run on this worker
        attempt = replica.attempt if replica else t.attempts if t else 0
        stopped = replica is None and t is not None and lifecycle.stopped_run_report(s, t, request.worker_id)
        if ((replica is None and not stopped and (t is None or t.worker_id != request.worker_id
                                                  or t.status not in lifecycle.ACTIVE))
                or (request.attempt and request.attempt != attempt)):
            raise RefusedError("this task is not (or no longer) assigned to you")
        return self._complete(s, t, request, replica, stopped)

    def _complete(self, s, t: Task, r, replica: TaskReplica | None,
                  stopped: bool = False) -> list[tuple[str, str]]:
        """`stopped`: the run its owner's cancel stopped: only its metering is kept, and billed."""
        run = replica or t  # whose metering this is: the task's, or its quorum replica's
        now = utcnow()
        m, problems, lied = metering.bounded(
            r.wall_s, r.cpu_s, r.mem_avg_bytes, r.mem_peak_bytes, now=now, timeout_s=t.timeout_s, cpus=t.cpus,
            assigned_at=replica.created_at if replica else t.assigned_at, memory_bytes=t.memory_bytes)
        if problems:
            w = s.get(Worker, r.worker_id)
            before = w.trust
            if lied:
                w.trust = quorum.trust_after(w.trust, agreed=False)
            log.warning("SECURITY metering clamped worker=%s task=%s trust %d -> %d: %s", w.id, t.id, before,
                        w.trust, "; ".join(problems))
        if stopped and m.wall_s <= 0:  # cancelled before it started: it never ran, nothing to record or bill
            return []
        if r.status == S.TASK_STATUS_CHECKPOINTED and not stopped:  # one run, reported (and billed) when it ends
            if replica is not None:  # a quorum replica is not kept waiting: the round goes on without it
                return replicas.report(s, t, replica, "released", "its worker stopped", self.cfg.max_attempts,
                                       r.worker_id, tariff=self.tariff)
            lifecycle.checkpoint_task(s, t, m)  # its metering so far: billed if its job is cancelled
            return []
        if run.started_at is None:  # a short run's start comes with its end (the worker folds them)
            run.started_at = now - timedelta(seconds=m.wall_s)
            t.started_at = t.started_at or run.started_at
        run.exit_code = r.exit_code
        run.wall_s, run.cpu_s = m.wall_s, m.cpu_s
        run.mem_avg_bytes, run.mem_peak_bytes = m.mem_avg_bytes, m.mem_peak_bytes
        if replica is None and r.resumes:  # its segments are summed in wall_s and cpu_s; the restores apart
            t.restore_s = max(0.0, r.restore_s)
        usage.record(s, t.id, replica.attempt if replica else t.attempts, r.worker_id, run.started_at,
                     usage.clean(r.usage, m.wall_s, m.cpu_s, m.mem_peak_bytes))
        uploaded = uploads(s, t.id, r.worker_id, replica.attempt if replica else t.attempts)
        for field in ("stdout_data_id", "stderr_data_id"):  # only what this run uploaded: no one else's object
            value = getattr(r, field)
            setattr(run, field, value if value in uploaded else None)
        if stopped:  # it ran until stopped: the contributor's machine did that much work
            billing.charge_task(s, t, "cancelled", self.tariff)
            return []
        outcome, detail = self._outcome(s, t, r, uploaded)
        w = s.get(Worker, r.worker_id)
        blame = w  # a loss is its worker's fault, unless a peer served it corrupt bytes
        if outcome == "lost" and r.bad_peer_worker_id and is_data_id(r.bad_data_id):
            blame = s.get(Worker, r.bad_peer_worker_id) or w
        if outcome == "lost":
            benching.fault(blame, str(detail))
        elif outcome in ("ok", "failed"):  # it ran the task (the user's script may have failed)
            benching.succeeded(w)
        if replica is not None:
            return replicas.report(s, t, replica, outcome, detail, self.cfg.max_attempts, blame.id, tariff=self.tariff)
        if outcome == "lost":
            return lifecycle.requeue_task(s, t, detail, self.cfg.max_attempts, blame.id)
        if outcome == "cancelled":  # not asked for (the master's own cancels are stopped runs): a lost run
            return lifecycle.requeue_task(s, t, "the worker cancelled it", self.cfg.max_attempts, w.id)
        if outcome == "released":
            lifecycle.release_task(s, t, detail)
            return []
        if outcome == "failed":
            if lifecycle.retry_with_more_memory(s, t, detail):
                return []
            return lifecycle.fail_task(s, t, detail, self.tariff)
        lifecycle.record_outputs(s, t, t.worker_id, detail)
        w = s.get(Worker, t.worker_id)  # held: once clean, the session keeps it only weakly, and billing reloads it
        w.tasks_done += 1
        lifecycle.finish_task_ok(s, t, detail, self.tariff)
        return []

    def _outcome(self, s, t: Task, r, uploaded: set[str]) -> tuple[str, object]:
        """How a run ended: ("lost", reason) a worker fault, ("cancelled", ""), ("failed", error) the
        user's script failed, or ("ok", outputs: name → (data id, size))."""
        if r.status == S.TASK_STATUS_WORKER_ERROR:
            if r.bad_peer_worker_id and is_data_id(r.bad_data_id):
                self._distrust(s, r.bad_peer_worker_id, r.bad_data_id, t, r.worker_id)
            return "lost", r.error or "worker error"
        if r.status == S.TASK_STATUS_CANCELLED:
            return "cancelled", ""
        if r.status == S.TASK_STATUS_RELEASED:
            return "released", r.error or "released by its worker"
        if r.status != S.TASK_STATUS_SUCCEEDED:
            return "failed", r.error or f"exit code {r.exit_code}"
        try:
            outputs, problem = check_outputs(t, r.outputs)
        except ValueError as e:  # the worker's report, not the user's script, is broken
            return "lost", str(e)
        if problem:
            return "failed", problem
        expected_results = {o.name for o in t.outputs if o.is_result} if not t.collect_all_outputs else set(outputs)
        # A result must be bytes this run uploaded: naming an object the master holds for someone else
        # would hand it to this job's owner.
        missing_upload = [n for n in expected_results if outputs[n][0] not in uploaded]
        if missing_upload:
            return "lost", f"result(s) not uploaded: {', '.join(missing_upload)}"
        for n in expected_results:  # a result's size is what the master holds, not what the report says
            outputs[n] = (outputs[n][0], self.store.path(outputs[n][0]).stat().st_size)
        if sum(size for _, size in outputs.values()) > self.cfg.max_output_bytes:
            return "lost", "reported output sizes exceed the output limit"
        return "ok", outputs

    def _distrust(self, s, peer_id: str, data_id: str, t: Task, worker_id: str) -> None:
        """A peer served bytes that do not hash to their id, or could not serve them at all: forget its
        copy and tell it to drop it (a disk fault heals; a liar is caught again). Lineage recomputes the
        data if nobody else has it."""
        log.warning("SECURITY corrupt or missing data=%s served by worker=%s to worker=%s for task=%s",
                    data_id[:12], peer_id, worker_id, t.id)
        s.execute(delete(DataLocation).where(DataLocation.worker_id == peer_id, DataLocation.data_id == data_id))
        self.forget_copy(peer_id, [data_id])


def check_outputs(t: Task, reported) -> tuple[dict[str, tuple[str, int]], str | None]:
    """The outputs, or the user's mistake; raises ValueError when the report itself is malformed."""
    outputs: dict[str, tuple[str, int]] = {}
    for o in reported:
        try:
            check_file_name(o.name, "output")
        except SpecError as e:
            return {}, str(e)
        if not is_data_id(o.data_id) or o.name in outputs:
            raise ValueError(f"worker reported a malformed output {o.name!r}")
        outputs[o.name] = (o.data_id, o.size)
    if not t.collect_all_outputs:
        declared = {o.name for o in t.outputs}
        missing = declared - set(outputs)
        if missing:
            return {}, f"the script did not write its declared output(s): {', '.join(sorted(missing))}"
        outputs = {k: v for k, v in outputs.items() if k in declared}
    return outputs, None


def uploads(s: Session, task_id: str, worker_id: str, attempt: int) -> set[str]:
    """What this run (task, worker, attempt) uploaded."""
    return set(s.scalars(select(TaskUpload.data_id).where(
        TaskUpload.task_id == task_id, TaskUpload.worker_id == worker_id, TaskUpload.attempt == attempt)))
