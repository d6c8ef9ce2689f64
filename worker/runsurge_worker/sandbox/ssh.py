"""SSH to guests with Fabric: the worker's key pair and a pinned guest host key.

Every VM of a worker is a clone of one snapshot, so every clone presents the same host key, made by
the guest at its cold boot. We learn it then (trust on first use over a loopback port we own) and
require it from every clone afterwards.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fabric import Connection

GUEST_USER = "root"  # the worker's agent in the guest; user code runs as 'runsurge'


def ensure_keypair(directory: Path) -> Path:
    """The worker's ed25519 key (OpenSSH format) under `directory`, made on first use."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_path = directory / "id_ed25519"
    if not key_path.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
        pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                            serialization.PublicFormat.OpenSSH)
        tmp = key_path.with_suffix(".tmp")
        tmp.write_bytes(pem)
        tmp.chmod(0o600)
        (directory / "id_ed25519.pub").write_bytes(pub + b" runsurge-worker\n")
        tmp.rename(key_path)
    return key_path


def public_key_line(key_path: Path) -> str:
    """'ssh-ed25519 AAAA...' (no comment) of the key at `key_path`."""
    return " ".join(Path(str(key_path) + ".pub").read_text().split()[:2])


class _PinnedKey(paramiko.MissingHostKeyPolicy):
    """Accept exactly one host key (or learn it when none is pinned yet)."""

    def __init__(self, pinned: str | None):
        self.pinned = pinned
        self.seen: str | None = None

    def missing_host_key(self, client, hostname, key):
        line = f"{key.get_name()} {key.get_base64()}"
        if self.pinned is not None and line != self.pinned:
            raise paramiko.SSHException(f"guest host key mismatch on {hostname}")
        self.seen = line


def _banner(port: int) -> bool:
    """True once sshd answers. User-mode networking accepts the TCP connection on the host side
    even while nothing listens in the guest, so only the banner tells that sshd is up."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.settimeout(1.0)
            return s.recv(4) == b"SSH-"
    except OSError:
        return False


def connect(port: int, key_path: Path, host_key: str | None, timeout: float = 60.0,
            alive: Callable[[], bool] = lambda: True) -> tuple[Connection, str]:
    """Open a Fabric connection to a guest's forwarded SSH port, retrying until it answers.

    Returns the open connection and the guest's host key line (to pin it when `host_key` is None).
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    pkey = paramiko.Ed25519Key.from_private_key_file(str(key_path))
    while time.monotonic() < deadline:
        if not alive():
            raise ConnectionError("the VM exited before SSH was ready")
        if not _banner(port):
            time.sleep(0.05)
            continue
        policy = _PinnedKey(host_key)
        conn = Connection(
            "127.0.0.1", port=port, user=GUEST_USER, connect_timeout=10,
            connect_kwargs={"pkey": pkey, "look_for_keys": False, "allow_agent": False,
                            "banner_timeout": 10, "auth_timeout": 10})
        conn.client.set_missing_host_key_policy(policy)
        try:
            conn.open()
            conn.transport.set_keepalive(0)
            return conn, policy.seen or host_key or ""
        except paramiko.SSHException as exc:
            conn.close()
            if "mismatch" in str(exc):
                raise
            last = exc
        except (TimeoutError, OSError, EOFError) as exc:
            conn.close()
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"guest SSH on port {port} not ready after {timeout}s: {last!r}")
