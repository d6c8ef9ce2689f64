"""The master's content-addressed object store: objects/<aa>/<sha256>, written atomically."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

from runsurge_proto.wire import CHUNK_SIZE, FileReceiver, IntegrityError, is_data_id, receive_file


class ObjectStore:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, data_id: str) -> Path:
        if not is_data_id(data_id):  # never let a caller's string become a path
            raise ValueError("not a data id")
        return self.root / data_id[:2] / data_id

    def has(self, data_id: str) -> bool:
        return is_data_id(data_id) and self.path(data_id).exists()

    def put_stream(self, blocks: Iterable[bytes], max_size: int,
                   expected_sha: str | None = None, expected_size: int | None = None) -> tuple[str, int]:
        """Store a stream; the id comes from the bytes. Raises IntegrityError, stores nothing then."""
        tmp = self.root / "incoming" / uuid.uuid4().hex
        digest, size = receive_file(blocks, tmp, expected_sha, max_size, expected_size)
        dest = self.path(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.replace(dest)
        return digest, size

    def put_file(self, path: Path, max_size: int) -> tuple[str, int]:
        """Store a finished file of ours (a planner's chunk): hash it, then hard-link it in, which
        costs no copy when it is on the store's file system; copy (checking the hash) otherwise."""
        size = path.stat().st_size
        if size > max_size:
            raise IntegrityError(f"data larger than allowed ({max_size} bytes)")
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        dest = self.path(digest)
        tmp = self.root / "incoming" / uuid.uuid4().hex
        try:
            os.link(path, tmp)
        except OSError:  # another file system (or no hard links): copy, and the copy is checked
            with open(path, "rb") as f:
                return self.put_stream(iter(lambda: f.read(CHUNK_SIZE), b""), max_size, digest, size)
        os.chmod(tmp, 0o600)  # like every object the store writes itself
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.replace(dest)
        return digest, size

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        return self.put_stream([data], max_size=len(data))

    def receiver(self, data_id: str, max_size: int, size: int) -> FileReceiver:
        """For a stream announced as `data_id`/`size`: lands only if the bytes match."""
        return FileReceiver(self.path(data_id), data_id, max_size, size)
