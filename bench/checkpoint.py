"""Checkpointing a running VM task across a worker restart: what it costs, against its own run.

    python bench/checkpoint.py [--image-dir DIR] [--sizes 256,1024] [--cpu-s 20]

For each size, a task allocates that many MiB (non-zero pages: all of them travel) and then computes
for `--cpu-s` seconds of its own CPU time. The benchmark measures, with the worker's own code
(QemuSandbox.checkpoint_all / checkpoints / restore, as a SIGTERM and the next start use them):

- the task's own run time, uninterrupted (a fresh pool VM, run() to exit);
- suspend and resume (QMP `stop` / `cont`, as the worker does while its owner uses the machine);
- checkpoint: halfway through a second run, checkpoint_all() until run() returns the saved run
  (the guest agent freezes the task and detaches, QEMU migrates the VM to a file, its disk overlay
  is kept, QEMU exits);
- the worker's restart: the backend is closed, a new one starts on the same folder (smbd with the
  same password, the saved snapshot), and restore() brings the VM back until its agent answers
  (restore_s), then the task runs to its end: its output is checked against the uninterrupted run's,
  and its wall and CPU time (the segments summed) against the uninterrupted run's.
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
from runsurge_worker.sandbox.qemu import QemuSandbox, kvm_usable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from guest import image_dir
from quiet import OtherLoad

REPO = Path(__file__).resolve().parents[1]
VM_MEMORY_MB = 2048
TASK = """import hashlib, time
block = b"\\x01" * ({mib} << 20)  # every page written, none of them zero
open("allocated", "w").close()
while time.process_time() < {cpu_s}:
    pass
open("result.txt", "w").write(hashlib.sha256(block).hexdigest())
"""


def _until(ok, what: str, timeout_s: float = 600, every_s: float = 0.02):
    deadline = time.monotonic() + timeout_s
    while not (value := ok()):
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(every_s)
    return value


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


def _new_backend(work: Path, images: Path) -> QemuSandbox:
    backend = QemuSandbox(work / "worker", images, pool_size=1, vm_memory_mb=VM_MEMORY_MB)
    backend.start()
    return backend


def bench_size(mib: int, cpu_s: float, work: Path, images: Path) -> dict:
    row: dict = {"mib": mib}
    backend = _new_backend(work, images)
    try:
        backend.pool.wait_full(600)
        # 1. The task's own run time.
        task_dir, thread, out = _start(backend, mib, cpu_s)
        thread.join()
        plain = out["result"]
        assert plain.exit_code == 0, plain
        expected = (task_dir / "result.txt").read_text()
        shutil.rmtree(task_dir)
        row["run_s"], row["run_cpu_s"] = plain.wall_s, plain.cpu_s

        # 2. Suspend / resume, then 3. checkpoint halfway through a second run.
        backend.pool.wait_full(600)
        task_dir, thread, out = _start(backend, mib, cpu_s)
        # The task's folder is the VM's slot (".slot-<vm id>") while it runs.
        _until(lambda: any(backend.task_root.glob(".slot-*/allocated")), "allocation", 600)
        time.sleep(max(0.0, plain.wall_s / 2 - (time.monotonic() - out["started"])))
        t = time.monotonic()
        backend.suspend()
        row["suspend_s"] = time.monotonic() - t
        t = time.monotonic()
        backend.resume()
        row["resume_s"] = time.monotonic() - t
        row["ran_before_checkpoint_s"] = time.monotonic() - out["started"]
        t = time.monotonic()
        backend.checkpoint_all()
        thread.join()
        row["checkpoint_s"] = time.monotonic() - t
        saved = out["result"]
        assert saved.checkpoint is not None, saved
        row["state_mib"] = (saved.checkpoint / "memory.mig").stat().st_size / (1 << 20)
    finally:
        backend.close()

    # 4. The worker starts again on the same folder and resumes the run.
    t = time.monotonic()
    backend = _new_backend(work, images)
    row["worker_start_s"] = time.monotonic() - t
    try:
        (checkpoint,) = backend.checkpoints()
        result = backend.restore(checkpoint, threading.Event())
        assert result.exit_code == 0 and result.resumes == 1, result
        row["same_output"] = (task_dir / "result.txt").read_text() == expected
        row["restore_s"], row["resumed_wall_s"], row["resumed_cpu_s"] = result.restore_s, result.wall_s, result.cpu_s
    finally:
        backend.close()
        shutil.rmtree(task_dir, ignore_errors=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image-dir")
    p.add_argument("--sizes", default="256,1024", help="MiB of guest memory the task uses")
    p.add_argument("--cpu-s", type=float, default=20.0, help="CPU seconds the task computes after allocating")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rs-bench-ckpt-"))  # short: QEMU's socket paths must fit 108 bytes
    images = image_dir(args.image_dir)
    load = OtherLoad()
    rows = []
    try:
        for mib in (int(x) for x in args.sizes.split(",")):
            rows.append(bench_size(mib, args.cpu_s, work, images))
            print(rows[-1], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    kvm = "KVM" if kvm_usable() else "TCG"
    print(f"\nVM task checkpoint ({kvm}, {os.cpu_count()} CPUs, VM {VM_MEMORY_MB} MiB, task computes "
          f"{args.cpu_s:g} s of CPU after allocating)")
    print("| used MiB | task run (wall / CPU) | suspend | resume | checkpoint (state MiB) | worker start "
          "| restore | resumed run (wall / CPU, segments summed) | same output |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mib']} | {r['run_s']:.1f} / {r['run_cpu_s']:.1f} s | {r['suspend_s'] * 1000:.0f} ms "
              f"| {r['resume_s'] * 1000:.0f} ms | {r['checkpoint_s']:.2f} s ({r['state_mib']:.0f}) "
              f"| {r['worker_start_s']:.1f} s | {r['restore_s']:.2f} s "
              f"| {r['resumed_wall_s']:.1f} / {r['resumed_cpu_s']:.1f} s | {'yes' if r['same_output'] else 'NO'} |")
    print(load.stop())


if __name__ == "__main__":
    main()
