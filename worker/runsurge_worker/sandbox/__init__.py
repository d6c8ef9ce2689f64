"""Sandbox backends: where and how a task's `python3 script` runs.

`get_backend(name, work_dir, image_dir, **opts)` builds one by name. Backends register in
`BACKENDS` (name -> factory taking work_dir, image_dir and options); the worker adds its own
(e.g. "process") to the same mapping.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .base import Limits, RunResult, SandboxBackend


def _qemu(work_dir: Path, image_dir: Path, **opts) -> SandboxBackend:
    from .qemu import QemuSandbox

    return QemuSandbox(work_dir, image_dir, **opts)


def _bwrap(work_dir: Path, image_dir: Path, **opts) -> SandboxBackend:
    from .bwrap import BwrapSandbox

    return BwrapSandbox(work_dir, **opts)


def _virtualbox(work_dir: Path, image_dir: Path, **opts) -> SandboxBackend:
    from .virtualbox import VirtualBoxSandbox

    return VirtualBoxSandbox(work_dir, image_dir, **opts)


def _process(work_dir: Path, image_dir: Path, **opts) -> SandboxBackend:
    from .process import ProcessSandbox

    return ProcessSandbox(work_dir)


# name -> factory(work_dir, image_dir, **opts). Imports are lazy: a worker using one backend does
# not need the others' dependencies.
BACKENDS: dict[str, Callable[..., SandboxBackend]] = {
    "qemu": _qemu,
    "bwrap": _bwrap,
    "virtualbox": _virtualbox,
    "process": _process,  # development only: no isolation
}


def get_backend(name: str, work_dir: Path, image_dir: Path, **opts) -> SandboxBackend:
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown sandbox backend {name!r}; choose from {sorted(BACKENDS)}") from None
    return factory(Path(work_dir), Path(image_dir), **opts)


__all__ = ["BACKENDS", "Limits", "RunResult", "SandboxBackend", "get_backend"]
