"""A real runsurge-worker (process sandbox) whose checkpoints never come back: on SIGTERM it stops
its running task and reports it checkpointed, as a qemu worker does, but it keeps nothing, so when
it starts again it resumes nothing (the contributor left for good, or the saved state was lost).

Only the checkpoint grace tests start it (LocalNet.start_worker(..., program=[this file])); the patch
is installed here, in this process only, before the worker's main runs.
"""

import threading
from pathlib import Path

from runsurge_worker import main
from runsurge_worker.sandbox import process
from runsurge_worker.sandbox.base import Limits, RunResult


class VanishingCheckpoints(process.ProcessSandbox):
    supports_checkpoints = True

    def __init__(self, work_dir: Path, **opts: object):
        super().__init__(work_dir, **opts)
        self.work_dir, self._saving = work_dir, threading.Event()

    def checkpoint_all(self) -> None:
        self._saving.set()

    def run(self, task_dir: Path, script: str, limits: Limits, cancel: threading.Event,
            env: Path | None = None) -> RunResult:
        stop = threading.Event()  # the real run ends on a cancel or on the checkpoint request
        threading.Thread(target=lambda: (self._saving.wait(), stop.set()), daemon=True).start()
        threading.Thread(target=lambda: (cancel.wait(), stop.set()), daemon=True).start()
        result = super().run(task_dir, script, limits, stop, env)
        if not self._saving.is_set() or cancel.is_set():
            return result
        saved = self.work_dir / "checkpoints" / task_dir.name
        saved.mkdir(parents=True, exist_ok=True)  # the worker writes its assignment there; it is lost
        return RunResult(None, result.wall_s, 0.0, 0, 0, failure="checkpointed", checkpoint=saved)


if __name__ == "__main__":
    process.ProcessSandbox = VanishingCheckpoints
    main.main()
