"""Command construction of the VM and bwrap sandboxes: the security-relevant flags, pinned."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from runsurge_worker.sandbox import BACKENDS, get_backend
from runsurge_worker.sandbox.bwrap import bwrap_argv
from runsurge_worker.sandbox.commands import (
    QemuSpec,
    guest_mount_cmd,
    has_hw_virt,
    overlay_cmd,
)
from runsurge_worker.sandbox.samba import SambaServer
from runsurge_worker.sandbox.seccomp import DENIED, deny_filter


def _spec(kvm=False):
    return QemuSpec(Path("/img/vmlinuz"), Path("/img/initrd.img"), 1024, 2, kvm,
                    "root=/dev/vda rs.key=k", Path("/w/smb-forward.sh"))


def _opt(argv, flag):
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_kvm_only_with_hardware_virtualization_flags():
    assert has_hw_virt("flags\t: fpu vme vmx sse\n")
    assert has_hw_virt("flags\t: fpu svm\n")
    assert not has_hw_virt("flags\t: fpu vme sse hypervisor\n")
    assert _opt(_spec(kvm=False).argv(Path("d"), 1, Path("q"), Path("c")), "-accel") == [
        "tcg,tb-size=64"]
    kvm = _spec(kvm=True).argv(Path("d"), 1, Path("q"), Path("c"))
    assert _opt(kvm, "-accel") == ["kvm"] and _opt(kvm, "-cpu") == ["host"]


def test_network_is_restricted_to_ssh_in_and_smb_out():
    argv = _spec().argv(Path("/v/disk.qcow2"), 40022, Path("/v/qmp.sock"), Path("/v/c.log"))
    (netdev,) = _opt(argv, "-netdev")
    assert netdev == ("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22,"
                      "guestfwd=tcp:10.0.2.100:445-cmd:/w/smb-forward.sh")
    assert "-nodefaults" in argv and _opt(argv, "-display") == ["none"]
    assert _opt(argv, "-sandbox") == ["on,obsolete=deny,resourcecontrol=deny"]
    assert "vmgenid,guid=auto" in _opt(argv, "-device")
    assert _opt(argv, "-drive")[0].startswith("file=/v/disk.qcow2,if=none,id=root,format=qcow2")
    assert "-incoming" not in argv
    assert _opt(_spec().argv(Path("d"), 1, Path("q"), Path("c"), incoming_fd=7),
                "-incoming") == ["fd:7"]


def test_commas_in_paths_are_escaped_for_qemu():
    argv = _spec().argv(Path("/a,b/disk.qcow2"), 1, Path("q"), Path("c"))
    assert _opt(argv, "-drive")[0].startswith("file=/a,,b/disk.qcow2,")


def test_overlay_is_backed_by_the_pristine_disk():
    assert overlay_cmd(Path("/s/disk.qcow2"), Path("/v/o.qcow2")) == [
        "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "/s/disk.qcow2",
        "/v/o.qcow2"]


def test_guest_commands():
    mount = guest_mount_cmd(".slot-1", "worker", "secret")
    assert mount.startswith("mount -t cifs //10.0.2.100/runsurge/.slot-1 /mnt/runsurge -o ")
    assert "vers=3.0" in mount and "uid=1000" in mount
    assert ",hard" in mount  # calls wait through a reconnect (a restored VM's new smbd), never fail


def test_samba_config_is_loopback_only_smb3_and_private(tmp_path):
    smb = SambaServer(tmp_path / "smb", tmp_path / "tasks", port=44555)
    conf = smb.config_text()
    for line in ("interfaces = 127.0.0.1", "bind interfaces only = yes", "smb ports = 44555",
                 "server min protocol = SMB3_00", "map to guest = never",
                 "restrict anonymous = 2", "disable netbios = yes", "follow symlinks = no",
                 f"path = {tmp_path / 'tasks'}", f"private dir = {tmp_path / 'smb'}/private"):
        assert line in conf
    assert smb.forwarder_path == tmp_path / "smb" / "smb-forward.sh"


def test_bwrap_unshares_everything_and_binds_only_the_task(tmp_path):
    argv = bwrap_argv(tmp_path, ["python3", "main.py"], seccomp_fd=9)
    assert argv[:5] == ["bwrap", "--unshare-all", "--die-with-parent", "--new-session",
                        "--cap-drop"]
    binds = [argv[i + 1:i + 3] for i, a in enumerate(argv) if a == "--bind"]
    assert binds == [[str(tmp_path), "/work"]]  # the only writable host path
    ro = [argv[i + 1] for i, a in enumerate(argv) if a == "--ro-bind"]
    assert "/" not in ro and "/home" not in ro and "/etc" not in ro
    assert "--share-net" not in argv
    assert argv[argv.index("--seccomp") + 1] == "9"
    assert argv[-2:] == ["python3", "main.py"]


def test_seccomp_filter_is_well_formed():
    prog = deny_filter()
    insns = [struct.unpack("=HBBI", prog[i:i + 8]) for i in range(0, len(prog), 8)]
    assert insns[0] == (0x20, 0, 0, 4) and insns[1][3] == 0xC000003E
    assert insns[-2] == (0x06, 0, 0, 0x7FFF0000)  # allow
    assert insns[-1] == (0x06, 0, 0, 0x00050001)  # errno EPERM
    checked = {k for code, _, _, k in insns[5:-2] if code == 0x15}
    assert checked == set(DENIED.values())
    for i, (_code, jt, _, _) in enumerate(insns[5:-2], start=5):
        assert i + 1 + jt == len(insns) - 1  # every match lands on "ret EPERM"


def test_factory_maps_names(tmp_path):
    assert {"qemu", "bwrap", "virtualbox"} <= set(BACKENDS)
    assert get_backend("qemu", tmp_path, tmp_path, pool_size=1).name == "qemu"
    assert get_backend("bwrap", tmp_path, tmp_path).task_root == tmp_path / "tasks"
    with pytest.raises(ValueError, match="unknown sandbox backend"):
        get_backend("docker", tmp_path, tmp_path)


def test_a_vm_socket_under_a_long_home_goes_to_a_private_short_folder(tmp_path, monkeypatch):
    from runsurge_worker.sandbox.vm import socket_path

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    short_home = tmp_path / "vm1"
    assert socket_path(short_home, "qmp.sock") == short_home / "qmp.sock"
    long_home = tmp_path / ("x" * 120) / "0123456789ab"
    path = socket_path(long_home, "qmp.sock")
    assert len(str(path)) <= 107 and path.name == "qmp.sock" and path.parent != long_home
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_a_short_socket_folder_someone_else_can_write_is_refused(tmp_path, monkeypatch):
    """Another local user who made the folder first (world-writable) must not get the VM's QMP socket."""
    from runsurge_worker.sandbox.vm import VmError, socket_path

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    planted = tmp_path / f"runsurge-{os.getuid()}"
    planted.mkdir()
    planted.chmod(0o777)
    with pytest.raises(VmError, match="not a private folder"):
        socket_path(tmp_path / ("x" * 120) / "vm", "qmp.sock")
