"""Run one task in a prepared guest over SSH, meter it from /proc, enforce the limits.

Shared by every VM backend: the guest has the task folder mounted at /mnt/runsurge and an open
Fabric connection as root; the script itself runs as the unprivileged 'runsurge' user inside the
guest's task cgroup (memory.max, pids.max, cpu.max), started by /usr/local/sbin/runsurge-task.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from fabric import Connection

from ..monitor import Meter
from .base import SAMPLE_INTERVAL_S, Limits, RunResult
from .commands import guest_probe_cmd, guest_start_cmd

log = logging.getLogger(__name__)
SEP = "@@RS@@"
TASK_CGROUP = "/sys/fs/cgroup/runsurge-task"
SSH_CMD_TIMEOUT_S = 30


class GuestLostError(RuntimeError):
    """The guest stopped answering: an infrastructure failure, not the task's."""


def sandbox_error(message: str) -> RunResult:
    """The host could not run the task (no VM, VM lost...): the master re-runs it elsewhere."""
    return RunResult(None, 0.0, 0.0, 0, 0, failure=f"sandbox error: {message}", infrastructure_error=True)


def run_in_slot(vm, task_dir: Path, script: str, limits: Limits, cancel: threading.Event,  # noqa: ANN001
                vm_cpus: int) -> RunResult:
    """Run the task in a pooled VM, then destroy the VM. The VM has its (empty, never used) slot
    folder mounted: the task folder takes its place, so the task starts without a mount, and gets
    its own name back once the VM is gone. Shared by every VM backend."""
    slot, vm.slot = vm.slot, None  # from now on the folder is the task's, not the VM's
    os.rmdir(slot)
    os.rename(task_dir, slot)
    try:
        return run_in_guest(vm.conn, slot, script, limits, cancel, vm_cpus)
    except GuestLostError as exc:
        log.error("task %s: %s (vm %s)", task_dir.name, exc, "alive" if vm.alive() else "gone")
        return sandbox_error(str(exc))
    finally:
        vm.destroy()
        os.rename(slot, task_dir)


@dataclass
class _Probe:
    status: str
    stat: str
    exit_code: int | None
    guest_wall_s: float | None
    oom_kills: int
    cgroup_cpu_s: float
    output_bytes: int


def dir_bytes(path: Path) -> int:
    """Bytes used under `path` (regular files, not following symlinks)."""
    total = 0
    stack = [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                else:
                    total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                pass
    return total


def _ssh(conn: Connection, command: str) -> str:
    try:
        result = conn.run(command, hide=True, warn=True, in_stream=False,
                          timeout=SSH_CMD_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - paramiko/invoke raise many kinds
        raise GuestLostError(f"guest SSH failed: {exc!r}") from exc
    return result.stdout


def _probe(conn: Connection, pid: int) -> _Probe:
    parts = _ssh(conn, guest_probe_cmd(pid, SEP)).split(SEP) + [""] * 5
    status, stat, exit_text, cgroup, du = parts[:5]
    exit_code = wall = None
    parts = exit_text.split()
    if parts:  # "STATUS START_UPTIME END_UPTIME", written by runsurge-task after wait
        exit_code = int(parts[0])
        wall = float(parts[2]) - float(parts[1])
    oom = cpu_us = 0
    for line in cgroup.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            oom = int(value)
        elif key == "usage_usec":
            cpu_us = int(value)
    guest_bytes = int(du.split()[0]) if du.split() and du.split()[0].isdigit() else 0
    return _Probe(status.strip(), stat.strip(), exit_code, wall, oom, cpu_us / 1e6, guest_bytes)


def run_in_guest(conn: Connection, host_dir: Path, script: str, limits: Limits,
                 cancel: threading.Event, vm_cpus: int) -> RunResult:
    """Start `script` in the guest, poll until it ends or a limit ends it. Never kills the VM:
    the caller destroys it afterwards whatever happened. Raises GuestLostError."""
    started = time.monotonic()
    quota = None if limits.cpus >= vm_cpus else max(1, limits.cpus) * 100_000
    pid_text = _ssh(conn, guest_start_cmd(script, limits.memory_bytes, quota, time.time()))
    try:
        pid = int(pid_text.strip())
    except ValueError as exc:
        raise GuestLostError(f"task did not start in the guest: {pid_text!r}") from exc

    meter = Meter()
    failure = None
    probe = _probe(conn, pid)
    while True:
        if probe.status:
            meter.add(probe.status, probe.stat or None)
        if probe.exit_code is not None:
            break
        # Sample densely at first (each probe is one SSH round trip) so short scripts are metered too.
        if cancel.wait(min(SAMPLE_INTERVAL_S, 0.05 * 2 ** meter.samples)):
            failure = "cancelled"
            break
        elapsed = time.monotonic() - started
        if elapsed > limits.timeout_s:
            failure = f"timeout after {limits.timeout_s:g}s"
            break
        if max(probe.output_bytes, dir_bytes(host_dir)) > limits.output_bytes:
            failure = f"output larger than {limits.output_bytes} bytes"
            break
        probe = _probe(conn, pid)

    if failure is not None:
        # Stop the task, then push what it wrote through the share: the guest's cifs client
        # holds written data in its page cache until close or sync, and the VM dies next.
        try:
            conn.run(f"echo 1 > {TASK_CGROUP}/cgroup.kill; sync", hide=True, warn=True,
                     in_stream=False, timeout=15)
        except Exception:  # noqa: BLE001 - the VM is destroyed anyway
            pass
    exit_code = probe.exit_code if failure is None else None
    if failure is None and probe.oom_kills:
        failure = f"memory limit exceeded ({limits.memory_bytes} bytes)"
        exit_code = None
    if failure is None and dir_bytes(host_dir) > limits.output_bytes:
        failure = f"output larger than {limits.output_bytes} bytes"
    wall = probe.guest_wall_s if probe.guest_wall_s is not None else time.monotonic() - started
    return RunResult(
        exit_code=exit_code, wall_s=wall, cpu_s=max(meter.cpu_s, probe.cgroup_cpu_s),
        mem_avg_bytes=meter.avg, mem_peak_bytes=meter.rss_peak, failure=failure)
