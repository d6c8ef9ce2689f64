"""A worker joins from the master's URL and the CA's fingerprint alone (issue 15): it learns the
gRPC and enrolment ports and the CA from the master, and refuses a CA whose fingerprint differs —
here served by an impostor on loopback that answers /api/join with its own CA."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from localnet import EMAIL, LocalNet, free_port
from runsurge_pki.ca import CertAuthority, fingerprint


@pytest.fixture
def net(tmp_path):
    n = LocalNet(tmp_path / "net", sandbox="process", heartbeat_s=0.5)
    try:
        n.start(workers=0)
        yield n
    finally:
        n.stop()


def join_env(net: LocalNet, home: Path, master_url: str, ca_fingerprint: str) -> dict[str, str]:
    """Only the URL, the fingerprint and the account: no gRPC address, enrolment address or CA file."""
    return {"RUNSURGE_HOME": str(home), "RUNSURGE_MASTER_URL": master_url, "RUNSURGE_CA_FINGERPRINT": ca_fingerprint,
            "RUNSURGE_EMAIL": EMAIL, "RUNSURGE_PASSWORD_FILE": str(net.root / "password"),
            "RUNSURGE_PORT": str(free_port()), "RUNSURGE_SANDBOX": "process", "RUNSURGE_SLOTS": "1"}


def test_the_url_and_the_fingerprint_are_enough(net, tmp_path):
    printed = subprocess.run([sys.executable, "-m", "runsurge_pki.cli", "--dir", str(net.root / "master" / "pki"),
                              "fingerprint"], capture_output=True, text=True, check=True).stdout.strip()
    assert printed == fingerprint(net.ca_file.read_bytes()) == httpx.get(f"{net.url}/api/join").json()["ca_fingerprint"]
    assert f"--ca-fingerprint {printed}" in (net.root / "master.log").read_text()  # the master says how to join

    typed = printed.upper().replace("SHA256:", "")  # as an operator may paste it: no prefix, upper case
    env = join_env(net, tmp_path / "w", net.url, ":".join(typed[i:i + 2] for i in range(0, len(typed), 2)))
    worker = net._spawn("joined", ["-m", "runsurge_worker"], env)
    try:
        port = int(env["RUNSURGE_PORT"])
        deadline = time.monotonic() + 60
        while not net.worker_online(port):
            assert worker.poll() is None, (net.root / "joined.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the joined worker never came online"
            time.sleep(0.3)
        assert (tmp_path / "w" / "tls" / "ca.pem").read_bytes() == net.ca_file.read_bytes()
        (tmp_path / "hi.py").write_text("print('joined')\n")
        client = net.client()
        job = client.wait(client.submit([tmp_path / "hi.py"], mode="single")["id"], timeout_s=60)
        assert job["status"] == "done", job["error"]
    finally:
        worker.terminate()
        worker.wait(timeout=30)


class Impostor(BaseHTTPRequestHandler):
    answer = b""

    def do_GET(self):
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(self.answer)

    def log_message(self, *args):
        pass


def test_a_ca_with_another_fingerprint_is_refused(net, tmp_path):
    real = httpx.get(f"{net.url}/api/join").json()
    fake_ca = CertAuthority.create(tmp_path / "fake-ca")
    Impostor.answer = json.dumps({**real, "ca_pem": fake_ca.ca_pem.decode(),
                                  "ca_fingerprint": real["ca_fingerprint"]}).encode()  # lies about it too
    server = ThreadingHTTPServer(("127.0.0.1", 0), Impostor)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = join_env(net, tmp_path / "w", f"http://127.0.0.1:{server.server_port}", real["ca_fingerprint"])
        r = subprocess.run([sys.executable, "-m", "runsurge_worker"], env={**env, "PATH": "/usr/bin:/bin"},
                           capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
    assert r.returncode != 0
    err = r.stderr.strip()
    assert "refusing to join" in err and fingerprint(fake_ca.ca_pem) in err and "Traceback" not in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "w" / "tls" / "ca.pem").exists()  # nothing kept from the impostor
    assert not net.client().workers()

    bad = subprocess.run([sys.executable, "-m", "runsurge_worker", "--ca-fingerprint", "md5:abc"],
                         env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "64 hex digits" in bad.stderr and "Traceback" not in bad.stderr



@pytest.mark.parametrize("setting, value, says", [
    ("RUNSURGE_SANDBOX", "bogus", "no sandbox 'bogus'"),
    ("RUNSURGE_PASSWORD_FILE", "wrong", "wrong email or password (the contributor account: RUNSURGE_EMAIL"),
    ("RUNSURGE_IMAGE_DIR", "empty", "(RUNSURGE_IMAGE_DIR, --image-dir): build it with `make image`"),
])
def test_a_wrong_setting_is_one_line_naming_it(net, tmp_path, setting, value, says):
    env = join_env(net, tmp_path / "w", net.url, fingerprint(net.ca_file.read_bytes()))
    if value == "wrong":
        (tmp_path / "password").write_text("not-the-password\n")
        env[setting] = str(tmp_path / "password")
    elif value == "empty":
        (tmp_path / "images").mkdir()
        env.update({"RUNSURGE_SANDBOX": "qemu", setting: str(tmp_path / "images")})
    else:
        env[setting] = value
    r = subprocess.run([sys.executable, "-m", "runsurge_worker"], env={**env, "PATH": "/usr/bin:/bin"},
                       capture_output=True, text=True, timeout=90)
    err = r.stderr.strip()
    assert r.returncode != 0 and "Traceback" not in err, err
    assert err.splitlines()[-1].startswith("runsurge-worker: ") and says in err.splitlines()[-1], err
    assert not net.client().workers()


def test_an_unreachable_enrolment_address_is_named_while_the_worker_retries(net, tmp_path):
    env = join_env(net, tmp_path / "w", net.url, fingerprint(net.ca_file.read_bytes()))
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there
    p = subprocess.Popen([sys.executable, "-m", "runsurge_worker"], stderr=subprocess.PIPE, text=True,
                         env={**env, "PATH": "/usr/bin:/bin", "RUNSURGE_MASTER_ENROLL": closed})
    try:
        line = ""
        while "cannot register yet" not in line:  # the master may come back: it retries, saying what to check
            line = p.stderr.readline()
            assert line, "the worker ended without saying why it cannot register"
            assert "Traceback" not in line
        assert f"cannot reach the master's enrolment address {closed} (RUNSURGE_MASTER_ENROLL" in line
    finally:
        p.terminate()
        p.wait(timeout=30)
