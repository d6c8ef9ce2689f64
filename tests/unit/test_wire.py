import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from runsurge_proto import common_pb2
from runsurge_proto.wire import CHUNK_SIZE, IntegrityError, file_chunk_messages, receive_file

ROOT = Path(__file__).resolve().parents[2]


def test_generated_stubs_match_the_proto_files():
    done = subprocess.run([sys.executable, str(ROOT / "proto" / "build_stubs.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_chunks_are_one_mib_and_carry_the_total(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x" * (CHUNK_SIZE * 2 + 5))
    chunks = [common_pb2.DataChunk.FromString(m) for m in file_chunk_messages(f)]
    assert [len(c.data) for c in chunks] == [CHUNK_SIZE, CHUNK_SIZE, 5]
    assert {c.total_size for c in chunks} == {CHUNK_SIZE * 2 + 5}
    empty = tmp_path / "e"
    empty.write_bytes(b"")
    assert [(c.data, c.total_size) for c in map(common_pb2.DataChunk.FromString, file_chunk_messages(empty))] == [
        (b"", 0)]


def test_received_bytes_land_only_when_they_match(tmp_path):
    data = b"hello world" * 1000
    sha = hashlib.sha256(data).hexdigest()
    dest = tmp_path / "store" / sha
    assert receive_file([data[:10], data[10:]], dest, sha, 1 << 20, len(data)) == (sha, len(data))
    assert dest.read_bytes() == data
    for blocks, expected_sha, size, max_size in [
        ([data + b"!"], sha, None, 1 << 20),      # wrong bytes
        ([data], sha, len(data) + 1, 1 << 20),    # announced size lies
        ([data], sha, None, 100),                 # over the limit
    ]:
        bad = tmp_path / "bad" / "x"
        with pytest.raises(IntegrityError):
            receive_file(blocks, bad, expected_sha, max_size, size)
        assert list(bad.parent.iterdir()) == []  # no partial file left behind
