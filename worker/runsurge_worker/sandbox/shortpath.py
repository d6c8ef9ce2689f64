"""Unix socket paths that fit: a socket's path must fit sockaddr_un (108 bytes with its NUL), so
QEMU's and smbd's sockets under a long worker home would fail to bind. Such sockets go to a
private short folder under the system's temporary directory instead."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path

SUN_PATH_MAX = 107


def fits(path: Path, room: int = 0) -> bool:
    """Whether a socket at `path`, or at names up to `room` bytes longer below it, fits."""
    return len(os.fsencode(path)) + room <= SUN_PATH_MAX


def private_dir(key: Path) -> Path:
    """A short folder of this user's only (0700), the same one for the same `key`. Refuses a folder
    someone else made first (another local user could otherwise reach the sockets). Its user
    removes it when done."""
    top = Path(tempfile.gettempdir()) / f"runsurge-{os.getuid()}"
    top.mkdir(mode=0o700, exist_ok=True)
    st = top.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(f"{top} is not a private folder of this user: remove it, or give the "
                              "worker a shorter home (RUNSURGE_HOME)")
    d = top / hashlib.sha256(os.fsencode(key)).hexdigest()[:16]
    d.mkdir(mode=0o700, exist_ok=True)
    return d

