"""Everything the worker says to the master: HTTP login, gRPC registration, heartbeats, reports.
Holds the worker's current token and the master's public key (to verify incoming calls)."""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable

import grpc

from runsurge_proto import master_pb2, master_pb2_grpc
from runsurge_proto.wire import CHANNEL_OPTIONS, bearer
from runsurge_worker.config import WorkerConfig

log = logging.getLogger("runsurge.worker.master")


class LoginError(RuntimeError):
    pass


def login(master_url: str, email: str, password: str) -> str:
    body = json.dumps({"email": email, "password": password}).encode()
    req = urllib.request.Request(f"{master_url.rstrip('/')}/api/auth/login", data=body,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return json.load(resp)["access_token"]
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")[:200]
        raise LoginError(f"login to {master_url} as {email} refused ({e.code}): {detail}") from None
    except (urllib.error.URLError, OSError) as e:
        raise LoginError(f"cannot reach the master at {master_url}: {e}") from None


class MasterLink:
    def __init__(self, cfg: WorkerConfig):
        self.cfg = cfg
        self.channel = grpc.insecure_channel(cfg.master_grpc, options=CHANNEL_OPTIONS)
        self.stub = master_pb2_grpc.MasterServiceStub(self.channel)
        self.worker_id = ""
        self.token = ""
        self.public_key_pem = ""
        self.heartbeat_interval_s = 2.0
        self._lock = threading.Lock()

    def metadata(self) -> tuple:
        return bearer(self.token)

    def register(self, fingerprint: str, grpc_port: int, cached: list[str]) -> None:
        user_token = login(self.cfg.master_url, self.cfg.email, self.cfg.password)
        resp = self.stub.NodeRegister(master_pb2.NodeRegisterRequest(
            fingerprint=fingerprint, memory_bytes=self.cfg.memory, cpus=self.cfg.cpus, slots=self.cfg.slots,
            host=self.cfg.host, grpc_port=grpc_port, sandbox=self.cfg.sandbox, cached_data_ids=cached),
            metadata=bearer(user_token), timeout=30)
        with self._lock:
            self.worker_id, self.token = resp.worker_id, resp.worker_token
            self.public_key_pem = resp.master_public_key_pem
            self.heartbeat_interval_s = resp.heartbeat_interval_s or 2.0
        log.info("registered worker=%s master=%s", self.worker_id, self.cfg.master_grpc)

    def heartbeat_loop(self, status: Callable[[], master_pb2.NodeHeartbeatRequest],
                       reregister: Callable[[], None], cancel: Callable[[str], None],
                       stop: threading.Event) -> None:
        failures = 0
        while not stop.wait(self.heartbeat_interval_s):
            try:
                resp = self.stub.NodeHeartbeat(status(), metadata=self.metadata(), timeout=10)
                if failures:
                    log.info("master reachable again")
                failures = 0
                if resp.worker_token:
                    self.token = resp.worker_token
                for task_id in resp.cancel_task_ids:
                    cancel(task_id)
                if resp.reregister:
                    log.warning("the master had declared this worker offline: registering again")
                    reregister()
            except (grpc.RpcError, LoginError) as e:
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    detail = e.details() if isinstance(e, grpc.RpcError) else str(e)
                    log.warning("heartbeat failed (%d in a row): %s", failures, detail)
                if isinstance(e, grpc.RpcError) and e.code() == grpc.StatusCode.UNAUTHENTICATED:
                    try:
                        reregister()
                    except (grpc.RpcError, LoginError) as again:
                        log.warning("re-registration failed: %s", again)

    def close(self) -> None:
        self.channel.close()
