"""Submitting a job and planning one (the same form): the upload checked, planned and stored.

Included by api.create_app with the upload's body limit (max_upload_bytes plus the form's slack),
cut off while the body streams; every other route keeps the small JSON limit."""

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile
from sqlalchemy import select

from runsurge_master import environments, imports, lifecycle, submission
from runsurge_master.deps import CurrentUser, ServicesDep
from runsurge_master.jobspec import SpecError, format_size
from runsurge_master.models import DataObject, Worker
from runsurge_master.routes.job_views import job_out
from runsurge_master.schemas import JobOut, PlannedTaskOut, PlanOut
from runsurge_master.services import Services
from runsurge_proto.wire import CHUNK_SIZE, IntegrityError

log = logging.getLogger("runsurge.api")
router = APIRouter()

BAD_JOB = ("the job cannot be planned: a spec error (naming the key or task), a script that does not parse, "
           "a missing file, a bad memory size or requirement; the message says which")

Files = Annotated[list[UploadFile] | None, File(description="scripts and data files")]
SpecField = Annotated[str | None, Form(description="job spec (TOML); implies mode 'spec'", max_length=1 << 20)]
ModeField = Annotated[str | None, Form(description="spec (the default with a spec) | auto (the default without "
                                      "one) | single (the script as one task) | group (once per zip archive)",
                                      json_schema_extra={"enum": list(submission.MODES)})]
ScriptField = Annotated[str | None, Form(description="the script to run (default: the only .py file)")]
AggregatorField = Annotated[str | None, Form(description="group mode: the script that combines all outputs")]
ChunksField = Annotated[int | None, Form(ge=1, le=10000, description="auto mode: split the data into this many chunks")]
MemoryField = Annotated[str | None, Form(max_length=32, description="memory every task needs, e.g. 512MiB or 2GiB "
                                        "(default: RunSurge's estimate in auto and group modes, which it raises "
                                        "when a task is killed at the limit)")]
RequirementsField = Annotated[str | None, Form(max_length=64 << 10, description="a requirements.txt: packages "
                                                "every task needs, e.g. pandas==2.2.3 (wheels only)")]
RedundancyField = Annotated[int | None, Form(description="1 (default) or 2: run each task on workers of 2 different "
                                             "contributors and compare their outputs (a quorum)")]


def submission_form(sv: ServicesDep, files: Files = None, spec: SpecField = None, mode: ModeField = None,
                    script: ScriptField = None, aggregator: AggregatorField = None, chunks: ChunksField = None,
                    redundancy: RedundancyField = None, memory: MemoryField = None,
                    requirements: RequirementsField = None) -> submission.Request:
    """The submission form, shared by submit and plan."""
    files = files or []  # a spec naming no file gets the spec's own error, not "files: Field required"
    if len(files) > sv.cfg.max_job_files:
        raise HTTPException(400, f"at most {sv.cfg.max_job_files} files per job")
    try:
        names = submission.upload_names(files)
    except SpecError as e:
        raise HTTPException(400, str(e)) from None
    return submission.Request(files=files, names=names, spec=spec, mode=mode, script=script,
                              aggregator=aggregator, chunks=chunks, redundancy=redundancy, memory=memory,
                              requirements=requirements)


SubmissionForm = Annotated[submission.Request, Depends(submission_form)]


@router.post("/api/jobs", status_code=201, responses={400: {"description": BAD_JOB}})
def submit(user: CurrentUser, req: SubmissionForm, sv: ServicesDep) -> JobOut:
    try:
        with _prepare(sv, user, req) as job:
            env_id, task_envs = _environments(sv, job)
            stored = _store(sv, job.sources)
            try:  # its own transaction: the scheduler is woken, and the files kept, only after the commit
                with sv.db.session() as s:
                    for data_id, size in stored.values():
                        lifecycle.ensure_data(s, data_id, size, None)
                    row = lifecycle.create_job(s, user, job.spec, {n: d for n, (d, _) in stored.items()},
                                               task_envs, env_id)
                    s.flush()
                    out = job_out(s, row, with_tasks=True, min_trust=sv.cfg.quorum_min_trust)
            except BaseException:
                _discard_unreferenced(sv, {d for d, _ in stored.values()})
                raise
    except SpecError as e:
        raise HTTPException(400, str(e)) from None
    out.explanation = job.explanation
    log.info("job submitted job=%s mode=%s tasks=%d user=%s", out.id, job.mode, out.tasks_total, user)
    sv.scheduler.wake()
    return out


@router.post("/api/plan", responses={400: {"description": BAD_JOB}})
def plan(user: CurrentUser, req: SubmissionForm, sv: ServicesDep) -> PlanOut:
    """What a submission would become (tasks, dependencies, memory, and why), without running it."""
    try:
        with _prepare(sv, user, req) as job:
            kinds = {t.name: t.kind for t in job.planned}
            seconds = {t.name: t.seconds for t in job.planned}
            return PlanOut(mode=job.mode, explanation=job.explanation, tasks=[
                PlannedTaskOut(name=t.name, kind=kinds.get(t.name, "task"), script=t.script,
                               memory_bytes=t.memory_bytes, inputs={k: _source(v) for k, v in t.inputs.items()},
                               depends_on=sorted(job.spec.producers_of(t)),
                               estimated_s=seconds.get(t.name))
                for t in job.spec.tasks])
    except SpecError as e:
        raise HTTPException(400, str(e)) from None


def _source(src) -> str:
    return src.upload if src.upload else f"task:{src.task}/{src.output}"


def _prepare(sv: Services, user: str, req: submission.Request):
    with sv.db.session() as s:
        memory = list(s.scalars(select(Worker.memory_bytes).where(Worker.online)))

    def observations(job_name: str) -> dict:
        with sv.db.session() as s:
            return submission.memory_observations(s, user, job_name)

    return submission.prepare(sv.cfg, req, memory, observations)


def _environments(sv: Services, job: submission.Prepared) -> tuple[str | None, dict[str, str | None]]:
    """(the job-wide environment id, task name → its environment id): each distinct requirement set
    resolved now or found in the cache, then every script's imports checked against its wheels.
    SpecError (naming the task whose own set fails) if either fails; then nothing is kept."""
    spec, sets = job.spec, {}
    for t in spec.tasks:
        sets.setdefault(tuple(spec.requirements_of(t)), []).append(t)
    wheels: set[str] = set()
    try:
        with sv.db.session() as s:
            envs = {}
            for reqs, tasks in sets.items():
                try:
                    envs[reqs] = environments.resolve(s, sv.cfg, sv.store, list(reqs)) if reqs else None
                except SpecError as e:
                    if reqs == tuple(spec.requirements):
                        raise
                    raise SpecError(f"task {tasks[0].name!r}: {e}") from None
                wheels |= {w["data_id"] for w in (envs[reqs].wheels if envs[reqs] else ())}
            submission.check_imports(job, lambda reqs: _modules(sv, envs[tuple(reqs)]))
            env_ids = {reqs: env.id if env else None for reqs, env in envs.items()}
    except SpecError:
        _discard_unreferenced(sv, wheels)  # wheels this submission stored (the rows were rolled back)
        raise
    return (env_ids.get(tuple(spec.requirements)),
            {t.name: env_ids[tuple(spec.requirements_of(t))] for t in spec.tasks})


def _modules(sv: Services, env) -> set[str]:  # an Environment (or None): what its wheels put on sys.path
    return {m for w in (env.wheels if env else ()) for m in imports.wheel_modules(sv.store.path(w["data_id"]))}


def _store(sv: Services, sources: dict[str, submission.Source]) -> dict[str, tuple[str, int]]:
    stored: dict[str, tuple[str, int]] = {}
    budget = sv.cfg.max_upload_bytes
    try:
        for name, source in sources.items():
            if source.path is not None:
                stored[name] = sv.store.add_file(source.path, max_size=budget, link=True)  # a planner's chunk
            else:
                with source.open() as f:
                    stored[name] = sv.store.put_stream(iter(lambda f=f: f.read(CHUNK_SIZE), b""), max_size=budget)
            budget -= stored[name][1]
    except IntegrityError:
        _discard_unreferenced(sv, {d for d, _ in stored.values()})
        raise HTTPException(413, f"uploads larger than {format_size(sv.cfg.max_upload_bytes)} in total") from None
    return stored


def _discard_unreferenced(sv: Services, data_ids: set[str]) -> None:
    """Undo a failed submission's files, keeping objects that stored rows already reference."""
    with sv.db.session() as s:
        known = set(s.scalars(select(DataObject.id).where(DataObject.id.in_(data_ids))))
    for data_id in data_ids - known:
        sv.store.path(data_id).unlink(missing_ok=True)
