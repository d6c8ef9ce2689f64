"""The task processor: AssignTask is accepted at once, then each task runs in its own thread:
wait for NotifyData → fetch script and inputs → wait for a free slot → run in the sandbox → keep
outputs in the cache → upload results and logs → its completion (reports.py, with others'; the
thread holds the task until the master acknowledged it).

The master may assign more tasks than there are slots (its `prefetch`): those get ready (fetch,
prepare) while others run, and start the moment a slot frees, in the order they became ready."""

from __future__ import annotations

import logging
import os
import queue
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from runsurge_proto import common_pb2, master_pb2, worker_pb2
from runsurge_proto.wire import file_blocks
from runsurge_worker.cache import Cache
from runsurge_worker.environments import EnvironmentCache, WheelError
from runsurge_worker.fetch import Fetcher, FetchError
from runsurge_worker.master_link import MasterLink
from runsurge_worker.reports import REFUSED, REPORT_PATIENCE_S, CompletionReporter, link_closed, retry_delays
from runsurge_worker.sandbox.base import STDERR_NAME, STDOUT_NAME, Limits, RunResult, SandboxBackend

log = logging.getLogger("runsurge.worker.tasks")
S = master_pb2.TaskStatus
P = master_pb2.TaskPhase
LOG_CAP = 4 << 20  # bytes of each log kept (the end of it)
LOG_READ_MAX = 1 << 20  # most bytes of a running task's log one ReadTaskLog returns
LOG_NAMES = {"stdout": STDOUT_NAME, "stderr": STDERR_NAME}
ERROR_TAIL = 4000  # characters of stderr quoted in a failure
# A start is reported this long after it happened; a task that ends sooner has its start folded into
# its TaskComplete (the master takes the start from the run's wall time): one call fewer per short task.
START_REPORT_DELAY_S = 0.05


ASSIGN_FILE = "assign.pb"  # a checkpoint's AssignTaskRequest: what the resumed run reports as


class _Checkpointed(Exception):  # noqa: N818 - a way out, not an error
    """The run was saved (the worker stops): its report says so, and its folder is kept."""


class EnvironmentUnavailableError(Exception):
    """The task's environment cannot be provided here: the task must not run (a worker error)."""


@dataclass
class StartReport:
    request: master_pb2.TaskStartedRequest
    at: float  # time.monotonic() of the start
    state: str = "queued"  # → "sending" → "sent", or "folded" into the TaskComplete
    sent: threading.Event = field(default_factory=threading.Event)


@dataclass
class Running:
    req: worker_pb2.AssignTaskRequest
    locations: dict[str, common_pb2.DataLocation] = field(default_factory=dict)
    cancel: threading.Event = field(default_factory=threading.Event)
    notified: threading.Condition = field(default_factory=threading.Condition)
    in_slot: bool = False  # started: holds one of the worker's slots
    reporting: bool = False  # ended: holds no memory or folder, only its TaskComplete is undelivered
    released: str = ""  # given back to the master, and why (the worker stops, or was suspended too long)
    phase: int = P.TASK_PHASE_FETCHING_INPUTS  # what it does now (heartbeats tell the master)
    resume_from: Path | None = None  # a checkpoint left by the worker's last stop: the run goes on from it


class TaskRunner:
    def __init__(self, cache: Cache, link: MasterLink, fetcher: Fetcher, sandbox: SandboxBackend,
                 slots: int, memory: int, input_wait_s: float, cache_max_bytes: int = 0,
                 envs: EnvironmentCache | None = None):
        self.cache, self.link, self.fetcher, self.sandbox, self.envs = cache, link, fetcher, sandbox, envs
        self.slots, self.memory, self.input_wait_s = slots, memory, input_wait_s
        self.cache_max_bytes = cache_max_bytes  # the cache's disk cap (0: none)
        self._dropped: list[str] = []  # evicted by the cap, until a heartbeat has told the master
        self._running: dict[str, Running] = {}  # every task held: preparing, waiting for a slot, running
        self._lock = threading.Lock()
        self._slot_freed = threading.Condition(self._lock)
        self._waiting: list[str] = []  # prepared tasks waiting for a slot, first come first started
        self._held = ""  # why no task may start now (governor.py: the machine is busy, schedule, stopping)
        # Runs resumed from checkpoints that wait for the master's first heartbeat reply: it may no
        # longer count them as ours (their job was cancelled, their grace window ended).
        self._unconfirmed: set[str] = set()
        # TaskStarted goes out from a thread of its own, so a run never waits a master round trip to
        # begin; a daemon, so a worker stopping while the master is away does not wait for it.
        self._starts: queue.SimpleQueue[StartReport] = queue.SimpleQueue()
        threading.Thread(target=self._report_starts, name="report-started", daemon=True).start()
        self.completions = CompletionReporter(link)

    # -- called by WorkerService -----------------------------------------------------------------
    def accept(self, req: worker_pb2.AssignTaskRequest) -> tuple[bool, str]:
        """Memory is reserved from assignment to the end (the master counts it so too); slots are
        taken only to run, so no slot check here."""
        with self._lock:
            held = self._running.get(req.task_id)
            if held is not None:
                if held.req.attempt == req.attempt:
                    return True, "already accepted"
                if not held.reporting:  # (a newer attempt replaces one that has only its report left)
                    return False, "an earlier attempt of this task is still ending here"
            if self.memory_used() + req.limits.memory_bytes > self.memory:
                return False, "not enough free memory"
            run = self._running[req.task_id] = Running(req=req)
        threading.Thread(target=self._process, args=(run,), name=f"task-{req.task_id[:8]}", daemon=True).start()
        return True, ""

    def notify(self, task_id: str, loc: common_pb2.DataLocation) -> None:
        with self._lock:
            run = self._running.get(task_id)
        if run is not None:
            with run.notified:
                run.locations[loc.data_id] = loc
                run.notified.notify_all()

    def cancel(self, task_id: str) -> bool:
        with self._lock:
            run = self._running.get(task_id)
            if run is not None:
                run.cancel.set()
                self._slot_freed.notify_all()
        if run is not None:
            with run.notified:
                run.notified.notify_all()
        return run is not None

    def read_log(self, task_id: str, stream: str, offset: int, max_bytes: int) -> tuple[bytes, bool] | None:
        """Up to `max_bytes` (at most LOG_READ_MAX) of a held task's log from `offset`, and whether
        it still runs; None if this worker holds no such task. The script owns its folder and may
        have put a link (or a hard link) to another file in the log's place: only a regular file
        with one link is read, never followed."""
        with self._lock:
            run = self._running.get(task_id)
            running = run is not None and not run.reporting
        if run is None:
            return None
        path = self.sandbox.live_dir(self.sandbox.task_root / task_id) / LOG_NAMES[stream]
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:  # not written yet, or not a plain file
            return b"", running
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or offset >= st.st_size:
                return b"", running
            return os.pread(fd, max(0, min(max_bytes, LOG_READ_MAX)), offset), running
        finally:
            os.close(fd)

    def hold(self, reason: str) -> None:
        """No task starts while `reason` is set (those running go on, or the sandbox suspends them)."""
        with self._lock:
            self._held = reason
            self._slot_freed.notify_all()

    def release(self, reason: str, running_only: bool = False) -> int:
        """Give tasks back to the master, not as a failure: the master runs them again elsewhere and
        bills nothing for these runs. Returns how many."""
        with self._lock:
            runs = [r for r in self._running.values() if not r.reporting and (r.in_slot or not running_only)
                    and r.req.task_id not in self._unconfirmed]
            for run in runs:
                run.released = reason
        for run in runs:
            self.cancel(run.req.task_id)
        return len(runs)

    def checkpoint(self, reason: str) -> tuple[int, int]:
        """The worker stops: save the running tasks to resume them at its next start (the sandbox must
        support it), give the others back. Returns (checkpointing, released)."""
        if not self.sandbox.supports_checkpoints:
            return 0, self.release(reason)
        self.sandbox.checkpoint_all()
        with self._lock:
            for task_id in self._unconfirmed:  # never restored: their saved state waits for the next start
                del self._running[task_id]
            self._unconfirmed.clear()
            saving = sum(r.in_slot and not r.reporting for r in self._running.values())
            waiting = [r for r in self._running.values() if not r.reporting and not r.in_slot]
            for run in waiting:
                run.released = reason
        for run in waiting:
            self.cancel(run.req.task_id)
        return saving, len(waiting)

    def resume_checkpoints(self) -> list[str]:
        """At start: take up the runs the last stop saved; returns their task ids (for NodeRegister).
        Each runs on in its own thread once a heartbeat reply confirms it (`confirm_resumed`)."""
        ids = []
        for ckpt in self.sandbox.checkpoints():
            try:
                req = worker_pb2.AssignTaskRequest.FromString((ckpt / ASSIGN_FILE).read_bytes())
            except (OSError, ValueError) as e:  # saved by a worker that died before writing it
                log.warning("dropping checkpoint %s: %s", ckpt.name, e)
                shutil.rmtree(ckpt, ignore_errors=True)
                continue
            with self._lock:
                self._running[req.task_id] = Running(req=req, resume_from=ckpt)
                self._unconfirmed.add(req.task_id)
            ids.append(req.task_id)
        return ids

    def confirm_resumed(self, unwanted: set[str], start: bool) -> None:
        """A heartbeat reply (the heartbeat listed the resumed runs): those the master no longer counts
        as ours (`unwanted`: the reply's cancels; the job was cancelled, or the grace window ended) are
        discarded, never restored: their saved VM, overlay and task folder are deleted. The others
        start, once `start` (the reply does not ask us to register again)."""
        with self._lock:
            gone = [self._running.pop(t) for t in self._unconfirmed & unwanted]
            self._unconfirmed -= unwanted
            runs = [self._running[t] for t in self._unconfirmed] if start else []
            if start:
                self._unconfirmed.clear()
        for run in gone:
            self.sandbox.discard(run.resume_from)
            shutil.rmtree(self.sandbox.task_root / run.req.task_id, ignore_errors=True)
            log.info("discarded checkpoint of task %s: the master no longer lists it as ours", run.req.task_id)
        for run in runs:
            threading.Thread(target=self._process, args=(run,), name=f"task-{run.req.task_id[:8]}",
                             daemon=True).start()

    def wait_empty(self, timeout: float) -> bool:
        """Until every task held has ended and its report is delivered (True), or `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._running:
                    return True
            time.sleep(0.1)
        return False

    def describe(self) -> list[dict]:
        """The tasks held, for `runsurge-worker status`."""
        with self._lock:
            return [{"task_id": tid, "state": "reporting" if r.reporting else "running" if r.in_slot
                     else "waiting" if tid in self._waiting else "preparing",
                     "memory_bytes": r.req.limits.memory_bytes} for tid, r in self._running.items()]

    def environments_held(self) -> list[str]:
        """Environments built here that this worker's sandbox can use (placement prefers it for them)."""
        return self.envs.held() if self.envs is not None and self.sandbox.supports_environments else []

    def phases(self) -> list[master_pb2.TaskPhaseReport]:
        """What each task held (not yet ended) is doing, for the heartbeat."""
        with self._lock:
            return [master_pb2.TaskPhaseReport(task_id=tid, phase=r.phase)
                    for tid, r in self._running.items() if not r.reporting]

    def _phase(self, run: Running, phase: int, tell: bool = False) -> None:
        run.phase = phase
        if tell:  # a slow phase: the master hears of it now, not a heartbeat interval later
            self.link.kick()

    def dropped(self) -> list[str]:
        with self._lock:
            return list(self._dropped)

    def dropped_told(self, ids: list[str]) -> None:
        """A heartbeat carried these: the master no longer sends peers here for them."""
        with self._lock:
            told = set(ids)
            self._dropped = [d for d in self._dropped if d not in told]

    def _trim(self, keep: set[str] = frozenset()) -> None:
        """Hold the cache to its disk cap, never dropping an object a task held here still needs."""
        if not self.cache_max_bytes:
            return
        with self._lock:
            needed = {i.data_id for r in self._running.values() for i in r.req.inputs} | {
                r.req.script_data_id for r in self._running.values()} | set(keep)
        dropped = self.cache.trim(self.cache_max_bytes, needed)
        if dropped:
            log.info("cache over its cap of %d bytes: dropped %d object(s)", self.cache_max_bytes, len(dropped))
            with self._lock:
                self._dropped += dropped
            self.link.kick()

    def task_ids(self) -> list[str]:
        """Every task this worker holds, queued or running (what the master must not re-queue), and
        those whose report is not delivered yet: after a master restart reconciliation must keep
        them, not re-run a task that already ran (found by the chaos test)."""
        with self._lock:
            return list(self._running)

    def running_count(self) -> int:
        with self._lock:
            return sum(r.in_slot for r in self._running.values())

    def memory_used(self) -> int:
        return sum(r.req.limits.memory_bytes for r in list(self._running.values()) if not r.reporting)

    def free_slots(self) -> int:
        return max(0, self.slots - self.running_count())

    # -- slots ---------------------------------------------------------------------------------
    def _take_slot(self, run: Running) -> bool:
        """Wait for a free slot (False: cancelled meanwhile)."""
        task_id = run.req.task_id
        with self._lock:
            self._waiting.append(task_id)
            try:
                while not run.cancel.is_set() and (
                        self._held or self._waiting[0] != task_id
                        or sum(r.in_slot for r in self._running.values()) >= self.slots):
                    self._slot_freed.wait()
            finally:
                self._waiting.remove(task_id)
                self._slot_freed.notify_all()  # the next in line may go (or the line moved)
            run.in_slot = not run.cancel.is_set()
            return run.in_slot

    def _free_slot(self, run: Running) -> None:
        with self._lock:
            run.in_slot = False
            self._slot_freed.notify_all()

    # -- one task ------------------------------------------------------------------------------
    def _process(self, run: Running) -> None:
        req = run.req
        task_dir = self.sandbox.task_root / req.task_id
        report = master_pb2.TaskCompleteRequest(worker_id=self.link.worker_id, task_id=req.task_id,
                                                attempt=req.attempt)
        start = None
        try:
            if run.resume_from is None:
                shutil.rmtree(task_dir, ignore_errors=True)
                task_dir.mkdir(parents=True)
                self._prepare(run, task_dir)
                self._trim()
            with self._environment(run) as env:
                self._phase(run, P.TASK_PHASE_RUNNING if run.resume_from else P.TASK_PHASE_WAITING_FOR_SLOT)
                if run.resume_from is not None:
                    self._resume(run, task_dir, report, env)
                elif run.cancel.is_set() or not self._take_slot(run):
                    report.status = S.TASK_STATUS_CANCELLED
                    if run.released:
                        report.status, report.error = S.TASK_STATUS_RELEASED, run.released
                else:
                    try:
                        self._phase(run, P.TASK_PHASE_RUNNING)
                        start = StartReport(master_pb2.TaskStartedRequest(worker_id=self.link.worker_id,
                                                                          task_id=req.task_id), time.monotonic())
                        self._starts.put(start)
                        limits = Limits(memory_bytes=req.limits.memory_bytes, cpus=req.limits.cpus or 1,
                                        timeout_s=req.limits.timeout_s or 3600,
                                        output_bytes=req.limits.output_bytes)
                        run_env = {"env": env} if env is not None else {}
                        result = self.sandbox.run(task_dir, req.script_name, limits, run.cancel, **run_env)
                    finally:
                        self._free_slot(run)  # the next task may start while this one's outputs are kept
                    self._finish(run, task_dir, result, report)
        except _Checkpointed:
            report.status = S.TASK_STATUS_CHECKPOINTED
        except EnvironmentUnavailableError as e:
            report.status, report.error = S.TASK_STATUS_WORKER_ERROR, str(e)
        except FetchError as e:
            report.status, report.error = S.TASK_STATUS_WORKER_ERROR, str(e)
            report.bad_peer_worker_id, report.bad_data_id = e.bad_peer, e.data_id
        except grpc.RpcError as e:  # an upload of its results or logs
            if e.code() in REFUSED:  # the master no longer counts this task as ours: cancelled, or moved
                log.info("task %s is no longer ours (%s): its results are dropped", req.task_id, e.details())
                report.status = S.TASK_STATUS_CANCELLED
            else:
                report.status, report.error = (S.TASK_STATUS_WORKER_ERROR,
                                               f"upload to the master failed: {e.code().name} {e.details()}")
        except Exception as e:  # a worker bug must still end in a report, never a silent hang
            log.exception("task %s crashed in the worker", req.task_id)
            report.status, report.error = S.TASK_STATUS_WORKER_ERROR, f"worker error: {e}"
        finally:
            shutil.rmtree(task_dir, ignore_errors=True)
            with self._lock:
                run.reporting = True
        log.info("task done task=%s status=%s exit=%s wall=%.2fs cpu=%.2fs peak=%d", req.task_id,
                 S.Name(report.status), report.exit_code, report.wall_s, report.cpu_s, report.mem_peak_bytes)
        if start is not None and not self._fold(start):
            start.sent.wait()  # so the master never hears of the end before the start
        try:
            self.completions.send(report)
        finally:
            with self._lock:
                if self._running.get(req.task_id) is run:  # not replaced by a newer attempt
                    del self._running[req.task_id]

    def _prepare(self, run: Running, task_dir: Path) -> None:
        req = run.req
        script = common_pb2.DataLocation(data_id=req.script_data_id, on_master=True)
        self.fetcher.fetch(req.task_id, script, script=True)
        self.cache.copy_to(req.script_data_id, task_dir / req.script_name)
        deadline = time.monotonic() + self.input_wait_s
        for inp in req.inputs:
            # Even a cached input waits for its location: the master may say the cached copy is not
            # vouched for this task (from_source), e.g. the same hash produced for another user.
            with run.notified:
                while inp.data_id not in run.locations and not run.cancel.is_set():
                    if not run.notified.wait(timeout=deadline - time.monotonic()):
                        raise FetchError(f"no location for input {inp.name!r} arrived in time")
            if run.cancel.is_set():
                return
            self.fetcher.fetch(req.task_id, run.locations[inp.data_id])
            self.cache.copy_to(inp.data_id, task_dir / inp.name)

    @contextmanager
    def _environment(self, run: Running) -> Iterator[Path | None]:
        """The job's packages as a read-only tree (built here once per environment id). A task with
        an environment never runs without it: a sandbox that cannot provide one refuses the task."""
        req = run.req
        if not req.environment_id:
            yield None
            return
        if self.envs is None or not self.sandbox.supports_environments:
            raise EnvironmentUnavailableError(f"this worker's {self.sandbox.name} sandbox cannot provide job "
                                         "environments (packages)")
        for w in req.environment_wheels:  # hash-checked like every input
            self.fetcher.fetch(req.task_id, common_pb2.DataLocation(data_id=w.data_id, size=w.size,
                                                                    sha256=w.data_id, on_master=True))
        try:
            with self.envs.use(req.environment_id, [(w.name, w.data_id) for w in req.environment_wheels],
                               self.cache.path,
                               building=lambda: self._phase(run, P.TASK_PHASE_BUILDING_ENVIRONMENT, tell=True)) as tree:
                yield tree
        except WheelError as e:
            raise EnvironmentUnavailableError(f"environment {req.environment_id[:12]}: {e}") from None

    def _resume(self, run: Running, task_dir: Path, report, env: Path | None) -> None:
        """A run saved at the worker's last stop goes on from its checkpoint (the master kept it ours)."""
        if not self._take_slot(run):
            shutil.rmtree(run.resume_from, ignore_errors=True)
            report.status = S.TASK_STATUS_CANCELLED
            return
        try:
            result = self.sandbox.restore(run.resume_from, run.cancel, env)
        finally:
            self._free_slot(run)
        if result.infrastructure_error and result.resumes == 0:  # it never came back: not a fault here
            report.status, report.error = S.TASK_STATUS_RELEASED, result.failure
            shutil.rmtree(task_dir, ignore_errors=True)
            return
        self._finish(run, task_dir, result, report)

    def _finish(self, run: Running, task_dir: Path, result: RunResult, report) -> None:
        req = run.req
        # What ran so far, also of a run saved (the master bills it if the task is cancelled while saved).
        report.wall_s, report.cpu_s = result.wall_s, result.cpu_s
        report.mem_avg_bytes, report.mem_peak_bytes = result.mem_avg_bytes, result.mem_peak_bytes
        if result.checkpoint is not None:  # saved, not ended: it runs on when the worker starts again
            (result.checkpoint / ASSIGN_FILE).write_bytes(req.SerializeToString())
            raise _Checkpointed
        report.restore_s, report.resumes = result.restore_s, result.resumes
        report.exit_code = -1 if result.exit_code is None else result.exit_code
        report.usage.extend(master_pb2.UsageSample(t_s=t, cpu_s=cpu, rss_bytes=rss) for t, cpu, rss in result.usage)
        report.stdout_data_id = self._upload_log(req.task_id, task_dir / STDOUT_NAME)
        report.stderr_data_id = self._upload_log(req.task_id, task_dir / STDERR_NAME)
        if result.failure == "cancelled":
            report.status = S.TASK_STATUS_CANCELLED
            if run.released:
                report.status, report.error = S.TASK_STATUS_RELEASED, run.released
            return
        if result.failure or result.exit_code != 0:
            report.status = S.TASK_STATUS_WORKER_ERROR if result.infrastructure_error else S.TASK_STATUS_FAILED
            report.error = result.failure or _tail(task_dir / STDERR_NAME) or f"exit code {result.exit_code}"
            return
        files, problem = self._outputs(req, task_dir)
        if problem:
            report.status, report.error = S.TASK_STATUS_FAILED, problem
            return
        uploads = {o.name for o in req.outputs if o.upload_to_master}
        for name, path in files.items():
            data_id, size = self.cache.add_file(path)
            if req.collect_all_outputs or name in uploads:
                self._upload(req.task_id, data_id, size)
            report.outputs.append(master_pb2.OutputData(name=name, data_id=data_id, size=size, sha256=data_id))
        report.status = S.TASK_STATUS_SUCCEEDED
        self._trim({o.data_id for o in report.outputs})  # what it reports holding, it holds

    def _outputs(self, req: worker_pb2.AssignTaskRequest, task_dir: Path) -> tuple[dict[str, Path], str | None]:
        """Regular files only (never follow a link the script made), within the output cap."""
        given = {req.script_name, STDOUT_NAME, STDERR_NAME} | {i.name for i in req.inputs}
        if req.collect_all_outputs:
            names = sorted(n for n in os.listdir(task_dir) if n not in given)
            if req.limits.output_files and len(names) > req.limits.output_files:
                return {}, f"the script wrote {len(names)} files, more than the limit of {req.limits.output_files}"
        else:
            names = [o.name for o in req.outputs]
        files, total = {}, 0
        for name in names:
            path = task_dir / name
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                if req.collect_all_outputs:
                    continue
                return {}, f"the script did not write its declared output {name!r}"
            if not stat.S_ISREG(st.st_mode):
                if req.collect_all_outputs:
                    continue
                return {}, f"output {name!r} is not a regular file"
            total += st.st_size
            files[name] = path
        if req.limits.output_bytes and total > req.limits.output_bytes:
            return {}, f"outputs total {total} bytes, more than the limit of {req.limits.output_bytes}"
        return files, None

    # -- talking to the master -----------------------------------------------------------------
    def _report_starts(self) -> None:
        while True:
            start = self._starts.get()
            time.sleep(max(0.0, start.at + START_REPORT_DELAY_S - time.monotonic()))
            with self._lock:
                if start.state != "queued":  # folded: the task ended first
                    continue
                start.state = "sending"
            try:
                self._call("TaskStarted", start.request)
            except Exception:  # a bug here must not leave the task waiting to report its end
                log.exception("TaskStarted for task %s failed", start.request.task_id)
            finally:
                start.state = "sent"
                start.sent.set()

    def _fold(self, start: StartReport) -> bool:
        """The task ended: if its start is not on its way yet, let its TaskComplete say it instead."""
        with self._lock:
            if start.state == "queued":
                start.state = "folded"
        return start.state == "folded"

    def _upload_log(self, task_id: str, path: Path) -> str:
        if not path.is_file() or path.is_symlink():
            return ""
        size = path.stat().st_size
        if size == 0:  # nothing to keep: no cache copy, no ReceiveData stream to the master
            return ""
        if size > LOG_CAP:  # keep the end, where the error usually is
            with open(path, "rb") as f:
                f.seek(size - LOG_CAP)
                tail = f.read()
            path.write_bytes(b"[... log truncated ...]\n" + tail)
        data_id, size = self.cache.add_file(path)
        self._upload(task_id, data_id, size)
        return data_id

    def _upload(self, task_id: str, data_id: str, size: int) -> None:
        def parts() -> Iterator[master_pb2.UploadPart]:
            yield master_pb2.UploadPart(header=master_pb2.UploadHeader(
                worker_id=self.link.worker_id, task_id=task_id, data_id=data_id, size=size))
            for block in file_blocks(self.cache.path(data_id)):
                yield master_pb2.UploadPart(chunk=block)
        # Wait for the channel (a master just restarted) instead of failing a task that already ran.
        self.link.stub.ReceiveData(parts(), metadata=self.link.metadata(), timeout=3600, wait_for_ready=True)

    def _call(self, method: str, request) -> None:
        """Deliver a TaskStarted, riding out a master restart (up to REPORT_PATIENCE_S); after that
        the master's reconciliation decides."""
        deadline = time.monotonic() + REPORT_PATIENCE_S
        delays = retry_delays()
        attempt = 0
        while True:
            try:
                getattr(self.link.stub, method)(request, metadata=self.link.metadata(), timeout=30)
                return
            except grpc.RpcError as e:
                if e.code() in REFUSED:
                    log.info("%s for task %s refused: %s", method, request.task_id, e.details())
                    return
                attempt += 1
                if time.monotonic() > deadline:
                    log.error("%s for task %s given up after %d attempts: %s", method, request.task_id,
                              attempt, e.details())
                    return
                log.warning("%s failed (attempt %d): %s", method, attempt, e.details())
                time.sleep(delays.next())
            except ValueError as e:
                if not link_closed(e):
                    raise
                log.warning("%s for task %s not sent: the worker is stopping", method, request.task_id)
                return


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - ERROR_TAIL))
            return f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""


