"""The worker's side of the guest agent (guestagent.py): one SSH channel kept open per pool VM.

Started while the VM is readied for the pool, on the VM's Fabric connection, with the clone's setup
(entropy, clock, identity, share mount); it answers once the task's interpreter is warm and waiting.
From then on a task's start, each metering sample and a kill are one JSON line each way on that
channel, with no new SSH session, shell or process in the guest.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

from fabric import Connection

_HERE = Path(__file__).resolve().parent
AGENT_SOURCE = (_HERE / "guestagent.py").read_text()
LAUNCHER_SOURCE = (_HERE / "guestlauncher.py").read_text()
REPLY_TIMEOUT_S = 30.0
# In a restored guest: joins this SSH channel to the detached agent's socket (guestagent.detach).
RELAY_SOURCE = """import os, socket, sys, threading
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect("/run/runsurge/agent.sock")
def up():
    while data := os.read(0, 65536):
        s.sendall(data)
    s.shutdown(socket.SHUT_WR)
threading.Thread(target=up, daemon=True).start()
while data := s.recv(65536):
    os.write(1, data)
"""


class GuestLostError(RuntimeError):
    """The guest stopped answering: an infrastructure failure, not the task's."""


def agent_command(mount: str | None = None) -> str:
    """The SSH command that runs the agent (both sources travel with the worker's version), with
    the share's `mount` command started first in the background: its SMB round trips then overlap
    Python's start, which under TCG takes about as long. The agent waits for it."""
    run = f"exec python3 -c {shlex.quote(AGENT_SOURCE)} {shlex.quote(LAUNCHER_SOURCE)}"
    if mount is None:
        return f"{run} -"
    return f"({mount}) >/dev/null 2>/run/runsurge/mount.err & {run} $!"


class GuestAgent:
    def __init__(self, conn: Connection, setup: dict, mount: str | None,
                 start_timeout: float = 120.0):
        try:
            self._chan = conn.client.get_transport().open_session(timeout=30)
            self._chan.exec_command(agent_command(mount))
            self._chan.sendall(json.dumps(setup).encode() + b"\n")
        except Exception as exc:  # paramiko raises many kinds
            raise GuestLostError(f"cannot start the guest agent: {exc!r}") from exc
        self._buf = b""
        ready = self._reply(start_timeout)
        self.pid = int(ready["ready"])  # the warm, waiting task interpreter
        self.phases: dict[str, float] = ready.get("phases", {})  # guest boot-clock times

    @classmethod
    def reattach(cls, conn: Connection, timeout: float = 120.0) -> GuestAgent:
        """The agent of a VM restored from a checkpoint (it detached before the VM was saved), reached
        again through a relay on a new SSH channel; its clock is set to now."""
        agent = cls.__new__(cls)
        agent._buf, agent.phases = b"", {}
        try:
            agent._chan = conn.client.get_transport().open_session(timeout=30)
            agent._chan.exec_command(f"exec python3 -c {shlex.quote(RELAY_SOURCE)}")
        except Exception as exc:  # paramiko raises many kinds
            raise GuestLostError(f"cannot reach the guest agent again: {exc!r}") from exc
        reply = agent.call("attach", timeout=timeout, time=time.time())
        agent.pid, agent.phases = int(reply["attached"]), {"share_s": reply.get("share_s", 0.0)}
        return agent

    def call(self, op: str, timeout: float = REPLY_TIMEOUT_S, **args) -> dict:
        try:
            self._chan.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
        except OSError as exc:
            raise GuestLostError(f"guest agent gone: {exc!r}") from exc
        return self._reply(timeout)

    def _reply(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise GuestLostError(f"guest agent silent for {timeout:g}s")
            self._chan.settimeout(left)
            try:
                data = self._chan.recv(1 << 16)
            except (TimeoutError, OSError) as exc:
                raise GuestLostError(f"guest agent unreachable: {exc!r}") from exc
            if not data:
                raise GuestLostError(f"guest agent exited: {self._stderr()}")
            self._buf += data
        line, _, self._buf = self._buf.partition(b"\n")
        reply = json.loads(line)
        if "error" in reply:
            raise GuestLostError(f"guest agent: {reply['error']}")
        return reply

    def _stderr(self) -> str:
        out = b""
        while self._chan.recv_stderr_ready():
            out += self._chan.recv_stderr(1 << 16)
        return out.decode(errors="replace").strip()[-500:]
