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


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK_SIZE):
            h.update(block)
    return h.hexdigest()


def file_chunks(path: Path) -> Iterator[common_pb2.DataChunk]:
    """A file as DataChunks; the first carries the total size (also for an empty file)."""
    size = path.stat().st_size
    offset = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(CHUNK_SIZE)
            if not block and offset:
                return
            yield common_pb2.DataChunk(data=block, offset=offset, total_size=size)
            offset += len(block)
            if not block:
                return


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
