"""Whether a person is using this machine now, from systemd-logind's sessions (IdleHint /
IdleSinceHint, set by the desktop's screen saver / idle monitor or by tty input).

One `loginctl show-session` per look (systemd's own client, present wherever logind runs) rather
than D-Bus: the standard library has no D-Bus client and the worker takes no extra dependency for
it. The session ids come from logind's own state folder (one file per session), so no second
`loginctl list-sessions` runs on each of the governor's ticks. No logind (no systemd, a container)
means "no desktop signal": never an error.

What "idle" means differs by session type (measured against systemd 252's logind, Debian 12, in
tests/vm/test_logind_session.py). A graphical session's IdleHint is what its desktop set, and
IdleSinceHint is when it last changed. A tty session has no idle monitor: logind reports the tty's
atime as IdleSinceHint (the last key read) and says IdleHint=yes only once that is IdleActionSec old
(30 min by default, whatever IdleAction is), so the hint would hold the worker for half an hour
after the last key. For ttys the worker therefore reads the atime itself, plus the 8 s the kernel
may leave it behind the last key (it moves a tty's timestamps only across 8 s boundaries,
CVE-2013-0160). An SSH login has no TTY in logind (sshd gives PAM the tty "ssh"): its IdleHint is
always "no" and IdleSinceHint 0. Its last key is then read from the atime of the pseudo-terminal its
processes (the session's cgroup) have as controlling tty; one without a pty (`ssh host cmd`, scp)
counts as in use for as long as it lasts, as logind says.

Only sessions of class "user" with type x11/wayland/mir/tty that are active count: not greeters,
lock screens, `manager`/`background` sessions (user managers, cron, services), and not the worker's
own session (XDG_SESSION_ID). Sessions without a seat (SSH logins: logind's Remote=yes) count only
when asked (`suspend_when_remote_user_active`): on a server its owner logs in remotely all the time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

PROPS = ("Id", "User", "Name", "Seat", "Type", "Class", "Active", "Remote", "IdleHint", "IdleSinceHint",
         "Scope")
SESSIONS_DIR = Path("/run/systemd/sessions")  # logind's: a file per session, named by its id
GRAPHICAL_TYPES = {"x11", "wayland", "mir"}  # their IdleHint is the desktop's idle monitor
PERSON_TYPES = GRAPHICAL_TYPES | {"tty"}
TTY_ATIME_STEP_S = 8.0  # the kernel moves a tty's atime only when it crosses an 8 s boundary
# Where a session's scope is: cgroup v2, v2 beside v1 ("hybrid"), v1's name=systemd hierarchy.
CGROUP_ROOTS = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup/systemd"))
PTY_MAJORS = range(136, 144)  # Unix98 pty slaves, /dev/pts/N


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
    remote: bool = False  # logged in over the network (SSH), or at no seat
    uid: str = ""
    scope: str = ""  # its systemd scope unit, session-ID.scope: its processes' cgroup

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
                           remote=kv.get("Remote") == "yes" or not kv.get("Seat"),
                           uid=kv.get("User", ""), scope=kv.get("Scope", ""),
                           idle_since=int(since) / 1e6 if since.isdigit() else 0.0))
    return out


def session_ids(folder: Path) -> list[str]:
    """The sessions logind holds now: its state folder's session files (not its `.#` temporaries)."""
    try:
        return sorted(e.name for e in os.scandir(folder) if e.is_file() and not e.name.startswith("."))
    except OSError:  # no logind
        return []


def counts(s: Session, own: str | None, remote: bool) -> bool:
    return (s.klass == "user" and s.type in PERSON_TYPES and s.active and s.id != own
            and (remote or not s.remote))


def in_use(s: Session, idle_for_s: float, now: float) -> bool:
    """Used within the last `idle_for_s`. A graphical session: its idle hint, or since it went idle.
    A tty with a known atime: since its last key (read from the atime, not logind's hint, which
    waits for IdleActionSec). Otherwise logind's hint: "no" when it cannot tell (SSH without a pty)."""
    if s.type not in GRAPHICAL_TYPES and s.idle_since > 0:
        return now - s.idle_since < idle_for_s + TTY_ATIME_STEP_S
    return not s.idle or now - s.idle_since < idle_for_s


def user_active(sessions: list[Session], idle_for_s: float, now: float | None = None,
                own: str | None = None, remote: bool = False) -> Session | None:
    """The first counted session in use (in_use). Sessions without a seat count only with
    `remote`."""
    now = time.time() if now is None else now
    for s in sessions:
        if counts(s, own, remote) and in_use(s, idle_for_s, now):
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
    # A session that ended since its id was read fails the call but not the others' blocks; "not
    # booted with systemd" or a bus that is down print nothing: no signal.
    return r.stdout


def _pty_of(pid: str) -> str | None:
    """The pseudo-terminal process `pid` has as controlling tty (/proc/PID/stat's tty_nr), if any."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone, or not a pid
        return None
    tty_nr = int(stat[stat.rindex(")") + 2:].split()[4])  # state ppid pgrp session tty_nr
    major, minor = (tty_nr >> 8) & 0xFFF, (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    return f"/dev/pts/{(major - PTY_MAJORS[0]) * 256 + minor}" if major in PTY_MAJORS else None


def pty_last_key(procs: Path) -> float:
    """The newest atime of the ptys that the processes listed in `procs` (a cgroup.procs file) have
    as controlling tty: when one of them last read a key. 0 when they have none."""
    try:
        pids = procs.read_text().split()
    except OSError:
        return 0.0
    last = 0.0
    for pty in {t for pid in pids if (t := _pty_of(pid))}:
        try:
            last = max(last, os.stat(pty).st_atime)
        except OSError:
            pass
    return last


def with_pty_idle(s: Session) -> Session:
    """A tty session logind gives no idle time (an SSH login: no TTY) with its pty's last key."""
    if s.type != "tty" or s.idle_since > 0 or not (s.uid and s.scope):
        return s
    for root in CGROUP_ROOTS:
        procs = root / "user.slice" / f"user-{s.uid}.slice" / s.scope / "cgroup.procs"
        if procs.exists():
            last = pty_last_key(procs)
            return replace(s, idle_since=last) if last else s
    return s


def sessions() -> list[Session]:
    """The host's logind sessions, [] without logind: one `loginctl` run (and, for an SSH login,
    its pty's atime)."""
    ids = session_ids(SESSIONS_DIR)
    if not ids:
        return []
    found = parse_show(_loginctl("show-session", *(f"-p{p}" for p in PROPS), *ids) or "")
    return [with_pty_idle(s) for s in found]


def active_session(idle_for_s: float, remote: bool = False) -> Session | None:
    return user_active(sessions(), idle_for_s, own=os.environ.get("XDG_SESSION_ID"), remote=remote)
