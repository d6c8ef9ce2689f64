"""What saving a running VM task costs, against running it again: the figures behind checkpointing.

    python bench/checkpoint.py [--image-dir DIR] [--sizes 256,1024] [--cpu-s 20]

For each size, a task allocates that many MiB (non-zero pages: all of them travel) and then computes
for `--cpu-s` seconds of its own CPU time. The benchmark measures:

- the task's own run time, uninterrupted (a fresh pool VM, AssignTask to exit);
- suspend and resume (QMP `stop` / `cont`, as the worker does while its owner uses the machine);
- checkpoint: halfway through a second run, QEMU migrates the VM's state to a file (QMP `migrate`,
  exec:cat), the VM's disk overlay is copied beside it, and the VM is destroyed;
- resume from it: a new QEMU restores that state onto the copied disk until the guest answers SSH,
  and the task's process is checked to be alive and still gaining CPU time in the restored guest;

beside what a restart would lose (the run time the task had when it was checkpointed). This is the
VM-state part of a checkpoint; the worker does not yet checkpoint across its own restart (its task's
share connection and agent channel would have to be re-established: see README "Stopping").
Needs root, QEMU, smbd and the guest image (built if missing).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from runsurge_worker.sandbox.base import Limits
from runsurge_worker.sandbox.qemu import QemuSandbox
from runsurge_worker.sandbox.qmp import Qmp
from runsurge_worker.sandbox.vm import Vm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from guest import image_dir
from quiet import OtherLoad

REPO = Path(__file__).resolve().parents[1]
VM_MEMORY_MB = 2048
TASK = """import os, time
block = b"\\x01" * ({mib} << 20)  # every page written, none of them zero
open("allocated", "w").close()
n = 0
while time.process_time() < {cpu_s}:
    n += 1
open("result.txt", "w").write(str(len(block)))
"""




def _until(ok, what: str, timeout_s: float = 600, every_s: float = 0.02):
    deadline = time.monotonic() + timeout_s
    while not (value := ok()):
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(every_s)
    return value


def _qmp(vm: Vm, command: str, **args) -> object:
    q = Qmp(vm.qmp_socket, timeout=60)
    try:
        return q.execute(command, **args)
    finally:
        q.close()


def _start(backend: QemuSandbox, mib: int, cpu_s: float) -> tuple[Path, threading.Thread, dict]:
    task_dir = backend.task_root / uuid.uuid4().hex
    task_dir.mkdir()
    (task_dir / "main.py").write_text(TASK.format(mib=mib, cpu_s=cpu_s))
    out: dict = {}

    def run() -> None:
        out["started"] = time.monotonic()
        out["result"] = backend.run(task_dir, "main.py", Limits(memory_bytes=(mib + 256) << 20, timeout_s=3600),
                                    threading.Event())
        out["ended"] = time.monotonic()

    thread = threading.Thread(target=run)
    thread.start()
    return task_dir, thread, out


def _task_cpu_ticks(vm: Vm, pid: int) -> int:
    fields = vm.conn.run(f"cat /proc/{pid}/stat", hide=True, in_stream=False).stdout.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def bench_size(backend: QemuSandbox, mib: int, cpu_s: float, work: Path) -> dict:
    row: dict = {"mib": mib}
    backend.pool.wait_full(600)
    # 1. The task's own run time.
    _, thread, out = _start(backend, mib, cpu_s)
    thread.join()
    assert out["result"].exit_code == 0, out["result"]
    row["run_s"] = out["ended"] - out["started"]

    # 2. Suspend / resume, then 3. checkpoint halfway through a second run.
    backend.pool.wait_full(600)
    task_dir, thread, out = _start(backend, mib, cpu_s)
    [vm] = _until(lambda: list(backend._running), "the task's VM")
    # The task's folder is the VM's slot (".slot-<vm id>") while it runs.
    _until(lambda: any(backend.task_root.glob(".slot-*/allocated")), "allocation", 600)
    pid = vm.agent.pid
    time.sleep(max(0.0, row["run_s"] / 2 - (time.monotonic() - out["started"])))
    t = time.monotonic()
    backend.suspend()
    row["suspend_s"] = time.monotonic() - t
    t = time.monotonic()
    backend.resume()
    row["resume_s"] = time.monotonic() - t
    row["ran_before_checkpoint_s"] = time.monotonic() - out["started"]
    ckpt = work / f"ckpt-{mib}"
    ckpt.mkdir()
    t = time.monotonic()
    _qmp(vm, "migrate-set-parameters", **{"max-bandwidth": 16 << 30})
    _qmp(vm, "migrate", uri=f"exec:cat > {ckpt / 'state.mig'}")
    while (status := _qmp(vm, "query-migrate").get("status")) not in ("completed", "failed", "cancelled"):
        time.sleep(0.02)
    assert status == "completed", status
    shutil.copyfile(vm.disk, ckpt / "disk.qcow2")  # block devices are flushed when a migration completes
    row["checkpoint_s"] = time.monotonic() - t
    row["state_mib"] = (ckpt / "state.mig").stat().st_size / (1 << 20)
    vm.destroy()  # the worker is gone; its run returns a sandbox error
    thread.join()

    # 4. Resume from the checkpoint in a new QEMU.
    t = time.monotonic()
    restored = Vm(backend.spec, work / "restored", ckpt / "disk.qcow2")
    try:
        restored.launch(backend._key, backend.snapshot.host_key, incoming=ckpt / "state.mig")
        row["restore_s"] = time.monotonic() - t
        before = _task_cpu_ticks(restored, pid)
        time.sleep(1.0)
        row["task_alive_after_restore"] = _task_cpu_ticks(restored, pid) > before
    finally:
        restored.destroy()
        shutil.rmtree(ckpt, ignore_errors=True)
        shutil.rmtree(task_dir, ignore_errors=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image-dir")
    p.add_argument("--sizes", default="256,1024", help="MiB of guest memory the task uses")
    p.add_argument("--cpu-s", type=float, default=20.0, help="CPU seconds the task computes after allocating")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="runsurge-bench-ckpt-"))
    load = OtherLoad()
    backend = QemuSandbox(work / "worker", image_dir(args.image_dir), pool_size=1, vm_memory_mb=VM_MEMORY_MB)
    backend.start()
    rows = []
    try:
        for mib in (int(x) for x in args.sizes.split(",")):
            rows.append(bench_size(backend, mib, args.cpu_s, work))
            print(rows[-1], flush=True)
    finally:
        backend.close()
        shutil.rmtree(work, ignore_errors=True)
    kvm = "KVM" if backend.kvm else "TCG"
    print(f"\nVM task checkpoint ({kvm}, {os.cpu_count()} CPUs, VM {VM_MEMORY_MB} MiB, task computes "
          f"{args.cpu_s:g} s of CPU after allocating)")
    print("| used MiB | task run | suspend | resume | checkpoint (state MiB) | restore to SSH | task alive after "
          "| a restart would lose |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mib']} | {r['run_s']:.1f} s | {r['suspend_s'] * 1000:.0f} ms | {r['resume_s'] * 1000:.0f} ms "
              f"| {r['checkpoint_s']:.2f} s ({r['state_mib']:.0f}) | {r['restore_s']:.2f} s "
              f"| {'yes' if r['task_alive_after_restore'] else 'NO'} | {r['ran_before_checkpoint_s']:.1f} s |")
    print(load.stop())


if __name__ == "__main__":
    main()
