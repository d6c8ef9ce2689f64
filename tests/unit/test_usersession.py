"""Desktop idle detection from logind (worker/runsurge_worker/usersession.py).

The loginctl texts are in the format systemd 252 (Debian 12) prints for `show-session -p... ID...`:
Key=value blocks separated by blank lines (properties in the bus's order, not the -p order). The
session ids come from logind's state folder (/run/systemd/sessions: a file per session, and a
`ID.ref` FIFO per session pam_systemd holds open)."""

import os

from runsurge_worker import usersession
from runsurge_worker.usersession import active_session, parse_show, session_ids, sessions, user_active

IDS = ["3", "5", "7"]

SHOW = """\
Id=3
Name=alice
Seat=seat0
Type=wayland
Class=user
Active=yes
Remote=no
IdleHint=no
IdleSinceHint=0

Id=5
Name=alice
Seat=
Type=unspecified
Class=manager
Active=yes
Remote=no
IdleHint=no
IdleSinceHint=0

Id=7
Name=bob
Seat=
Type=tty
Class=user
Active=yes
Remote=yes
IdleHint=yes
IdleSinceHint=1796650000000000
"""
NOW = 1796650000.0  # the moment bob went idle (IdleSinceHint is µs since the epoch)


def _logind_folder(folder) -> None:
    folder.mkdir()
    for i in IDS:
        (folder / i).write_text("# This is private data. Do not parse.\nUID=1000\nACTIVE=1\n")
    os.mkfifo(folder / "3.ref")  # pam_systemd's reference to session 3: not a session
    (folder / ".#7abc").write_text("")  # logind's temporary while it rewrites a session's file


def test_parse_ids_and_properties(tmp_path):
    _logind_folder(tmp_path / "sessions")
    assert session_ids(tmp_path / "sessions") == IDS
    assert session_ids(tmp_path / "none") == []  # no logind
    s3, s5, s7 = parse_show(SHOW)
    assert (s3.id, s3.seat, s3.type, s3.klass, s3.active, s3.idle) == ("3", "seat0", "wayland", "user", True, False)
    assert s5.klass == "manager"
    assert s7.idle and s7.idle_since == NOW and s7.where() == "session 7"
    assert s7.remote and not s3.remote
    assert parse_show(SHOW.replace("Remote=yes\n", "")).pop().remote  # no Remote property: no seat says it
    assert s3.where() == "seat0 session 3"


def test_busy_graphical_session_counts():
    assert user_active(parse_show(SHOW), 30, now=NOW + 3600).id == "3"


def test_manager_idle_and_own_sessions_do_not_count():
    _, s5, s7 = parse_show(SHOW)
    assert user_active([s5], 30, now=NOW) is None  # the user manager is never idle: not a person
    # A tty: idle once its last key (the atime, 8 s coarse) is older than resume_after_idle_s.
    late = NOW + 30 + usersession.TTY_ATIME_STEP_S
    assert user_active([s7], 30, now=late, remote=True) is None
    assert user_active([s7], 30, now=late - 1, remote=True).id == "7"  # not long enough yet
    assert user_active([s7], 30, now=NOW + 10) is None  # an SSH login counts only when asked
    assert user_active(parse_show(SHOW), 30, now=NOW + 3600, own="3") is None  # the worker's own


def test_inactive_session_on_seat_does_not_count():
    switched_away = SHOW.split("\n\n")[0].replace("Active=yes", "Active=no")
    assert user_active(parse_show(switched_away), 30, now=NOW) is None


def test_no_logind_is_no_signal():
    # This container has loginctl but no systemd as PID 1: no sessions, no error.
    assert sessions() == []
    assert active_session(30) is None


def test_show_without_a_session_id_is_not_a_session():
    # Captured from a real logind (systemd 252.39, the guest image plus dbus and libpam-systemd):
    # `loginctl show-session -p...` with no session to name prints the manager's idle hint.
    assert parse_show("IdleHint=yes\nIdleSinceHint=1796655716521050\n") == []


def _fake_logind(tmp_path, monkeypatch, show: str):
    """logind's state folder and a `loginctl` on PATH that prints what logind's would (no logind can
    run in this container); it logs each run. Returns the log."""
    if not (tmp_path / "sessions").exists():
        _logind_folder(tmp_path / "sessions")
    monkeypatch.setattr(usersession, "SESSIONS_DIR", tmp_path / "sessions")
    (tmp_path / "show.txt").write_text(show)
    calls = tmp_path / "calls.txt"
    calls.write_text("")
    exe = tmp_path / "loginctl"
    exe.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n'
                   f"case \"$2\" in show-session) cat {tmp_path}/show.txt;; *) exit 1;; esac\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.delenv("XDG_SESSION_ID", raising=False)
    return calls


def _decide(**cfg):
    from datetime import datetime

    from runsurge_worker.config import WorkerConfig
    from runsurge_worker.governor import Governor

    return Governor(WorkerConfig(**cfg), None, None, lambda: None).decide(0.0, datetime.now())


def test_the_governor_suspends_while_a_user_is_active_and_not_when_told_not_to(tmp_path, monkeypatch):
    calls = _fake_logind(tmp_path, monkeypatch, SHOW)
    assert _decide() == ("user active on seat0 session 3", True)
    # One loginctl run per look, naming every session logind holds.
    assert calls.read_text().splitlines() == ["--no-pager show-session " + " ".join(
        f"-p{p}" for p in usersession.PROPS) + " 3 5 7"]
    assert _decide(suspend_when_user_active=False) == ("", False)
    idle = SHOW.replace("Id=3\nName=alice\nSeat=seat0\nType=wayland\nClass=user\nActive=yes\nRemote=no\nIdleHint=no",
                        "Id=3\nName=alice\nSeat=seat0\nType=wayland\nClass=user\nActive=yes\nRemote=no\nIdleHint=yes")
    assert idle != SHOW
    _fake_logind(tmp_path, monkeypatch, idle)
    assert _decide() == ("", False)  # idle since long ago (IdleSinceHint 0 is "unknown": long enough)


def test_an_ssh_login_in_use_suspends_only_when_remote_users_count(tmp_path, monkeypatch):
    # bob on pts/0 over SSH (no seat, Remote=yes), typing now; alice's desktop is idle.
    show = SHOW.replace("Active=yes\nRemote=no\nIdleHint=no\nIdleSinceHint=0\n\nId=5",
                        "Active=yes\nRemote=no\nIdleHint=yes\nIdleSinceHint=0\n\nId=5")
    show = show.replace("IdleHint=yes\nIdleSinceHint=1796650000000000", "IdleHint=no\nIdleSinceHint=0")
    _fake_logind(tmp_path, monkeypatch, show)
    assert _decide() == ("", False)  # the default: a server's owner logs in all the time
    assert _decide(suspend_when_remote_user_active=True) == ("user active on session 7", True)
    assert _decide(suspend_when_remote_user_active=True, suspend_when_user_active=False) == ("", False)


# Captured from a real logind (systemd 252.39 in the guest, stock logind.conf: IdleActionSec=30min):
# root autologged in on tty1, last key at IdleSinceHint (the tty's atime); logind still says "not idle".
TTY1 = """\
Id=5
Name=root
Seat=seat0
Type=tty
Class=user
Active=yes
Remote=no
IdleHint=no
IdleSinceHint=1796694014796000
"""
KEY = 1796694014.796


def test_a_tty_is_idle_from_its_last_key_not_from_loginds_30_minute_hint():
    [tty] = parse_show(TTY1)
    assert not tty.idle and tty.idle_since == KEY
    assert user_active([tty], 30, now=KEY + 20).id == "5"
    assert user_active([tty], 30, now=KEY + 30 + usersession.TTY_ATIME_STEP_S) is None  # hint still "no"
    # Once logind's IdleActionSec passed its hint says idle; the atime rule gives the same answer.
    idle = parse_show(TTY1.replace("IdleHint=no", "IdleHint=yes"))
    assert user_active(idle, 30, now=KEY + 20).id == "5"
    assert user_active(idle, 30, now=KEY + 3600) is None


def test_a_graphical_session_follows_its_idle_hint():
    busy = parse_show(TTY1.replace("Type=tty", "Type=wayland"))  # IdleSinceHint: when it went busy
    assert user_active(busy, 30, now=KEY + 3600).id == "5"
    idle = parse_show(TTY1.replace("Type=tty", "Type=wayland").replace("IdleHint=no", "IdleHint=yes"))
    assert user_active(idle, 30, now=KEY + 20).id == "5"
    assert user_active(idle, 30, now=KEY + 31) is None


def test_an_ssh_login_without_an_atime_is_in_use_while_it_lasts():
    # Captured: `ssh -t` into the guest with UsePAM yes: no TTY in logind, the hint never moves.
    ssh = parse_show("Id=1\nName=root\nType=tty\nClass=user\nActive=yes\nRemote=yes\n"
                     "IdleHint=no\nIdleSinceHint=0\n")
    assert user_active(ssh, 30, now=KEY, remote=True).id == "1"
    assert user_active(ssh, 30, now=KEY) is None


def _on_a_pty():
    """A child whose controlling tty is a new pty (pty.fork), once it is: (pid, /dev/pts/N, master)."""
    import pty
    import time

    pid, master = pty.fork()
    if pid == 0:
        os.execvp("sleep", ["sleep", "60"])
    deadline = time.monotonic() + 30
    while usersession._pty_of(str(pid)) is None:  # the child is still taking the pty as its ctty
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return pid, usersession._pty_of(str(pid)), master


def _end(pid, master):
    import signal

    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(master)


def test_an_ssh_logins_last_key_is_the_atime_of_its_processes_pty(tmp_path):
    import subprocess

    pid, pts, master = _on_a_pty()
    no_tty = subprocess.Popen(["sleep", "60"], start_new_session=True, stdin=subprocess.DEVNULL)
    try:
        assert os.path.realpath(f"/proc/{pid}/fd/0") == pts  # the pty the child reads
        os.utime(pts, (NOW, NOW))  # as if its last key was read at NOW
        procs = tmp_path / "cgroup.procs"
        procs.write_text(f"{no_tty.pid}\n{pid}\n999999999\n")
        assert usersession.pty_last_key(procs) == NOW
        procs.write_text(f"{no_tty.pid}\n")  # `ssh host cmd`: no pty, no last key
        assert usersession.pty_last_key(procs) == 0.0
        assert usersession.pty_last_key(tmp_path / "gone") == 0.0
    finally:
        no_tty.kill()
        no_tty.wait()
        _end(pid, master)


def test_sessions_give_an_ssh_login_its_ptys_last_key(tmp_path, monkeypatch):
    pid, pts, master = _on_a_pty()
    try:
        os.utime(pts, (NOW, NOW))
        scope = tmp_path / "cgroup/user.slice/user-1000.slice/session-7.scope"
        scope.mkdir(parents=True)
        (scope / "cgroup.procs").write_text(f"{pid}\n")
        monkeypatch.setattr(usersession, "CGROUP_ROOTS", (tmp_path / "none", tmp_path / "cgroup"))
        ssh = "Id=7\nUser=1000\nName=bob\nType=tty\nClass=user\nActive=yes\nRemote=yes\nIdleHint=no\n" \
              "IdleSinceHint=0\nScope=session-7.scope\n"
        _fake_logind(tmp_path, monkeypatch, ssh)
        [s] = sessions()
        assert (s.uid, s.scope, s.idle_since) == ("1000", "session-7.scope", NOW)
        assert user_active([s], 30, now=NOW + 20, remote=True).id == "7"
        assert user_active([s], 30, now=NOW + 30 + usersession.TTY_ATIME_STEP_S, remote=True) is None
        (scope / "cgroup.procs").write_text("")  # its shell ended; the login lingers: logind's word
        [s] = sessions()
        assert s.idle_since == 0 and user_active([s], 30, now=NOW + 3600, remote=True).id == "7"
    finally:
        _end(pid, master)
