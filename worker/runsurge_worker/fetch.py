"""Getting a data object into the cache: from the peer that holds it, or from the master.
Every byte is checked against the data id (its sha256) before it lands in the cache."""

from __future__ import annotations

import logging
import threading
import time

import grpc

from runsurge_pki.ca import expect_identity, worker_name
from runsurge_proto import common_pb2
from runsurge_proto.wire import CHANNEL_OPTIONS, FileReceiver, IntegrityError, chunk_stream, decode_chunk
from runsurge_worker.backoff import Backoff
from runsurge_worker.cache import Cache
from runsurge_worker.master_link import MasterLink
from runsurge_worker.ratelimit import TokenBucket

log = logging.getLogger("runsurge.worker.fetch")
PEER_DATA = "/runsurge.v1.WorkerService/StreamData"
MASTER_DATA = "/runsurge.v1.MasterService/StreamData"
MASTER_SCRIPT = "/runsurge.v1.MasterService/StreamPythonFile"
MASTER_STREAM_ATTEMPTS = 6  # with wait_for_ready each attempt waits out a master restart's downtime


class FetchError(RuntimeError):
    def __init__(self, message: str, bad_peer: str = "", data_id: str = ""):
        super().__init__(message)
        self.bad_peer, self.data_id = bad_peer, data_id  # set when a peer served corrupt bytes


class Fetcher:
    def __init__(self, cache: Cache, link: MasterLink, max_size: int, limit: TokenBucket | None = None):
        self.cache, self.link, self.max_size = cache, link, max_size
        self.limit = limit  # the download cap (ratelimit.py), shared by every fetch
        self._peers: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()
        # Striped locks: two tasks needing the same object fetch it once, and the lock table stays
        # bounded however many objects a long-running worker sees.
        self._gates = [threading.Lock() for _ in range(64)]

    def _peer(self, address: str, worker_id: str) -> grpc.Channel:
        """Mutual TLS to the peer, with our current certificate (a renewal opens new channels). Only the
        worker the master named answers: its certificate must carry that worker's identity, whoever
        is listening at the address."""
        key = f"{address}/{worker_id}/{hash(self.link.tls.cert_pem)}"
        with self._lock:
            if key not in self._peers:
                options = CHANNEL_OPTIONS + expect_identity(worker_name(worker_id))
                self._peers[key] = grpc.secure_channel(address, self.link.tls.channel_credentials(), options=options)
            return self._peers[key]

    def fetch(self, task_id: str, loc: common_pb2.DataLocation, script: bool = False) -> str:
        """Make `loc.data_id` present in the cache; returns where it came from (for the logs)."""
        with self._gates[int(loc.data_id[:8], 16) % len(self._gates)]:
            if self.cache.has(loc.data_id) and not loc.from_source:
                return "cache"
            req = common_pb2.DataRequest(data_id=loc.data_id, task_id=task_id, capability=loc.capability)
            if loc.on_master:
                source = "master"
                rpc = chunk_stream(self.link.channel, MASTER_SCRIPT if script else MASTER_DATA)
            else:
                source = f"peer {loc.peer_worker_id[:8]} at {loc.peer_address}"
                rpc = chunk_stream(self._peer(loc.peer_address, loc.peer_worker_id), PEER_DATA)
            started = time.monotonic()
            try:
                rx = self._receive_retrying(rpc, req, loc)
            except grpc.RpcError as e:  # a peer that cannot serve what the master said it holds is named
                raise FetchError(f"fetching {loc.data_id[:12]} from {source} failed: {e.code().name} "
                                 f"{e.details()}", bad_peer="" if loc.on_master else loc.peer_worker_id,
                                 data_id=loc.data_id) from None
            except IntegrityError as e:
                log.warning("rejected data %s from %s: %s", loc.data_id[:12], source, e)
                raise FetchError(f"data {loc.data_id[:12]} from {source} is corrupt: {e}",
                                 bad_peer="" if loc.on_master else loc.peer_worker_id, data_id=loc.data_id) from None
            if rx is None:
                raise FetchError(f"empty stream for {loc.data_id[:12]} from {source}")
        log.info("fetched data=%s size=%d from %s for task=%s in %.2fs", loc.data_id[:12], rx.size, source, task_id,
                 time.monotonic() - started)
        return source

    def _receive_retrying(self, rpc: grpc.UnaryStreamMultiCallable, req: common_pb2.DataRequest,
                          loc: common_pb2.DataLocation) -> FileReceiver | None:
        """A master killed in the middle of a stream breaks it (UNAVAILABLE); the restarted master
        still lists the task as ours, so the stream is started again rather than the task failed.
        A peer is not retried: the master knows other copies, and a dead peer should not hold us."""
        retry = Backoff(base_s=0.2, cap_s=2.0)  # jittered: a restarted master's workers do not come back together
        while True:
            try:
                return self._receive(rpc, req, loc)
            except grpc.RpcError as e:
                if (not loc.on_master or e.code() != grpc.StatusCode.UNAVAILABLE
                        or retry.attempt + 1 == MASTER_STREAM_ATTEMPTS):
                    raise
                log.warning("stream of %s from master broke (%s); starting it again", loc.data_id[:12], e.details())
                time.sleep(retry.next())

    def _receive(self, rpc: grpc.UnaryStreamMultiCallable, req: common_pb2.DataRequest,
                 loc: common_pb2.DataLocation) -> FileReceiver | None:
        """Stream the object into the cache (None if the stream was empty). Whatever goes wrong, a bad
        chunk, a failed call or an interruption, the call is cancelled and nothing half-written is
        left behind. DataChunks are parsed by hand: the data is a view of the message, not a copy."""
        # From the master, wait for the channel rather than fail at once while it reconnects after a
        # master restart (the task is still listed as running, so the master keeps it); a peer that
        # is down fails fast, and the master finds the data elsewhere.
        call = rpc(req, metadata=self.link.metadata(), timeout=3600, wait_for_ready=loc.on_master)
        rx = None
        try:
            for message in call:
                data, _, total_size = decode_chunk(message)
                if rx is None:
                    rx = self.cache.receiver(loc.data_id, total_size, self.max_size)
                rx.write(data)
                if self.limit is not None:
                    self.limit.take(len(data))
            if rx is not None:
                rx.commit()
        except BaseException:
            call.cancel()
            if rx is not None:
                rx.abort()
            raise
        return rx

    def close(self) -> None:
        for ch in self._peers.values():
            ch.close()
