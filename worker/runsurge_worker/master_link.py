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

from runsurge_pki.ca import MASTER_NAME, expect_identity
from runsurge_proto import master_pb2, master_pb2_grpc
from runsurge_proto.wire import CHANNEL_OPTIONS, bearer
from runsurge_worker.backoff import Backoff, phase
from runsurge_worker.config import WorkerConfig
from runsurge_worker.tls import WorkerTLS

log = logging.getLogger("runsurge.worker.master")


class LoginError(RuntimeError):
    pass


class LoginThrottledError(LoginError):
    """The master asks this address to wait (too many failed logins from it): retry after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


def retry_after(e: BaseException) -> float:
    """How long the master asked us to wait before trying again (0: it did not say)."""
    return e.retry_after_s if isinstance(e, LoginThrottledError) else 0.0


def login(master_url: str, email: str, password: str) -> str:
    body = json.dumps({"email": email, "password": password}).encode()
    req = urllib.request.Request(f"{master_url.rstrip('/')}/api/auth/login", data=body,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return json.load(resp)["access_token"]
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")[:200]
        try:  # the master's {"detail": "..."} as the words it holds
            detail = str(json.loads(detail)["detail"])
        except (ValueError, KeyError, TypeError):
            pass
        if e.code == 429:
            wait = e.headers.get("Retry-After", "")
            raise LoginThrottledError(f"login to {master_url} throttled: {detail}",
                                 float(wait) if wait.isdigit() else 60.0) from None
        raise LoginError(f"login to {master_url} as {email} refused: {detail} (the contributor account: "
                         "RUNSURGE_EMAIL, RUNSURGE_PASSWORD or RUNSURGE_PASSWORD_FILE)") from None
    except (urllib.error.URLError, OSError) as e:
        raise LoginError(f"cannot reach the master at {master_url}: {e}") from None


class MasterLink:
    def __init__(self, cfg: WorkerConfig, tls: WorkerTLS):
        self.cfg, self.tls = cfg, tls
        # Only the master's certificate (its CA-given identity, not merely the CA) is accepted on both of
        # its ports: another CA-signed party listening there never sees our account's or our token.
        self._enroll = grpc.secure_channel(cfg.master_enroll, tls.enrollment_credentials(),
                                           options=CHANNEL_OPTIONS + expect_identity(MASTER_NAME))
        self.channel: grpc.Channel | None = None
        self.stub: master_pb2_grpc.MasterServiceStub | None = None  # after registration (needs our certificate)
        self.worker_id = ""
        self.token = ""
        self.public_key_pem = ""
        self.heartbeat_interval_s = 2.0
        self._lock = threading.Lock()
        self._kick = threading.Event()  # a heartbeat now: the worker's state changed (suspended...)

    def metadata(self) -> tuple:
        return bearer(self.token)

    def register(self, fingerprint: str, grpc_port: int, cached: list[str], checkpointed: list[str] = ()) -> None:
        """`checkpointed`: the tasks it resumes from the checkpoints its last stop saved."""
        user_token = login(self.cfg.master_url, self.cfg.email, self.cfg.password)
        resp = master_pb2_grpc.MasterServiceStub(self._enroll).NodeRegister(master_pb2.NodeRegisterRequest(
            fingerprint=fingerprint, memory_bytes=self.cfg.memory, cpus=self.cfg.cpus, slots=self.cfg.slots,
            host=self.cfg.host, grpc_port=grpc_port, sandbox=self.cfg.sandbox, cached_data_ids=cached,
            csr_pem=self.tls.csr(), checkpointed_task_ids=checkpointed), metadata=bearer(user_token), timeout=30)
        self.tls.set_certificate(resp.certificate_pem, resp.ca_pem)
        old = self.channel
        interval_s = resp.heartbeat_interval_s or 2.0
        # Reconnect within a heartbeat interval once a restarted master is back: gRPC's default
        # backoff (up to 120 s) let the master, having just reconciled us, declare us offline and
        # re-queue our running tasks (found by the chaos test).
        backoff_ms = max(100, int(interval_s * 1000))
        channel = grpc.secure_channel(self.cfg.master_grpc, self.tls.channel_credentials(), options=[
            *CHANNEL_OPTIONS, *expect_identity(MASTER_NAME), ("grpc.initial_reconnect_backoff_ms", backoff_ms),
            ("grpc.max_reconnect_backoff_ms", backoff_ms)])
        with self._lock:
            self.worker_id, self.token = resp.worker_id, resp.worker_token
            self.public_key_pem = resp.master_public_key_pem
            self.heartbeat_interval_s = interval_s
            self.channel, self.stub = channel, master_pb2_grpc.MasterServiceStub(channel)
        if old is not None:  # let calls in flight on the old certificate finish
            threading.Timer(60, old.close).start()
        log.info("registered worker=%s master=%s", self.worker_id, self.cfg.master_grpc)

    def heartbeat_loop(self, status: Callable[[], master_pb2.NodeHeartbeatRequest],
                       reregister: Callable[[], None], cancel: Callable[[str], None],
                       stop: threading.Event,
                       delivered: Callable[[master_pb2.NodeHeartbeatRequest], None] | None = None,
                       answered: Callable[[master_pb2.NodeHeartbeatResponse], None] | None = None) -> None:
        """Beat until `stop`. `delivered(request)`: a beat reached the master; `answered(reply)`: its
        reply, before its cancels are acted on."""
        failures = 0
        offline = Backoff(base_s=self.heartbeat_interval_s, cap_s=60.0)
        first = True
        while True:  # the first beat at once: it makes a freshly registered worker schedulable
            try:
                if self.tls.renewal_due():
                    log.info("renewing the worker certificate")
                    reregister()
                req = status()
                resp = self.stub.NodeHeartbeat(req, metadata=self.metadata(), timeout=10)
                if delivered is not None:
                    delivered(req)
                if failures:
                    log.info("master reachable again")
                failures = 0
                if resp.worker_token:
                    self.token = resp.worker_token
                if answered is not None:
                    answered(resp)
                for task_id in resp.cancel_task_ids:
                    cancel(task_id)
                if resp.reregister:
                    # Every worker an overloaded master dropped hears this in the same interval: wait a
                    # jittered, growing delay so they do not all register in the same second.
                    wait = offline.next()
                    log.warning("the master had declared this worker offline: registering again in %.1f s", wait)
                    if stop.wait(wait):
                        return
                    reregister()
                else:
                    offline.reset()
            except (grpc.RpcError, LoginError) as e:
                failures += 1
                if failures in (1, 10) or failures % 100 == 0:
                    detail = e.details() if isinstance(e, grpc.RpcError) else str(e)
                    log.warning("heartbeat failed (%d in a row): %s", failures, detail)
                asked = retry_after(e)  # a re-registration's login throttled: the master's wait first
                if isinstance(e, grpc.RpcError) and e.code() == grpc.StatusCode.UNAUTHENTICATED:
                    try:
                        reregister()
                    except (grpc.RpcError, LoginError) as again:
                        log.warning("re-registration failed: %s", again)
                        asked = retry_after(again)
                if asked:
                    wait = offline.next(asked)
                    log.warning("the master throttles our logins: registering again in %.1f s", wait)
                    if stop.wait(wait):
                        return
            # After the first beat, a random phase: workers started together then beat spread out.
            self._kick.wait(phase(self.heartbeat_interval_s) if first else self.heartbeat_interval_s)
            first = False
            self._kick.clear()
            if stop.is_set():
                return

    def kick(self) -> None:
        """Send the next heartbeat now (the master must hear of a suspension at once)."""
        self._kick.set()

    def beat_once(self, request: master_pb2.NodeHeartbeatRequest) -> bool:
        """One heartbeat outside the loop (the worker's last, saying it stops)."""
        try:
            self.stub.NodeHeartbeat(request, metadata=self.metadata(), timeout=5)
            return True
        except grpc.RpcError as e:
            log.warning("last heartbeat failed: %s", e.details())
            return False

    def close(self) -> None:
        self._enroll.close()
        if self.channel is not None:
            self.channel.close()
