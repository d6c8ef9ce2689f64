"""What the parallelizer hands back: a Plan (spec text + the files it names + why)."""

from __future__ import annotations

import shutil
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path


class PlanError(ValueError):
    """A user mistake (syntax error, no main block, empty or malformed CSV...); shown as is."""


class ScriptSyntaxError(PlanError):
    """The script does not parse: running it as one task (--single) would fail the same way."""


@dataclass
class PlannedTask:
    name: str
    kind: str                       # "chunk" | "call" | "combine" | "single" | "group" | "aggregate"
    memory_bytes: int
    depends_on: list[str] = field(default_factory=list)
    input_bytes: int = 0
    seconds: float | None = None    # the estimated run time (shown by `runsurge plan`; None: unknown)


class PlanFiles(Mapping[str, bytes]):
    """File name → bytes, read lazily: chunk files of a 1 GB input live on disk, not in memory.
    `path(name)` gives the file to stream from when there is one. Temporary chunk files are
    removed by `cleanup()` or when the mapping is garbage collected."""

    def __init__(self) -> None:
        self._mem: dict[str, bytes] = {}
        self._disk: dict[str, Path] = {}
        self._tmp: Path | None = None
        self._finalizer: weakref.finalize | None = None

    def add_bytes(self, name: str, data: bytes) -> None:
        self._mem[name] = data

    def add_path(self, name: str, path: Path) -> None:
        self._disk[name] = Path(path)

    def own_dir(self, path: Path) -> None:
        """Remove `path` (our temporary directory) with this mapping."""
        self._tmp = path
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(path), True)

    def path(self, name: str) -> Path | None:
        return self._disk.get(name)

    def generated(self, name: str) -> bool:
        """Written by the planner into its own temporary directory (not one of the user's files)."""
        path = self._disk.get(name)
        return path is not None and self._tmp is not None and path.parent == self._tmp

    def size(self, name: str) -> int:
        return len(self._mem[name]) if name in self._mem else self._disk[name].stat().st_size

    def cleanup(self) -> None:
        if self._finalizer is not None:
            self._finalizer()

    def __getitem__(self, name: str) -> bytes:
        if name in self._mem:
            return self._mem[name]
        return self._disk[name].read_bytes()

    def __iter__(self) -> Iterator[str]:
        yield from self._mem
        yield from self._disk

    def __len__(self) -> int:
        return len(self._mem) + len(self._disk)

    def __contains__(self, name: object) -> bool:
        return name in self._mem or name in self._disk


@dataclass
class Plan:
    spec_toml: str                  # valid for jobspec.parse_spec
    files: PlanFiles                # every file the spec names
    explanation: list[str]          # what was split and why, or why not
    tasks: list[PlannedTask]

    def cleanup(self) -> None:
        """Delete the temporary chunk files (once they are stored)."""
        self.files.cleanup()
