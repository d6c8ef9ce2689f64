"""A minimal QMP client (QEMU's JSON monitor on a unix socket): enough to save a snapshot."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path


class QmpError(RuntimeError):
    pass


class Qmp:
    def __init__(self, path: Path, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._sock.settimeout(timeout)
                self._sock.connect(str(path))
                break
            except OSError:
                self._sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self._file = self._sock.makefile("rb")
        self._read()  # greeting
        self.execute("qmp_capabilities")

    def _read(self) -> dict:
        while True:
            line = self._file.readline()
            if not line:
                raise QmpError("QMP connection closed")
            msg = json.loads(line)
            if "event" not in msg:  # events arrive in between; nothing here needs them
                return msg

    def execute(self, command: str, **arguments) -> object:
        req = {"execute": command}
        if arguments:
            req["arguments"] = arguments
        self._sock.sendall(json.dumps(req).encode() + b"\n")
        reply = self._read()
        if "error" in reply:
            raise QmpError(f"{command}: {reply['error'].get('desc')}")
        return reply.get("return")

    def close(self) -> None:
        self._file.close()
        self._sock.close()
