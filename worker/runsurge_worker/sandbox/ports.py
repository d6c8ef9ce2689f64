"""Small host helpers: free loopback ports, children that die with the worker."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port free right now on 127.0.0.1. Callers retry if someone takes it before they bind."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Prefix for long-lived children (QEMU, smbd): the kernel kills them if the worker dies, so a
# crashed worker never leaves VMs running.
DIE_WITH_PARENT = ["setpriv", "--pdeathsig", "KILL", "--"]
