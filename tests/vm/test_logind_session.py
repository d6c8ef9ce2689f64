"""#17: the governor's user-session signal against a REAL systemd-logind, in a guest VM.

This host's PID 1 is not systemd; the guest's is. The task image has no logind (no dbus, and its sshd
runs with `UsePAM no`, so pam_systemd never registers a login) and stays so: the test copies seven
Debian packages into one VM (dbus and its libraries, libpam-systemd of the guest's systemd version;
fetched once with `apt-get download` and cached under /var/cache/runsurge/logind-debs), installs
them, turns PAM on for sshd (a drop-in that sorts before the image's: sshd keeps a setting's first
value) and starts dbus and logind. The guest runs its own copy of usersession.py (stdlib only); what
it sees is fed to the host's real Governor.decide, its times moved onto the host's clock.

What real logind does (systemd 252.39, Debian 12, kernel 6.1; measured here):
- `ssh -t` login: Type=tty, Class=user, Remote=yes, no Seat and no TTY (sshd hands PAM the tty
  "ssh", which pam_systemd drops), so IdleHint stays "no" and IdleSinceHint 0 for as long as the
  login lasts, typed into or not; a plain `ssh host cmd` is the same kind of session. usersession
  reads such a login's last key from the atime of its shell's pty (/dev/pts/N, the controlling tty
  of a process in the session's cgroup, session-ID.scope), with the same 8 s steps as a tty's.
- getty autologin on tty1: Type=tty, Seat=seat0, TTY=tty1, Remote=no. IdleSinceHint is the tty's
  atime (the last key read), which the kernel moves only when the time crosses an 8 s boundary
  (tty_update_time, CVE-2013-0160): it can be up to 8 s older than the last key. IdleHint is
  computed on each read as atime + IdleActionSec <= now; IdleActionSec applies whatever IdleAction
  is, and is 30 min by default: on a stock system a tty session says "not idle" for 30 min after
  its last key. So usersession reads a tty's idle time from the atime, not from the hint.
- Figures from two runs under TCG (2 shared cores; a look, one SSH command running python3 in the
  guest, takes ~1-2 s): dpkg -i of the seven packages 14.8-19.1 s; dbus + logind + sshd restart
  2.1-2.6 s; getty to a logind session 5.2-9.3 s. With resume_after_idle_s=15 the governor resumed
  21.9-25.0 s after the last key (15 + up to the 8 s atime step + a look), on tty1 and over SSH
  alike. With IdleActionSec=10s the hint said "no" at the first look after a key (1.0 s) and "yes"
  again 7.4-9.9 s after the last key: atime + 10 s, the atime 0.7 s before the key.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from datetime import datetime
from io import BytesIO
from pathlib import Path

import paramiko
import pytest

from runsurge_worker import usersession
from runsurge_worker.config import WorkerConfig
from runsurge_worker.governor import Governor
from runsurge_worker.sandbox.qmp import Qmp
from runsurge_worker.usersession import Session

pytestmark = pytest.mark.vm

REPO = Path(__file__).resolve().parents[2]
DEB_CACHE = Path(os.environ.get("RUNSURGE_LOGIND_DEBS", "/var/cache/runsurge/logind-debs"))
DBUS_PACKAGES = ("dbus", "dbus-bin", "dbus-daemon", "dbus-system-bus-common", "dbus-session-bus-common",
                 "libdbus-1-3")
IDLE_S = 15.0  # resume_after_idle_s of the governor under test
IDLE_ACTION_S = 10  # logind's IdleActionSec in the hint's phase


def _run(vm, cmd: str) -> str:
    return vm.conn.run(cmd, hide=True, warn=False, in_stream=False).stdout


def _push(vm, cmd: str, data: bytes) -> None:
    """Run `cmd` in the guest with `data` on its stdin."""
    chan = vm.conn.client.get_transport().open_session()
    chan.exec_command(cmd)
    chan.sendall(data)
    chan.shutdown_write()
    err = chan.makefile_stderr("rb").read().decode(errors="replace")
    if chan.recv_exit_status() != 0:
        raise AssertionError(f"guest: {cmd}: {err}")


def _debs(systemd_version: str) -> list[Path]:
    """The packages logind needs in the guest, from the host's cache or `apt-get download`."""
    want = {p: f"{p}_*.deb" for p in DBUS_PACKAGES}
    want["libpam-systemd"] = f"libpam-systemd_{systemd_version.replace(':', '%3a')}_*.deb"
    missing = [p for p, pattern in want.items() if not list(DEB_CACHE.glob(pattern))]
    if missing:
        if not shutil.which("apt-get"):
            pytest.skip(f"no apt-get to fetch {missing}")
        DEB_CACHE.mkdir(parents=True, exist_ok=True)
        names = [f"{p}={systemd_version}" if p == "libpam-systemd" else p for p in missing]
        with tempfile.TemporaryDirectory(dir=DEB_CACHE) as tmp:
            r = subprocess.run(["apt-get", "download", *names], cwd=tmp, capture_output=True, text=True,
                               timeout=600)
            if r.returncode != 0:
                pytest.skip(f"apt-get cannot fetch {names}: {r.stderr.strip()[-400:]}")
            for deb in Path(tmp).glob("*.deb"):
                os.replace(deb, DEB_CACHE / deb.name)  # whole files only: a second run reuses them
    return [max(DEB_CACHE.glob(pattern)) for pattern in want.values()]


@pytest.fixture(scope="module")
def logind_vm(backend):
    """One pool VM with dbus, logind and sshd with pam_systemd running; destroyed after."""
    vm = backend.pool.acquire()
    try:
        version = _run(vm, "dpkg-query -W -f '${Version}' systemd").strip()
        debs = _debs(version)
        bundle = BytesIO()
        with tarfile.open(fileobj=bundle, mode="w") as tar:
            for deb in debs:
                tar.add(deb, arcname=deb.name)
        _push(vm, "mkdir -p /tmp/debs && tar -C /tmp/debs -xf -", bundle.getvalue())
        t = time.monotonic()
        _run(vm, "DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/debs/*.deb >/tmp/dpkg.log 2>&1 "
                 "|| { cat /tmp/dpkg.log; exit 1; }")
        installed = time.monotonic() - t
        assert "pam_systemd.so" in _run(vm, "cat /etc/pam.d/common-session")
        t = time.monotonic()
        _run(vm, "echo 'UsePAM yes' > /etc/ssh/sshd_config.d/00-logind.conf && "
                 "systemctl start dbus.service systemd-logind.service && systemctl restart ssh.service")
        print(f"\nlogind in the guest: dpkg -i {installed:.1f} s, dbus + logind + sshd "
              f"{time.monotonic() - t:.1f} s")
        _push(vm, "cat > /root/usersession.py", (REPO / "worker/runsurge_worker/usersession.py").read_bytes())
        yield vm
    finally:
        vm.destroy()


LOOK = """
import dataclasses, json, sys, time
sys.path.insert(0, "/root")
import usersession as u
def first(s): return s.id if s else None
print(json.dumps({"now": time.time(), "sessions": [dataclasses.asdict(s) for s in u.sessions()],
                  "local": first(u.active_session(%r)), "remote": first(u.active_session(%r, remote=True))}))
"""


@dataclasses.dataclass
class Look:
    sessions: list[Session]  # idle_since on the host's clock
    local: str | None  # the guest's own active_session(IDLE_S)
    remote: str | None  # ...with remote=True

    def one(self, **match) -> Session | None:
        found = [s for s in self.sessions if all(getattr(s, k) == v for k, v in match.items())]
        assert len(found) <= 1, found
        return found[0] if found else None


def _look(vm) -> Look:
    """usersession.sessions() and active_session() run in the guest (over the worker's own SSH
    connection, opened before PAM was on: not a logind session itself)."""
    sent = time.time()
    out = json.loads(_run(vm, f"python3 -c '{LOOK % (IDLE_S, IDLE_S)}'"))
    skew = (sent + time.time()) / 2 - out["now"]
    sessions = [Session(**{**s, "idle_since": s["idle_since"] + skew if s["idle_since"] else 0.0})
                for s in out["sessions"]]
    return Look(sessions, out["local"], out["remote"])


def _decide(monkeypatch, look: Look, remote: bool = False) -> tuple[str, bool]:
    """The host's real Governor.decide, with the guest's sessions as the host's logind."""
    monkeypatch.setattr(usersession, "sessions", lambda: look.sessions)
    monkeypatch.delenv("XDG_SESSION_ID", raising=False)
    cfg = WorkerConfig(resume_after_idle_s=IDLE_S, suspend_on_battery=False, busy_cpu_percent=0,
                       suspend_when_remote_user_active=remote)
    return Governor(cfg, None, None, lambda: None).decide(time.monotonic(), datetime.now())


def _until(what: str, timeout: float, probe):
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout:.0f} s")
        time.sleep(0.5)


def _keys_until(vm, what: str, press, moved) -> tuple[Look, float]:
    """press() a key, about once a second, until moved(look); returns the look and the last press's
    (host) time. A tty's atime moves only when the time crosses an 8 s boundary."""
    last = 0.0

    def probe():
        nonlocal last
        press()
        last = time.time()
        look = _look(vm)
        return moved(look) and look
    return _until(what, 60, probe), last


def _resumed(vm, monkeypatch, last_key: float, remote: bool = False) -> tuple[Look, float]:
    """Wait for the governor to take work again; it must not before `resume_after_idle_s` of no keys."""
    def probe():
        look = _look(vm)
        return _decide(monkeypatch, look, remote) == ("", False) and (look, time.time())
    look, at = _until("resumed", IDLE_S + usersession.TTY_ATIME_STEP_S + 60, probe)
    print(f"governor resumed {at - last_key:.1f} s after the last key (resume_after_idle_s={IDLE_S:g})")
    assert at - last_key >= IDLE_S  # never before the owner left it alone that long
    return look, at


def test_an_ssh_login_counts_when_remote_users_do_until_its_pty_is_idle(logind_vm, backend, monkeypatch):
    vm = logind_vm
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # the backend pinned it already
    client.connect("127.0.0.1", port=vm.ssh_port, username="root", look_for_keys=False, allow_agent=False,
                   pkey=paramiko.Ed25519Key.from_private_key_file(str(backend.work_dir / "ssh/id_ed25519")))
    try:
        shell = client.invoke_shell()  # `ssh -t`: a pty and a login shell, through PAM
        look = _until("an SSH session with its shell on a pty", 60,
                      lambda: (lk := _look(vm)).one(remote=True) and lk.one(remote=True).idle_since and lk)
        s = look.one(remote=True)
        assert (s.type, s.klass, s.seat, s.active, s.idle) == ("tty", "user", "", True, False)
        shown = _run(vm, f"loginctl show-session -pTTY -pIdleSinceHint {s.id}").split()
        assert "IdleSinceHint=0" in shown and set(shown) <= {"TTY=", "IdleSinceHint=0"}  # logind knows no tty
        assert look.local is None and look.remote == s.id  # the guest's own active_session
        assert _decide(monkeypatch, look) == ("", False)  # the default: remote logins do not count
        assert _decide(monkeypatch, look, remote=True) == (f"user active on session {s.id}", True)

        look, last_key = _keys_until(vm, "the pty's atime moved", lambda: shell.send(b"true\n"),
                                     lambda lk: lk.one(remote=True).idle_since > s.idle_since)
        assert _decide(monkeypatch, look, remote=True) == (f"user active on session {s.id}", True)
        _resumed(vm, monkeypatch, last_key, remote=True)
        look = _look(vm)
        assert look.one(remote=True) is not None and look.remote is None  # still logged in, left alone
    finally:
        client.close()
    look = _until("the SSH session gone", 60, lambda: (lk := _look(vm)).one(remote=True) is None and lk)
    assert _decide(monkeypatch, look, remote=True) == ("", False)


@pytest.fixture(scope="module")
def tty1(logind_vm):
    """root autologged in on tty1 (the image masks getty@tty1): logind's local session on seat0."""
    vm = logind_vm
    t = time.monotonic()
    _run(vm, "mkdir -p /etc/systemd/system/getty@tty1.service.d && printf '[Service]\\nExecStart=\\n"
             "ExecStart=-/sbin/agetty --autologin root --noclear %%I $TERM\\n' "
             "> /etc/systemd/system/getty@tty1.service.d/autologin.conf && "
             "systemctl unmask getty@tty1.service && systemctl daemon-reload && "
             "systemctl start getty@tty1.service")
    look = _until("a tty1 session", 120, lambda: (lk := _look(vm)).one(seat="seat0") and lk)
    print(f"getty to a logind session: {time.monotonic() - t:.1f} s")
    return look.one(seat="seat0").id


def _type(vm, key: str = "x") -> float:
    """One key press on the VM's PS/2 keyboard (QMP send-key): tty1 reads it. Returns when (host)."""
    qmp = Qmp(vm.qmp_socket, timeout=10)
    try:
        qmp.execute("send-key", keys=[{"type": "qcode", "data": key}])
    finally:
        qmp.close()
    return time.time()


def test_a_tty_session_suspends_while_typed_into_and_resumes_after_idle(logind_vm, tty1, monkeypatch):
    vm, sid = logind_vm, tty1
    # 1. Stock logind.conf (IdleActionSec=30min): the hint says "not idle" throughout; the last key,
    # the tty's atime, decides.
    before = _look(vm).one(id=sid)
    look, last_key = _keys_until(vm, "the tty's atime moved", lambda: _type(vm),
                                 lambda lk: lk.one(id=sid).idle_since > before.idle_since)
    s = look.one(id=sid)
    assert (s.type, s.klass, s.seat, s.remote, s.active, s.idle) == ("tty", "user", "seat0", False, True, False)
    assert look.local == sid  # the guest's own active_session
    assert _decide(monkeypatch, look) == (f"user active on seat0 session {sid}", True)

    look, _ = _resumed(vm, monkeypatch, last_key)
    assert not look.one(id=sid).idle  # logind's hint still says "not idle"
    assert _look(vm).local is None  # and the guest's own active_session agrees (no key since)

    # 2. IdleActionSec short: logind's hint itself flips with the keys.
    _run(vm, f"mkdir -p /etc/systemd/logind.conf.d && printf '[Login]\\nIdleActionSec={IDLE_ACTION_S}s\\n' "
             "> /etc/systemd/logind.conf.d/idle.conf && systemctl restart systemd-logind.service")
    _until("idle per logind", 60, lambda: (s := _look(vm).one(id=sid)) and s.idle)
    look, last_key = _keys_until(vm, "busy per logind", lambda: _type(vm), lambda lk: not lk.one(id=sid).idle)
    flipped = time.time() - last_key
    assert _decide(monkeypatch, look) == (f"user active on seat0 session {sid}", True)
    busy_at = time.time()

    def idle_again():
        nonlocal busy_at
        started = time.time()
        s = _look(vm).one(id=sid)
        if not s.idle:
            busy_at = started
        return s.idle and s
    s = _until("idle per logind again", IDLE_ACTION_S + 60, idle_again)
    print(f"IdleActionSec={IDLE_ACTION_S}s: IdleHint no at the first look after a key ({flipped:.1f} s), "
          f"yes again {busy_at - last_key:.1f}-{time.time() - last_key:.1f} s after the last key "
          f"(the atime lagged it by {last_key - s.idle_since:.1f} s)")
