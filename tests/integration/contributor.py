"""Helpers for the contributor-side tests: a CPU-bound task, a busy loop of "the owner", finding a
task's process from the host and whether the kernel has it stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

OWNER_UID = 2_099_000  # the machine's owner in these tests: only their processes count as busy
# Stops after `cpu_s` of its own CPU time (not wall time): a suspension delays it, never shortens it.
CPU_TASK = """import time
n = 0
while time.process_time() < {cpu_s}:
    n += 1
open("result.txt", "w").write("done after %.1f s of CPU" % {cpu_s})
"""


def cpu_job(folder: Path, name: str, cpu_s: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(CPU_TASK.format(cpu_s=cpu_s))
    (folder / "job.toml").write_text(f'[[tasks]]\nname = "{name}"\nscript = "{name}.py"\noutputs = ["result.txt"]\n')
    return folder / "job.toml"


def owner_busy_loop(processes: int = 2) -> list[subprocess.Popen]:
    """The owner using the machine: busy loops as OWNER_UID."""
    return [subprocess.Popen(["setpriv", f"--reuid={OWNER_UID}", f"--regid={OWNER_UID}", "--clear-groups",
                              sys.executable, "-c", "while True: pass"], start_new_session=True)
            for _ in range(processes)]


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
        p.wait()


def pids_running(script: str) -> list[int]:
    """Processes whose command line runs `script` (the task's python3 in its sandbox)."""
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            # a warm interpreter (`python3 -c LAUNCHER`) is known by the folder it runs the task in
            if b"python3" in argv[0] and (script.encode() in argv[1:3]
                                          or os.path.exists(f"/proc/{pid}/cwd/{script}")):
                out.append(int(pid))
    return out


def state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def until(ok, what: str, timeout_s: float = 60.0, every_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while True:
        value = ok()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every_s)
