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


def receive_file(
    blocks: Iterable[bytes], dest: Path, expected_sha: str | None, max_size: int,
    expected_size: int | None = None,
) -> tuple[str, int]:
    """Write `blocks` to `dest` atomically, checking size and hash. Returns (sha256, size).

    Nothing is left at `dest` (or in its folder) unless every byte checked out.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    size = 0
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as f:
            for block in blocks:
                size += len(block)
                if size > max_size or (expected_size is not None and size > expected_size):
                    raise IntegrityError(f"data larger than allowed ({max_size} bytes)")
                h.update(block)
                f.write(block)
        digest = h.hexdigest()
        if expected_size is not None and size != expected_size:
            raise IntegrityError(f"size {size} != announced {expected_size}")
        if expected_sha is not None and digest != expected_sha:
            raise IntegrityError(f"sha256 {digest[:12]}… != announced {expected_sha[:12]}…")
        os.replace(tmp, dest)
        return digest, size
    except BaseException:
        os.unlink(tmp)
        raise
