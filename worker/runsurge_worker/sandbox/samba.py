"""The worker's own smbd: loopback only, its own port, user and password, one share = task area.

Guests reach it through a QEMU `guestfwd` whose `cmd:` runs `forwarder_path` once per connection
(a plain tcp guestfwd serves only the first connection). Everything smbd writes (passdb, locks,
state, logs, pid) lives under the worker's own directory; the system's Samba is never touched.
"""

from __future__ import annotations

import getpass
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from functools import cached_property
from pathlib import Path

from .ports import DIE_WITH_PARENT, free_port
from .shortpath import fits, private_dir

log = logging.getLogger(__name__)

SHARE = "runsurge"
# Protocol floor: "SMB3" would mean 3.1.1 only, and the guest's vers=3.0 mount would fail (error 95).
MIN_PROTOCOL = "SMB3_00"
SHOWN_KIB = 1 << 30  # the share's size as guests see it (1 TiB, all free): not the host's


class SambaServer:
    def __init__(self, state_dir: Path, share_path: Path, port: int | None = None):
        self.state_dir = state_dir
        self.share_path = share_path
        self.port = port or free_port()
        # The Samba account must be a Unix account: the worker's own user.
        self.user = getpass.getuser()
        self.password = _kept_password(state_dir / "private" / "password")
        self.conf_path = state_dir / "smb.conf"
        self.forwarder_path = state_dir / "smb-forward.sh"
        self.dfree_path = state_dir / "smb-dfree.sh"
        self._proc: subprocess.Popen | None = None

    @cached_property
    def _socket_base(self) -> Path:
        """Where smbd's socket folders go (lock/msg.sock/PID, run/ncalrpc/NAME): the state folder,
        or a private short one when a long worker home would make those paths too long."""
        return self.state_dir if fits(self.state_dir, room=40) else private_dir(self.state_dir)

    def config_text(self) -> str:
        d, sock = self.state_dir, self._socket_base
        return f"""[global]
    server role = standalone server
    interfaces = 127.0.0.1
    bind interfaces only = yes
    smb ports = {self.port}
    disable netbios = yes
    server min protocol = {MIN_PROTOCOL}
    map to guest = never
    restrict anonymous = 2
    passdb backend = tdbsam:{d}/private/passdb.tdb
    private dir = {d}/private
    lock directory = {sock}/lock
    state directory = {d}/state
    cache directory = {d}/cache
    pid directory = {sock}/run
    ncalrpc dir = {sock}/run/ncalrpc
    log file = {d}/log/smbd.log
    max log size = 1000
    load printers = no
    printing = bsd
    printcap name = /dev/null
    disable spoolss = yes
    # Nothing may lead out of the share: no symlinks, no DOS attribute games, no guest access.
    follow symlinks = no
    wide links = no
    unix extensions = no
    store dos attributes = no
    # What a guest's df of the share shows: a fixed size, never the host file system's size or use.
    dfree command = {self.dfree_path}

[{SHARE}]
    path = {self.share_path}
    read only = no
    guest ok = no
    browseable = no
    valid users = {self.user}
    create mask = 0644
    directory mask = 0755
"""

    def start(self) -> None:
        for sub in ("private", "state", "cache", "log"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        for sub in ("lock", "run/ncalrpc"):
            (self._socket_base / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        self.share_path.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.config_text())
        self.forwarder_path.write_text(
            "#!/bin/sh\n# One guest SMB connection <-> the worker's smbd (run by QEMU's guestfwd).\n"
            f"exec nc -N 127.0.0.1 {self.port}\n")
        self.forwarder_path.chmod(0o755)
        self.dfree_path.write_text("#!/bin/sh\n# smbd's dfree command: total and free 1 KiB blocks.\n"
                                   f"echo {SHOWN_KIB} {SHOWN_KIB}\n")
        self.dfree_path.chmod(0o755)
        pw = f"{self.password}\n{self.password}\n"
        subprocess.run(["smbpasswd", "-c", str(self.conf_path), "-a", "-s", self.user],
                       input=pw, text=True, check=True, capture_output=True)
        smbd = shutil.which("smbd") or "/usr/sbin/smbd"
        self._proc = subprocess.Popen(
            [*DIE_WITH_PARENT, smbd, "--foreground", "--no-process-group", "-s", str(self.conf_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        self._wait_listening()
        log.info("smbd listening on 127.0.0.1:%d (pid %d)", self.port, self._proc.pid)

    def _wait_listening(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc and self._proc.poll() is not None:
                raise RuntimeError(f"smbd exited with {self._proc.returncode}; "
                                   f"see {self.state_dir}/log/smbd.log")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"smbd did not listen on port {self.port} within {timeout}s")

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        # smbd forks a child per connection; they share the session we gave the parent.
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        if self._socket_base != self.state_dir:
            shutil.rmtree(self._socket_base, ignore_errors=True)


def _kept_password(path: Path) -> str:
    """The share's password, the same after a restart: a checkpointed guest's SMB client logs in
    again with the one it mounted with. Readable by the worker's user only."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    password = secrets.token_hex(16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return password
