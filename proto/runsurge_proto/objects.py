"""A content-addressed directory, root/<aa>/<sha256>: the master's object store (store.py) and the
worker's cache (cache.py) are one. An object lands only whole and under the hash of its bytes; a
caller's string never becomes a path unless it is a data id."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from pathlib import Path

from runsurge_proto.wire import FileReceiver, IntegrityError, file_blocks, is_data_id, receive_file, sha256_file


class ContentStore:
    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, data_id: str) -> Path:
        if not is_data_id(data_id):  # never let a caller's string become a path
            raise ValueError("not a data id")
        return self.root / data_id[:2] / data_id

    def has(self, data_id: str) -> bool:
        return is_data_id(data_id) and self.path(data_id).exists()

    def receiver(self, data_id: str, size: int, max_size: int) -> FileReceiver:
        """For a stream announced as `data_id` of `size` bytes: it lands only if the bytes match."""
        return FileReceiver(self.path(data_id), data_id, max_size, size)

    def put_stream(self, blocks: Iterable[bytes], max_size: int,
                   expected_sha: str | None = None, expected_size: int | None = None) -> tuple[str, int]:
        """Store a stream; the id comes from the bytes. Raises IntegrityError, stores nothing then."""
        tmp = self._incoming()
        digest, size = receive_file(blocks, tmp, expected_sha, max_size, expected_size)
        return self._land(tmp, digest), size

    def add_file(self, src: Path, max_size: int | None = None, link: bool = False) -> tuple[str, int]:
        """Store a finished file: hash it, then copy it in, the copy checked against that hash (a file
        still being written cannot land under the wrong id). `link`: a file of our own (a planner's
        chunk) is hard-linked instead when it is on the same file system, costing no copy.
        `max_size`: larger files are refused (IntegrityError), nothing stored."""
        size = src.stat().st_size
        if max_size is not None and size > max_size:
            raise IntegrityError(f"data larger than allowed ({max_size} bytes)")
        digest = sha256_file(src)
        if self.has(digest):
            return digest, size
        if link:
            tmp = self._incoming()
            tmp.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, tmp)
            except OSError:  # another file system (or no hard links): copy below
                pass
            else:
                os.chmod(tmp, 0o600)  # like every object written through a receiver
                return self._land(tmp, digest), size
        return self.put_stream(file_blocks(src), size if max_size is None else max_size, digest, size)

    LEFTOVERS = (".part-*", ".tmp-*")  # a write interrupted by a crash (FileReceiver's temporary files)

    def remove_leftovers(self) -> int:
        """Delete what interrupted writes left: temporary files in the fan-out folders, and everything
        in `incoming` (nothing there has landed). Call it only when no write is under way (at start:
        the store's one process is starting). Returns how many files went."""
        found = [p for pattern in self.LEFTOVERS for p in self.root.glob(f"??/{pattern}")]
        incoming = self.root / "incoming"
        found += list(incoming.iterdir()) if incoming.is_dir() else []
        removed = 0
        for p in found:
            try:
                p.unlink()
                removed += 1
            except (FileNotFoundError, IsADirectoryError, PermissionError):
                pass
        return removed

    def _incoming(self) -> Path:
        """Where an object of an id not known yet is written first (then renamed into place)."""
        return self.root / "incoming" / uuid.uuid4().hex

    def _land(self, tmp: Path, digest: str) -> str:
        dest = self.path(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.replace(dest)
        return digest
