"""Item 5: request bodies are capped while they stream in. An over-limit submission (announced, or
chunked with no length) is cut off within a socket buffer of the limit and leaves no temporary file;
an anonymous one is refused before its body is read; a user may stream only a few at once; JSON
bodies are capped, and a validation error quotes only a short excerpt of the input."""

import os
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pytest
from hostile import GC, VICTIM, assert_no_traceback, snapshot

from localnet import LocalNet

LIMIT = 8 << 20  # the master's max_upload_bytes here
ATTACK = 256 << 20
SLACK = 24 << 20  # the form slack (2 MiB) plus what loopback socket buffers hold before the cut-off


@pytest.fixture
def small(tmp_path):
    n = LocalNet(tmp_path / "net", sandbox="process", heartbeat_s=0.5,
                 extra_env={**GC, "RUNSURGE_MAX_UPLOAD_BYTES": str(LIMIT), "RUNSURGE_MAX_CONCURRENT_UPLOADS": "2"})
    try:
        n.start(workers=0)
        n.register(VICTIM)
        yield n
        assert_no_traceback(n)
    finally:
        n.stop()


class Body:
    """A chunked request body of `total` bytes that counts what the server let us send."""

    def __init__(self, total: int, hold: threading.Event | None = None, prefix: bytes = b""):
        self.total, self.hold, self.prefix, self.sent = total, hold, prefix, 0

    def __iter__(self):
        if self.prefix:
            yield self.prefix
        block = b"x" * (1 << 20)
        while self.sent < self.total:
            if self.hold is not None:
                self.hold.wait()
            self.sent += len(block)
            yield block


def post(net, path, body, token=None, boundary="b0undary"):
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    try:
        return httpx.post(f"{net.url}{path}", content=body, headers=headers, timeout=60).status_code
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        return "cut off"  # the server answered and closed while we were still sending


def temp_files(net) -> list[str]:
    """Deleted-but-open or temporary files the master holds (an upload being spooled)."""
    out = []
    for fd in Path(f"/proc/{net.master.pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        ours = target.startswith(str(net.root)) and "/incoming/" not in target  # its log, database...
        if "(deleted)" in target or (target.startswith(tempfile.gettempdir()) and not ours):
            out.append(target)
    return out


def test_bodies_are_cut_off_while_streaming_and_leave_nothing(small):
    victim = small.client(VICTIM)
    before = snapshot(small)
    part = b'--b0undary\r\nContent-Disposition: form-data; name="files"; filename="big.bin"\r\n\r\n'

    anonymous = Body(ATTACK, prefix=part)
    assert post(small, "/api/jobs", anonymous) in (401, "cut off")
    assert anonymous.sent < SLACK  # refused before the body was read

    chunked = Body(ATTACK, prefix=part)
    assert post(small, "/api/jobs", chunked, victim.access_token) in (413, "cut off")
    assert chunked.sent < LIMIT + SLACK

    big_json = b'{"email": "' + b"a" * (50 << 20) + b'", "password": "x"}'
    r = httpx.post(f"{small.url}/api/auth/login", content=big_json, headers={"content-type": "application/json"})
    assert r.status_code == 413
    r = httpx.post(f"{small.url}/api/auth/login", json={"email": "a" * 60000, "password": "x"})
    assert r.status_code == 422 and len(r.text) < 2000

    deadline = time.monotonic() + 30  # every temporary file of the cut-off uploads is gone
    while temp_files(small):
        assert time.monotonic() < deadline, temp_files(small)
        time.sleep(0.2)
    assert not any((small.root / "master" / "objects" / "incoming").glob("*"))
    assert snapshot(small) == before


def test_a_user_may_stream_only_a_few_uploads_at_once(small):
    victim = small.client(VICTIM)
    hold = threading.Event()
    # Each held upload sends a part and 1.5 MiB of it, more than the parser keeps in memory, then
    # waits: once the master spools both to temporary files, both are streaming.
    part = b'--b0undary\r\nContent-Disposition: form-data; name="files"; filename="slow.bin"\r\n\r\n'
    slow = [Body(4 << 20, hold=hold, prefix=part + b"y" * (3 << 19)) for _ in range(2)]
    results = []
    threads = [threading.Thread(target=lambda b=b: results.append(post(small, "/api/plan", b, victim.access_token)))
               for b in slow]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 60
        while len(temp_files(small)) < 2:
            assert time.monotonic() < deadline, f"the held uploads never streamed: {temp_files(small)}, {results}"
            time.sleep(0.1)
        assert post(small, "/api/plan", Body(1 << 20), victim.access_token) == 429  # a third is refused at once
    finally:
        hold.set()
        for t in threads:
            t.join(timeout=60)
    assert len(results) == 2 and 429 not in results
    assert victim.workers() == [] and victim.jobs() == []  # and the account still works
