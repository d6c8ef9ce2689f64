"""Desktop idle detection from logind (worker/runsurge_worker/usersession.py).

The loginctl texts are in the format systemd 252 (Debian 12) prints: `list-sessions --no-legend`
columns SESSION UID USER SEAT TTY, `show-session -p... ID...` Key=value blocks separated by blank
lines (properties in the bus's order, not the -p order)."""

from runsurge_worker.usersession import active_session, parse_ids, parse_show, sessions, user_active

LIST = """\
      3 1000 alice seat0 tty2
      5 1000 alice
      7 1001 bob         pts/0
"""

SHOW = """\
Id=3
Name=alice
Seat=seat0
Type=wayland
Class=user
Active=yes
IdleHint=no
IdleSinceHint=0

Id=5
Name=alice
Seat=
Type=unspecified
Class=manager
Active=yes
IdleHint=no
IdleSinceHint=0

Id=7
Name=bob
Seat=
Type=tty
Class=user
Active=yes
IdleHint=yes
IdleSinceHint=1796650000000000
"""
NOW = 1796650000.0  # the moment bob went idle (IdleSinceHint is µs since the epoch)


def test_parse_listing_and_properties():
    assert parse_ids(LIST) == ["3", "5", "7"]
    s3, s5, s7 = parse_show(SHOW)
    assert (s3.id, s3.seat, s3.type, s3.klass, s3.active, s3.idle) == ("3", "seat0", "wayland", "user", True, False)
    assert s5.klass == "manager"
    assert s7.idle and s7.idle_since == NOW and s7.where() == "session 7"
    assert s3.where() == "seat0 session 3"


def test_busy_graphical_session_counts():
    assert user_active(parse_show(SHOW), 30, now=NOW + 3600).id == "3"


def test_manager_idle_and_own_sessions_do_not_count():
    _, s5, s7 = parse_show(SHOW)
    assert user_active([s5], 30, now=NOW) is None  # the user manager is never idle: not a person
    assert user_active([s7], 30, now=NOW + 31) is None  # idle longer than resume_after_idle_s
    assert user_active([s7], 30, now=NOW + 10).id == "7"  # idle, but not long enough yet
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


def _fake_loginctl(tmp_path, monkeypatch, show: str) -> None:
    """A `loginctl` on PATH that prints what logind's would (no logind can run in this container)."""
    (tmp_path / "list.txt").write_text(LIST)
    (tmp_path / "show.txt").write_text(show)
    exe = tmp_path / "loginctl"
    exe.write_text(f"#!/bin/sh\ncase \"$2\" in list-sessions) cat {tmp_path}/list.txt;; "
                   f"show-session) cat {tmp_path}/show.txt;; esac\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    monkeypatch.delenv("XDG_SESSION_ID", raising=False)


def test_the_governor_suspends_while_a_user_is_active_and_not_when_told_not_to(tmp_path, monkeypatch):
    from datetime import datetime

    from runsurge_worker.config import WorkerConfig
    from runsurge_worker.governor import Governor

    _fake_loginctl(tmp_path, monkeypatch, SHOW)
    decide = lambda **cfg: Governor(WorkerConfig(**cfg), None, None, lambda: None).decide(0.0, datetime.now())  # noqa: E731
    assert decide() == ("user active on seat0 session 3", True)
    assert decide(suspend_when_user_active=False) == ("", False)
    idle = SHOW.replace("Id=3\nName=alice\nSeat=seat0\nType=wayland\nClass=user\nActive=yes\nIdleHint=no",
                        "Id=3\nName=alice\nSeat=seat0\nType=wayland\nClass=user\nActive=yes\nIdleHint=yes")
    assert idle != SHOW
    _fake_loginctl(tmp_path, monkeypatch, idle)
    assert decide() == ("", False)  # idle since long ago (IdleSinceHint 0 is "unknown": long enough)
