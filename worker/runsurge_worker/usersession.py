"""Whether a person is using this machine now, from systemd-logind's sessions (IdleHint /
IdleSinceHint, set by the desktop's screen saver / idle monitor or by tty input).

It runs `loginctl` (systemd's own client, present wherever logind runs) rather than talking D-Bus:
the standard library has no D-Bus client and the worker takes no extra dependency for it. No
logind (no systemd, a container) means "no desktop signal": never an error.

Only sessions of class "user" with type x11/wayland/mir/tty that are active on their seat count:
not greeters, lock screens, `manager`/`background` sessions (user managers, cron, services), and not
the worker's own session (XDG_SESSION_ID).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass

PROPS = ("Id", "Name", "Seat", "Type", "Class", "Active", "IdleHint", "IdleSinceHint")
PERSON_TYPES = {"x11", "wayland", "mir", "tty"}


@dataclass(frozen=True)
class Session:
    id: str
    user: str
    seat: str
    type: str
    klass: str
    active: bool
    idle: bool
    idle_since: float  # seconds since the epoch; 0 when unknown

    def where(self) -> str:
        return f"{self.seat + ' ' if self.seat else ''}session {self.id}"


def parse_show(text: str) -> list[Session]:
    """`loginctl show-session -p ... ID...` output (Key=value lines, blank line between sessions)."""
    out = []
    for block in text.strip().split("\n\n"):
        kv = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if not kv.get("Id"):
            continue
        since = kv.get("IdleSinceHint", "0")
        out.append(Session(id=kv["Id"], user=kv.get("Name", ""), seat=kv.get("Seat", ""),
                           type=kv.get("Type", ""), klass=kv.get("Class", ""),
                           active=kv.get("Active") == "yes", idle=kv.get("IdleHint") == "yes",
                           idle_since=int(since) / 1e6 if since.isdigit() else 0.0))
    return out


def parse_ids(text: str) -> list[str]:
    """`loginctl list-sessions --no-legend` output → session ids (the first column)."""
    return [line.split()[0] for line in text.splitlines() if line.split()]


def counts(s: Session, own: str | None) -> bool:
    return s.klass == "user" and s.type in PERSON_TYPES and s.active and s.id != own


def user_active(sessions: list[Session], idle_for_s: float, now: float | None = None,
                own: str | None = None) -> Session | None:
    """The first counted session in use: not idle, or idle for less than `idle_for_s`."""
    now = time.time() if now is None else now
    for s in sessions:
        if counts(s, own) and (not s.idle or now - s.idle_since < idle_for_s):
            return s
    return None


def _loginctl(*args: str) -> str | None:
    exe = shutil.which("loginctl")
    if not exe:
        return None
    try:
        r = subprocess.run([exe, "--no-pager", *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None  # "not booted with systemd", bus down: no signal


def sessions() -> list[Session]:
    """The host's logind sessions, [] without logind."""
    listing = _loginctl("list-sessions", "--no-legend")
    ids = parse_ids(listing or "")
    if not ids:
        return []
    shown = _loginctl("show-session", *(f"-p{p}" for p in PROPS), *ids)
    return parse_show(shown or "")


def active_session(idle_for_s: float) -> Session | None:
    return user_active(sessions(), idle_for_s, own=os.environ.get("XDG_SESSION_ID"))
