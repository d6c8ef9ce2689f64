"""One QEMU guest: cold boot or restore from a snapshot, SSH to it, destroy it with its overlay."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from fabric import Connection

from . import ssh
from .agent import GuestAgent
from .commands import QemuSpec, overlay_cmd
from .ports import DIE_WITH_PARENT, free_port
from .shortpath import fits, private_dir

log = logging.getLogger(__name__)

# Dies with the worker; and no_new_privs, since QEMU's own seccomp must allow it to spawn.
QEMU_PREFIX = DIE_WITH_PARENT[:1] + ["--no-new-privs"] + DIE_WITH_PARENT[1:]


def socket_path(vm_dir: Path, name: str) -> Path:
    """A VM's unix socket: in its folder, or in a private short one when that path is too long."""
    path = vm_dir / name
    if fits(path):
        return path
    try:
        return private_dir(vm_dir) / name
    except PermissionError as exc:
        raise VmError(str(exc)) from None


class VmError(RuntimeError):
    """The VM could not be started or reached: the host's fault, never the task's."""


class VmExitedError(VmError):
    """QEMU exited while the VM started: the guest kernel failed (see GUEST_CMDLINE), or a saved
    state could not be loaded."""


class Vm:
    def __init__(self, spec: QemuSpec, vms_dir: Path, backing: Path | None, disk: Path | None = None):
        """A new overlay of `backing`, or `disk`, an overlay saved with a checkpoint (moved here)."""
        self.id = uuid.uuid4().hex[:12]
        self.spec = spec
        self.dir = vms_dir / self.id
        self.dir.mkdir(parents=True)
        self.disk = self.dir / "disk.qcow2"
        self.qmp_socket = socket_path(self.dir, "qmp.sock")
        self.console_log = self.dir / "console.log"
        self.ssh_port = 0
        self.proc: subprocess.Popen | None = None
        self.conn: Connection | None = None
        self.host_key = ""
        self.agent: GuestAgent | None = None
        # The host folder its share mount points at, while it is still the VM's (empty) folder.
        self.slot: Path | None = None
        self.env_image: Path | None = None  # the environment disc in its CD drive, mounted in the guest
        self.started = 0.0  # time.monotonic() at launch
        self.ready_s = 0.0  # start -> SSH ready
        self.prepared_s = 0.0  # start -> ready for a task (set by the backend)
        if disk is not None:
            os.rename(disk, self.disk)
        else:
            subprocess.run(overlay_cmd(backing, self.disk), check=True, capture_output=True)

    def launch(self, key_path: Path, host_key: str | None, incoming: Path | None = None,
               ssh_timeout: float = 600.0, env_image: Path | None = None) -> None:
        """Start QEMU (restoring `incoming` when given, with `env_image` in its CD drive) and open
        SSH; raises VmError."""
        started = time.monotonic()
        for _attempt in range(3):  # the free port may be taken before QEMU binds it
            self.ssh_port = free_port()
            fd = os.open(incoming, os.O_RDONLY) if incoming else None
            try:
                argv = self.spec.argv(self.disk, self.ssh_port, self.qmp_socket,
                                      self.console_log, incoming_fd=fd, env_image=env_image)
                self.proc = subprocess.Popen(
                    QEMU_PREFIX + argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=open(self.dir / "qemu.err", "wb"), pass_fds=(fd,) if fd else (),
                    start_new_session=True)
            finally:
                if fd is not None:
                    os.close(fd)
            time.sleep(0.05)
            if self.proc.poll() is None:
                break
            if b"hostfwd" not in (self.dir / "qemu.err").read_bytes():
                break
        try:
            self.conn, self.host_key = ssh.connect(
                self.ssh_port, key_path, host_key, timeout=ssh_timeout, alive=self.alive)
        except Exception as exc:
            err = (self.dir / "qemu.err").read_text(errors="replace")[-500:].strip()
            console = _last_line(self.console_log)
            died = not self.alive()
            self.destroy()
            raise (VmExitedError if died else VmError)(
                f"guest {'died' if died else 'not reachable over SSH'}: {exc}; qemu: {err}; console: {console}"
            ) from exc
        self.started = started
        self.ready_s = time.monotonic() - started

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def rss_bytes(self) -> int:
        """Host memory used by this VM's QEMU process."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except (OSError, AttributeError):
            pass
        return 0

    def destroy(self) -> None:
        """Kill QEMU and delete the overlay. Idempotent; the VM never runs another task."""
        self.agent = None  # its channel closes with the connection
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - the guest may already be gone
                pass
            self.conn = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.qmp_socket.parent != self.dir:  # a short folder of its own (socket_path)
            shutil.rmtree(self.qmp_socket.parent, ignore_errors=True)
        if self.slot is not None:
            try:
                self.slot.rmdir()  # only ever empty: a task's folder is never the VM's slot
            except OSError:
                pass
            self.slot = None


def _last_line(path: Path) -> str:
    """What the guest console said last: its kernel panic line if there is one."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 4000))
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    panics = [line for line in lines if "Kernel panic" in line]
    return (panics or lines or [""])[-1].strip()
