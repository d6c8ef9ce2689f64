"""The master's content-addressed object store: objects/<aa>/<sha256>, written atomically."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path

from runsurge_proto.wire import FileReceiver, is_data_id, receive_file


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

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        return self.put_stream([data], max_size=len(data))

    def receiver(self, data_id: str, max_size: int, size: int) -> FileReceiver:
        """For a stream announced as `data_id`/`size`: lands only if the bytes match."""
        return FileReceiver(self.path(data_id), data_id, max_size, size)
