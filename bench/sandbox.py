"""Sandbox start-up and I/O figures: AssignTask -> user code running, per-VM memory, share speed.

    python bench/sandbox.py [--image-dir DIR] [--runs N] [--warm-runs N] [--skip-cold]

"User code running" is measured on the host, clock-independent: the task's first statement
creates a file in its folder, and the host polls the folder (through the share) for it. The time
starts when `backend.run` is called, which is what the worker's task processor does on AssignTask
once the inputs are in place. Modes: cold boot (a VM booted for the task), snapshot restore (pool
empty: a VM restored for the task), warm pool (a restored VM waiting: the headline) and bwrap
(the peer, in the same run). For the warm pool it also breaks the time down: the `go` round trip
to the guest agent, the script's first line by the guest's clock (set from the host's at `go`, so
it lags the host by the one-way latency, a few ms), and the host seeing the file.
Needs root, QEMU, smbd and the guest image (built if missing).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from runsurge_worker.sandbox import agent as guest_agent
from runsurge_worker.sandbox.base import Limits
from runsurge_worker.sandbox.bwrap import BwrapSandbox
from runsurge_worker.sandbox.qemu import QemuSandbox
from runsurge_worker.sandbox.vm import Vm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from guest import image_dir
from quiet import OtherLoad

REPO = Path(__file__).resolve().parents[1]
# The first statement leaves a file the host can see, holding the guest's clock at that moment.
MARK = ("import os, time; fd = os.open('started', os.O_CREAT | os.O_WRONLY); "
        "os.write(fd, repr(time.time()).encode()); os.close(fd)\n")
LIMITS = Limits(memory_bytes=256 << 20, timeout_s=120)
IO_MB = 100
TARGET_S = 0.300




class _GoTimer:
    """Wraps the agent's calls to note when the task's `go` was sent and answered (host clock)."""

    def __init__(self):
        self.sent = self.answered = None
        self._call = guest_agent.GuestAgent.call
        timer = self

        def call(agent, op, **kw):
            if op == "go":
                timer.sent = time.time()
            reply = timer._call(agent, op, **kw)
            if op == "go":
                timer.answered = time.time()
            return reply

        guest_agent.GuestAgent.call = call

    def close(self):
        guest_agent.GuestAgent.call = self._call


def time_to_user_code(backend, body: str = "", go: _GoTimer | None = None) -> dict[str, float]:
    """Seconds from run() to: the script's first statement seen by the host ("user"), the whole
    run() ("total"), and with `go`: the go sent/answered and the first line by the guest's clock."""
    task_dir = backend.task_root / uuid.uuid4().hex
    task_dir.mkdir(parents=True)
    (task_dir / "main.py").write_text(MARK + body)
    seen: list[tuple[float, Path]] = []
    done = threading.Event()

    def watch():
        # While the task runs its folder lives under the VM's slot name: look for it anywhere.
        while not done.is_set():
            found = list(backend.task_root.glob("*/started"))
            if found:
                seen.append((time.time(), found[0]))
                return
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    started = time.time()
    watcher.start()
    result = backend.run(task_dir, "main.py", LIMITS, threading.Event())
    total = time.time() - started
    done.set()
    watcher.join()
    guest_clock = (task_dir / "started").read_text() if (task_dir / "started").exists() else ""
    shutil.rmtree(task_dir)
    if result.exit_code != 0 or not seen:
        raise RuntimeError(f"benchmark task failed: {result}")
    out = {"user": seen[0][0] - started, "total": total}
    if go is not None and go.sent and guest_clock:
        out.update(go_sent=go.sent - started, go_answered=go.answered - started,
                   first_line=float(guest_clock) - started)
    return out


def _ms(values: list[float]) -> str:
    return (f"median {statistics.median(values) * 1000:7.0f} ms  "
            f"(min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f}, n={len(values)})")


def _loadavg() -> str:
    return open("/proc/loadavg").read().split(" ", 3)[0]


def bench_starts(image_dir: Path, runs: int, warm_runs: int, skip_cold: bool) -> None:
    load = OtherLoad()
    print(f"load average (1 min) at the start: {_loadavg()}")
    print("AssignTask -> user code running")
    work = Path(tempfile.mkdtemp(prefix="rs-bench-"))
    work.chmod(0o711)  # a root worker's bwrap tasks run as their own uids and need to reach it
    try:
        if not skip_cold:
            cold = QemuSandbox(work / "cold", image_dir, cold=True)
            cold.start()
            try:
                print(f"  cold boot          {_ms([time_to_user_code(cold)['user']])}")
            finally:
                cold.close()

        started = time.monotonic()
        restore = QemuSandbox(work / "vm", image_dir, pool_size=0)
        restore.start()
        print(f"  (worker start incl. snapshot: {time.monotonic() - started:.1f} s)")
        try:
            times = [time_to_user_code(restore)["user"] for _ in range(runs)]
            print(f"  snapshot restore   {_ms(times)}")
        finally:
            restore.close()

        pooled = QemuSandbox(work / "vm", image_dir, pool_size=1)  # reuses the snapshot
        pooled.start()
        go = _GoTimer()
        try:
            rows, rss, ready, prepared = [], [], [], []
            for _ in range(warm_runs):
                pooled.pool.wait_full(300)
                time.sleep(0.5)  # let the refill's last guest work settle
                vm = pooled.pool._idle[0]
                rss.append(vm.rss_bytes)
                ready.append(vm.ready_s)
                prepared.append(vm.prepared_s)
                rows.append(time_to_user_code(pooled, go=go))
            warm = [r["user"] for r in rows]
            print(f"  warm pool          {_ms(warm)}")
            for key, what in (("go_sent", "go sent to the guest agent"),
                              ("go_answered", "go answered (one round trip)"),
                              ("first_line", "first line runs (guest clock)"),
                              ("user", "host sees its file")):
                print(f"    {what:34s} {_ms([r[key] for r in rows])}")
            print(f"    {'whole run() of this no-op task':34s} {_ms([r['total'] for r in rows])}")
            print(f"  {'restore -> SSH ready':38s} {_ms(ready)}")
            print(f"  {'restore -> ready in the pool (agent)':38s} {_ms(prepared)}")
            print(f"  idle pool VM host RSS: {statistics.median(rss) / 2**20:.0f} MiB "
                  f"(VM size {pooled.vm_memory_mb} MiB)")
            bench_io(pooled)
        finally:
            go.close()
            pooled.close()

        bw = BwrapSandbox(work / "bwrap")
        bw.start()
        peer = [time_to_user_code(bw)["user"] for _ in range(warm_runs)]
        print(f"  bwrap              {_ms(peer)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    head = statistics.median(warm)
    print(f"\nHEADLINE: AssignTask -> user code running in a never-used warm-pool VM: "
          f"{head * 1000:.0f} ms median (target < {TARGET_S * 1000:.0f} ms: "
          f"{'met' if head < TARGET_S else 'NOT met'}); peer bwrap: {statistics.median(peer) * 1000:.0f} ms")
    print(f"load average (1 min) at the end: {_loadavg()}; {load.stop()}")


IO_FUNCS = f"""
import os, time
def write(path):
    block = os.urandom(1 << 20)
    t = time.monotonic()
    with open(path, 'wb') as f:
        for _ in range({IO_MB}):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    return {IO_MB} / (time.monotonic() - t)
def read(path):
    t = time.monotonic()
    with open(path, 'rb') as f:
        while f.read(1 << 20):
            pass
    return {IO_MB} / (time.monotonic() - t)
"""


def bench_io(backend: QemuSandbox) -> None:
    """Read and write IO_MB through the share and on the guest's own disk, from inside a VM.

    Reads are of data not in the guest's page cache: the share file is written by the host, the
    disk file is dropped from the cache with posix_fadvise(DONTNEED) after its fsync."""
    script = IO_FUNCS + """
print('smb %.0f %.0f' % (write('out.bin'), read('in.bin')))
w = write('/home/runsurge/io.bin')
print('disk %.0f %.0f' % (w, read('/home/runsurge/io.bin')))
os.unlink('out.bin')
"""
    task_dir = backend.task_root / uuid.uuid4().hex
    task_dir.mkdir()
    (task_dir / "main.py").write_text(script)
    with open(task_dir / "in.bin", "wb") as f:
        for _ in range(IO_MB):
            f.write(os.urandom(1 << 20))
    result = backend.run(task_dir, "main.py", Limits(memory_bytes=512 << 20, timeout_s=600),
                         threading.Event())
    lines = (task_dir / "log.out").read_text().split("\n")
    shutil.rmtree(task_dir)
    if result.exit_code != 0:
        raise RuntimeError(f"I/O benchmark failed: {result}")
    print(f"Throughput, {IO_MB} MB file, MB/s (write / read)")
    for line in lines:
        if line:
            name, w, r = line.split()
            where = "guest over SMB (cifs)" if name == "smb" else "guest's own disk (virtio)"
            print(f"  {where:40s} {w:>6s} / {r:>6s}")
    print(f"  {'guest over virtio-9p (measurement only)':40s} {_ninep_io(backend)}")
    host_w, host_r = _host_disk_io(backend.work_dir)
    print(f"  {'host disk':40s} {host_w:6.0f} / {host_r:6.0f}")


class _With9p:
    """The backend's QemuSpec plus a virtio-9p export of `path` (tag rs9p): benchmark only."""

    def __init__(self, spec, path: Path):
        self.spec, self.path = spec, path

    def argv(self, *args, **kw) -> list[str]:
        return self.spec.argv(*args, **kw) + [
            "-virtfs", f"local,path={self.path},mount_tag=rs9p,security_model=none,id=rs9p"]


def _ninep_io(backend: QemuSandbox) -> str:
    """The same write / read as the SMB row, over virtio-9p, in a VM cold-booted for it (a
    restored snapshot cannot gain a device). 9p is not a transport tasks get: SMB is."""
    share = Path(tempfile.mkdtemp(dir=backend.work_dir, prefix="9p-"))
    subprocess.run(["dd", "if=/dev/urandom", f"of={share / 'in.bin'}", "bs=1M",
                    f"count={IO_MB}", "status=none"], check=True)
    vm = Vm(_With9p(backend.spec, share), backend.work_dir / "vms-9p", backend._base_disk)
    try:
        vm.launch(backend._key, host_key=None)
        mod = vm.conn.run("modprobe -a 9pnet_virtio 9p", hide=True, warn=True, in_stream=False)
        if not mod.ok:
            return f"not possible: the guest kernel lacks 9p ({mod.stderr.strip()})"
        script = IO_FUNCS + "print('%6.0f / %6.0f' % (write('out.bin'), read('in.bin')))"
        out = vm.conn.run(
            "mkdir -p /mnt/x && mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 rs9p "
            "/mnt/x && cd /mnt/x && echo 3 > /proc/sys/vm/drop_caches && "
            f"python3 -c {shlex.quote(script)}", hide=True, warn=True, in_stream=False)
        return out.stdout.rstrip() if out.ok else f"failed: {out.stderr.strip()[-200:]}"
    finally:
        vm.destroy()
        shutil.rmtree(share, ignore_errors=True)


def _host_disk_io(directory: Path) -> tuple[float, float]:
    path = directory / "io.bin"
    funcs: dict = {}
    exec(IO_FUNCS, funcs)  # our own constant: the very write the guests time
    w = funcs["write"](str(path))
    t = time.monotonic()  # O_DIRECT: from the disk, not the page cache
    subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=1M", "iflag=direct",
                    "status=none"], check=True)
    r = IO_MB / (time.monotonic() - t)
    path.unlink()
    return w, r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-dir")
    parser.add_argument("--runs", type=int, default=5, help="snapshot restores")
    parser.add_argument("--warm-runs", type=int, default=11, help="warm-pool and bwrap starts")
    parser.add_argument("--skip-cold", action="store_true", help="skip the ~40 s cold boot")
    args = parser.parse_args()
    bench_starts(image_dir(args.image_dir), args.runs, args.warm_runs, args.skip_cold)


if __name__ == "__main__":
    main()
