"""The saved ready state every pool VM is restored from: boot once, migrate the RAM to a file.

A snapshot is a directory holding `disk.qcow2` (the cold-booted VM's overlay, frozen: the saved
RAM's page cache and file system state refer to it, so clones use it as their backing file),
`ready.mig` (QEMU's migration stream) and `snapshot.json` (the guest's pinned host key). Its
name is a hash of everything that must match on restore, so a changed image, key, memory size or
QEMU version makes a new one, and it is created in a temporary directory renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .commands import QemuSpec
from .qmp import Qmp
from .vm import Vm, VmError

log = logging.getLogger(__name__)
SAVE_ATTEMPTS = 3
RESTORE_CHECK_S = 120.0  # a restore is up in seconds; a panicking guest exits at once (panic=1)

# Run in the guest before saving: settle the boot, put what a task needs in the page cache (so
# clones do not read it again through TCG), drop the worker's login traces.
PREPARE = (
    "systemctl is-system-running --wait >/dev/null 2>&1; "
    "python3 -c 'import numpy, json, os, socket' >/dev/null 2>&1; "
    "cat /usr/sbin/mount.cifs /usr/bin/mount /usr/bin/setpriv /usr/bin/env >/dev/null; sync"
)


@dataclass(frozen=True)
class Snapshot:
    dir: Path
    host_key: str

    @property
    def disk(self) -> Path:
        return self.dir / "disk.qcow2"

    @property
    def memory(self) -> Path:
        return self.dir / "ready.mig"


def _qemu_version() -> str:
    out = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def snapshot_key(spec: QemuSpec, image_id: str, argv_sample: list[str]) -> str:
    h = hashlib.sha256(json.dumps([image_id, _qemu_version(), spec.memory_mb, spec.cpus,
                                   spec.kvm, spec.cmdline, argv_sample]).encode())
    return h.hexdigest()[:16]


def load_or_create(spec: QemuSpec, base_disk: Path, image_id: str, key_path: Path,
                   root: Path) -> Snapshot:
    """The snapshot for `spec`, made with one cold boot if it does not exist yet."""
    # The argv shape (with placeholder paths) is part of the key: a changed device list breaks
    # migration compatibility.
    sample = spec.argv(Path("D"), 0, Path("Q"), Path("C"))
    final = root / snapshot_key(spec, image_id, sample)
    meta = final / "snapshot.json"
    if meta.is_file():
        return Snapshot(final, json.loads(meta.read_text())["host_key"])
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".tmp-{os.getpid()}-{time.monotonic_ns()}"
    tmp.mkdir(parents=True)
    try:
        for attempt in range(1, SAVE_ATTEMPTS + 1):
            host_key = _cold_boot_and_save(spec, base_disk, key_path, tmp)
            try:
                _check_restore(spec, key_path, tmp, host_key)
                break
            except VmError as e:
                # Seen under TCG: a state saved at an unlucky moment panics the guest on every
                # restore, which would fail every task of this worker. Boot and save again.
                if attempt == SAVE_ATTEMPTS:
                    raise VmError(f"no saved VM state restored cleanly in {attempt} attempts: {e}") from e
                log.warning("the saved VM state does not restore (%s); saving it again", e)
        (tmp / "snapshot.json").write_text(json.dumps({"host_key": host_key}) + "\n")
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Snapshot(final, host_key)


def _check_restore(spec: QemuSpec, key_path: Path, snap: Path, host_key: str) -> None:
    """Restore the state just saved in `snap` once and run a command in it; raises VmError."""
    vm = Vm(spec, snap / "vms", snap / "disk.qcow2")
    try:
        vm.launch(key_path, host_key, incoming=snap / "ready.mig", ssh_timeout=RESTORE_CHECK_S)
        vm.conn.run("true", hide=True, in_stream=False, timeout=RESTORE_CHECK_S)
    except VmError:
        raise
    except Exception as e:  # SSH or the command failed in the restored guest
        raise VmError(f"the restored guest did not run a command: {e}") from e
    finally:
        vm.destroy()


def _cold_boot_and_save(spec: QemuSpec, base_disk: Path, key_path: Path, out: Path) -> str:
    started = time.monotonic()
    vm = Vm(spec, out / "vms", base_disk)
    try:
        vm.launch(key_path, host_key=None)
        log.info("cold boot to SSH in %.1fs; saving the snapshot", vm.ready_s)
        vm.conn.run(PREPARE, hide=True, warn=True, in_stream=False)
        vm.conn.close()
        vm.conn = None
        qmp = Qmp(vm.qmp_socket)
        try:
            qmp.execute("migrate", uri=f"exec:cat > {out / 'ready.mig'}")
            while True:
                status = qmp.execute("query-migrate").get("status")
                if status == "completed":
                    break
                if status in ("failed", "cancelled"):
                    raise VmError(f"saving the VM state failed: {status}")
                time.sleep(0.1)
            qmp.execute("quit")  # a clean exit writes out the overlay's metadata
        finally:
            qmp.close()
        vm.proc.wait(60)
        os.rename(vm.disk, out / "disk.qcow2")
        log.info("snapshot saved in %.1fs total", time.monotonic() - started)
        return vm.host_key
    finally:
        vm.destroy()
