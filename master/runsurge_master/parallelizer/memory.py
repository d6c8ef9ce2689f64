"""Memory estimates: what a task's Python process will peak at, from its input and its code, and
a hook that refines estimates from the peaks workers measured for earlier tasks.

A CSV loaded into a list of rows costs far more than its bytes: per row a list object and a
pointer, per field a str object (49 bytes + its characters)."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, replace

BASE = 24 << 20          # python3 with csv and pickle imported
MINIMUM = 32 << 20
SAFETY = 1.3
STREAMING_FACTOR = 2.0   # scripts of unknown shape: assume they hold about twice their input


def rows_memory(rows: float, columns: int, field_chars: float) -> float:
    per_row = 56 + 9 * columns + columns * (49 + field_chars) + 9
    return rows * per_row


def estimate(rows: float, columns: int, field_chars: float, copies: float = 1.0, extra: float = 0.0,
             per_row: float | None = None) -> int:
    """`copies`: how many row-sized structures the task holds at its peak (the rows themselves,
    plus results as big as the rows, such as a filtered list). `per_row`: what one loaded row
    costs, when known from the load block (cost.row_cost); else every field counts as a str."""
    held = rows * per_row if per_row is not None else rows_memory(rows, columns, field_chars)
    need = BASE + SAFETY * (copies * held + extra)
    return max(MINIMUM, _round(need))


def estimate_plain(input_bytes: int) -> int:
    return max(MINIMUM, _round(BASE + SAFETY * STREAMING_FACTOR * input_bytes))


def _round(n: float) -> int:
    """Up to a whole MiB: readable in a spec."""
    mib = 1 << 20
    return int(-(-n // mib) * mib)


@dataclass(frozen=True)
class MemoryModel:
    """peak ≈ base + per_byte × input bytes, fitted as an upper envelope of observations."""
    base: int
    per_byte: float

    def predict(self, input_bytes: int) -> int:
        return max(MINIMUM, _round(SAFETY * (self.base + self.per_byte * input_bytes)))


def fit_memory_model(observations: Iterable[tuple[int, int]]) -> MemoryModel | None:
    """From past (input_bytes, peak_bytes) of comparable tasks (same script kind); None with fewer
    than 3. The envelope (not a least-squares line) because under-estimating memory kills tasks."""
    obs = [(int(i), int(p)) for i, p in observations if i >= 0 and p > 0]
    if len(obs) < 3:
        return None
    base = min(p for _, p in obs)
    slopes = [(p - base) / i for i, p in obs if i >= 1 << 20]
    return MemoryModel(base=base, per_byte=max(slopes, default=0.0))


def refined(estimate_bytes: int, input_bytes: int, observations: Iterable[tuple[int, int]]) -> int:
    """The code-based estimate, replaced by the measured model once there are enough observations."""
    model = fit_memory_model(observations)
    return estimate_bytes if model is None else model.predict(input_bytes)


def refine_plan(plan, observations: dict[str, Iterable[tuple[int, int]]]):
    """The plan with each task's memory refined from observations keyed by task kind
    ("chunk", "call", "combine", "single", ...). Returns a new Plan; kinds without data keep
    their estimate."""
    from runsurge_master.parallelizer.spec import render_spec  # the Plan's own format

    models = {kind: fit_memory_model(obs) for kind, obs in observations.items()}
    tasks = []
    for t in plan.tasks:
        model = models.get(t.kind)
        tasks.append(replace(t, memory_bytes=model.predict(t.input_bytes)) if model else t)
    doc = tomllib.loads(plan.spec_toml)
    by_name = {t.name: t.memory_bytes for t in tasks}
    for raw in doc["tasks"]:
        raw["memory"] = by_name.get(raw["name"], raw.get("memory"))
    return replace(plan, spec_toml=render_spec(doc["name"], doc["tasks"]), tasks=tasks)
