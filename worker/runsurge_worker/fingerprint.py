"""A stable worker identity: the same machine and worker home always give the same fingerprint,
so a restarted worker keeps its id (two workers on one machine need two homes)."""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path


def fingerprint(home: Path) -> str:
    machine = ""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            machine = Path(path).read_text().strip()
            break
        except OSError:
            continue
    if not machine:  # no machine id (some containers): remember a random one in the home
        marker = home / "machine-id"
        if not marker.exists():
            home.mkdir(parents=True, exist_ok=True)
            marker.write_text(secrets.token_hex(16))
        machine = marker.read_text().strip()
    return hashlib.sha256(f"{machine}:{home.resolve()}".encode()).hexdigest()
