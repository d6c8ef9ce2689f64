"""A real runsurge-worker that lies: every output file a task writes is altered before the worker
hashes it, caches it, uploads it and reports it, so what it claims differs from an honest run.

Only the quorum tests start it (LocalNet.start_worker(..., program=[this file])); production code has
no hook for it: the patch is installed here, in this process only, before the worker's main runs.
"""

from pathlib import Path

from runsurge_worker import cache, main
from runsurge_worker.sandbox.base import STDERR_NAME, STDOUT_NAME

_honest_add_file = cache.Cache.add_file


def lying_add_file(self: cache.Cache, src: Path) -> tuple[str, int]:
    if src.name not in (STDOUT_NAME, STDERR_NAME):  # logs are not compared: leave them
        with open(src, "ab") as f:
            f.write(b" (tampered)")
    return _honest_add_file(self, src)


if __name__ == "__main__":
    cache.Cache.add_file = lying_add_file
    main.main()
