"""Run one task in a prepared guest, meter it from /proc and its cgroup, enforce the limits.

Shared by every VM backend: the guest has the task folder mounted at /mnt/runsurge and a guest
agent (agent.py) on an open SSH channel, with the task's interpreter already started as the
unprivileged 'runsurge' user inside the guest's task cgroup and waiting. Starting the task sets the
cgroup's limits (memory.max, pids.max, cpu.max) and lets that interpreter run the script.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..monitor import Meter, parse_stat_cpu_s
from .agent import GuestAgent, GuestLostError
from .base import MOVED, SAMPLE_INTERVAL_S, STDERR_NAME, STDOUT_NAME, Limits, RunResult, memory_failure
from .commands import MAX_TASK_PIDS
from .pause import RunPause

log = logging.getLogger(__name__)
DU_AFTER_S = 1.0

__all__ = ["CheckpointRequested", "GuestLostError", "run_in_guest", "run_in_slot", "sandbox_error"]


class CheckpointRequested(Exception):  # noqa: N818 - not an error: the run is to be saved, not ended
    """The worker stops and saves the VM: the guest agent has detached, the task runs on in the
    guest; `state` is what the resumed run needs of this segment's metering (JSON)."""

    def __init__(self, state: dict):
        super().__init__("checkpoint requested")
        self.state = state


def sandbox_error(message: str) -> RunResult:
    """The host could not run the task (no VM, VM lost...): the master re-runs it elsewhere."""
    return RunResult(None, 0.0, 0.0, 0, 0, failure=f"sandbox error: {message}", infrastructure_error=True)


def run_in_slot(vm, task_dir: Path, script: str, limits: Limits, cancel: threading.Event,
                vm_cpus: int, pause: RunPause | None = None, env: dict | None = None,
                checkpoint: threading.Event | None = None, save=None, state: dict | None = None,
                slot: Path | None = None) -> RunResult:
    """Run the task in a pooled VM, then destroy the VM. The VM has its (empty, never used) slot
    folder mounted: the task folder takes its place, so the task starts without a mount, and gets
    its own name back once the VM is gone. Shared by every VM backend.
    `checkpoint` set: the run is saved instead, by `save(vm, slot, state) -> RunResult`, and the
    folder keeps the slot's name (the saved guest's mount points at it). A resumed run passes its
    `state` and its `slot` (the folder already in place)."""
    if slot is None:
        slot, vm.slot = vm.slot, None  # from now on the folder is the task's, not the VM's
        os.rmdir(slot)
        os.rename(task_dir, slot)
    MOVED[task_dir] = slot  # the task's live log is read there (tasks.TaskRunner.read_log)
    saved = None
    try:
        return run_in_guest(vm.agent, slot, script, limits, cancel, vm_cpus, pause, env, checkpoint, state)
    except CheckpointRequested as req:
        try:
            saved = save(vm, slot, req.state)
            return saved
        except Exception as exc:
            log.exception("task %s: the checkpoint failed", task_dir.name)
            return sandbox_error(f"the checkpoint failed: {exc}")
    except GuestLostError as exc:
        log.error("task %s: %s (vm %s)", task_dir.name, exc, "alive" if vm.alive() else "gone")
        return sandbox_error(str(exc))
    finally:
        vm.destroy()
        MOVED.pop(task_dir, None)
        if saved is None:
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
    cgroup_peak: int  # memory.peak of the task's cgroup


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


def _probe(agent: GuestAgent, du: bool) -> _Probe:
    r = agent.call("probe", du=du)
    code, wall = r["exit"] if r["exit"] else (None, None)
    return _Probe(r["status"], r["stat"], code, wall, r["oom"], r["cpu_us"] / 1e6, r["du"], r.get("peak", 0))


def run_in_guest(agent: GuestAgent, host_dir: Path, script: str, limits: Limits,
                 cancel: threading.Event, vm_cpus: int, pause: RunPause | None = None,
                 env: dict | None = None, checkpoint: threading.Event | None = None,
                 state: dict | None = None) -> RunResult:
    """Start `script` in the guest, poll until it ends or a limit ends it. Never kills the VM:
    the caller destroys it afterwards whatever happened. Raises GuestLostError. `pause`: the run's
    suspension switch (pause.py); its time suspended counts for neither the wall time nor the timeout,
    and no call goes to the agent while the VM is stopped. `env`: the job's packages, a disc the
    guest mounts before the script starts (guestagent's go). `checkpoint` set while the task runs:
    the agent detaches and CheckpointRequested is raised. `state`: a resumed run's metering so far
    (the task already started in this guest, before its checkpoint)."""
    pause = pause or RunPause(lambda: None, lambda: None)
    started = time.monotonic()
    meter = Meter()
    if state is None:
        quota = None if limits.cpus >= vm_cpus else max(1, limits.cpus) * 100_000
        with pause.awake(cancel):
            go = agent.call("go", script=script, stdout=STDOUT_NAME, stderr=STDERR_NAME,
                            memory=limits.memory_bytes, pids=MAX_TASK_PIDS, quota=quota, time=time.time(),
                            env=env)
        if env and go.get("env_premounted"):
            log.info("environment was mounted in the guest ahead of the task")
        elif env:
            log.info("environment mounted in the guest in %.0f ms", go["env_mount_s"] * 1000)
        # The interpreter started before the task: its start-up CPU is not the task's.
        state = {"base_cg_s": go["cpu_us"] / 1e6,
                 "base_stat_s": parse_stat_cpu_s(go["stat"]) if go["stat"] else 0.0, "active_s": 0.0}
    else:  # the segments before: their active time, memory samples and usage series go on adding up
        meter.samples, meter.rss_total, meter.rss_peak = state["samples"], state["rss_total"], state["rss_peak"]
        meter.series, meter._stride = [tuple(p) for p in state["series"]], state["stride"]
        meter._began = time.monotonic() - state["active_s"]
    base_cg_s, base_stat_s, before_s = state["base_cg_s"], state["base_stat_s"], state["active_s"]

    def active_s() -> float:
        return before_s + pause.active_s()

    failure = None
    with pause.awake(cancel):
        probe = _probe(agent, du=False)
    while True:
        if probe.status:
            meter.add(probe.status, probe.stat or None)
        if probe.exit_code is not None:
            break
        # Sample densely at first (each probe is one round trip) so short scripts are metered too.
        if cancel.wait(min(SAMPLE_INTERVAL_S, 0.05 * 2 ** meter.samples)):
            failure = "cancelled"
            break
        if checkpoint is not None and checkpoint.is_set():
            with pause.awake(cancel):
                agent.call("detach", timeout=60)
            # cpu_s and peak: this run's so far, as of the last probe (the checkpoint's report: what
            # the master bills if the task is cancelled while saved).
            raise CheckpointRequested({**state, "active_s": active_s(), "samples": meter.samples,
                                       "rss_total": meter.rss_total, "rss_peak": meter.rss_peak,
                                       "series": meter.series, "stride": meter._stride,
                                       "cpu_s": max(meter.cpu_s - base_stat_s, probe.cgroup_cpu_s - base_cg_s, 0.0),
                                       "peak": max(meter.rss_peak, probe.cgroup_peak)})
        if active_s() > limits.timeout_s:
            failure = f"timeout after {limits.timeout_s:g}s"
            break
        if max(probe.output_bytes, dir_bytes(host_dir)) > limits.output_bytes:
            failure = f"output larger than {limits.output_bytes} bytes"
            break
        # The guest's view of the output size (what its cifs cache has not sent yet) matters once
        # the task has had time to write; before that the walk would only slow its start.
        with pause.awake(cancel) as awake:
            if not awake:  # cancelled while suspended
                failure = "cancelled"
                break
            probe = _probe(agent, du=time.monotonic() - started > DU_AFTER_S)

    # Stop the task (every process of its cgroup: a child that outlived the script would go on
    # writing while its outputs are read), then push what it wrote through the share: the guest's
    # cifs client holds written data in its page cache until close or sync, and the VM dies next.
    final = {}
    try:
        if not pause.paused:  # a stopped guest cannot answer; the VM is destroyed anyway
            final = agent.call("kill", timeout=15)
    except GuestLostError:  # the VM is destroyed anyway
        if failure is None:
            raise
    exit_code = probe.exit_code if failure is None else None
    if failure is None and probe.oom_kills:
        failure = memory_failure(limits.memory_bytes)
        exit_code = None
    if failure is None and dir_bytes(host_dir) > limits.output_bytes:
        failure = f"output larger than {limits.output_bytes} bytes"
    # The guest's clock stops with the VM; the host's count of active time is the bound either way.
    wall = active_s() if probe.guest_wall_s is None else min(probe.guest_wall_s, active_s())
    # The whole cgroup's CPU and peak memory: children the script started count too.
    cgroup_cpu_s = max(probe.cgroup_cpu_s, final.get("cpu_us", 0) / 1e6)
    cpu = max(meter.cpu_s - base_stat_s, cgroup_cpu_s - base_cg_s, 0.0)
    peak = max(meter.rss_peak, probe.cgroup_peak, final.get("peak", 0))
    return RunResult(
        exit_code=exit_code, wall_s=wall, cpu_s=cpu,
        mem_avg_bytes=min(meter.avg, peak), mem_peak_bytes=peak, failure=failure,
        usage=[(t, max(c - base_stat_s, 0.0), rss) for t, c, rss in meter.series])
