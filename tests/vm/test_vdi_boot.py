"""The VDI boots by itself, as VirtualBox would boot it: from the BIOS, on SATA (AHCI) disks, with
the worker's key on the RSSEED seed disk and no kernel passed by the hypervisor.

VirtualBox cannot run here, so QEMU plays its part: SeaBIOS -> the VDI's MBR -> syslinux on the
FAT boot partition -> kernel + initrd -> root=LABEL=rsroot on partition 2 -> SSH with the seed key.
One cold boot under TCG (about a minute).
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from runsurge_worker.sandbox import ssh
from runsurge_worker.sandbox.ports import free_port
from runsurge_worker.sandbox.virtualbox import seed_disk_cmds

pytestmark = pytest.mark.vm


def test_vdi_boots_with_its_own_boot_loader(image_dir, tmp_path):
    manifest = json.loads((image_dir / "manifest.json").read_text())
    assert manifest["vdi_boot"]["loader"] == "syslinux"
    key = ssh.ensure_keypair(tmp_path / "ssh")
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "authorized_keys").write_text(ssh.public_key_line(key) + "\n")
    for cmd in seed_disk_cmds(seed, tmp_path / "seed.raw", tmp_path / "seed.vdi"):
        subprocess.run(cmd, check=True, capture_output=True)
    disk = tmp_path / "disk.qcow2"  # copy-on-write over the VDI, which stays pristine
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "vdi", "-b",
                    str(image_dir / "disk.vdi"), str(disk)], check=True)
    port = free_port()
    qemu = subprocess.Popen([
        "qemu-system-x86_64", "-nodefaults", "-display", "none", "-no-reboot", "-machine", "pc",
        "-accel", "tcg,tb-size=64", "-cpu", "max", "-smp", "2", "-m", "1024",
        "-device", "ahci,id=sata",
        "-drive", f"file={disk},if=none,id=d0,format=qcow2",
        "-device", "ide-hd,drive=d0,bus=sata.0",
        # (VirtualBox attaches the seed read-only; an emulated SATA disk cannot be)
        "-drive", f"file={tmp_path / 'seed.vdi'},if=none,id=d1,format=vdi",
        "-device", "ide-hd,drive=d1,bus=sata.1",
        "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22",
        "-device", "virtio-net-pci,netdev=n0",
        "-serial", f"file:{tmp_path / 'console.log'}",
    ], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    conn = None
    try:
        conn, _ = ssh.connect(port, key, None, timeout=300, alive=lambda: qemu.poll() is None)
        # The kernel may name the two SATA disks in either order: look at the root's own disk.
        out = conn.run('root=$(findmnt -n -o SOURCE /); echo "$root"; cat /proc/cmdline; '
                       'lsblk -n -o LABEL "${root%2}1"', hide=True, in_stream=False).stdout.split("\n")
        assert re.fullmatch(r"/dev/sd[ab]2", out[0]), out
        assert "root=LABEL=rsroot" in out[1] and "rs.key" not in out[1]  # key from the seed disk
        assert out[2] == "RSBOOT"
    finally:
        if conn is not None:
            conn.close()
        qemu.kill()
        qemu.wait()
