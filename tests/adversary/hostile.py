"""A hostile worker built from the generated stubs alone: it enrols like a real worker (its own key,
the master signs its CSR), serves WorkerService over mutual TLS, beats, and then does whatever the
test tells it to (`on_assign`), with the master's gRPC at its fingertips (`master`)."""

from __future__ import annotations

import sqlite3
import threading
from concurrent import futures

import grpc
import pytest

from localnet import PASSWORD, free_port
from runsurge_pki.ca import key_pem, make_csr, new_key
from runsurge_proto import master_pb2, master_pb2_grpc, worker_pb2, worker_pb2_grpc
from runsurge_proto.wire import bearer

ATTACKER = "mallory@evil.example"
VICTIM = "victim@runsurge.local"


class HostileWorker(worker_pb2_grpc.WorkerServiceServicer):
    def __init__(self, net, owner: str = ATTACKER, memory: int = 256 << 20, fingerprint: str = "hostile-0001",
                 accept: bool = True):
        self.net, self.owner, self.memory, self.fingerprint = net, owner, memory, fingerprint
        self.accept = accept  # answer each task of AssignTasks with accepted=accept
        self.key = new_key()
        self.port = free_port()
        self.assigned: list[worker_pb2.AssignTaskRequest] = []
        self.notices: list[worker_pb2.NotifyDataRequest] = []
        self.held: set[str] = set()
        self.stream_requests: list = []  # StreamData calls that reached it (a capability is a secret)
        self._changed = threading.Condition()
        self._stop = threading.Event()
        net.register(owner)
        self.register()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        worker_pb2_grpc.add_WorkerServiceServicer_to_server(self, self.server)
        self.server.add_secure_port(f"127.0.0.1:{self.port}", grpc.ssl_server_credentials(
            [(key_pem(self.key), self.cert)], root_certificates=net.ca_file.read_bytes(), require_client_auth=True))
        self.server.start()
        self._beats = threading.Thread(target=self._beat_loop, daemon=True)
        self._beats.start()
        net._until(lambda: net.worker_online(self.port, owner), "the hostile worker online")

    # -- as a worker, towards the master ---------------------------------------------------------
    def register(self, **fields) -> master_pb2.NodeRegisterResponse:
        """NodeRegister on the enrolment port (override any request field)."""
        req = dict(fingerprint=self.fingerprint, memory_bytes=self.memory, cpus=1, slots=1, host="127.0.0.1",
                   grpc_port=self.port, sandbox="process", csr_pem=make_csr(self.key, "hostile"))
        req.update(fields)
        resp = master_pb2_grpc.MasterServiceStub(self.enroll_channel()).NodeRegister(
            master_pb2.NodeRegisterRequest(**req), metadata=bearer(self.net.client(self.owner).access_token),
            timeout=10)
        self.id, self.token, self.cert = resp.worker_id, resp.worker_token, resp.certificate_pem
        self.master_channel = grpc.secure_channel(f"127.0.0.1:{self.net.grpc_port}", grpc.ssl_channel_credentials(
            self.net.ca_file.read_bytes(), key_pem(self.key), self.cert))
        self.master = master_pb2_grpc.MasterServiceStub(self.master_channel)
        return resp

    def enroll_channel(self) -> grpc.Channel:
        return grpc.secure_channel(f"127.0.0.1:{self.net.enroll_port}",
                                   grpc.ssl_channel_credentials(self.net.ca_file.read_bytes()))

    @property
    def md(self) -> tuple:
        return bearer(self.token)

    def heartbeat(self, **fields) -> master_pb2.NodeHeartbeatResponse:
        req = dict(worker_id=self.id, free_slots=1, running_task_ids=sorted(self.held))
        req.update(fields)
        return self.master.NodeHeartbeat(master_pb2.NodeHeartbeatRequest(**req), metadata=self.md, timeout=10)

    def _beat_loop(self) -> None:
        while not self._stop.wait(self.net.heartbeat_s):
            try:
                self.heartbeat()
            except grpc.RpcError:
                pass

    def complete(self, task: worker_pb2.AssignTaskRequest, **fields) -> master_pb2.TaskCompleteResult:
        """One completion in a CompleteTasks call (override any report field); the master's answer to it."""
        req = dict(worker_id=self.id, task_id=task.task_id, attempt=task.attempt,
                   status=master_pb2.TASK_STATUS_SUCCEEDED)
        req.update(fields)
        (result,) = self.master.CompleteTasks(master_pb2.CompleteTasksRequest(
            reports=[master_pb2.TaskCompleteRequest(**req)]), metadata=self.md, timeout=10).results
        return result

    def upload(self, task_id: str, data: bytes, data_id: str | None = None, size: int | None = None):
        import hashlib
        header = master_pb2.UploadHeader(worker_id=self.id, task_id=task_id,
                                         data_id=data_id or hashlib.sha256(data).hexdigest(),
                                         size=len(data) if size is None else size)
        parts = [master_pb2.UploadPart(header=header)] + ([master_pb2.UploadPart(chunk=data)] if data else [])
        return self.master.ReceiveData(iter(parts), metadata=self.md, timeout=30)

    def wait_assigned(self, count: int = 1, timeout_s: float = 30) -> worker_pb2.AssignTaskRequest:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.assigned) >= count, timeout_s):
                raise TimeoutError(f"only {len(self.assigned)} tasks assigned")
            return self.assigned[count - 1]

    def stop(self) -> None:
        self._stop.set()
        self.server.stop(grace=0)

    # -- WorkerService, as the master sees it ----------------------------------------------------
    def AssignTasks(self, request, context):
        with self._changed:
            self.assigned.extend(request.tasks)
            if self.accept:
                self.held.update(t.task_id for t in request.tasks)
            self._changed.notify_all()
        return worker_pb2.AssignTasksResponse(results=[
            worker_pb2.AssignTaskResponse(accepted=self.accept, reason="" if self.accept else "no thanks")
            for _ in request.tasks])

    def NotifyData(self, request, context):
        self.notices.append(request)
        return worker_pb2.NotifyDataResponse()

    def GetWorkerStatus(self, request, context):
        return worker_pb2.WorkerStatus(worker_id=self.id, running_task_ids=sorted(self.held), free_slots=1)

    def CancelTask(self, request, context):
        found = request.task_id in self.held
        self.held.discard(request.task_id)
        return worker_pb2.CancelTaskResponse(found=found)

    def StreamData(self, request, context):
        self.stream_requests.append(request)
        context.abort(grpc.StatusCode.NOT_FOUND, "not here")

    def DeleteData(self, request, context):
        return worker_pb2.DeleteDataResponse(deleted=0)


def db_rows(net, query: str, *args) -> list[tuple]:
    with sqlite3.connect(net.root / "master" / "master.db") as conn:
        return conn.execute(query, args).fetchall()


def snapshot(net) -> dict[str, list[tuple]]:
    """Everything a victim owns in the master's database: jobs, tasks, data, bills."""
    tables = ("users", "jobs", "tasks", "task_inputs", "task_outputs", "data_objects", "data_locations",
              "ledger_transactions", "ledger_entries")
    return {t: db_rows(net, f"select * from {t} order by 1") for t in tables}


# The store's garbage collector runs every half second here (objects older than 3 s may go), so every
# attack also runs alongside it.
GC = {"RUNSURGE_GC_INTERVAL_S": "0.5", "RUNSURGE_GC_GRACE_S": "3"}


def assert_no_traceback(net) -> None:
    log = net.log("master")
    if "Traceback" in log:
        pytest.fail("the master logged a traceback:\n" + log[max(0, log.index("Traceback") - 2000):][:6000])


__all__ = ["ATTACKER", "GC", "VICTIM", "assert_no_traceback", "PASSWORD", "HostileWorker", "db_rows", "snapshot"]
