"""Job specs: the DAG a user submits (TOML), parsed and validated before anything is stored.

    name = "word-count"
    redundancy = 2                           # optional: each task runs on 2 workers of different contributors
    requirements = ["pandas==2.2.3"]         # optional: the packages every task needs (environments.py)
    [[tasks]]
    name = "count_a"
    script = "count.py"                      # an uploaded file
    inputs = { "text.txt" = "part_a.txt" }   # file name in the task folder = uploaded file
    outputs = ["counts.json"]
    memory = "128MiB"
    [[tasks]]
    name = "merge"
    script = "merge.py"
    inputs = { "a.json" = "task:count_a/counts.json", "b.json" = "task:count_b/counts.json" }
    requirements = ["pyyaml"]                # optional: THIS task's packages, instead of the job-wide list

A task without `outputs` returns every new file it writes (then nothing may consume it).
A task's own `requirements` replace the job-wide list (and a submission's requirements file) for
that task; `requirements = []` gives it no packages. Each distinct set is its own environment.
A script that imports a module found neither in the guest image, nor among the task's own files,
nor in its requirements' wheels is refused at submission (imports.py).
Outputs that no task consumes are the job's results. `redundancy = 2` asks for a quorum (quorum.py):
each task runs on workers of 2 different contributors and their outputs must agree.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field

NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
RESERVED = {"log.out", "error.err"}
_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3}


REDUNDANCY = (1, 2)


class SpecError(ValueError):
    """A user mistake in a job spec or upload; the message is shown as is."""


def check_redundancy(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value not in REDUNDANCY:
        raise SpecError(f"{what} must be 1 (each task runs once) or 2 (each task runs on workers of 2 different "
                        f"contributors and their outputs are compared), not {value!r}")
    return value


def check_file_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name) or name in RESERVED or ".." in name:
        raise SpecError(f"{what} {name!r} is not a valid file name "
                        "(letters, digits, . _ -, at most 128 characters, no folders)")
    return name


def parse_size(value: object, what: str) -> int:
    if isinstance(value, bool):
        raise SpecError(f"{what}: expected a size like 512MiB, got {value!r}")
    if isinstance(value, int):
        n = value
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
        if not m or m.group(2).lower() not in _UNITS:
            raise SpecError(f"{what}: expected a size like 512MiB, got {value!r}")
        n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if n <= 0:
        raise SpecError(f"{what}: must be positive")
    return n


def format_size(n: int) -> str:
    """Memory as people write it (and parse_size reads it): 512 MiB, 2 GiB, 1.5 GiB."""
    if n < 2**30:
        return f"{n >> 20} MiB" if n >= 2**20 else f"{n} bytes"
    return f"{n >> 30} GiB" if n % 2**30 == 0 else f"{n / 2**30:.1f} GiB"


@dataclass(frozen=True)
class Source:
    upload: str | None = None  # uploaded file name
    task: str | None = None    # producer task name
    output: str | None = None  # producer's output name


@dataclass
class TaskSpec:
    name: str
    script: str
    inputs: dict[str, Source] = field(default_factory=dict)
    outputs: list[str] | None = None  # None: collect every new file
    memory_bytes: int = 0
    cpus: int = 1
    timeout_s: float = 0.0
    memory_stated: bool = False  # the spec gave `memory` (else: the default, which RunSurge may raise)
    requirements: list[str] | None = None  # its own packages (canonical lines), replacing the job-wide list


@dataclass
class JobSpec:
    name: str
    tasks: list[TaskSpec]
    redundancy: int | None = None  # None: not stated (1)
    requirements: list[str] = field(default_factory=list)  # canonical requirement lines, job-wide

    def requirements_of(self, task: TaskSpec) -> list[str]:
        """The packages a task runs with: its own list if it has one, else the job-wide list."""
        return self.requirements if task.requirements is None else task.requirements

    def uploads_used(self) -> set[str]:
        used = {t.script for t in self.tasks}
        used |= {s.upload for t in self.tasks for s in t.inputs.values() if s.upload}
        return used

    def consumed(self) -> set[tuple[str, str]]:
        return {(s.task, s.output) for t in self.tasks for s in t.inputs.values() if s.task}

    def producers_of(self, task: TaskSpec) -> set[str]:
        return {s.task for s in task.inputs.values() if s.task}


_TASK_KEYS = {"name", "script", "inputs", "outputs", "memory", "cpus", "timeout", "requirements"}


def parse_spec(text: str, uploads: set[str], defaults_memory: int, default_timeout_s: float,
               max_tasks: int) -> JobSpec:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"job spec is not valid TOML: {e}") from None
    except RecursionError:  # tomllib parses nested arrays and tables recursively
        raise SpecError("job spec is nested too deeply") from None
    unknown = set(doc) - {"name", "tasks", "redundancy", "requirements"}
    if unknown:
        raise SpecError(f"job spec: unknown key(s) {', '.join(sorted(unknown))}")
    name = doc.get("name", "job")
    if not isinstance(name, str) or not 0 < len(name) <= 200:
        raise SpecError("job spec: name must be a string of 1-200 characters")
    raw_tasks = doc.get("tasks")
    if not isinstance(raw_tasks, list) or not raw_tasks:
        raise SpecError("job spec: needs at least one [[tasks]] entry")
    if len(raw_tasks) > max_tasks:
        raise SpecError(f"job spec: {len(raw_tasks)} tasks, the limit is {max_tasks}")
    tasks = [_parse_task(i, raw, defaults_memory, default_timeout_s) for i, raw in enumerate(raw_tasks)]
    redundancy = check_redundancy(doc["redundancy"], "job spec: redundancy") if "redundancy" in doc else None
    spec = JobSpec(name=name, tasks=tasks, redundancy=redundancy,
                   requirements=_requirements(doc.get("requirements", []), "job spec: requirements"))
    _validate(spec, uploads)
    return spec


def _parse_task(i: int, raw: object, default_memory: int, default_timeout_s: float) -> TaskSpec:
    where = f"task #{i + 1}"
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: must be a table")
    unknown = set(raw) - _TASK_KEYS
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    name = check_file_name(raw.get("name"), f"{where}: name")
    where = f"task {name!r}"
    script = check_file_name(raw.get("script"), f"{where}: script")
    if not script.endswith(".py"):
        raise SpecError(f"{where}: script must be a .py file")
    inputs: dict[str, Source] = {}
    raw_inputs = raw.get("inputs", {})
    if not isinstance(raw_inputs, dict):
        raise SpecError(f"{where}: inputs must be a table of file name = source")
    for local, src in raw_inputs.items():
        check_file_name(local, f"{where}: input")
        if local == script:
            raise SpecError(f"{where}: input {local!r} has the script's name")
        if not isinstance(src, str):
            raise SpecError(f"{where}: input {local!r} must name an uploaded file or task:NAME/OUTPUT")
        if src.startswith("task:"):
            producer, _, output = src[5:].partition("/")
            inputs[local] = Source(task=check_file_name(producer, f"{where}: input {local!r} task"),
                                   output=check_file_name(output, f"{where}: input {local!r} output"))
        else:
            inputs[local] = Source(upload=check_file_name(src, f"{where}: input {local!r} file"))
    outputs = raw.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list) or not outputs:
            raise SpecError(f"{where}: outputs must be a non-empty list of file names")
        outputs = [check_file_name(o, f"{where}: output") for o in outputs]
        if len(set(outputs)) != len(outputs):
            raise SpecError(f"{where}: duplicate output names")
        clash = set(outputs) & (set(inputs) | {script})
        if clash:
            raise SpecError(f"{where}: output(s) {', '.join(sorted(clash))} clash with inputs/script")
    memory = parse_size(raw.get("memory", default_memory), f"{where}: memory")
    cpus = raw.get("cpus", 1)
    if not isinstance(cpus, int) or isinstance(cpus, bool) or not 1 <= cpus <= 256:
        raise SpecError(f"{where}: cpus must be an integer from 1 to 256")
    timeout = raw.get("timeout", default_timeout_s)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 7 * 86400:
        raise SpecError(f"{where}: timeout must be seconds between 0 and 604800")
    requirements = _requirements(raw["requirements"], f"{where}: requirements") if "requirements" in raw else None
    return TaskSpec(name=name, script=script, inputs=inputs, outputs=outputs, memory_bytes=memory, cpus=cpus,
                    timeout_s=float(timeout), memory_stated="memory" in raw, requirements=requirements)


def _requirements(value: object, where: str) -> list[str]:
    if not isinstance(value, list):
        raise SpecError(f"{where} must be a list like [\"pandas==2.2.3\"]")
    from runsurge_master.environments import parse_requirements  # environments imports SpecError from here
    return parse_requirements(value, where)


def _validate(spec: JobSpec, uploads: set[str]) -> None:
    by_name: dict[str, TaskSpec] = {}
    for t in spec.tasks:
        if t.name in by_name:
            raise SpecError(f"two tasks are named {t.name!r}")
        by_name[t.name] = t
    missing = spec.uploads_used() - uploads
    if missing:
        raise SpecError(f"the spec uses file(s) that were not uploaded: {', '.join(sorted(missing))}")
    for t in spec.tasks:
        for local, src in t.inputs.items():
            if not src.task:
                continue
            producer = by_name.get(src.task)
            if producer is None:
                raise SpecError(f"task {t.name!r}: input {local!r} comes from unknown task {src.task!r}")
            if producer.outputs is None or src.output not in producer.outputs:
                raise SpecError(f"task {t.name!r}: input {local!r} needs output {src.output!r}, which "
                                f"task {src.task!r} does not declare in its outputs")
    _check_acyclic(spec, by_name)


def _check_acyclic(spec: JobSpec, by_name: dict[str, TaskSpec]) -> None:
    """Kahn's algorithm (iterative: a long chain must not hit Python's recursion limit)."""
    waiting = {t.name: len(spec.producers_of(t)) for t in spec.tasks}
    consumers: dict[str, list[str]] = {n: [] for n in by_name}
    for t in spec.tasks:
        for p in spec.producers_of(t):
            consumers[p].append(t.name)
    ready = [n for n, k in waiting.items() if k == 0]
    while ready:
        for c in consumers[ready.pop()]:
            waiting[c] -= 1
            if waiting[c] == 0:
                ready.append(c)
    stuck = sorted(n for n, k in waiting.items() if k > 0)
    if stuck:
        raise SpecError(f"the tasks form a cycle: {', '.join(stuck[:10])}")


def single_script_spec(script: str, data_files: list[str]) -> str:
    """The spec of `runsurge submit script.py --data a.csv ...`: one task, every new file a result."""
    lines = [f'name = "{script}"', "[[tasks]]", 'name = "main"', f'script = "{script}"']
    if data_files:
        lines.append("inputs = { " + ", ".join(f'"{d}" = "{d}"' for d in data_files) + " }")
    return "\n".join(lines) + "\n"
