"""The worker's content-addressed cache: every input it fetched and every output it produced,
served to peers by data id (runsurge_proto.objects.ContentStore, the same as the master's store)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from runsurge_proto.objects import ContentStore
from runsurge_proto.wire import is_data_id


class Cache(ContentStore):
    """What the worker adds: private copies for tasks, and a disk cap that drops the least recently
    used objects."""

    def ids(self) -> list[str]:
        return [p.name for p in self.root.glob("??/*") if is_data_id(p.name)]

    def copy_to(self, data_id: str, dest: Path) -> None:
        """A private copy for a task: user code may modify its inputs, never the cache."""
        shutil.copyfile(self.path(data_id), dest)
        self.touch(data_id)

    def touch(self, data_id: str) -> None:
        """Used now: the disk cap drops the least recently used objects first."""
        try:
            os.utime(self.path(data_id))
        except (FileNotFoundError, ValueError):
            pass

    def trim(self, max_bytes: int, keep: set[str] = frozenset()) -> list[str]:
        """Drop the least recently used objects (not those in `keep`) until the cache holds at most
        `max_bytes`; returns the dropped ids (the master must hear of them)."""
        entries = []
        for p in self.root.glob("??/*"):
            if is_data_id(p.name):
                try:
                    st = p.stat()
                except FileNotFoundError:
                    continue
                entries.append((st.st_mtime, st.st_size, p.name))
        total = sum(size for _, size, _ in entries)
        dropped = []
        for _, size, data_id in sorted(entries):
            if total <= max_bytes:
                break
            if data_id in keep:
                continue
            if self.delete(data_id):
                total -= size
                dropped.append(data_id)
        return dropped

    def delete(self, data_id: str) -> bool:
        try:
            self.path(data_id).unlink()
            return True
        except (FileNotFoundError, ValueError):
            return False
