"""A guest that fails is seen at once: its kernel panic ends QEMU (panic=1 with -no-reboot), and a
saved state that cannot be restored is refused before it becomes the worker's snapshot (a state
saved at an unlucky moment once panicked the guest on every restore, failing every task)."""

from __future__ import annotations

import shutil
import time

import pytest

from runsurge_worker.sandbox.snapshot import _check_restore
from runsurge_worker.sandbox.vm import VmExitedError

pytestmark = pytest.mark.vm


def test_a_guest_kernel_panic_ends_the_vm(backend):
    vm = backend.pool.acquire()
    try:
        vm.conn.run("echo c > /proc/sysrq-trigger", hide=True, warn=True, in_stream=False, timeout=10)
    except Exception:  # noqa: BLE001 - the guest dies under the command
        pass
    try:
        deadline = time.monotonic() + 60
        while vm.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not vm.alive(), "QEMU still runs a guest whose kernel panicked"
        assert "Kernel panic" in vm.console_log.read_text(errors="replace")
    finally:
        vm.destroy()


def test_a_state_that_does_not_restore_is_refused(backend, tmp_path):
    snap = tmp_path / "snap"
    snap.mkdir()
    shutil.copy(backend.snapshot.disk, snap / "disk.qcow2")
    saved = backend.snapshot.memory.read_bytes()
    (snap / "ready.mig").write_bytes(saved[: len(saved) // 2])  # cut in the middle of the RAM
    with pytest.raises(VmExitedError, match="died"):
        _check_restore(backend.spec, backend._key, snap, backend.snapshot.host_key)
    assert not any((snap / "vms").iterdir())  # the probe VM is gone with its overlay
