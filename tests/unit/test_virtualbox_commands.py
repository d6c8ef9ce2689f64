"""The exact VBoxManage commands of the virtualbox backend (VirtualBox cannot run here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runsurge_worker.sandbox.virtualbox import (
    VirtualBoxSandbox,
    base_vm_cmds,
    clone_cmds,
    destroy_cmds,
    guest_mount_cmd_nat,
    seed_disk_cmds,
)


def test_base_vm_is_registered_with_immutable_disk_seed_and_snapshot():
    cmds = base_vm_cmds("rs-base", Path("/img/disk.vdi"), Path("/w/seed.vdi"), Path("/w/vbox"),
                        2048, 2, Path("/w/vbox/console.log"))
    assert cmds[0] == ["VBoxManage", "createvm", "--name", "rs-base", "--ostype", "Debian_64",
                       "--basefolder", "/w/vbox", "--register"]
    modify = cmds[1]
    assert modify[:3] == ["VBoxManage", "modifyvm", "rs-base"]
    pairs = {flag: modify[i + 1] for i, flag in enumerate(modify) if flag.startswith("--")}
    assert pairs["--memory"] == "2048" and pairs["--cpus"] == "2"
    assert pairs["--nic1"] == "nat" and pairs["--nat-localhostreachable1"] == "on"
    assert pairs["--usb"] == "off" and pairs["--vrde"] == "off"
    assert pairs["--clipboard-mode"] == "disabled" and pairs["--drag-and-drop"] == "disabled"
    assert modify[-6:] == ["--uart1", "0x3F8", "4", "--uart-mode1", "file",
                           "/w/vbox/console.log"]
    assert cmds[2] == ["VBoxManage", "storagectl", "rs-base", "--name", "SATA", "--add", "sata",
                       "--controller", "IntelAhci", "--portcount", "2"]
    assert cmds[3] == ["VBoxManage", "storageattach", "rs-base", "--storagectl", "SATA",
                       "--port", "0", "--device", "0", "--type", "hdd", "--medium",
                       "/img/disk.vdi", "--mtype", "immutable"]
    assert cmds[4][-4:] == ["--medium", "/w/seed.vdi", "--mtype", "readonly"]
    assert cmds[5] == ["VBoxManage", "snapshot", "rs-base", "take", "pristine"]


def test_each_task_gets_a_linked_clone_with_loopback_ssh_only():
    assert clone_cmds("rs-base", "rs-1", Path("/w/vbox"), 40022) == [
        ["VBoxManage", "clonevm", "rs-base", "--snapshot", "pristine", "--options", "Link",
         "--name", "rs-1", "--basefolder", "/w/vbox", "--register"],
        ["VBoxManage", "modifyvm", "rs-1", "--natpf1", "ssh,tcp,127.0.0.1,40022,,22"],
        ["VBoxManage", "startvm", "rs-1", "--type", "headless"],
    ]


def test_a_used_vm_is_powered_off_and_deleted():
    assert destroy_cmds("rs-1") == [
        ["VBoxManage", "controlvm", "rs-1", "poweroff"],
        ["VBoxManage", "unregistervm", "rs-1", "--delete"],
    ]


def test_seed_disk_carries_the_key_by_label():
    cmds = seed_disk_cmds(Path("/w/seed"), Path("/w/seed.raw"), Path("/w/seed.vdi"))
    assert cmds == [
        ["truncate", "-s", "8M", "/w/seed.raw"],
        ["mkfs.ext4", "-q", "-F", "-L", "RSSEED", "-d", "/w/seed", "/w/seed.raw"],
        ["qemu-img", "convert", "-f", "raw", "-O", "vdi", "/w/seed.raw", "/w/seed.vdi"],
    ]


def test_guest_mounts_the_share_through_nat_on_the_smbd_port():
    cmd = guest_mount_cmd_nat(".slot-abc", "worker", "pw", 44555)
    assert cmd.startswith("mount -t cifs //10.0.2.2/runsurge/.slot-abc /mnt/runsurge -o ")
    assert "vers=3.0,port=44555,username=worker,password=pw" in cmd


def test_start_fails_clearly_without_virtualbox(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no VBoxManage on this PATH
    backend = VirtualBoxSandbox(tmp_path / "w", tmp_path / "img")
    with pytest.raises(RuntimeError, match="VBoxManage"):
        backend.start()


def test_start_refuses_a_vdi_without_boot_loader(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "VBoxManage").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "VBoxManage").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    image = tmp_path / "img"
    image.mkdir()
    (image / "manifest.json").write_text('{"recipe_hash": "old"}')  # built before the boot loader
    backend = VirtualBoxSandbox(tmp_path / "w", image)
    with pytest.raises(RuntimeError, match="no boot loader"):
        backend.start()
