"""MasterService: what workers call. Authentication happens once, in the interceptor; each
handler then checks that the caller acts only as itself and only on its own tasks."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
from datetime import timedelta

import grpc
from sqlalchemy import delete, select

from runsurge_master import benching, billing, environments, lifecycle, metering, quorum, replicas, usage
from runsurge_master.auth import Claims, TokenError, TokenService
from runsurge_master.config import MasterConfig
from runsurge_master.db import Database
from runsurge_master.group_commit import GroupCommit, RefusedError
from runsurge_master.jobspec import SpecError, check_file_name
from runsurge_master.metrics import TASK_CALL_TASKS, TASK_CALLS
from runsurge_master.models import (
    DataLocation,
    DataObject,
    Heartbeat,
    Task,
    TaskInput,
    TaskReplica,
    TaskUpload,
    User,
    Worker,
    utcnow,
)
from runsurge_master.scheduler import Scheduler
from runsurge_master.store import ObjectStore
from runsurge_master.tls import MasterTLS
from runsurge_pki.ca import PkiError
from runsurge_proto import master_pb2, master_pb2_grpc
from runsurge_proto.interceptor import Peer, current_claims, peer_of
from runsurge_proto.wire import IntegrityError, file_chunk_messages, is_data_id

log = logging.getLogger("runsurge.grpc")
WORKER_TOKEN_TTL_S = 3600
MAX_REPORTS_PER_CALL = 512  # a worker sends what finished during its previous call: far fewer
S = master_pb2.TaskStatus
R = master_pb2.ReportResult


def make_check(tokens: TokenService, tls: MasterTLS, enrollment: bool):
    """The enrolment port serves only NodeRegister (a user's token); the main port serves the rest
    to workers presenting both their token and their current certificate, which must agree."""
    def check(method: str, token: str, peer: Peer) -> Claims:
        registering = method.endswith("/NodeRegister")
        if registering != enrollment:
            raise PermissionError("NodeRegister is served on the enrolment port, everything else on the main port")
        try:
            claims = tokens.verify(token, "access" if registering else "worker")
        except TokenError as e:
            raise PermissionError(f"invalid token: {e}") from None
        if not registering:
            if peer.common_name != claims.sub:
                raise PermissionError("the token and the client certificate name different workers")
            problem = tls.check_worker(claims.sub, peer.cert_pem)
            if problem:
                log.warning("refused worker=%s: %s", claims.sub, problem)
                raise PermissionError(problem)
        return claims
    return check


class MasterServicer(master_pb2_grpc.MasterServiceServicer):
    def __init__(self, db: Database, cfg: MasterConfig, tokens: TokenService, store: ObjectStore,
                 scheduler: Scheduler, tls: MasterTLS):
        self.db, self.cfg, self.tokens, self.store, self.scheduler = db, cfg, tokens, store, scheduler
        self.tls = tls
        self.tariff = billing.Tariff.from_config(cfg)  # what the runs it records are charged at
        self.commits = GroupCommit(db)  # task reports: one transaction per burst, acknowledged once written

    async def _as_worker(self, worker_id: str, context) -> Claims:
        claims: Claims = current_claims()
        if claims.sub != worker_id:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "a worker may act only as itself")
        return claims

    # -- membership ----------------------------------------------------------------------------
    async def NodeRegister(self, request, context):
        claims: Claims = current_claims()
        problem = _check_registration(request)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        with self.db.session() as s:
            if s.get(User, claims.sub) is None:  # the account was deleted after its token was issued
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid token: no such account")
            w = s.scalar(select(Worker).where(Worker.owner_id == claims.sub,
                                              Worker.fingerprint == request.fingerprint))
            if w is None:
                w = Worker(owner_id=claims.sub, fingerprint=request.fingerprint)
                s.add(w)
                log.info("worker joined fingerprint=%s", request.fingerprint[:12])
            else:  # a restart: whatever it was running is gone, but for the checkpoints it resumes
                cancels = self.scheduler.worker_lost(s, w, "worker restarted")
                self.scheduler.cancel_remote(cancels)
                lifecycle.resume_checkpoints(s, w.id, set(request.checkpointed_task_ids))
            w.host, w.grpc_port = request.host, request.grpc_port
            w.memory_bytes, w.cpus, w.slots = request.memory_bytes, request.cpus, request.slots
            # Schedulable from its first heartbeat over mutual TLS (its server starts once it has
            # the certificate); until then "no beat since registering" marks it as new.
            w.sandbox, w.online = request.sandbox, False
            w.registered_at = w.last_heartbeat = utcnow()
            s.flush()
            try:
                cert, w.cert_serial, w.cert_not_after = self.tls.enroll(w.id, request.csr_pem)
            except PkiError as e:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
            s.execute(delete(DataLocation).where(DataLocation.worker_id == w.id))
            cached = {d for d in request.cached_data_ids if is_data_id(d)}
            for data_id in s.scalars(select(DataObject.id).where(DataObject.id.in_(cached))):
                s.add(DataLocation(data_id=data_id, worker_id=w.id))
            worker_id = w.id
        self.scheduler.forget_channel(worker_id)
        log.info("worker registered worker=%s address=%s:%d slots=%d memory=%d", worker_id,
                 request.host, request.grpc_port, request.slots, request.memory_bytes)
        return master_pb2.NodeRegisterResponse(
            worker_id=worker_id, master_public_key_pem=self.tokens.public_pem,
            worker_token=self._worker_token(worker_id, claims.sub),
            heartbeat_interval_s=self.cfg.heartbeat_interval_s, certificate_pem=cert, ca_pem=self.tls.ca_pem)

    def _worker_token(self, worker_id: str, owner: str) -> str:
        return self.tokens.issue(worker_id, "worker", WORKER_TOKEN_TTL_S, owner=owner)

    async def NodeHeartbeat(self, request, context):
        claims = await self._as_worker(request.worker_id, context)
        has_identity = self.tls.has_identity(peer_of(context).cert_pem)
        resp, wake = await self.commits.run(lambda s: self._heartbeat(s, request, has_identity))
        if wake:
            self.scheduler.wake()
        if not resp.reregister and claims.exp - time.time() < WORKER_TOKEN_TTL_S / 2:
            resp.worker_token = self._worker_token(request.worker_id, claims.owner or "")
        return resp

    def _heartbeat(self, s, request, has_identity: bool) -> tuple[master_pb2.NodeHeartbeatResponse, bool]:
        """The beat written (in a group commit: heartbeats of many workers share one transaction);
        the reply, and whether the scheduler has something new to place."""
        resp, wake = master_pb2.NodeHeartbeatResponse(), False
        w = s.get(Worker, request.worker_id)
        if w is None or (not w.online and w.last_heartbeat > w.registered_at):
            resp.reregister = True  # declared offline meanwhile: its tasks and data were let go
            return resp, wake
        if not has_identity:
            resp.reregister = True  # a certificate from before identities: enrol again for one
            return resp, wake
        if not w.online:
            w.online, wake = True, True
            log.info("worker online worker=%s", w.id)
        w.last_heartbeat = utcnow()
        self.scheduler.live.heard(w.id, request)
        w.running_tasks, w.memory_used_bytes = request.running_tasks, request.memory_used_bytes
        suspended = request.suspended[:200] or None
        if suspended != w.suspended:  # a worker taking work again, or its queued tasks to move
            log.info("worker=%s %s", w.id, f"suspended: {suspended}" if suspended else "takes work again")
            w.suspended, wake = suspended, True
        dropped = [d for d in request.dropped_data_ids[:10_000] if is_data_id(d)]
        if dropped:  # its disk cap evicted them: peers must fetch them elsewhere (or lineage re-runs)
            s.execute(delete(DataLocation).where(DataLocation.worker_id == w.id, DataLocation.data_id.in_(dropped)))
        s.add(Heartbeat(worker_id=w.id, running_tasks=request.running_tasks,
                        memory_used_bytes=request.memory_used_bytes, free_slots=request.free_slots))
        if request.running_task_ids:
            mine = set(s.scalars(select(Task.id).where(
                Task.id.in_(list(request.running_task_ids)), Task.worker_id == w.id,
                Task.status.in_(lifecycle.ACTIVE))))
            if len(mine) < len(request.running_task_ids):  # the others may be quorum replicas
                mine |= {r.task_id for r in replicas.active_on(s, w.id)}
            resp.cancel_task_ids.extend(t for t in request.running_task_ids if t not in mine)
        return resp, wake

    # -- task reports --------------------------------------------------------------------------
    async def TaskStarted(self, request, context):
        await self._as_worker(request.worker_id, context)
        await self.commits.run(lambda s: self._started(s, request))
        return master_pb2.Ack()

    @staticmethod
    def _started(s, request) -> None:  # one UPDATE, no ORM load: this is on every task's path
        if not lifecycle.transition_rows(s, Task, (lifecycle.T.ASSIGNED,), lifecycle.T.RUNNING,
                                         Task.id == request.task_id, Task.worker_id == request.worker_id):
            replicas.started(s, request.task_id, request.worker_id)  # if it is a quorum task's replica

    async def CompleteTasks(self, request, context):
        """Each report is a group-commit run of its own (so one call's reports usually share a
        transaction) and is answered once committed; one refused or failed report costs the others
        nothing. A report done twice (re-sent after a lost answer) is refused: it is no longer active."""
        if not 0 < len(request.reports) <= MAX_REPORTS_PER_CALL:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"a call carries 1 to {MAX_REPORTS_PER_CALL} reports, not {len(request.reports)}")
        for worker_id in {r.worker_id for r in request.reports}:
            await self._as_worker(worker_id, context)
        TASK_CALLS.labels("CompleteTasks").inc()
        TASK_CALL_TASKS.labels("CompleteTasks").inc(len(request.reports))
        outcomes = await asyncio.gather(*(self.commits.run(lambda s, r=r: self._completed(s, r))
                                          for r in request.reports), return_exceptions=True)
        resp = master_pb2.CompleteTasksResponse()
        for outcome in outcomes:
            if isinstance(outcome, RefusedError):
                resp.results.add(result=R.REPORT_RESULT_REFUSED, reason=str(outcome))
            elif isinstance(outcome, BaseException):  # group_commit logged it; the worker sends it again
                resp.results.add(result=R.REPORT_RESULT_FAILED, reason=f"not recorded: {type(outcome).__name__}")
            else:
                resp.results.add(result=R.REPORT_RESULT_ACKNOWLEDGED)
                self.scheduler.cancel_remote(outcome)
        self.scheduler.wake()
        return resp

    def _completed(self, s, request) -> list[tuple[str, str]]:
        t = s.get(Task, request.task_id)
        replica = replicas.active(s, t, request.worker_id)  # a quorum task's run on this worker
        attempt = replica.attempt if replica else t.attempts if t else 0
        stopped = replica is None and t is not None and lifecycle.stopped_run_report(t, request.worker_id)
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
            lifecycle.checkpoint_task(s, t)
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
        uploaded = self._uploads(s, t.id, r.worker_id, replica.attempt if replica else t.attempts)
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
            outputs, problem = self._check_outputs(t, r.outputs)
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
        self.scheduler.delete_remote(peer_id, [data_id])

    def _check_outputs(self, t: Task, reported) -> tuple[dict[str, tuple[str, int]], str | None]:
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

    # -- data ----------------------------------------------------------------------------------
    async def _stream(self, request, context, script: bool):
        claims: Claims = current_claims()
        if not is_data_id(request.data_id):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "malformed data id")
        with self.db.session() as s:
            t = s.get(Task, request.task_id)
            ours = t is not None and (t.worker_id == claims.sub or replicas.active(s, t, claims.sub) is not None)
            allowed = ours and (
                t.script_data_id == request.data_id if script else
                s.scalar(select(TaskInput.id).where(TaskInput.task_id == t.id,
                                                    TaskInput.data_id == request.data_id)) is not None
                or _env_wheel(t, request.data_id))
        if not allowed:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "that data is not an input of your task")
        if not self.store.has(request.data_id):
            await context.abort(grpc.StatusCode.NOT_FOUND, "the master does not hold that data")
        for message in file_chunk_messages(self.store.path(request.data_id)):  # already serialised
            yield message

    async def StreamData(self, request, context):
        async for chunk in self._stream(request, context, script=False):
            yield chunk

    async def StreamPythonFile(self, request, context):
        async for chunk in self._stream(request, context, script=True):
            yield chunk

    async def ReceiveData(self, request_iterator, context):
        """A result or log of a run the caller holds; at most as many objects as the task has results
        (max_output_files when it collects all) plus its two logs. The bytes always come: the master
        never takes an object it already holds on a worker's word."""
        claims: Claims = current_claims()
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("part") != "header":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a header")
        h = first.header
        await self._as_worker(h.worker_id, context)
        if not is_data_id(h.data_id):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "malformed data id")
        if h.size > self.cfg.max_output_bytes:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "output larger than the limit")
        with self.db.session() as s:
            t = s.get(Task, h.task_id)
            replica = replicas.active(s, t, claims.sub)
            if replica is None and (t is None or t.worker_id != claims.sub or t.status not in lifecycle.ACTIVE):
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not your task")
            attempt = replica.attempt if replica else t.attempts
            uploaded = self._uploads(s, t.id, claims.sub, attempt)
            budget = (self.cfg.max_output_files if t.collect_all_outputs
                      else sum(o.is_result for o in t.outputs)) + 2  # + its stdout and stderr
            if h.data_id not in uploaded and len(uploaded) >= budget:
                log.warning("SECURITY refused upload from worker=%s task=%s: %d objects already", claims.sub,
                            t.id, len(uploaded))
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    "this run already uploaded as many objects as its task has results and logs")
        rx = self.store.receiver(h.data_id, size=h.size, max_size=self.cfg.max_output_bytes)
        try:
            async for part in request_iterator:
                rx.write(part.chunk)
            rx.commit()
        except IntegrityError as e:
            log.warning("rejected upload from worker=%s task=%s: %s", claims.sub, h.task_id, e)
            await context.abort(grpc.StatusCode.DATA_LOSS, str(e))
        except BaseException:
            rx.abort()
            raise
        with self.db.session() as s:
            lifecycle.ensure_data(s, h.data_id, rx.size, None)
            if h.data_id not in self._uploads(s, h.task_id, claims.sub, attempt):
                s.add(TaskUpload(task_id=h.task_id, worker_id=claims.sub, attempt=attempt, data_id=h.data_id))
        return master_pb2.UploadResult(data_id=h.data_id, size=rx.size)

    @staticmethod
    def _uploads(s, task_id: str, worker_id: str, attempt: int) -> set[str]:
        """What this run (task, worker, attempt) uploaded."""
        return set(s.scalars(select(TaskUpload.data_id).where(
            TaskUpload.task_id == task_id, TaskUpload.worker_id == worker_id, TaskUpload.attempt == attempt)))


_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def check_host(host: str) -> str | None:
    """A worker's advertised address, used only to dial it: a literal IP address that reaches a host
    (no unspecified, multicast, link-local or cloud metadata address) or a DNS name (no wildcard)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if len(host) > 253 or not all(_HOST_LABEL.match(label) for label in host.rstrip(".").split(".")):
            return "host must be an IP address or a DNS name (letters, digits, hyphens; no wildcard)"
        if host.rstrip(".").split(".")[-1].isdigit():
            return "host must be an IP address or a DNS name"
        return None
    if not ip.is_loopback and (ip.is_unspecified or ip.is_multicast or ip.is_link_local or ip.is_reserved):
        return "host must be an address the master and peers can dial (not link-local, multicast or unspecified)"
    return None


def _check_registration(r) -> str | None:
    if not 8 <= len(r.fingerprint) <= 128:
        return "fingerprint must be 8-128 characters"
    if problem := check_host(r.host):
        return problem
    if not 0 < r.grpc_port < 65536:
        return "grpc_port must be 1-65535"
    if r.memory_bytes <= 0 or not 0 < r.cpus <= 4096 or not 0 < r.slots <= 1024:
        return "memory, cpus and slots must be positive"
    return None


def _env_wheel(t: Task, data_id: str) -> bool:
    """A wheel of the task's environment (which the master serves like an input)."""
    env = environments.of_task(t)
    return env is not None and any(w["data_id"] == data_id for w in env.wheels)
