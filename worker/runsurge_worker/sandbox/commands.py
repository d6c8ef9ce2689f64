"""Command lines for the hypervisors, kept as pure functions so unit tests can pin them exactly.

The guest side is the same for QEMU and VirtualBox: the guest's address in user-mode/NAT
networking, where it finds the SMB share, how it mounts it. (How a task starts in the guest is the
guest agent's: guestagent.py.)
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

GUEST_MOUNT = "/mnt/runsurge"
GUEST_UID = 1000  # the unprivileged 'runsurge' user of the image
SMB_GUEST_ADDR = "10.0.2.100"  # the guestfwd address the guest mounts the share from
# panic=1 oops=panic: a guest kernel that fails reboots, which QEMU's -no-reboot turns into QEMU
# exiting, so the host knows at once instead of waiting for an SSH that never comes.
GUEST_CMDLINE = "root=/dev/vda rw console=ttyS0 quiet net.ifnames=0 random.trust_cpu=on panic=1 oops=panic"
MAX_TASK_PIDS = 512  # the task cgroup's pids.max
ENV_DRIVE, ENV_DEVICE = "env", "envcd"  # the VM's drive for a job's environment image
GUEST_ENV_DEV, GUEST_ENV_DIR = "/dev/sr0", "/opt/runsurge-env"  # where the guest sees it


def has_hw_virt(cpuinfo: str) -> bool:
    """True when the CPU flags offer vmx (Intel) or svm (AMD): only then is KVM worth using."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = line.split(":", 1)[1].split()
            return "vmx" in flags or "svm" in flags
    return False


def _q(value: str | Path) -> str:
    """Escape a value for a QEMU option list (a comma is written as two)."""
    return str(value).replace(",", ",,")


@dataclass(frozen=True)
class QemuSpec:
    """Everything that must be identical between the VM that saved a snapshot and its clones."""

    kernel: Path
    initrd: Path
    memory_mb: int
    cpus: int
    kvm: bool
    cmdline: str
    smb_forwarder: Path

    def argv(self, disk: Path, ssh_port: int, qmp_socket: Path, console_log: Path,
             incoming_fd: int | None = None, env_image: Path | None = None) -> list[str]:
        accel = ["-accel", "kvm", "-cpu", "host"] if self.kvm else [
            "-accel", "tcg,tb-size=64", "-cpu", "max"]  # tb-size=64: ~300 MB RSS instead of ~900
        netdev = ("user,id=n0,restrict=on,"  # no route out of the guest...
                  f"hostfwd=tcp:127.0.0.1:{ssh_port}-:22,"  # ...but SSH in from the worker
                  f"guestfwd=tcp:{SMB_GUEST_ADDR}:445-cmd:{_q(self.smb_forwarder)}")  # and SMB
        argv = [
            "qemu-system-x86_64", "-name", "runsurge-guest",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-machine", "pc", *accel, "-smp", str(self.cpus), "-m", f"{self.memory_mb}M",
            "-kernel", str(self.kernel), "-initrd", str(self.initrd), "-append", self.cmdline,
            "-drive", f"file={_q(disk)},if=none,id=root,format=qcow2,cache=unsafe,discard=unmap",
            "-device", "virtio-blk-pci,drive=root",
            "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0",
            # An empty CD drive: a task's environment (an ext4 image) is inserted as its disc
            # (QMP blockdev-change-medium, ~1 ms; PCI hot-plug of a disk takes ~0.5 s under TCG).
            "-device", "virtio-scsi-pci,id=scsi0",
            "-drive", f"if=none,id={ENV_DRIVE},media=cdrom,readonly=on"
                      + ("" if env_image is None else f",file={_q(env_image)},format=raw"),
            "-device", f"scsi-cd,drive={ENV_DRIVE},bus=scsi0.0,id={ENV_DEVICE}",
            # Entropy for the guest, and a new generation id per clone: Linux reseeds its RNG
            # when the vmgenid changes, so restored clones do not share random streams.
            "-object", "rng-random,id=rng0,filename=/dev/urandom",
            "-device", "virtio-rng-pci,rng=rng0",
            "-device", "vmgenid,guid=auto",
            "-serial", f"file:{_q(console_log)}",
            "-qmp", f"unix:{_q(qmp_socket)},server=on,wait=off",
            # QEMU itself is confined too. It must still spawn the SMB forwarder per connection,
            # which elevateprivileges=deny prevents; the worker starts it with no_new_privs.
            "-sandbox", "on,obsolete=deny,resourcecontrol=deny",
        ]
        if incoming_fd is not None:
            argv += ["-incoming", f"fd:{incoming_fd}"]
        return argv


def overlay_cmd(backing: Path, overlay: Path) -> list[str]:
    """A copy-on-write disk over `backing`: every VM starts from pristine, shared state."""
    return ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(backing),
            str(overlay)]


def guest_mount_cmd(share_subdir: str, user: str, password: str) -> str:
    """Mount one task folder of the worker's share at /mnt/runsurge (run as root in the guest)."""
    opts = ",".join([
        "vers=3.0", f"username={user}", f"password={password}",
        f"uid={GUEST_UID}", f"gid={GUEST_UID}", "file_mode=0644", "dir_mode=0755",
        # The folder behind the mount is swapped in when a task starts: do not pin inode numbers.
        "noserverino", "actimeo=1",
        # A restored guest's SMB connection is to a new smbd: while cifs reconnects, a soft mount
        # (the default) fails a call that waits more than one 10 s round (EHOSTDOWN, and EBADF
        # when a handle of the old session cannot be reopened). Hard: the call waits for the share
        # instead; the worker, not the guest, decides when a share is lost (it destroys the VM).
        "hard",
    ])
    src = f"//{SMB_GUEST_ADDR}/runsurge/{share_subdir}"
    return f"mount -t cifs {shlex.quote(src)} {GUEST_MOUNT} -o {shlex.quote(opts)}"
