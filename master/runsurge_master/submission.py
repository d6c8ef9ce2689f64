"""From an upload to a validated job, in one of four modes, before anything is stored:

- `spec`: the user's job spec (TOML) names the tasks;
- `auto` (the default without a spec): the parallelizer analyses the script and splits its data;
- `single`: the script runs as one task over all its files;
- `group`: one script over each uploaded zip archive, then an aggregator over all their outputs.

Every mode ends in the same `Prepared`: a parsed JobSpec plus the files it names, each openable
as a stream (uploads, or files the parallelizer generated on disk).
"""

from __future__ import annotations

import ast
import io
import re
import shutil
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from fastapi import UploadFile
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from runsurge_master import imports
from runsurge_master.config import MasterConfig
from runsurge_master.environments import parse_requirements
from runsurge_master.jobspec import (
    JobSpec,
    SpecError,
    check_file_name,
    check_redundancy,
    format_size,
    parse_size,
    parse_spec,
    single_script_spec,
)
from runsurge_master.lifecycle import MEMORY_KILL
from runsurge_master.models import DataObject, Job, Task, TaskInput
from runsurge_master.parallelizer import Plan, PlanError, PlannedTask, plan_group, plan_job, refine_plan
from runsurge_master.parallelizer.model import ScriptSyntaxError
from runsurge_master.scriptcheck import check_script

MODES = ("spec", "auto", "single", "group")
Opener = Callable[[], AbstractContextManager[BinaryIO]]  # `with opener() as f:` reads one file


@dataclass(frozen=True)
class Source:
    open: Opener
    path: Path | None = None  # a finished file of ours on disk, which the store may link instead of copy


@dataclass
class Prepared:
    mode: str
    spec: JobSpec
    sources: dict[str, Source]  # every file the spec names
    explanation: list[str] = field(default_factory=list)
    planned: list[PlannedTask] = field(default_factory=list)
    # What the scripts import that neither the guest image nor the task's files have, by task name
    # (None: the one script every task of a single/auto/group job runs): their requirements must.
    unfound: dict[str | None, list[imports.Missing]] = field(default_factory=dict)


@dataclass
class Request:
    files: list[UploadFile]
    names: list[str]
    mode: str | None = None
    spec: str | None = None
    script: str | None = None
    aggregator: str | None = None
    chunks: int | None = None
    redundancy: int | None = None  # 2: a quorum of workers of different contributors (quorum.py)
    memory: str | None = None      # "512MiB": what every task needs, stated by the user (any mode)
    requirements: str | None = None  # a requirements.txt: the packages every task needs (any mode)


def upload_names(files: list[UploadFile]) -> list[str]:
    names = [check_file_name(f.filename, "uploaded file") for f in files]
    if len(set(names)) != len(names):
        raise SpecError("two uploaded files have the same name")
    return names


def _upload(f: UploadFile) -> Source:
    def open_upload() -> AbstractContextManager[BinaryIO]:
        f.file.seek(0)
        return nullcontext(f.file)  # read it as often as needed: the upload is closed by FastAPI
    return Source(open_upload)


def _upload_path(f: UploadFile, folder: Path, name: str) -> Path:
    """A path to read an upload by. FastAPI spools it to an unnamed temporary file; on Linux that file
    is readable as /proc/self/fd/N, which saves copying a 1 GB upload once more before planning."""
    f.file.seek(0)
    proc = Path(f"/proc/self/fd/{f.file.fileno()}")  # fileno() moves a small in-memory upload to disk
    if proc.exists():
        return proc
    with open(folder / name, "wb") as out:
        shutil.copyfileobj(f.file, out, 1 << 20)
    return folder / name


@contextmanager
def prepare(cfg: MasterConfig, req: Request, worker_memory: list[int],
            observations: Callable[[str], dict[str, list[tuple[int, int]]]]) -> Iterator[Prepared]:
    """Raises SpecError (a 400 for the user); generated files are removed when the block ends."""
    mode = req.mode or ("spec" if req.spec is not None else "auto")
    if mode not in MODES:
        raise SpecError(f"mode must be one of {', '.join(MODES)}")
    if (req.spec is not None) != (mode == "spec"):
        raise SpecError("a job spec goes with mode 'spec' (the default when a spec is sent), and only with it")
    if req.redundancy is not None:
        check_redundancy(req.redundancy, "redundancy")
    uploads = {n: _upload(f) for n, f in zip(req.names, req.files, strict=True)}
    with ExitStack() as cleanup:
        explanation: list[str] = []
        planned: list[PlannedTask] = []
        if mode != "spec":  # the user's own scripts, before any planning (a spec's: once it is parsed)
            for name in dict.fromkeys([_script(req), *([req.aggregator] if req.aggregator in uploads else [])]):
                explanation += check_script(_read_text(uploads[name], name), name)
        if mode == "spec":
            spec_text, sources = req.spec, uploads
        elif mode == "single":
            script = _script(req)
            spec_text, sources = single_script_spec(script, [n for n in req.names if n != script]), uploads
        else:
            workdir = cfg.store_dir / "incoming"
            workdir.mkdir(parents=True, exist_ok=True)
            plan = _plan(mode, req, cleanup, worker_memory, workdir, observations)
            cleanup.callback(plan.cleanup)
            spec_text, explanation, planned = plan.spec_toml, explanation + plan.explanation, plan.tasks
            sources = {n: _plan_source(plan, n) for n in plan.files}
        spec = parse_spec(spec_text, set(sources), cfg.default_task_memory, cfg.default_task_timeout_s,
                          cfg.max_tasks_per_job)
        if mode == "spec":
            for name in dict.fromkeys(t.script for t in spec.tasks):
                explanation += check_script(_read_text(sources[name], name), name)
        _memory(spec, req.memory, mode, explanation)
        _redundancy(spec, req.redundancy, explanation)
        _requirements(spec, req.requirements, explanation)
        _check(spec, sources, req.names, mode, worker_memory, explanation)
        unfound = _unfound(cfg, req, spec, uploads, mode)
        job = Prepared(mode=mode, spec=spec, sources=sources, explanation=explanation, planned=planned,
                       unfound=unfound)
        check_imports(job, lambda requirements: set() if not requirements else None)  # before any resolving
        yield job


def _unfound(cfg: MasterConfig, req: Request, spec: JobSpec, uploads: dict[str, Source],
             mode: str) -> dict[str | None, list[imports.Missing]]:
    """The user's own scripts (a spec's tasks', or the one script and the aggregator), against the guest
    image and the files each runs beside: a task's inputs in a spec, every upload otherwise."""
    python = tuple(int(x) for x in cfg.env_python_version.split(".")[:2])
    trees: dict[str, ast.Module | None] = {}

    def tree(name: str) -> ast.Module | None:  # a file that is not Python is not followed
        if name not in trees:
            try:
                trees[name] = ast.parse(_read_text(uploads[name], name)) if name in uploads else None
            except (SpecError, SyntaxError, ValueError, RecursionError, MemoryError):
                trees[name] = None
        return trees[name]

    if mode == "spec":
        out = {}
        for t in spec.tasks:
            files = {local: (lambda src=src: tree(src.upload) if src.upload else None)  # a produced file: unread
                     for local, src in t.inputs.items()}
            out[t.name] = imports.missing_modules(t.script, tree(t.script), files, set(), python)
        return out
    scripts = dict.fromkeys([_script(req), *([req.aggregator] if mode == "group" and req.aggregator else [])])
    found: list[imports.Missing] = []
    for script in scripts:
        files = {n: (lambda n=n: tree(n)) for n in uploads if n != script}
        found += imports.missing_modules(script, tree(script), files, set(), python)
    return {None: found}


def check_imports(job: Prepared, provided: Callable[[list[str]], set[str] | None]) -> None:
    """SpecError for the first module a task imports that its requirements do not provide either.
    `provided(requirements)`: the modules of that set's wheels; None when not known yet (unresolved)."""
    for task, missing in job.unfound.items():
        spec_task = next((t for t in job.spec.tasks if t.name == task), None)
        requirements = job.spec.requirements_of(spec_task) if spec_task else job.spec.requirements
        modules = provided(requirements) if missing else set()
        if modules is None:
            continue
        for m in missing:
            if m.module not in modules:
                raise imports.refusal(m, task, requirements, own_list=spec_task is not None and
                                      spec_task.requirements is not None)


def _memory(spec: JobSpec, asked: str | None, mode: str, explanation: list[str]) -> None:
    """The submission's `memory` field: the user's word for every task (a spec's own `memory` keys
    win in spec mode). Memory nobody stated (RunSurge's estimate, or the default) may be raised
    after a task is killed at its limit (lifecycle.retry_with_more_memory); stated memory never is."""
    generated = mode in ("auto", "group")  # the planner wrote the spec: its memory keys are estimates
    if generated:
        for t in spec.tasks:
            t.memory_stated = False
    if asked is None:
        return
    size = parse_size(asked, "memory")
    for t in spec.tasks:
        if not t.memory_stated:
            t.memory_bytes, t.memory_stated = size, True
    instead = " (instead of RunSurge's estimates)" if generated else ""
    explanation.append(f"memory: {asked} per task, as stated{instead}")


def _redundancy(spec: JobSpec, asked: int | None, explanation: list[str]) -> None:
    """The submission's `redundancy` field, or the spec's own key; both may be given only if they agree."""
    if asked is not None:
        if spec.redundancy not in (None, asked):
            raise SpecError(f"redundancy is {spec.redundancy} in the job spec but {asked} in the request")
        spec.redundancy = asked
    if (spec.redundancy or 1) > 1:
        explanation.append(f"redundancy {spec.redundancy}: each task runs on workers of {spec.redundancy} different "
                           "contributors and their outputs must agree (billed for each agreeing run)")


def _requirements(spec: JobSpec, text: str | None, explanation: list[str]) -> None:
    """The submission's requirements file joins the spec's own `requirements` (every task, any mode:
    an automatic job's chunk and combine tasks share one environment), except a spec's task with its own
    `requirements`: that list replaces the job-wide one for it."""
    if text is not None:
        spec.requirements = sorted(set(spec.requirements) | set(parse_requirements(text.splitlines(),
                                                                                     "requirements")))
    own = [t for t in spec.tasks if t.requirements is not None]
    if spec.requirements:
        explanation.append(f"packages: {', '.join(spec.requirements)} (resolved to wheels for every task"
                           f"{' without its own requirements' if own else ''})")
    for t in own:
        explanation.append(f"task {t.name}: packages {', '.join(t.requirements) or '(none)'} "
                           "(its own requirements, instead of the job-wide list)")


def _script(req: Request) -> str:
    if req.script is None:
        scripts = [n for n in req.names if n.endswith(".py")]
        if len(scripts) != 1:
            raise SpecError("send a job spec, or name the script to run with the 'script' field")
        return scripts[0]
    if req.script not in req.names:
        raise SpecError(f"the script {req.script!r} was not uploaded")
    return req.script


def _plan(mode: str, req: Request, cleanup: ExitStack, worker_memory: list[int], workdir: Path,
          observations: Callable[[str], dict[str, list[tuple[int, int]]]]) -> Plan:
    """Plan from the uploads on disk (the parallelizer streams files); its chunk files go to `workdir`."""
    folder = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="runsurge-plan-")))
    paths = {name: _upload_path(f, folder, name) for name, f in zip(req.names, req.files, strict=True)}
    script = _script(req)
    text = _text(paths[script], script)
    try:
        if mode == "auto":
            data = {n: p for n, p in paths.items() if n != script}
            plan = plan_job(text, script, data, chunks=req.chunks, worker_free_memory=worker_memory, workdir=workdir)
            measured = observations(tomllib.loads(plan.spec_toml).get("name", ""))
            if measured:  # earlier runs of this job measured what its tasks really need
                plan = refine_plan(plan, measured)
                plan.explanation.append("memory estimates refined from earlier runs' measured peaks")
            return plan
        if req.aggregator is None or req.aggregator not in paths:
            raise SpecError("a group job needs its aggregator script uploaded and named in 'aggregator'")
        archives = {n: p for n, p in paths.items() if n not in (script, req.aggregator)}
        return plan_group(script, text, archives, {}, req.aggregator, _text(paths[req.aggregator], req.aggregator))
    except PlanError as e:
        hint = (" (or run it as one task, as it is: runsurge submit --single)"
                if mode == "auto" and not isinstance(e, ScriptSyntaxError) else "")
        raise SpecError(f"{e}{hint}") from None
    except RecursionError:  # ast.parse and the analysis walk the syntax tree recursively
        raise SpecError(f"{script!r} is nested too deeply to analyse (run it as one task, as it is: "
                        "runsurge submit --single)") from None


def _plan_source(plan: Plan, name: str) -> Source:
    path = plan.files.path(name)
    if path is None:
        return Source(lambda: io.BytesIO(plan.files[name]))
    return Source(lambda: open(path, "rb"), path if plan.files.generated(name) else None)


def _read_text(source: Source, name: str) -> str:
    with source.open() as f:
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"script {name!r} is not a UTF-8 text file") from None


def _text(path: Path, name: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"script {name!r} is not a UTF-8 text file") from None


def _check(spec: JobSpec, sources: dict[str, Source], uploaded: list[str], mode: str,
           worker_memory: list[int], explanation: list[str]) -> None:
    biggest = max(worker_memory, default=None)
    if biggest is not None:
        for t in spec.tasks:
            if t.memory_bytes > biggest and mode in ("auto", "group"):
                # Our own estimate, not the user's demand: run it on the biggest worker rather than refuse.
                explanation.append(f"task {t.name}: estimated {format_size(t.memory_bytes)}, capped at the "
                                   f"largest worker's {format_size(biggest)}")
                t.memory_bytes = biggest
        too_big = [t.name for t in spec.tasks if t.memory_bytes > biggest]
        if too_big:
            raise SpecError(f"task(s) {', '.join(too_big)} need more memory than any online worker offers "
                            f"(the largest: {format_size(biggest)}): lower --memory, or wait for a bigger worker")
    if mode in ("spec", "single"):
        unused = set(uploaded) - spec.uploads_used()
        if unused:
            raise SpecError(f"uploaded file(s) not used by any task: {', '.join(sorted(unused))}")
    for t in spec.tasks:
        with sources[t.script].open() as f:
            head = f.read(1 << 20)
        if not _is_text(head):
            raise SpecError(f"script {t.script!r} is not a UTF-8 text file")


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return len(head) == 1 << 20 and e.start > len(head) - 4  # a character cut at the 1 MiB mark
    return b"\0" not in head


def memory_observations(s: Session, owner_id: str, job_name: str) -> dict[str, list[tuple[int, int]]]:
    """Measured (input bytes, peak memory) of the tasks of this user's earlier runs of the same
    automatic job, by task kind (the name's leading word: chunk, combine, call...). A task killed at
    its memory limit counts too: it needed at least that limit."""
    jobs = s.scalars(select(Job.id).where(Job.owner_id == owner_id, Job.name == job_name,
                                          Job.status.in_(("done", "failed")))
                     .order_by(Job.created_at.desc()).limit(20)).all()
    if not jobs:
        return {}
    killed = (Task.status == "failed") & Task.error.startswith(MEMORY_KILL)
    rows = s.execute(
        select(Task.name, Task.mem_peak_bytes, Task.memory_bytes, killed, func.coalesce(func.sum(DataObject.size), 0))
        .join(TaskInput, TaskInput.task_id == Task.id, isouter=True)
        .join(DataObject, DataObject.id == TaskInput.data_id, isouter=True)
        .where(Task.job_id.in_(jobs), (Task.status == "done") | killed, Task.mem_peak_bytes.is_not(None))
        .group_by(Task.id, Task.name, Task.mem_peak_bytes, Task.memory_bytes, Task.status, Task.error))
    out: dict[str, list[tuple[int, int]]] = {}
    for name, peak, limit, was_killed, input_bytes in rows:
        kind = re.match(r"[a-z]*", name).group(0)
        out.setdefault(kind, []).append((int(input_bytes), max(int(peak), int(limit)) if was_killed else int(peak)))
    return out
