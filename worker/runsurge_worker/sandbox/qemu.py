"""The `qemu` backend: every task in a fresh VM restored from a saved snapshot.

Start-up (once per worker): the worker's smbd, its SSH key, and a snapshot (one cold boot, then the
RAM is migrated to a file). Then a background pool keeps `pool_size` VMs restored onto fresh qcow2
overlays and readied by one SSH command that starts the guest agent (guestagent.py): fresh
entropy, clock, machine-id, boot_id and hostname, its own empty share folder mounted at
/mnt/runsurge, and the task's interpreter started, warmed up and waiting, with the SSH connection
and the agent's channel left open. A task is then just: swap its folder in under the slot's name,
one message on that channel (the interpreter runs the script), poll over the same channel. Each VM
runs one task and is destroyed with its overlay.

Memory: every VM has the same size (`vm_memory_mb`), because a migration stream restores only
into a VM of the same size, and one snapshot keeps the worker to one cold boot. A VM's RAM costs
the host only when touched, so a large idle VM is cheap. The task's own limit is enforced inside
the guest by the task cgroup's memory.max (the kernel OOM-kills the task, not the guest);
tasks that need more than the VM can give are refused as an infrastructure error so the master
places them elsewhere.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path

from ..environments import image_of
from . import ssh
from .agent import GuestAgent
from .base import Limits, RunResult, SandboxBackend
from .commands import (
    ENV_DEVICE,
    GUEST_CMDLINE,
    GUEST_ENV_DEV,
    GUEST_ENV_DIR,
    QemuSpec,
    guest_mount_cmd,
    has_hw_virt,
)
from .guestrun import run_in_slot, sandbox_error
from .qmp import Qmp
from .samba import SambaServer
from .snapshot import Snapshot, load_or_create
from .vm import Vm, VmError
from .vmpool import VmPool

log = logging.getLogger(__name__)

GUEST_OVERHEAD_MB = 160  # guest kernel, systemd, sshd, page cache the task cannot use
SLOT_PREFIX = ".slot-"  # task ids never start with a dot
GUEST_SYSCTL = {
    # Little unsent data in the guest's cache: the output cap holds, and a killed task's last
    # writes are few.
    "vm.dirty_bytes": 16 << 20, "vm.dirty_background_bytes": 4 << 20,
    # No user namespaces for the task: less kernel attack surface, and no private /proc that
    # would show the snapshot's real boot_id.
    "user.max_user_namespaces": 0,
}


def resolve_image(image_dir: Path) -> tuple[Path, dict]:
    """The built image directory (with manifest.json) at `image_dir` or `image_dir/current`."""
    for candidate in (image_dir, image_dir / "current"):
        manifest = candidate / "manifest.json"
        if manifest.is_file():
            return candidate.resolve(), json.loads(manifest.read_text())
    raise FileNotFoundError(f"no guest image in {image_dir} (RUNSURGE_IMAGE_DIR, --image-dir): build it with "
                            "`make image` (vm-images/build.py)")


def kvm_usable() -> bool:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return has_hw_virt(cpuinfo) and os.access("/dev/kvm", os.R_OK | os.W_OK)


CHECKPOINT_BANDWIDTH = 16 << 30  # QEMU's default migration bandwidth (128 MiB/s) would make a save of GiBs slow


class QemuSandbox(SandboxBackend):
    name = "qemu"
    supports_checkpoints = True
    supports_environments = True
    environment_images = True  # a VM gets a job's packages as an ext4 disc (environments.py)

    def __init__(self, work_dir: Path, image_dir: Path, pool_size: int = 2,
                 vm_memory_mb: int = 2048, vm_cpus: int | None = None, cold: bool = False,
                 kvm: bool | None = None):
        self.work_dir = Path(work_dir)
        self.image_dir = Path(image_dir)
        self.pool_size = 0 if cold else pool_size
        self.vm_memory_mb = vm_memory_mb
        self.vm_cpus = vm_cpus or min(2, os.cpu_count() or 1)
        self.cold = cold  # boot every VM from scratch (for the benchmark's comparison)
        self.kvm = kvm
        self.smb: SambaServer | None = None
        self.snapshot: Snapshot | None = None
        self.pool: VmPool[Vm] | None = None
        self.spec: QemuSpec | None = None
        self._key: Path | None = None
        self._base_disk: Path | None = None
        self._lock = threading.Lock()
        self._running: set[Vm] = set()
        self._next_image: Path | None = None  # the environment disc pool VMs get ready mounted
        self._checkpoint = threading.Event()  # set: running tasks are saved, not ended (checkpoint_all)

    @property
    def task_root(self) -> Path:
        return self.work_dir / "tasks"

    @property
    def max_task_memory_bytes(self) -> int:
        return (self.vm_memory_mb - GUEST_OVERHEAD_MB) << 20

    def start(self) -> None:
        image, manifest = resolve_image(self.image_dir)
        self._base_disk = image / "disk.qcow2"
        if self.kvm is None:
            self.kvm = kvm_usable()
        if not self.kvm:
            log.warning("no hardware virtualization (vmx/svm): guests run under TCG emulation, "
                        "several times slower than KVM")
        self.task_root.mkdir(parents=True, exist_ok=True)
        kept = {json.loads((c / "meta.json").read_text())["slot"] for c in self.checkpoints()}
        for stale in self.task_root.glob(SLOT_PREFIX + "*"):  # from a worker that crashed
            if stale.name not in kept:  # a checkpointed task's folder waits for its VM
                _remove_tree(stale)
        self._key = ssh.ensure_keypair(self.work_dir / "ssh")
        self.smb = SambaServer(self.work_dir / "samba", self.task_root)
        self.smb.start()
        pub = ssh.public_key_line(self._key).replace(" ", ":")
        self.spec = QemuSpec(
            kernel=image / "vmlinuz", initrd=image / "initrd.img", memory_mb=self.vm_memory_mb,
            cpus=self.vm_cpus, kvm=self.kvm, cmdline=f"{GUEST_CMDLINE} rs.key={pub}",
            smb_forwarder=self.smb.forwarder_path)
        try:
            if not self.cold:
                self.snapshot = load_or_create(self.spec, self._base_disk,
                                               manifest["recipe_hash"], self._key,
                                               self.work_dir / "snapshots")
            self.pool = VmPool(self._fresh_vm, self.pool_size)
            self.pool.start()
        except BaseException:
            self.close()
            raise

    def _fresh_vm(self) -> Vm:
        """A VM ready for one task: restored (or cold-booted), made its own, its slot mounted,
        the task's interpreter waiting."""
        backing = self._base_disk if self.cold else self.snapshot.disk
        vm = Vm(self.spec, self.work_dir / "vms", backing)
        try:
            if self.cold:
                vm.launch(self._key, host_key=None)
            else:
                vm.launch(self._key, self.snapshot.host_key, incoming=self.snapshot.memory)
            vm.slot = self.task_root / f"{SLOT_PREFIX}{vm.id}"
            vm.slot.mkdir()
            # One SSH command readies the clone and leaves the task's interpreter warm and waiting.
            vm.agent = GuestAgent(vm.conn, self._clone_setup(vm),
                                  guest_mount_cmd(vm.slot.name, self.smb.user, self.smb.password))
            self._premount(vm)
            vm.prepared_s = time.monotonic() - vm.started
            return vm
        except BaseException:
            vm.destroy()
            raise

    def _clone_setup(self, vm: Vm) -> dict:
        """What makes a clone of the shared snapshot its own VM (see guestagent.make_own)."""
        return {
            # Clones share the snapshot's RNG state (vmgenid already forced a reseed: add host
            # entropy anyway), its stale clock, machine-id, boot_id and hostname.
            "seed": secrets.token_hex(64), "time": time.time(),
            "machine_id": secrets.token_hex(16), "boot_id": str(uuid.uuid4()),
            "hostname": f"runsurge-{vm.id}",
            "sysctl": GUEST_SYSCTL,
        }

    def run(self, task_dir: Path, script: str, limits: Limits,
            cancel: threading.Event, env: Path | None = None) -> RunResult:
        task_dir = Path(task_dir)
        if task_dir.parent.resolve() != self.task_root.resolve():
            raise ValueError(f"{task_dir} is not a folder of {self.task_root}")
        if limits.memory_bytes > self.max_task_memory_bytes:
            return sandbox_error(f"task needs {limits.memory_bytes >> 20} MiB, this worker's VMs give "
                                 f"at most {self.max_task_memory_bytes >> 20} MiB")
        image = image_of(env) if env is not None else None
        self._next_image = image  # the pool readies its next VMs with this disc mounted
        try:
            vm = self.pool.acquire()
        except Exception as exc:
            log.exception("no VM for task %s", task_dir.name)
            return sandbox_error(str(exc))
        with self._lock:
            self._running.add(vm)
        try:
            try:
                self._insert(vm, image)
            except Exception as exc:  # noqa: BLE001 - the VM is unusable for this task
                vm.destroy()
                return sandbox_error(f"cannot attach the environment: {exc}")
            guest_env = {"dev": GUEST_ENV_DEV, "dir": GUEST_ENV_DIR} if image is not None else None
            with self.pauses.run(lambda: _qmp(vm, "stop"), lambda: _qmp(vm, "cont")) as pause:
                return run_in_slot(vm, task_dir, script, limits, cancel, self.vm_cpus, pause, guest_env,
                                   self._checkpoint, self._saver(task_dir.name, script, limits, env))
        finally:
            with self._lock:
                self._running.discard(vm)

    def _insert(self, vm: Vm, image: Path | None) -> None:
        """Put `image` (an environment's disc, or none) in the VM's CD drive. A disc the pool
        mounted ahead is unmounted first when it is not the one wanted; the guest mounts a new one
        at the task's go. The drive never holds a disc the task was not given."""
        if vm.env_image == image:
            return
        if vm.env_image is not None:
            vm.agent.call("unmount")
            _qmp(vm, "eject", id=ENV_DEVICE, force=True)
            vm.env_image = None
        if image is not None:
            _qmp(vm, "blockdev-change-medium", id=ENV_DEVICE, filename=str(image), format="raw",
                 **{"read-only-mode": "read-only"})
            vm.env_image = image

    def _premount(self, vm: Vm) -> None:
        """Ready a pool VM with the disc of the environment the last task used, mounted: a run of
        tasks sharing an environment (a job's usual shape) then starts with nothing to mount."""
        image = self._next_image
        if image is None or not image.exists():  # bare tasks last, or the image was evicted
            return
        try:
            self._insert(vm, image)
            mounted = vm.agent.call("mount", dev=GUEST_ENV_DEV, dir=GUEST_ENV_DIR)
        except Exception:
            self._next_image = None  # the pool's next VMs come without: no retry loop on a bad disc
            raise
        log.info("pool VM %s readied with environment %s (mounted in %.0f ms)", vm.id, image.stem[:12],
                 mounted["env_mount_s"] * 1000)

    # -- checkpoints -------------------------------------------------------------------------------
    @property
    def checkpoint_root(self) -> Path:
        return self.work_dir / "checkpoints"

    def checkpoint_all(self) -> None:
        self._checkpoint.set()

    def checkpoints(self) -> list[Path]:
        """Complete checkpoints (meta.json is written last); half-written ones are dropped."""
        found = []
        for c in sorted(self.checkpoint_root.glob("*")) if self.checkpoint_root.is_dir() else ():
            if c.name.startswith(".") or not (c / "meta.json").is_file():
                _remove_tree(c)
            else:
                found.append(c)
        return found

    def _saver(self, task_id: str, script: str, limits: Limits, env: Path | None):
        def save(vm: Vm, slot: Path, state: dict) -> RunResult:
            return self._save(vm, slot, state, task_id, script, limits, env)
        return save

    def _save(self, vm: Vm, slot: Path, state: dict, task_id: str, script: str, limits: Limits,
              env: Path | None) -> RunResult:
        """Migrate the running VM to a file, keep its overlay: the run's checkpoint (the agent has
        detached). Written in a temporary folder renamed into place, meta.json last."""
        t0 = time.monotonic()
        final = self.checkpoint_root / task_id
        tmp = self.checkpoint_root / f".tmp-{task_id}"
        _remove_tree(tmp)
        tmp.mkdir(parents=True)
        if vm.conn is not None:  # the guest's sshd ends the session now, not after the restore
            vm.conn.close()
            vm.conn = None
        qmp = Qmp(vm.qmp_socket, timeout=60)
        try:
            qmp.execute("migrate-set-parameters", **{"max-bandwidth": CHECKPOINT_BANDWIDTH})
            qmp.execute("migrate", uri=f"exec:cat > {tmp / 'memory.mig'}")
            while (status := qmp.execute("query-migrate").get("status")) not in ("completed", "failed", "cancelled"):
                time.sleep(0.02)
            if status != "completed":
                raise RuntimeError(f"saving the VM failed: {status}")
            qmp.execute("quit")  # a clean exit writes out the overlay's metadata
        finally:
            qmp.close()
        vm.proc.wait(60)
        os.rename(vm.disk, tmp / "disk.qcow2")
        meta = {"task_id": task_id, "slot": slot.name, "script": script, "limits": asdict(limits),
                "snapshot": str(self.snapshot.dir), "state": state, "saved_s": time.monotonic() - t0}
        (tmp / "meta.json").write_text(json.dumps(meta) + "\n")
        _remove_tree(final)
        os.rename(tmp, final)
        log.info("checkpointed task %s in %.2fs (%d MiB of VM state)", task_id, meta["saved_s"],
                 (final / "memory.mig").stat().st_size >> 20)
        r = state.get("result", {})
        peak = state.get("peak", 0)
        avg = min(peak, state["rss_total"] // state["samples"]) if state.get("samples") else 0
        return RunResult(None, state["active_s"], state.get("cpu_s", 0.0), avg, peak, failure="checkpointed",
                         checkpoint=final,
                         restore_s=r.get("restore_s", 0.0), resumes=r.get("resumes", 0))

    def discard(self, checkpoint: Path) -> None:
        """The saved VM (its memory and overlay) and the task's folder (in its slot since the save)."""
        try:
            slot = json.loads((checkpoint / "meta.json").read_text())["slot"]
        except (OSError, ValueError, KeyError):
            slot = None
        if isinstance(slot, str) and slot and Path(slot).name == slot:  # a name in task_root, nothing else
            _remove_tree(self.task_root / slot)
        _remove_tree(checkpoint)

    def restore(self, checkpoint: Path, cancel: threading.Event, env: Path | None = None) -> RunResult:
        """Bring the saved VM back and let its task run to the end (or be saved again). The
        checkpoint is used up: the share's folder moves on from the state it saved."""
        meta = json.loads((checkpoint / "meta.json").read_text())
        task_dir, slot = self.task_root / meta["task_id"], self.task_root / meta["slot"]
        limits = Limits(**meta["limits"])
        state = meta["state"]
        done = state.setdefault("result", {"restore_s": 0.0, "resumes": 0})
        t0 = time.monotonic()
        try:
            if meta["snapshot"] != str(self.snapshot.dir) or not slot.is_dir():
                raise VmError("the checkpoint was saved from another guest snapshot, or its folder is gone")
            # The guest has the job's environment mounted: the same disc goes in before its state.
            disc = None if env is None else image_of(env)
            if disc is not None and not disc.is_file():
                raise VmError(f"its environment image {disc} is gone")
            vm = Vm(self.spec, self.work_dir / "vms", None, disk=checkpoint / "disk.qcow2")
            try:
                vm.launch(self._key, self.snapshot.host_key, incoming=checkpoint / "memory.mig", env_image=disc)
                ssh_s = time.monotonic() - t0
                vm.agent = GuestAgent.reattach(vm.conn)
            except BaseException:
                vm.destroy()
                raise
        except Exception as exc:
            log.exception("task %s: its checkpoint could not be restored", meta["task_id"])
            _remove_tree(checkpoint)
            if slot.is_dir():
                os.rename(slot, task_dir)
            return sandbox_error(f"the checkpoint could not be restored: {exc}")
        _remove_tree(checkpoint)
        done["restore_s"] += time.monotonic() - t0
        done["resumes"] += 1
        log.info("restored task %s in %.2fs (%.2fs to SSH, %.2fs for the share to answer)", meta["task_id"],
                 time.monotonic() - t0, ssh_s, vm.agent.phases["share_s"])
        with self._lock:
            self._running.add(vm)
        try:
            with self.pauses.run(lambda: _qmp(vm, "stop"), lambda: _qmp(vm, "cont")) as pause:
                result = run_in_slot(vm, task_dir, meta["script"], limits, cancel, self.vm_cpus, pause, None,
                                     self._checkpoint,
                                     self._saver(meta["task_id"], meta["script"], limits, env),
                                     state=state, slot=slot)
        finally:
            with self._lock:
                self._running.discard(vm)
        if result.checkpoint is None:
            result.restore_s, result.resumes = done["restore_s"], done["resumes"]
        return result

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        with self._lock:
            running = list(self._running)
        for vm in running:  # their run() calls return with a sandbox error
            vm.destroy()
        if self.smb is not None:
            self.smb.close()
            self.smb = None


def _qmp(vm: Vm, command: str, **arguments) -> None:
    """One QMP command to the VM (`stop` freezes its vCPUs and its clock, `cont` lets them go on)."""
    qmp = Qmp(vm.qmp_socket, timeout=10)
    try:
        qmp.execute(command, **arguments)
    finally:
        qmp.close()


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
