"""WorkerService: what the master (and, for StreamData, peers) call on this worker."""

from __future__ import annotations

import logging
import time

import grpc
import jwt

from runsurge_pki.ca import MASTER_CN
from runsurge_proto import worker_pb2, worker_pb2_grpc
from runsurge_proto.interceptor import Peer, current_claims
from runsurge_proto.wire import file_chunk_messages, is_data_id, raw_chunk_handlers
from runsurge_worker.cache import Cache
from runsurge_worker.master_link import MasterLink
from runsurge_worker.ratelimit import TokenBucket
from runsurge_worker.tasks import LOG_NAMES, TaskRunner

log = logging.getLogger("runsurge.worker.service")
VERIFIED_CACHE = 1024  # tokens remembered as verified (the table is emptied when full)
_verified: dict[tuple[str, str], dict] = {}


def verify(link: MasterLink, token: str) -> dict:
    """A JWT the master signed (checked with the public key it gave us at registration). The master
    sends the same token on every call: a signature is checked once, the expiry on every use."""
    key = (link.public_key_pem, token)
    claims = _verified.get(key)
    if claims is not None and claims["exp"] > time.time():
        return claims
    try:
        claims = jwt.decode(token, link.public_key_pem, algorithms=["EdDSA"], issuer="runsurge-master",
                            options={"require": ["exp", "sub", "typ"]})
    except jwt.PyJWTError as e:
        raise PermissionError(f"invalid token: {e}") from None
    if len(_verified) >= VERIFIED_CACHE:
        _verified.clear()
    _verified[key] = claims
    return claims


def make_check(link: MasterLink):
    """Only the master may command this worker; a peer may only fetch data (with a capability,
    checked in StreamData). The token and the TLS client certificate must name the same party."""
    def check(method: str, token: str, peer: Peer) -> dict:
        if not link.public_key_pem:
            raise PermissionError("worker not registered yet")
        claims = verify(link, token)
        allowed = ("master", "worker") if method.endswith("/StreamData") else ("master",)
        if claims["typ"] not in allowed:
            raise PermissionError(f"a {claims['typ']} token cannot call {method.rsplit('/', 1)[-1]}")
        expected_cn = MASTER_CN if claims["typ"] == "master" else claims["sub"]
        if peer.common_name != expected_cn:
            raise PermissionError("the token and the client certificate name different parties")
        return claims
    return check


def add_to_server(servicer: WorkerServicer, server: grpc.Server) -> None:
    """The generated registration, except that StreamData sends the DataChunk bytes it yields as is."""
    worker_pb2_grpc.add_WorkerServiceServicer_to_server(servicer, server)
    server.add_registered_method_handlers("runsurge.v1.WorkerService", raw_chunk_handlers(servicer, "StreamData"))


class WorkerServicer(worker_pb2_grpc.WorkerServiceServicer):
    def __init__(self, runner: TaskRunner, cache: Cache, link: MasterLink, upload_limit: TokenBucket | None = None):
        self.runner, self.cache, self.link = runner, cache, link
        self.upload_limit = upload_limit  # the upload cap (ratelimit.py), shared by every stream served

    def AssignTasks(self, request, context):
        """Each task accepted or refused on its own, answered in the request's order."""
        resp = worker_pb2.AssignTasksResponse()
        for req in request.tasks:
            if not req.task_id or not is_data_id(req.script_data_id):
                accepted, reason = False, "task id and script data id are required"
            else:
                accepted, reason = self.runner.accept(req)
            log.info("assign task=%s accepted=%s %s", req.task_id, accepted, reason)
            resp.results.add(accepted=accepted, reason=reason)
        return resp

    def NotifyData(self, request, context):
        loc = request.location
        if not is_data_id(loc.data_id):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "malformed data id")
        where = "master" if loc.on_master else f"peer {loc.peer_worker_id[:8]} at {loc.peer_address}"
        log.info("notify task=%s data=%s is on %s", request.task_id, loc.data_id[:12], where)
        self.runner.notify(request.task_id, loc)
        return worker_pb2.NotifyDataResponse()

    def StreamData(self, request, context):
        if not is_data_id(request.data_id):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "malformed data id")
        caller = current_claims()["sub"]
        if current_claims()["typ"] != "master":
            try:
                cap = verify(self.link, request.capability)
            except PermissionError as e:
                context.abort(grpc.StatusCode.PERMISSION_DENIED, f"capability refused: {e}")
            if cap.get("typ") != "cap" or cap["sub"] != caller or cap.get("data") != request.data_id:
                log.warning("SECURITY refused data=%s to %s: capability not for it", request.data_id[:12], caller)
                context.abort(grpc.StatusCode.PERMISSION_DENIED, "no capability for that data")
        if not self.cache.has(request.data_id):
            context.abort(grpc.StatusCode.NOT_FOUND, "this worker does not hold that data")
        log.info("serving data=%s to %s", request.data_id[:12], caller[:8])
        self.cache.touch(request.data_id)
        for message in file_chunk_messages(self.cache.path(request.data_id)):  # already serialised
            if self.upload_limit is not None:
                self.upload_limit.take(len(message))
            yield message

    def GetWorkerStatus(self, request, context):
        return worker_pb2.WorkerStatus(
            worker_id=self.link.worker_id, running_task_ids=self.runner.task_ids(),
            free_slots=self.runner.free_slots(), memory_used_bytes=self.runner.memory_used(),
            cached_data_ids=self.cache.ids())

    def CancelTask(self, request, context):
        return worker_pb2.CancelTaskResponse(found=self.runner.cancel(request.task_id))

    def ReadTaskLog(self, request, context):
        if request.stream not in LOG_NAMES:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "stream must be stdout or stderr")
        read = self.runner.read_log(request.task_id, request.stream, request.offset, request.max_bytes)
        if read is None:
            context.abort(grpc.StatusCode.NOT_FOUND, "this worker holds no such task")
        data, running = read
        return worker_pb2.ReadTaskLogResponse(data=data, next_offset=request.offset + len(data), running=running)

    def DeleteData(self, request, context):
        deleted = sum(self.cache.delete(d) for d in request.data_ids if is_data_id(d))
        return worker_pb2.DeleteDataResponse(deleted=deleted)
