"""The master's object store (the content-addressed store it shares with workers): ids come from the bytes,
nothing half-written is ever visible."""

import hashlib
import os
import tempfile
from pathlib import Path

import pytest

from runsurge_master.store import ObjectStore
from runsurge_proto.wire import IntegrityError


def _objects(store: ObjectStore) -> list[str]:
    return sorted(p.name for p in store.root.glob("??/*"))


def test_add_file_links_a_file_on_the_same_file_system(tmp_path):
    store = ObjectStore(tmp_path / "objects")
    src = tmp_path / "objects" / "incoming" / "chunk.csv"
    src.parent.mkdir(parents=True)
    src.write_bytes(b"a,b\n1,2\n")
    digest, size = store.add_file(src, max_size=100, link=True)
    assert digest == hashlib.sha256(b"a,b\n1,2\n").hexdigest() and size == 8
    stored = store.path(digest)
    assert stored.read_bytes() == b"a,b\n1,2\n"
    assert os.stat(stored).st_ino == os.stat(src).st_ino  # linked, not copied
    assert stored.stat().st_mode & 0o777 == 0o600
    assert list((tmp_path / "objects" / "incoming").iterdir()) == [src]  # no leftovers


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm (a second file system)")
def test_add_file_copies_across_file_systems(tmp_path):
    store = ObjectStore(tmp_path / "objects")
    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        src = Path(other) / "chunk.csv"
        src.write_bytes(b"x" * 5000)
        if os.stat(other).st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("/dev/shm is on the same file system here")
        digest, _ = store.add_file(src, max_size=10_000, link=True)
        assert store.path(digest).read_bytes() == b"x" * 5000
        assert os.stat(store.path(digest)).st_ino != os.stat(src).st_ino


def test_add_file_over_the_limit_stores_nothing(tmp_path):
    store = ObjectStore(tmp_path / "objects")
    src = tmp_path / "big.csv"
    src.write_bytes(b"y" * 101)
    with pytest.raises(IntegrityError):
        store.add_file(src, max_size=100, link=True)
    assert _objects(store) == []
