"""The guest image the VM benchmarks run in: the one given, or the one `make image` builds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def image_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    spec = importlib.util.spec_from_file_location("build", REPO / "vm-images/build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build.find_image() or build.build()
