"""The master's side of calling workers (WorkerService): one mutual-TLS channel per worker that
checks the worker's identity, the master's own short-lived token, and best-effort commands (cancel a
task, drop data) that any thread may ask for and the event loop sends."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc

from runsurge_master.auth import TokenService
from runsurge_master.db import Database
from runsurge_master.models import Worker
from runsurge_master.tls import MasterTLS
from runsurge_pki.ca import expect_identity, worker_name
from runsurge_proto import worker_pb2, worker_pb2_grpc
from runsurge_proto.wire import CHANNEL_OPTIONS, bearer

log = logging.getLogger("runsurge.channels")
MASTER_TOKEN_RENEW_S = 300  # the token lives 600 s: renewed well before


class WorkerChannels:
    def __init__(self, db: Database, tokens: TokenService, tls: MasterTLS):
        self.db, self.tokens, self.tls = db, tokens, tls
        self.loop: asyncio.AbstractEventLoop | None = None  # set when the scheduler starts
        # worker id → (address, channel, stub): a stub per call would rebuild its callables each time
        self._channels: dict[str, tuple[str, grpc.aio.Channel, worker_pb2_grpc.WorkerServiceStub]] = {}
        self._token = ("", 0.0)
        self._background: set[asyncio.Task] = set()

    def metadata(self) -> tuple:
        token, born = self._token
        if time.monotonic() - born > MASTER_TOKEN_RENEW_S:
            token = self.tokens.issue("master", "master", ttl_s=600)
            self._token = (token, time.monotonic())
        return bearer(token)

    def stub(self, worker_id: str, address: str) -> worker_pb2_grpc.WorkerServiceStub:
        known = self._channels.get(worker_id)
        if known is None or known[0] != address:
            if known:
                self.spawn(known[1].close())
            channel = grpc.aio.secure_channel(address, self.tls.channel_credentials(),  # only that worker answers
                                              options=CHANNEL_OPTIONS + expect_identity(worker_name(worker_id)))
            known = (address, channel, worker_pb2_grpc.WorkerServiceStub(channel))
            self._channels[worker_id] = known
        return known[2]

    def forget(self, worker_id: str) -> None:
        """The worker (re)registered: a new process is behind its address. A channel kept from
        before may be in reconnect backoff (we called it while it was down) and would fail the next
        calls at once, which made a freshly restarted worker look unreachable (found by the chaos test)."""
        known = self._channels.pop(worker_id, None)
        if known is not None:
            self.spawn(known[1].close())

    def spawn(self, coro) -> None:
        """Run a coroutine in the background on the loop (the caller is on it)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _later(self, coro_fn, *args) -> None:
        """Safe from any thread: the loop sends it; before the loop runs nobody is listening."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(lambda: self.spawn(coro_fn(*args)))

    def cancel(self, pairs: list[tuple[str, str]]) -> None:
        """Tell each (worker, task) to stop; after the commit that took the task from it."""
        if pairs:
            self._later(self._cancel, list(pairs))

    def delete(self, worker_id: str, data_ids: list[str]) -> None:
        self._later(self.tell, worker_id, "DeleteData", worker_pb2.DeleteDataRequest(data_ids=data_ids))

    def ask(self, worker_id: str, address: str, method: str, request, timeout: float = 5.0):
        """Call a worker from an HTTP handler's thread and wait for its answer (grpc.aio.AioRpcError
        if it fails; ConnectionError if the gRPC side is not running)."""
        if self.loop is None:
            raise ConnectionError("the master's gRPC side is not running")

        async def call():
            return await getattr(self.stub(worker_id, address), method)(request, metadata=self.metadata(),
                                                                        timeout=timeout)
        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout + 1)

    async def _cancel(self, pairs: list[tuple[str, str]]) -> None:
        for worker_id, task_id in pairs:
            await self.tell(worker_id, "CancelTask", worker_pb2.CancelTaskRequest(task_id=task_id))

    async def tell(self, worker_id: str, method: str, request) -> None:
        """A best-effort command: a worker that cannot be reached is handled by liveness."""
        address = await asyncio.to_thread(self._address, worker_id)
        if address is None:
            return
        try:
            await getattr(self.stub(worker_id, address), method)(request, metadata=self.metadata(), timeout=5)
        except grpc.aio.AioRpcError as e:
            log.info("%s not delivered to worker=%s: %s", method, worker_id, e.code().name)

    def _address(self, worker_id: str) -> str | None:
        with self.db.session() as s:
            w = s.get(Worker, worker_id)
            return w.address if w else None

    async def close(self) -> None:
        for _, ch, _ in self._channels.values():
            await ch.close()
