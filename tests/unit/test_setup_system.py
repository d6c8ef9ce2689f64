"""scripts/setup-system.sh (shared by `make demo`, `make test` and .ci/run) and the image build's
own checks: a missing package or tool is one clear line with the command to run, never a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETUP = ROOT / "scripts" / "setup-system.sh"


def setup(*args: str, env: dict | None = None, user: int | None = None) -> subprocess.CompletedProcess:
    prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups"] if user is not None else []
    # The script's text, not its path: another user may not be able to open the clone (in /root, 0700).
    return subprocess.run([*prefix, "bash", "-c", SETUP.read_text(), str(SETUP), *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=120)


def test_nothing_to_do_when_every_package_is_installed():
    r = setup("test")  # this machine (and CI, after .ci/run) has them all
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and r.stdout == ""


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to an unprivileged user needs root")
def test_without_root_it_prints_the_exact_command(tmp_path):
    # A throw-away dpkg database in which nothing is installed: a fresh machine, as dpkg sees it.
    (tmp_path / "status").write_text("")
    tmp_path.chmod(0o755)
    r = setup("demo", env={"DPKG_ADMINDIR": str(tmp_path)}, user=65534)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "missing Debian packages: python3-venv make debootstrap" in r.stderr
    assert "sudo apt-get update && sudo apt-get install -y python3-venv make debootstrap e2fsprogs qemu-utils " \
           "qemu-system-x86 samba bubblewrap netcat-openbsd" in r.stderr
    r = setup("test", env={"DPKG_ADMINDIR": str(tmp_path)}, user=65534)
    assert "postgresql chromium iproute2" in r.stderr.splitlines()[-1]


def test_an_unknown_target_is_refused():
    r = setup("everything")
    assert r.returncode == 2 and "usage:" in r.stderr


def test_image_build_names_the_missing_tools(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the build checks root first")
    r = subprocess.run([sys.executable, str(ROOT / "vm-images" / "build.py"), "--out", str(tmp_path)],
                       capture_output=True, text=True, env={**os.environ, "PATH": str(tmp_path / "empty")}, timeout=60)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.strip() == ("building the image needs debootstrap, mkfs.ext4, qemu-img, chroot: run "
                                "`bash scripts/setup-system.sh demo` as root (it installs the Debian packages)")
    assert not any(tmp_path.glob(".tmp-*"))  # nothing half-built left behind
