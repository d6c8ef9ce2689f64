"""Wire conventions shared by master and worker: chunking, hashing, auth metadata, channel options.

Kept next to the stubs because both ends of every stream must agree on them.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import grpc

from runsurge_proto import common_pb2

CHUNK_SIZE = 1 << 20  # 1 MiB, the contract's chunk size
AUTH_KEY = "authorization"
DATA_ID_RE = re.compile(r"^[0-9a-f]{64}$")
# Room for a 1 MiB chunk plus framing; anything bigger is refused by gRPC itself.
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 4 * CHUNK_SIZE),
    ("grpc.max_send_message_length", 4 * CHUNK_SIZE),
]


class IntegrityError(ValueError):
    """Received bytes do not match the size or sha256 they were announced with."""


def is_data_id(value: str) -> bool:
    return bool(DATA_ID_RE.match(value))


def bearer(token: str) -> tuple[tuple[str, str]]:
    return ((AUTH_KEY, f"Bearer {token}"),)


def file_blocks(path: Path) -> Iterator[bytes]:
    """A file's bytes in CHUNK_SIZE blocks (none for an empty file)."""
    with open(path, "rb") as f:
        while block := f.read(CHUNK_SIZE):
            yield block


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    for block in file_blocks(path):
        h.update(block)
    return h.hexdigest()


# -- DataChunk streams without protobuf objects ----------------------------------------------------
# A 1 MiB chunk is nearly all payload: building and parsing DataChunk messages by hand saves copies
# of it. The bytes on the wire are exactly DataChunk.SerializeToString()'s (tested), so either end
# may still use the generated stubs.
_DATA, _OFFSET, _TOTAL = 1, 2, 3  # DataChunk's field numbers (common.proto)
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5  # protobuf wire types
_WIRE_TYPES = {_DATA: _LEN, _OFFSET: _VARINT, _TOTAL: _VARINT}


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def file_chunk_messages(path: Path) -> Iterator[bytes]:
    """A file as serialised DataChunks of CHUNK_SIZE bytes, the first carrying the total size (also
    for an empty file): each item is a DataChunk's wire bytes, built in one buffer (the file read
    straight after the field header) and copied once into the bytes gRPC needs. Send them with
    `raw_chunk_handlers`."""
    size = path.stat().st_size
    buf = bytearray(CHUNK_SIZE + 32)  # the data plus its field header and the two varint fields
    view = memoryview(buf)
    offset = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            n = min(CHUNK_SIZE, size - offset)
            head = _key(_DATA, _LEN) + _varint(n) if n else b""  # proto3 omits empty and zero fields
            start = len(head)
            view[:start] = head
            if f.readinto(view[start:start + n]) != n:
                raise OSError(f"{path.name} changed while being sent")
            tail = (_key(_OFFSET, _VARINT) + _varint(offset) if offset else b"") + (
                _key(_TOTAL, _VARINT) + _varint(size) if size else b"")
            end = start + n + len(tail)
            view[start + n:end] = tail
            yield bytes(view[:end])
            offset += n
            if offset >= size:
                return


def raw_chunk_handlers(servicer: object, *methods: str) -> dict[str, grpc.RpcMethodHandler]:
    """Handlers for the servicer's unary-stream `methods` that yield `file_chunk_messages`, sent as
    they are (no serializer). Register them with `server.add_registered_method_handlers(service, ...)`
    after the generated `add_..._to_server`: they replace its handlers for those methods."""
    return {m: grpc.unary_stream_rpc_method_handler(
                getattr(servicer, m), request_deserializer=common_pb2.DataRequest.FromString)
            for m in methods}


def chunk_stream(channel: grpc.Channel, method: str) -> grpc.UnaryStreamMultiCallable:
    """`method` (e.g. "/runsurge.v1.WorkerService/StreamData") with its responses left serialised,
    for `decode_chunk`."""
    return channel.unary_stream(method, request_serializer=common_pb2.DataRequest.SerializeToString)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    for i in range(pos, min(pos + 10, len(data))):  # a uint64 takes at most 10 bytes
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value & 0xFFFFFFFFFFFFFFFF, i + 1
        shift += 7
    raise IntegrityError("malformed DataChunk: bad varint")


def decode_chunk(message: bytes) -> tuple[memoryview, int, int]:
    """(data, offset, total_size) of a serialised DataChunk; `data` is a view into `message`, not a
    copy. A peer may send anything: whatever a protobuf parser would refuse, or a known field with
    the wrong wire type, raises IntegrityError. Unknown fields are skipped, as protobuf does."""
    view = memoryview(message)
    data, fields, pos, end = view[:0], {_OFFSET: 0, _TOTAL: 0}, 0, len(message)
    while pos < end:
        key, pos = _read_varint(message, pos)
        field, wire_type = key >> 3, key & 7
        if field == 0 or _WIRE_TYPES.get(field, wire_type) != wire_type:
            raise IntegrityError(f"malformed DataChunk: field {field} with wire type {wire_type}")
        if wire_type == _VARINT:
            value, pos = _read_varint(message, pos)
            if field in fields:
                fields[field] = value
        elif wire_type == _LEN:
            length, pos = _read_varint(message, pos)
            if pos + length > end:
                raise IntegrityError("malformed DataChunk: truncated")
            if field == _DATA:
                data = view[pos:pos + length]
            pos += length
        elif wire_type in (_I64, _I32):
            pos += 8 if wire_type == _I64 else 4
        else:
            raise IntegrityError(f"malformed DataChunk: wire type {wire_type}")
    if pos != end:
        raise IntegrityError("malformed DataChunk: truncated")
    return data, fields[_OFFSET], fields[_TOTAL]


class FileReceiver:
    """Writes a stream to a temporary file, checking size and hash; `commit` renames it into place.

    Nothing is left at `dest` (or beside it) unless every byte checked out.
    """

    def __init__(self, dest: Path, expected_sha: str | None, max_size: int,
                 expected_size: int | None = None):
        self.dest, self.expected_sha, self.max_size, self.expected_size = (
            dest, expected_sha, max_size, expected_size)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, block: bytes) -> None:
        self.size += len(block)
        limit = self.max_size if self.expected_size is None else min(self.max_size, self.expected_size)
        if self.size > limit:
            self.abort()
            raise IntegrityError(f"data larger than allowed ({limit} bytes)")
        self._hash.update(block)
        self._file.write(block)

    def commit(self) -> tuple[str, int]:
        self._file.close()
        digest = self._hash.hexdigest()
        try:
            if self.expected_size is not None and self.size != self.expected_size:
                raise IntegrityError(f"size {self.size} != announced {self.expected_size}")
            if self.expected_sha is not None and digest != self.expected_sha:
                raise IntegrityError(f"sha256 {digest[:12]}… != announced {self.expected_sha[:12]}…")
        except IntegrityError:
            self.abort()
            raise
        os.replace(self._tmp, self.dest)
        return digest, self.size

    def abort(self) -> None:
        self._file.close()
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)


def receive_file(
    blocks: Iterable[bytes], dest: Path, expected_sha: str | None, max_size: int,
    expected_size: int | None = None,
) -> tuple[str, int]:
    """Write `blocks` to `dest` atomically, checking size and hash. Returns (sha256, size)."""
    rx = FileReceiver(dest, expected_sha, max_size, expected_size)
    try:
        for block in blocks:
            rx.write(block)
    except BaseException:
        rx.abort()
        raise
    return rx.commit()
