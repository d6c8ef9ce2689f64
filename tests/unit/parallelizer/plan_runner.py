"""Run a Plan on this machine: every task in its own folder, in dependency order, outputs copied
to consumers under the names the spec gives. Test code only (the real thing is the worker)."""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

from runsurge_master.jobspec import parse_spec

HERE = Path(__file__).parent
SCRIPTS = HERE / "scripts"


def run_plan(plan, workdir: Path) -> dict[str, Path]:
    """The job's results: outputs no task consumes, by name."""
    spec = parse_spec(plan.spec_toml, set(plan.files), 256 << 20, 3600, 10000)
    done: dict[str, dict[str, Path]] = {}
    pending = list(spec.tasks)
    while pending:
        ready = [t for t in pending if spec.producers_of(t) <= set(done)]
        assert ready, "the spec has a cycle"
        for t in ready:
            pending.remove(t)
            folder = workdir / t.name
            folder.mkdir(parents=True)
            (folder / t.script).write_bytes(plan.files[t.script])
            for local, src in t.inputs.items():
                if src.upload:
                    (folder / local).write_bytes(plan.files[src.upload])
                else:
                    shutil.copy(done[src.task][src.output], folder / local)
            given = set(os.listdir(folder))
            r = subprocess.run([sys.executable, t.script], cwd=folder, capture_output=True, text=True,
                               timeout=300)
            assert r.returncode == 0, f"task {t.name} failed:\n{r.stderr}"
            outs = t.outputs or sorted(set(os.listdir(folder)) - given)
            done[t.name] = {o: folder / o for o in outs}
    consumed = spec.consumed()
    return {o: p for name, outs in done.items() for o, p in outs.items() if (name, o) not in consumed}


def run_sequential(script: Path | str, data: Path, data_as: str, workdir: Path) -> Path:
    """The original script, run once on all the data; returns its output.csv."""
    workdir.mkdir(parents=True)
    script = Path(script)
    shutil.copy(script, workdir / script.name)
    shutil.copy(data, workdir / data_as)
    r = subprocess.run([sys.executable, script.name], cwd=workdir, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"sequential run failed:\n{r.stderr}"
    return workdir / "output.csv"


def assert_same_csv(got: Path, want: Path, rel: float = 1e-9, abs_tol: float = 1e-12) -> None:
    """Cell by cell: equal text, or numbers equal up to reassociation. `abs_tol`: for values that
    come out of a cancellation (x - mean near 0), whose error is relative to the operands."""
    with open(got, newline="") as f:
        a = list(csv.reader(f))
    with open(want, newline="") as f:
        b = list(csv.reader(f))
    assert len(a) == len(b), f"{len(a)} rows, expected {len(b)}"
    for r, (x, y) in enumerate(zip(a, b, strict=True)):
        assert len(x) == len(y), f"row {r}: {len(x)} cells, expected {len(y)}"
        for c, (u, v) in enumerate(zip(x, y, strict=True)):
            if u == v:
                continue
            try:
                fu, fv = float(u), float(v)
            except ValueError:
                raise AssertionError(f"row {r} col {c}: {u!r} != {v!r}") from None
            assert math.isclose(fu, fv, rel_tol=rel, abs_tol=abs_tol) or math.isnan(fu) and math.isnan(fv), \
                f"row {r} col {c}: {u} != {v}"
