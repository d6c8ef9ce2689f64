"""The `virtualbox` backend: the QEMU lifecycle through VBoxManage.

Same guest, same share, same task runner (guestrun) and pool as `qemu`; only the VM operations
differ: register the image's VDI once as an immutable base with a snapshot, then per task a
linked clone, a NAT port forward for SSH on 127.0.0.1, a headless start, and poweroff + unregister
+ delete after its one task. The worker's public key reaches the guest on a small seed disk
labelled RSSEED (VirtualBox cannot pass a kernel command line). The VDI boots from its own MBR and
syslinux boot partition, the root file system being partition 2 (vm-images/build.py). VirtualBox
has no equivalent of QEMU's restrict=on: the guest reaches the host's loopback through NAT (needed
for smbd), so only the guest's firewall keeps user code off the network.

It cannot run on the machine this was written on (no VirtualBox in Debian bookworm main and no
loadable host kernel modules): the exact commands are unit-tested instead, and the VDI's boot is
tested in QEMU from the BIOS on SATA disks, the way VirtualBox boots it (tests/vm/test_vdi_boot.py).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

from . import ssh
from .agent import GuestAgent
from .base import Limits, RunResult, SandboxBackend
from .guestrun import run_in_slot, sandbox_error
from .ports import free_port
from .qemu import GUEST_SYSCTL, SLOT_PREFIX, resolve_image
from .samba import SambaServer
from .vmpool import VmPool

log = logging.getLogger(__name__)

VBOX = "VBoxManage"
BASE_SNAPSHOT = "pristine"
NAT_HOST = "10.0.2.2"  # the host as VirtualBox NAT shows it to the guest


def base_vm_cmds(name: str, disk_vdi: Path, seed_vdi: Path, base_folder: Path,
                 memory_mb: int, cpus: int, console_log: Path) -> list[list[str]]:
    """Register the base VM once: the image disk (immutable) + the seed disk, then snapshot it."""
    return [
        [VBOX, "createvm", "--name", name, "--ostype", "Debian_64", "--basefolder",
         str(base_folder), "--register"],
        [VBOX, "modifyvm", name, "--memory", str(memory_mb), "--cpus", str(cpus),
         "--firmware", "bios", "--boot1", "disk", "--boot2", "none", "--boot3", "none",
         "--boot4", "none", "--audio-driver", "none", "--usb", "off", "--clipboard-mode",
         "disabled", "--drag-and-drop", "disabled", "--vrde", "off",
         "--nic1", "nat", "--nictype1", "virtio", "--nat-localhostreachable1", "on",
         "--uart1", "0x3F8", "4", "--uart-mode1", "file", str(console_log)],
        [VBOX, "storagectl", name, "--name", "SATA", "--add", "sata", "--controller",
         "IntelAhci", "--portcount", "2"],
        [VBOX, "storageattach", name, "--storagectl", "SATA", "--port", "0", "--device", "0",
         "--type", "hdd", "--medium", str(disk_vdi), "--mtype", "immutable"],
        [VBOX, "storageattach", name, "--storagectl", "SATA", "--port", "1", "--device", "0",
         "--type", "hdd", "--medium", str(seed_vdi), "--mtype", "readonly"],
        [VBOX, "snapshot", name, "take", BASE_SNAPSHOT],
    ]


def clone_cmds(base: str, name: str, base_folder: Path, ssh_port: int) -> list[list[str]]:
    """A linked clone (copy-on-write disk) with SSH forwarded from 127.0.0.1 only, started."""
    return [
        [VBOX, "clonevm", base, "--snapshot", BASE_SNAPSHOT, "--options", "Link", "--name", name,
         "--basefolder", str(base_folder), "--register"],
        [VBOX, "modifyvm", name, "--natpf1", f"ssh,tcp,127.0.0.1,{ssh_port},,22"],
        [VBOX, "startvm", name, "--type", "headless"],
    ]


def destroy_cmds(name: str) -> list[list[str]]:
    return [
        [VBOX, "controlvm", name, "poweroff"],
        [VBOX, "unregistervm", name, "--delete"],
    ]


def seed_disk_cmds(seed_dir: Path, raw: Path, vdi: Path) -> list[list[str]]:
    """An 8 MiB ext4 disk labelled RSSEED holding authorized_keys, as a VDI."""
    return [
        ["truncate", "-s", "8M", str(raw)],
        ["mkfs.ext4", "-q", "-F", "-L", "RSSEED", "-d", str(seed_dir), str(raw)],
        ["qemu-img", "convert", "-f", "raw", "-O", "vdi", str(raw), str(vdi)],
    ]


def guest_mount_cmd_nat(share_subdir: str, user: str, password: str, smb_port: int) -> str:
    """As commands.guest_mount_cmd, but through NAT to the host's loopback smbd port."""
    from .commands import guest_mount_cmd

    return guest_mount_cmd(share_subdir, user, password).replace(
        "//10.0.2.100/", f"//{NAT_HOST}/").replace("vers=3.0,", f"vers=3.0,port={smb_port},")


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True)


class VBoxVm:
    def __init__(self, backend: VirtualBoxSandbox):
        self.name = f"runsurge-{uuid.uuid4().hex[:12]}"
        self.backend = backend
        self.ssh_port = free_port()
        self.conn = None
        self.agent: GuestAgent | None = None
        self.slot: Path | None = None
        self._started = False

    def launch(self) -> None:
        b = self.backend
        for cmd in clone_cmds(b.base_name, self.name, b.vms_dir, self.ssh_port):
            _run(cmd)
        self._started = True
        self.conn, _ = ssh.connect(self.ssh_port, b.key, b.host_key, timeout=600)

    def alive(self) -> bool:
        return self._started

    def destroy(self) -> None:
        self.agent = None  # its channel closes with the connection
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self._started:
            for cmd in destroy_cmds(self.name):
                subprocess.run(cmd, capture_output=True)
            self._started = False
        if self.slot is not None:
            try:
                self.slot.rmdir()
            except OSError:
                pass
            self.slot = None


class VirtualBoxSandbox(SandboxBackend):
    name = "virtualbox"

    def __init__(self, work_dir: Path, image_dir: Path, pool_size: int = 2,
                 vm_memory_mb: int = 2048, vm_cpus: int = 2):
        self.work_dir = Path(work_dir)
        self.image_dir = Path(image_dir)
        self.pool_size = pool_size
        self.vm_memory_mb = vm_memory_mb
        self.vm_cpus = vm_cpus
        self.vms_dir = self.work_dir / "vbox"
        self.base_name = "runsurge-base-" + uuid.uuid5(uuid.NAMESPACE_URL,
                                                       str(self.work_dir)).hex[:8]
        self.key: Path | None = None
        self.host_key: str | None = None  # learned from the first clone, then pinned
        self.smb: SambaServer | None = None
        self.pool: VmPool[VBoxVm] | None = None
        self._lock = threading.Lock()

    @property
    def task_root(self) -> Path:
        return self.work_dir / "tasks"

    def start(self) -> None:
        if shutil.which(VBOX) is None:
            raise RuntimeError("the virtualbox backend needs VirtualBox (VBoxManage) installed")
        image, manifest = resolve_image(self.image_dir)
        if "vdi_boot" not in manifest:  # images built before the VDI got its boot loader
            raise RuntimeError(f"{image / 'disk.vdi'} has no boot loader; rebuild the image "
                               "(python vm-images/build.py)")
        self.key = ssh.ensure_keypair(self.work_dir / "ssh")
        seed_dir = self.work_dir / "seed"
        seed_dir.mkdir(parents=True, exist_ok=True)
        (seed_dir / "authorized_keys").write_text(ssh.public_key_line(self.key) + "\n")
        seed_vdi = self.work_dir / "seed.vdi"
        for cmd in seed_disk_cmds(seed_dir, self.work_dir / "seed.raw", seed_vdi):
            _run(cmd)
        self.vms_dir.mkdir(parents=True, exist_ok=True)
        for cmd in base_vm_cmds(self.base_name, image / "disk.vdi", seed_vdi, self.vms_dir,
                                self.vm_memory_mb, self.vm_cpus, self.vms_dir / "console.log"):
            _run(cmd)
        self.smb = SambaServer(self.work_dir / "samba", self.task_root)
        self.smb.start()
        self.pool = VmPool(self._fresh_vm, self.pool_size)
        self.pool.start()

    def _fresh_vm(self) -> VBoxVm:
        vm = VBoxVm(self)
        try:
            vm.launch()
            vm.slot = self.task_root / f"{SLOT_PREFIX}{vm.name}"
            vm.slot.mkdir()
            # Each clone cold-boots (its own RNG, boot_id and machine-id): only the share and the
            # sysctls; the agent leaves the task's interpreter warm and waiting.
            vm.agent = GuestAgent(vm.conn, {"time": time.time(), "sysctl": GUEST_SYSCTL},
                                  guest_mount_cmd_nat(vm.slot.name, self.smb.user,
                                                      self.smb.password, self.smb.port))
            return vm
        except BaseException:
            vm.destroy()
            raise

    def run(self, task_dir: Path, script: str, limits: Limits,
            cancel: threading.Event) -> RunResult:
        task_dir = Path(task_dir)
        try:
            vm = self.pool.acquire()
        except Exception as exc:  # noqa: BLE001
            return sandbox_error(str(exc))
        return run_in_slot(vm, task_dir, script, limits, cancel, self.vm_cpus)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        if self.smb is not None:
            self.smb.close()
            self.smb = None
