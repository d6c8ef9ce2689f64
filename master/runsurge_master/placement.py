"""Where each ready task goes: a pure function, so the policy is easy to read and to test.

Policy, per task in submission order: among live workers with a free slot and enough free memory
(and that never faulted on the task),
take the one already holding the most input bytes (less data to move; a task's environment counts
with its size, since a worker without it must fetch its wheels and build it), then the best fit (least
memory left over, which keeps big holes for big tasks), then the lowest id for determinism.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ReadyTask:
    id: str
    memory_bytes: int
    inputs: dict[str, int] = field(default_factory=dict)  # data id → size
    avoid: set[str] = field(default_factory=set)  # workers that faulted on it: never offered to them again
    environment: tuple[str, int] | None = None  # (id, size) of its packages, if any


@dataclass
class Capacity:
    id: str
    free_memory: int
    free_slots: int
    holds: set[str] = field(default_factory=set)  # data ids in its cache
    environments: frozenset[str] = frozenset()  # environment ids it holds built


def place(tasks: list[ReadyTask], workers: list[Capacity]) -> list[tuple[str, str]]:
    """Returns (task id, worker id) pairs; tasks that fit nowhere now are left out."""
    placements = []
    for task in tasks:
        best: tuple | None = None
        for w in workers:
            if w.free_slots < 1 or w.free_memory < task.memory_bytes or w.id in task.avoid:
                continue
            local = sum(size for d, size in task.inputs.items() if d in w.holds)
            if task.environment is not None and task.environment[0] in w.environments:
                local += task.environment[1]  # a preference only: a worker without it still takes the task
            key = (-local, w.free_memory - task.memory_bytes, w.id)
            if best is None or key < best[0]:
                best = (key, w)
        if best is None:
            continue
        w = best[1]
        w.free_slots -= 1
        w.free_memory -= task.memory_bytes
        placements.append((task.id, w.id))
    return placements
