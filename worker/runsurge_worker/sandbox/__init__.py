"""Sandbox backends by name. Imported lazily: a backend's dependencies load only when chosen."""

from __future__ import annotations

import importlib
from pathlib import Path

from runsurge_worker.sandbox.base import SandboxBackend

BACKENDS = {
    "qemu": "runsurge_worker.sandbox.qemu:QemuSandbox",
    "bwrap": "runsurge_worker.sandbox.bwrap:BwrapSandbox",
    "virtualbox": "runsurge_worker.sandbox.virtualbox:VirtualBoxSandbox",
    "process": "runsurge_worker.sandbox.process:ProcessSandbox",  # development only, no isolation
}


def get_backend(name: str, work_dir: Path, image_dir: Path, **opts: object) -> SandboxBackend:
    if name not in BACKENDS:
        raise ValueError(f"unknown sandbox {name!r}; choose one of {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)(work_dir=work_dir, image_dir=image_dir, **opts)
