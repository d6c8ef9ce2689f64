"""Real VMs for the tests: one image, one saved snapshot and one backend shared by the session.

The image is built if missing (needs root, debootstrap, qemu-utils); the backend's first start
cold-boots once (~30-60 s under TCG) and saves the snapshot every test's VMs are restored from.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import threading
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

try:
    import runsurge_worker  # noqa: F401
except ImportError:  # running from the source tree before `pip install -e worker`
    import sys

    sys.path.insert(0, str(REPO / "worker"))

from runsurge_worker.sandbox.base import Limits, RunResult  # noqa: E402
from runsurge_worker.sandbox.qemu import QemuSandbox  # noqa: E402

VM_MEMORY_MB = 1024


def _load_builder():
    spec = importlib.util.spec_from_file_location("vm_image_build", REPO / "vm-images/build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def image_dir() -> Path:
    missing = [t for t in ("qemu-system-x86_64", "qemu-img", "smbd", "nc") if not shutil.which(t)]
    if missing:
        pytest.fail(f"VM tests need {missing} (apt: qemu-system-x86 qemu-utils samba "
                    "netcat-openbsd)")
    builder = _load_builder()
    return builder.find_image() or builder.build()


@pytest.fixture(scope="session")
def backend(image_dir, tmp_path_factory):
    # A fixed directory keeps the saved snapshot between runs (one cold boot per machine).
    env = os.environ.get("RUNSURGE_TEST_WORKER_DIR")
    work_dir = Path(env) if env else tmp_path_factory.mktemp("worker")
    sandbox = QemuSandbox(work_dir, image_dir, pool_size=2, vm_memory_mb=VM_MEMORY_MB)
    sandbox.start()
    yield sandbox
    sandbox.close()


@pytest.fixture
def run_task(backend):
    """run_task(source, cancel=None, **limits) -> (RunResult, task_dir) in a fresh VM."""
    return lambda source, cancel=None, **limits: _run_task(backend, source, cancel, **limits)


def new_task(backend, source: str, files: dict[str, bytes] | None = None) -> Path:
    task_dir = backend.task_root / uuid.uuid4().hex
    task_dir.mkdir()
    (task_dir / "main.py").write_text(source)
    for name, data in (files or {}).items():
        (task_dir / name).write_bytes(data)
    return task_dir


def _run_task(backend, source: str, cancel: threading.Event | None = None,
              **limits) -> tuple[RunResult, Path]:
    task_dir = new_task(backend, source)
    limits.setdefault("memory_bytes", 256 << 20)
    limits.setdefault("timeout_s", 120)
    result = backend.run(task_dir, "main.py", Limits(**limits), cancel or threading.Event())
    return result, task_dir
