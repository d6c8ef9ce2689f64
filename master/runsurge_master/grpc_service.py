"""MasterService: what workers call, translated to the master's decision modules and back.
Authentication happens once, in the interceptor; each handler checks that the caller acts only as
itself, then hands the request to registration.py, heartbeats.py, outcomes.py or run_data.py. No
database work runs on the event loop: reports and heartbeats go through the one writer (group_commit.py,
a thread), reads through Database.call (a thread)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable

import grpc

from runsurge_master import billing, run_data
from runsurge_master.auth import Claims, TokenError, TokenService
from runsurge_master.config import MasterConfig
from runsurge_master.db import Database
from runsurge_master.denied import DeniedError
from runsurge_master.group_commit import RefusedError
from runsurge_master.heartbeats import Heartbeats
from runsurge_master.metrics import TASK_CALL_TASKS, TASK_CALLS
from runsurge_master.outcomes import RunOutcomes
from runsurge_master.registration import Registrar, check_registration
from runsurge_master.scheduler import Scheduler
from runsurge_master.store import ObjectStore
from runsurge_master.tls import MasterTLS
from runsurge_proto import master_pb2, master_pb2_grpc
from runsurge_proto.interceptor import Peer, current_claims, peer_of
from runsurge_proto.wire import IntegrityError, file_chunk_messages, is_data_id

log = logging.getLogger("runsurge.grpc")
WORKER_TOKEN_TTL_S = 3600
FIRST_CHUNKS = 4  # a stream's first chunks read with its check, in one thread hop
WRITE_BYTES = 1 << 20  # an upload's chunks go to disk in hops of this many bytes (held meanwhile)
MAX_REPORTS_PER_CALL = 512  # a worker sends what finished during its previous call: far fewer
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
        self.commits = scheduler.commits  # the master's one writer (reports, beats, scheduling passes)
        self.outcomes = RunOutcomes(cfg, store, self.tariff, scheduler.channels.delete)
        self.registrar = Registrar(tls, scheduler.liveness.worker_lost)
        self.heartbeats = Heartbeats(self.commits, scheduler.live)

    async def _as_worker(self, worker_id: str, context) -> Claims:
        claims: Claims = current_claims()
        if claims.sub != worker_id:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "a worker may act only as itself")
        return claims

    @staticmethod
    async def _decided(context, decision: Awaitable):
        """A decision module's answer, or its DeniedError as the gRPC status it names."""
        try:
            return await decision
        except DeniedError as e:
            await context.abort(grpc.StatusCode[e.code], str(e))

    # -- membership ----------------------------------------------------------------------------
    async def NodeRegister(self, request, context):
        claims: Claims = current_claims()
        problem = check_registration(request)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        # A transaction of its own, not the writer's: a refusal rolls back what it had begun (and signing
        # a certificate is too slow to hold up others' reports).
        done = await self._decided(context, self.db.call(lambda s: self.registrar.register(s, claims.sub, request)))
        self.scheduler.channels.cancel(done.cancels)
        self.scheduler.channels.forget(done.worker_id)
        log.info("worker registered worker=%s address=%s:%d slots=%d memory=%d", done.worker_id,
                 request.host, request.grpc_port, request.slots, request.memory_bytes)
        return master_pb2.NodeRegisterResponse(
            worker_id=done.worker_id, master_public_key_pem=self.tokens.public_pem,
            worker_token=self._worker_token(done.worker_id, claims.sub),
            heartbeat_interval_s=self.cfg.heartbeat_interval_s, certificate_pem=done.certificate_pem,
            ca_pem=self.tls.ca_pem)

    def _worker_token(self, worker_id: str, owner: str) -> str:
        return self.tokens.issue(worker_id, "worker", WORKER_TOKEN_TTL_S, owner=owner)

    async def NodeHeartbeat(self, request, context):
        claims = await self._as_worker(request.worker_id, context)
        has_identity = self.tls.has_identity(peer_of(context).cert_pem)
        resp, wake = await self.heartbeats.beat(request, has_identity)
        if wake:
            self.scheduler.wake()
        if not resp.reregister and claims.exp - time.time() < WORKER_TOKEN_TTL_S / 2:
            resp.worker_token = self._worker_token(request.worker_id, claims.owner or "")
        return resp

    # -- task reports --------------------------------------------------------------------------
    async def TaskStarted(self, request, context):
        await self._as_worker(request.worker_id, context)
        await self.commits.run(lambda s: self.outcomes.started(s, request))
        return master_pb2.Ack()

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
        outcomes = await asyncio.gather(*(self.commits.run(lambda s, r=r: self.outcomes.completed(s, r))
                                          for r in request.reports), return_exceptions=True)
        resp = master_pb2.CompleteTasksResponse()
        for outcome in outcomes:
            if isinstance(outcome, RefusedError):
                resp.results.add(result=R.REPORT_RESULT_REFUSED, reason=str(outcome))
            elif isinstance(outcome, BaseException):  # group_commit logged it; the worker sends it again
                resp.results.add(result=R.REPORT_RESULT_FAILED, reason=f"not recorded: {type(outcome).__name__}")
            else:
                resp.results.add(result=R.REPORT_RESULT_ACKNOWLEDGED)
                self.scheduler.channels.cancel(outcome)
        self.scheduler.wake()
        return resp

    # -- data ----------------------------------------------------------------------------------
    async def _stream(self, request, context, script: bool):
        claims: Claims = current_claims()
        if not is_data_id(request.data_id):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "malformed data id")
        # One thread hop for the check and, for a file of a few chunks (a script, most inputs), its
        # bytes; a larger file's chunks are read a hop each.
        refusal, first, rest = await asyncio.to_thread(self._open_stream, claims.sub, request, script)
        if refusal:
            await context.abort(*refusal)
        for message in first:
            yield message
        while len(first) == FIRST_CHUNKS and (message := await asyncio.to_thread(next, rest, None)) is not None:
            yield message  # (read off the loop)

    def _open_stream(self, worker_id: str, request, script: bool):
        """(refusal or None, the first messages, an iterator of the rest); on a thread."""
        with self.db.session() as s:
            allowed = run_data.may_stream(s, worker_id, request.task_id, request.data_id, script)
        if not allowed:
            return (grpc.StatusCode.PERMISSION_DENIED, "that data is not an input of your task"), [], iter(())
        if not self.store.has(request.data_id):
            return (grpc.StatusCode.NOT_FOUND, "the master does not hold that data"), [], iter(())
        messages = iter(file_chunk_messages(self.store.path(request.data_id)))  # already serialised
        return None, list(itertools.islice(messages, FIRST_CHUNKS)), messages

    async def StreamData(self, request, context):
        async for chunk in self._stream(request, context, script=False):
            yield chunk

    async def StreamPythonFile(self, request, context):
        async for chunk in self._stream(request, context, script=True):
            yield chunk

    async def ReceiveData(self, request_iterator, context):
        """A result or log of a run the caller holds (run_data.upload_attempt says which may come). The
        bytes always come: the master never takes an object it already holds on a worker's word."""
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
        attempt = await self._decided(context, self.db.call(
            lambda s: run_data.upload_attempt(s, self.cfg, claims.sub, h.task_id, h.data_id)))
        rx = self.store.receiver(h.data_id, size=h.size, max_size=self.cfg.max_output_bytes)
        try:
            pending: list[bytes] = []  # chunks written a hop per WRITE_BYTES, the last with the commit
            async for part in request_iterator:
                pending.append(part.chunk)
                if sum(map(len, pending)) >= WRITE_BYTES:
                    await asyncio.to_thread(_write_all, rx, pending)
                    pending = []
            await asyncio.to_thread(_write_all, rx, pending, commit=True)
        except IntegrityError as e:
            log.warning("rejected upload from worker=%s task=%s: %s", claims.sub, h.task_id, e)
            await context.abort(grpc.StatusCode.DATA_LOSS, str(e))
        except BaseException:
            rx.abort()
            raise
        await self.commits.run(lambda s: run_data.record_upload(s, claims.sub, h.task_id, attempt, h.data_id, rx.size))
        return master_pb2.UploadResult(data_id=h.data_id, size=rx.size)


def _write_all(rx, chunks: list[bytes], commit: bool = False) -> None:
    for chunk in chunks:
        rx.write(chunk)
    if commit:
        rx.commit()
