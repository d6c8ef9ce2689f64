"""pytest-testinfra against a live pool VM: the share, file round trips, /proc metering."""

from __future__ import annotations

import time
import uuid

import pytest
import testinfra

from runsurge_worker.monitor import parse_status

pytestmark = pytest.mark.vm


@pytest.fixture
def guest(backend, tmp_path):
    """A ready pool VM (its share slot mounted) and a testinfra host for it; destroyed after."""
    vm = backend.pool.acquire()
    config = tmp_path / "ssh_config"
    # The backend pinned this VM's host key when it connected; testinfra need not re-check it.
    config.write_text("Host *\n  StrictHostKeyChecking no\n")
    host = testinfra.get_host(f"paramiko://root@127.0.0.1:{vm.ssh_port}",
                              ssh_identity_file=str(backend.work_dir / "ssh/id_ed25519"),
                              ssh_config=str(config))
    try:
        yield vm, host
    finally:
        host.backend.client.close()
        vm.destroy()


def test_share_is_mounted_with_cifs(guest):
    _, host = guest
    mount = host.mount_point("/mnt/runsurge")
    assert mount.exists
    assert mount.filesystem == "cifs"
    assert "vers=3.0" in mount.options
    assert mount.device.startswith("//10.0.2.100/runsurge/.slot-")


def test_files_cross_the_share_both_ways(guest):
    vm, host = guest
    token = uuid.uuid4().hex
    (vm.slot / "from_host.txt").write_text(token)
    seen = host.file("/mnt/runsurge/from_host.txt")
    assert seen.exists and seen.content_string == token
    assert host.run(f"echo {token[::-1]} > /mnt/runsurge/from_guest.txt").rc == 0
    assert (vm.slot / "from_guest.txt").read_text() == token[::-1] + "\n"
    (vm.slot / "from_host.txt").unlink()
    (vm.slot / "from_guest.txt").unlink()


def test_proc_of_a_live_process_is_readable(guest):
    _, host = guest
    pid = int(host.check_output(
        "cd /mnt/runsurge && { nohup python3 -c 'import time; time.sleep(60)' "
        ">/dev/null 2>&1 & echo $!; }"))
    time.sleep(0.5)
    status = host.file(f"/proc/{pid}/status").content_string
    values = parse_status(status)
    assert values["VmSize"] > 1 << 20 and values["VmRSS"] > 1 << 20
    assert host.process.get(pid=pid).comm == "python3"


def test_guest_is_locked_down(guest):
    _, host = guest
    assert host.user("runsurge").uid == 1000
    assert host.service("ssh").is_running
    assert host.check_output("ip route").strip().startswith("10.0.2.0/24")  # no default route
    assert "drop" in host.check_output("nft list ruleset")
    assert host.file("/etc/ssh/sshd_config.d/runsurge.conf").contains("PasswordAuthentication no")
