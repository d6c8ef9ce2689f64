"""DataChunks built and parsed by hand (wire.file_chunk_messages / decode_chunk) against protobuf's own."""

import hashlib
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from runsurge_proto import common_pb2, worker_pb2_grpc
from runsurge_proto.wire import (
    CHUNK_SIZE,
    IntegrityError,
    chunk_stream,
    decode_chunk,
    file_blocks,
    file_chunk_messages,
    raw_chunk_handlers,
)
from runsurge_worker.cache import Cache
from runsurge_worker.fetch import MASTER_STREAM_ATTEMPTS, PEER_DATA, Fetcher, FetchError

SIZES = [0, 1, 127, 128, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 300]


def protobuf_chunks(path: Path) -> list[common_pb2.DataChunk]:
    """The reference: the same chunks as protobuf objects (an empty file is one empty chunk)."""
    size, chunks, offset = path.stat().st_size, [], 0
    for block in list(file_blocks(path)) or [b""]:
        chunks.append(common_pb2.DataChunk(data=block, offset=offset, total_size=size))
        offset += len(block)
    return chunks


@pytest.mark.parametrize("size", SIZES)
def test_messages_are_byte_identical_to_protobufs(tmp_path, size):
    f = tmp_path / "f"
    f.write_bytes(bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    expected = [c.SerializeToString() for c in protobuf_chunks(f)]
    assert list(file_chunk_messages(f)) == expected
    assert [(bytes(d), o, t) for d, o, t in map(decode_chunk, expected)] == [
        (c.data, c.offset, c.total_size) for c in protobuf_chunks(f)]


def test_decode_accepts_what_protobuf_accepts():
    for fields in [{}, {"offset": 5}, {"data": b"abc"},
                   {"data": b"z" * 300, "offset": 1 << 40, "total_size": 2**64 - 1}]:
        wire = common_pb2.DataChunk(**fields).SerializeToString()
        data, offset, total = decode_chunk(wire)
        assert (bytes(data), offset, total) == (fields.get("data", b""), fields.get("offset", 0),
                                                fields.get("total_size", 0))
    # fields out of order, repeated (the last wins) and unknown ones (skipped), as protobuf does
    wire = (b"\x18\x07" + b"\x0a\x01a" + b"\x0a\x02bc"  # total_size, then data twice
            + b"\x20\x01" + b"\x2a\x01q" + b"\x31" + bytes(8) + b"\x3d" + bytes(4))  # unknown fields 4 to 7
    parsed = common_pb2.DataChunk.FromString(wire)
    data, offset, total = decode_chunk(wire)
    assert (bytes(data), offset, total) == (parsed.data, parsed.offset, parsed.total_size) == (b"bc", 0, 7)


@pytest.mark.parametrize("wire", [
    b"\x0a",                    # a key and no length
    b"\x0a\x05abc",             # data shorter than its length
    b"\x0a\xff\xff\xff\xff\x0f",  # a huge length
    b"\x10",                    # a varint field with no value
    b"\x10\xff",                # a varint cut short
    b"\x10" + b"\xff" * 11,     # a varint longer than 10 bytes
    b"\x08\x01",                # data as a varint
    b"\x12\x01a",               # offset as bytes
    b"\x1d\x00\x00\x00\x00",    # total_size as fixed32
    b"\x00\x01",                # field number 0
    b"\x23\x24",                # a group (wire type 3)
    b"\x0f",                    # wire type 7
    b"\x31\x00\x00",            # an unknown fixed64 cut short
])
def test_malformed_chunks_raise_integrity_error(wire):
    with pytest.raises(IntegrityError):
        decode_chunk(wire)


class _Link:
    """What the Fetcher needs of a MasterLink for a peer fetch over a plain channel."""

    class tls:  # noqa: N801
        cert_pem = b"test"

        @staticmethod
        def channel_credentials() -> None:
            return None

    @staticmethod
    def metadata() -> tuple:
        return ()


def _serve(messages: list[bytes]) -> tuple[grpc.Server, int]:
    class Peer:
        def StreamData(self, request, context):
            yield from messages

    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_registered_method_handlers("runsurge.v1.WorkerService", raw_chunk_handlers(Peer(), "StreamData"))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


def _fetch(tmp_path: Path, messages: list[bytes], data: bytes, monkeypatch) -> Cache:
    server, port = _serve(messages)
    monkeypatch.setattr(grpc, "secure_channel", lambda address, _creds, options: grpc.insecure_channel(address))
    cache = Cache(tmp_path / "cache")
    fetcher = Fetcher(cache, _Link(), max_size=1 << 30)
    loc = common_pb2.DataLocation(data_id=hashlib.sha256(data).hexdigest(), peer_address=f"127.0.0.1:{port}",
                                  peer_worker_id="w" * 32, size=len(data))
    try:
        fetcher.fetch("t", loc)
    finally:
        fetcher.close()
        server.stop(None)
    return cache


def test_a_raw_stream_reaches_the_cache(tmp_path, monkeypatch):
    data = b"y" * (2 * CHUNK_SIZE + 17)
    src = tmp_path / "src"
    src.write_bytes(data)
    cache = _fetch(tmp_path, list(file_chunk_messages(src)), data, monkeypatch)
    assert cache.path(hashlib.sha256(data).hexdigest()).read_bytes() == data


@pytest.mark.parametrize("tail", [b"\x0a\x05abc", b"\x23", b"\x08\x01"])
def test_a_malformed_chunk_is_a_fetch_error_and_leaves_nothing(tmp_path, monkeypatch, tail):
    data = b"z" * (CHUNK_SIZE + 5)
    src = tmp_path / "src"
    src.write_bytes(data)
    good = list(file_chunk_messages(src))
    with pytest.raises(FetchError) as e:
        _fetch(tmp_path, [good[0], tail], data, monkeypatch)
    assert e.value.bad_peer == "w" * 32
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_the_generated_stub_reads_raw_messages(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"q" * (CHUNK_SIZE + 3))
    server, port = _serve(list(file_chunk_messages(f)))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            chunks = list(worker_pb2_grpc.WorkerServiceStub(ch).StreamData(common_pb2.DataRequest()))
            assert b"".join(c.data for c in chunks) == f.read_bytes()
            assert [decode_chunk(m)[1] for m in chunk_stream(ch, PEER_DATA)(common_pb2.DataRequest())] == [
                0, CHUNK_SIZE]
    finally:
        server.stop(None)


class _MasterLink(_Link):
    def __init__(self, channel: grpc.Channel):
        self.channel = channel


def test_a_master_stream_broken_by_a_master_restart_is_started_again(tmp_path):
    """The master is killed in the middle of a stream and a new one comes up on the same port: the
    fetch waits for it and streams again instead of failing the task (seen in the chaos test)."""
    data = b"m" * (3 * CHUNK_SIZE + 11)
    src = tmp_path / "src"
    src.write_bytes(data)
    messages = list(file_chunk_messages(src))
    first_chunk_sent = threading.Event()

    class Dying:
        def StreamData(self, request, context):
            yield messages[0]
            first_chunk_sent.set()
            time.sleep(30)  # killed before it sends more

    class Master:
        def StreamData(self, request, context):
            yield from messages

    def serve(servicer, port: int = 0) -> tuple[grpc.Server, int]:
        server = grpc.server(futures.ThreadPoolExecutor(2))
        server.add_registered_method_handlers("runsurge.v1.MasterService", raw_chunk_handlers(servicer, "StreamData"))
        port = server.add_insecure_port(f"127.0.0.1:{port}")
        server.start()
        return server, port

    dying, port = serve(Dying())
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    cache = Cache(tmp_path / "cache")
    fetcher = Fetcher(cache, _MasterLink(channel), max_size=1 << 30)
    loc = common_pb2.DataLocation(data_id=hashlib.sha256(data).hexdigest(), on_master=True, size=len(data))
    result: list = []
    t = threading.Thread(target=lambda: result.append(fetcher.fetch("t", loc)))
    t.start()
    master = None
    try:
        assert first_chunk_sent.wait(10)
        dying.stop(None).wait()
        master, _ = serve(Master(), port)
        t.join(30)
        assert result == ["master"]
        assert cache.path(loc.data_id).read_bytes() == data
    finally:
        channel.close()
        for s in (dying, master):
            if s is not None:
                s.stop(None)


def test_a_master_stream_that_keeps_breaking_is_tried_a_bounded_number_of_times(tmp_path):
    """Each retry after a (jittered, backoff.py) delay; after MASTER_STREAM_ATTEMPTS the fetch fails."""
    calls = []

    class Broken:
        def StreamData(self, request, context):
            calls.append(1)
            context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
            yield b""

    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_registered_method_handlers("runsurge.v1.MasterService", raw_chunk_handlers(Broken(), "StreamData"))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        fetcher = Fetcher(Cache(tmp_path / "cache"), _MasterLink(channel), max_size=1 << 30)
        loc = common_pb2.DataLocation(data_id="a" * 64, on_master=True, size=1)
        with pytest.raises(FetchError, match="UNAVAILABLE"):
            fetcher.fetch("t", loc)
        assert len(calls) == MASTER_STREAM_ATTEMPTS
    finally:
        channel.close()
        server.stop(None)


def test_a_peer_that_goes_away_mid_stream_fails_the_fetch_and_is_named(tmp_path, monkeypatch):
    """A peer is not waited for: the master knows other copies."""
    data = b"p" * (2 * CHUNK_SIZE)
    src = tmp_path / "src"
    src.write_bytes(data)
    first = list(file_chunk_messages(src))[0]

    class Peer:
        def StreamData(self, request, context):
            yield first
            context.abort(grpc.StatusCode.UNAVAILABLE, "gone")

    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_registered_method_handlers("runsurge.v1.WorkerService", raw_chunk_handlers(Peer(), "StreamData"))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setattr(grpc, "secure_channel", lambda address, _creds, options: grpc.insecure_channel(address))
    fetcher = Fetcher(Cache(tmp_path / "cache"), _Link(), max_size=1 << 30)
    loc = common_pb2.DataLocation(data_id=hashlib.sha256(data).hexdigest(), peer_address=f"127.0.0.1:{port}",
                                  peer_worker_id="w" * 32, size=len(data))
    try:
        with pytest.raises(FetchError) as e:
            fetcher.fetch("t", loc)
        assert e.value.bad_peer == "w" * 32 and "UNAVAILABLE" in str(e.value)
        assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []
    finally:
        fetcher.close()
        server.stop(None)
