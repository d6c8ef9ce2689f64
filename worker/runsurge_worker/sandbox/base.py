"""The one interface every sandbox backend (process, bwrap, qemu, virtualbox) implements.

The worker's task processor prepares a task folder on the host (script + inputs), then calls
`backend.run(...)`. The backend runs `python3 <script>` with the folder as working directory,
writes stdout to `log.out` and stderr to `error.err` inside it, samples memory/CPU from
/proc/PID/status and /proc/PID/stat every `SAMPLE_INTERVAL_S`, enforces the limits and returns a
RunResult. Outputs are whatever the script leaves in the folder; the task processor collects them.
"""

from __future__ import annotations

import shutil
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from .pause import PauseBoard

SAMPLE_INTERVAL_S = 0.5
# task folder → where it is while its task runs (a VM backend renames it to its VM's slot folder:
# guestrun.run_in_slot); live log reads look there
MOVED: dict[Path, Path] = {}
STDOUT_NAME = "log.out"
STDERR_NAME = "error.err"


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    cpus: int = 1
    timeout_s: float = 3600.0
    output_bytes: int = 1 << 30


def memory_failure(limit_bytes: int) -> str:
    """The one text for a run killed at its memory limit; the master recognises it by its start
    ("memory limit") and may retry the task with more memory (lifecycle.retry_with_more_memory)."""
    return f"memory limit exceeded ({limit_bytes / (1 << 20):g} MiB)"


@dataclass
class RunResult:
    exit_code: int | None  # None when the process was killed by us (timeout, cancel, limit)
    wall_s: float
    cpu_s: float
    mem_avg_bytes: int
    mem_peak_bytes: int
    # Set when the sandbox, not the script, ended the run: "timeout after 5s", "cancelled",
    # "memory limit", "output larger than ...", "sandbox error: ...". None for a normal exit.
    failure: str | None = None
    # True when the failure is the host's fault (VM would not start...), so the master may retry
    # the task elsewhere instead of failing the job.
    infrastructure_error: bool = False
    # Set when the run was not ended but saved (checkpoint_all): the folder to resume it from.
    checkpoint: Path | None = None
    restore_s: float = 0.0  # a resumed run: seconds its VM took to come back, summed (not in wall_s)
    resumes: int = 0  # how many times it came back from a checkpoint
    # (seconds since the run began, CPU seconds so far, rss bytes): the meter's series (monitor.py)
    usage: list[tuple[float, float, int]] = field(default_factory=list)


class SandboxBackend(ABC):
    """A backend is created once per worker; `run` is called from many task threads at once.
    Each run registers on `pauses` (pause.py) so the worker can suspend and resume them all."""

    name: str = "abstract"
    supports_environments: bool = False  # run() takes env=: a read-only tree put first on sys.path
    environment_images: bool = False  # it needs each tree's ext4 image too (environments.image_of)
    _pauses: PauseBoard | None = None
    _pauses_lock = threading.Lock()

    @property
    def pauses(self) -> PauseBoard:
        with self._pauses_lock:
            if self._pauses is None:
                self._pauses = PauseBoard()
            return self._pauses

    def suspend(self) -> None:
        """Stop every running task where it is (the owner's machine is busy); `resume` lets them go on."""
        self.pauses.suspend()

    def resume(self) -> None:
        self.pauses.resume()

    # -- checkpoints (backends that can save a running task and resume it after a worker restart) --
    supports_checkpoints: bool = False

    def checkpoint_all(self) -> None:  # noqa: B027 - optional hook
        """Save every running task instead of ending it: each run() returns with `checkpoint` set."""

    def checkpoints(self) -> list[Path]:
        """Saved runs left by the worker's last stop, each to be resumed with `restore`."""
        return []

    def discard(self, checkpoint: Path) -> None:
        """Delete a saved run the master no longer wants (cancelled, or its grace window ended): it is
        never restored."""
        shutil.rmtree(checkpoint, ignore_errors=True)

    def restore(self, checkpoint: Path, cancel: threading.Event, env: Path | None = None) -> RunResult:
        """Resume a saved run and let it go on to its end, like run() (or be saved again); `env`: the
        job's environment it was started with."""
        raise NotImplementedError(f"the {self.name} sandbox cannot resume checkpoints")

    def live_dir(self, task_dir: Path) -> Path:
        """Where the task folder `task_dir` is now (elsewhere while a VM backend runs its task)."""
        return MOVED.get(task_dir, task_dir)

    def start(self) -> None:  # noqa: B027 - optional hook
        """Prepare shared resources (pools, smbd, snapshots). Called once before any run."""

    @abstractmethod
    def run(
        self, task_dir: Path, script: str, limits: Limits, cancel: threading.Event
    ) -> RunResult:
        """Run `python3 script` inside `task_dir` under `limits` until it exits or is stopped.

        `cancel` is set by CancelTask; the backend must then kill the run promptly and return
        failure="cancelled".
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release everything started by `start` (VMs, smbd). Idempotent."""
