"""The HTTP API (FastAPI; OpenAPI at /docs). Handlers are plain `def`s: FastAPI runs them in a thread
pool, so blocking database and file work never stalls the gRPC side of the event loop.

No `from __future__ import annotations` here: FastAPI must see the dependency annotations, which
are local to create_app, as real objects."""


import logging
import secrets
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError as DBIntegrityError
from sqlalchemy.orm import selectinload

from runsurge_master import (
    accounts,
    benching,
    environments,
    http_security,
    imports,
    lifecycle,
    replicas,
    store_gc,
    submission,
    usage,
    waiting,
)
from runsurge_master import task_logs as task_logs_module
from runsurge_master.api_docs import docs_router, document_errors
from runsurge_master.auth import TokenError, hash_password, verify_password
from runsurge_master.billing_api import billing_router
from runsurge_master.config import is_wildcard
from runsurge_master.http_security import LoginLimiter, own_job
from runsurge_master.jobspec import SpecError, format_size
from runsurge_master.live import LiveState
from runsurge_master.metrics import metrics_router
from runsurge_master.models import DataLocation, DataObject, Job, LedgerTransaction, Task, User, Worker, utcnow
from runsurge_master.quorum import FAILED
from runsurge_master.services import Services
from runsurge_master.web import web_router
from runsurge_pki.ca import fingerprint
from runsurge_proto.wire import CHUNK_SIZE, IntegrityError

log = logging.getLogger("runsurge.api")


class Credentials(BaseModel):
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$",
                       description='your email address (case does not matter)', examples=['ada@example.org'])
    password: str = Field(min_length=1, max_length=1024,
                          description='your password (sign-up: at least 10 characters, not the email)',
                          examples=['correct-horse-42'])


class RefreshRequest(BaseModel):
    refresh_token: str = Field(max_length=4096, description='the refresh token a login gave',
                               examples=['eyJhbGciOiJFZERTQSJ9.e30.sig'])


class TokenPair(BaseModel):
    access_token: str = Field(description='JWT for the Authorization: Bearer header',
                              examples=['eyJhbGciOiJFZERTQSJ9.e30.sig'])
    refresh_token: str = Field(description='JWT for POST /api/auth/refresh, once the access token expired',
                               examples=['eyJhbGciOiJFZERTQSJ9.e30.sig'])
    token_type: str = Field("bearer", description='always bearer', examples=['bearer'])
    expires_in: int = Field(description='seconds the access token is valid', examples=[900])


class JoinInfo(BaseModel):
    """What a worker needs besides the master's URL. Public: the CA certificate is pinned by the
    worker against the fingerprint its operator passed (--ca-fingerprint), so a party between them
    gains nothing by changing this answer."""
    grpc_host: str | None = Field(description="host of the gRPC ports; null: the host of the master's URL",
                                  examples=['master.example.org'])
    grpc_port: int = Field(description="mutual-TLS port of registered workers", examples=[50051])
    enroll_port: int = Field(description="TLS port where workers register", examples=[50052])
    ca_pem: str = Field(description="the private CA's certificate (PEM)", examples=['-----BEGIN CERTIFICATE-----\n...'])
    ca_fingerprint: str = Field(description="sha256 of the CA certificate's DER bytes", examples=["sha256:3f…"])


class UserOut(BaseModel):
    id: str = Field(description="the account's id", examples=['0c5e1f2a3b4c4d5e8f9a0b1c2d3e4f5a'])
    email: str = Field(description="the account's email", examples=['ada@example.org'])


class ReplicaOut(BaseModel):
    worker_id: str = Field(description='the worker that ran this replica',
                           examples=['5f0c2a9e4b7d4e1f9a3c6b8d2e4f6a8c'])
    attempt: int = Field(description="the task's run number of this replica", examples=[1])
    status: str = Field(description='assigned | running | done | lost | cancelled', examples=['done'])
    verdict: str | None = Field(description='once decided: agree | odd (outvoted: earns nothing) | differ (no '
                                            'majority)',
                                examples=['agree'])
    outputs: dict[str, str] = Field(description='file name → data id (its content hash), as this replica reported them',
                                    examples=[{
                                        'out.txt': '3f2a000000000000000000000000000000000000000000000000000000009c1e'}])
    failed: bool = Field(description="the user's script failed on it", examples=[False])
    exit_code: int | None = Field(description="the script's exit code", examples=[0])
    wall_s: float | None = Field(description='seconds it ran', examples=[2.5])
    cpu_s: float | None = Field(description='CPU seconds it used', examples=[2.1])
    error: str | None = Field(description='why it failed, if it did', examples=['exit code 1'])


class EnvironmentOut(BaseModel):
    id: str = Field(description="the environment's id (the sha256 of its lock of wheels)",
                    examples=["4be1" + "0" * 56 + "77a0"])
    requirements: list[str] = Field(description='the requirement lines it was resolved from',
                                    examples=[['pandas==2.2.3']])


class TaskOut(BaseModel):
    id: str = Field(description="the task's id", examples=['9a3c6b8d2e4f6a8c5f0c2a9e4b7d4e1f'])
    name: str = Field(description='its name in the job (spec or plan)', examples=['chunk_0'])
    status: str = Field(description='pending (waits for inputs) | ready | assigned | running | checkpointed (its '
                                    'worker stopped and saved it, and resumes it when it starts again) | done | '
                                    'failed | cancelled',
                        examples=['running'])
    worker_id: str | None = Field(description='the worker running it or that ran it',
                                  examples=['5f0c2a9e4b7d4e1f9a3c6b8d2e4f6a8c'])
    attempts: int = Field(description='runs so far (a retry, a move or a re-run of a lost output adds one)',
                          examples=[1])
    inputs: dict[str, str | None] = Field(description='file name → data id (null: its producer has not finished)',
                                          examples=[{'numbers.json': '3f2a' + '0' * 56 + '9c1e'}])
    outputs: dict[str, str | None] = Field(description='file name → data id (null until it ran)',
                                           examples=[{'total.txt': None}])
    memory_bytes: int = Field(description='memory reserved for it on its worker', examples=[268435456])
    exit_code: int | None = Field(description="the script's exit code, once it ended", examples=[0])
    wall_s: float | None = Field(description='seconds it ran', examples=[2.5])
    cpu_s: float | None = Field(description='CPU seconds it used', examples=[2.1])
    mem_avg_bytes: int | None = Field(description='average resident memory', examples=[52428800])
    mem_peak_bytes: int | None = Field(description='peak resident memory', examples=[73400320])
    error: str | None = Field(description='why it failed, if it did', examples=['exit code 1'])
    depends_on: list[str] = Field(description='the tasks whose outputs it reads', examples=[['produce']])
    started_at: datetime | None = Field(None, description='when its (last) run started on its worker (UTC)',
                                        examples=['2026-12-07T08:15:00'])
    finished_at: datetime | None = Field(None, description='when it ended (UTC)', examples=['2026-12-07T08:15:00'])
    restore_s: float | None = Field(None, description='a run resumed from a checkpoint: seconds its VM took to '
                                                      'come back (not in wall_s)', examples=[1.5])
    redundancy: int = Field(1,
                            description='workers of different contributors that must agree on its outputs (1: no '
                                        'quorum)',
                            examples=[1])
    replicas: list[ReplicaOut] | None = Field(None, description="a quorum task's runs (redundancy > 1)")
    # Why it is not running yet (pending, ready or queued): no worker online, none with enough memory,
    # all suitable workers busy (with counts), waiting for inputs or for other contributors (quorum).
    waiting: str | None = Field(None,
                                description='why it is not running yet: no worker online, none with enough memory, all '
                                            'busy (with counts), waiting for inputs or for other contributors',
                                examples=['no worker online'])
    phase: str | None = Field(None,
                              description='what it does on its worker now (assigned or running): fetching inputs | '
                                          'building environment | waiting for a free slot | running',
                              examples=['building environment'])
    environment: EnvironmentOut | None = Field(None, description="its packages (the job's, or a spec task's own "
                                                                 "`requirements`), if any")


class JobOut(BaseModel):
    id: str = Field(description="the job's id (a unique prefix of 4 or more digits also names it)",
                    examples=['bd46d5c1a2f34e7f9c0b8a1d2e3f4a5b'])
    name: str = Field(description="its name (the spec's, or the script's)", examples=['sum-of-numbers'])
    status: str = Field(description='running | done | failed | cancelled', examples=['running'])
    error: str | None = Field(description='why it failed, if it did', examples=['exit code 1'])
    created_at: datetime = Field(description='when it was submitted (UTC)', examples=['2026-12-07T08:15:00'])
    finished_at: datetime | None = Field(description='when it ended (UTC)', examples=['2026-12-07T08:15:00'])
    tasks_total: int = Field(description='its tasks', examples=[12])
    tasks_done: int = Field(description='its tasks done', examples=[5])
    redundancy: int = Field(1, description='1, or 2: a quorum of two contributors per task', examples=[1])
    environment_id: str | None = Field(None,
                                       description="the job's packages (its requirements' environment), if it asked "
                                                   "for any", examples=["4be1" + "0" * 56 + "77a0"])
    tasks: list[TaskOut] | None = Field(None, description='its tasks (GET /api/jobs/{id} only)')
    explanation: list[str] | None = Field(None, description='at submission: how the job was planned',
                                          examples=[['auto: 4 chunks of data.csv, then a combine']])
    waiting: list[str] | None = Field(None, description='its waiting tasks grouped by reason',
                                      examples=[['3 task(s): no worker online']])
    cost: int = Field(0, description='micro-credits charged so far (GET /api/jobs/{id}/bill has the lines)',
                      examples=[53])


class PlannedTaskOut(BaseModel):
    name: str = Field(description="the task's name", examples=['chunk_0'])
    kind: str = Field(description='chunk | combine | call | single | group | aggregate | task (from a spec)',
                      examples=['chunk'])
    script: str = Field(description='the script it runs', examples=['count.py'])
    memory_bytes: int = Field(description='memory it will reserve', examples=[268435456])
    inputs: dict[str, str] = Field(description='file name → uploaded file, or task:NAME/OUTPUT',
                                   examples=[{'data.csv': 'task:split/part0.csv'}])
    depends_on: list[str] = Field(description='the tasks whose outputs it reads', examples=[['split']])
    estimated_s: float | None = Field(None, description="automatic mode's estimate of its run time, in seconds",
                                      examples=[1.5])


class PlanOut(BaseModel):
    mode: str = Field(description='how it was planned: spec | auto | single | group', examples=['auto'],
                      json_schema_extra={"enum": list(submission.MODES)})
    explanation: list[str] = Field(description='why it was planned so, line by line',
                                   examples=[['auto: 4 chunks of data.csv, then a combine']])
    tasks: list[PlannedTaskOut] = Field(description='the tasks it would run')


class ResultOut(BaseModel):
    task: str = Field(description='the task that wrote it', examples=['total'])
    name: str = Field(description='its file name', examples=['total.txt'])
    data_id: str = Field(description="its content's SHA-256 (hex)",
                         examples=['3f2a000000000000000000000000000000000000000000000000000000009c1e'])
    size: int = Field(description='its size in bytes', examples=[5])


class WorkerOut(BaseModel):
    id: str = Field(description="the worker's id", examples=['5f0c2a9e4b7d4e1f9a3c6b8d2e4f6a8c'])
    host: str = Field(description='the address it announced', examples=['192.168.1.20'])
    grpc_port: int = Field(description='its WorkerService port', examples=[50061])
    online: bool = Field(description='it beats (heartbeats) now', examples=[True])
    sandbox: str = Field(description='where it runs tasks: qemu | bwrap | process', examples=['qemu'])
    memory_bytes: int = Field(description='memory it offers to tasks', examples=[4294967296])
    cpus: int = Field(description='CPUs it offers', examples=[2])
    slots: int = Field(description='tasks it runs at once', examples=[2])
    running_tasks: int = Field(description='tasks it runs now', examples=[1])
    tasks_done: int = Field(description='tasks it finished', examples=[42])
    trust: int = Field(description="quorum reputation: below the master's quorum_min_trust, no quorum replicas",
                       examples=[0])
    last_heartbeat: datetime = Field(description='its last heartbeat (UTC)', examples=['2026-12-07T08:15:00'])
    benched: bool = Field(False, description='it keeps faulting: no new tasks until benched_until', examples=[False])
    benched_until: datetime | None = Field(None, description='when it may take tasks again (UTC)',
                                           examples=['2026-12-07T08:30:00'])
    bench_reason: str | None = Field(None, description='why it was benched', examples=['3 faults in a row'])
    fault_streak: int = Field(0, description='faults since its last successful task', examples=[0])
    suspended: str | None = Field(None,
                                  description="why it takes no new work now (its owner's machine busy, schedule, "
                                              "stopping)", examples=["the machine is busy"])
    environments: list[str] = Field([], description='ids of the job environments it holds built (placement '
                                                    'prefers it for tasks that use them)',
                                    examples=[["4be1" + "0" * 56 + "77a0"]])


class UsagePointOut(BaseModel):
    t_s: float = Field(description="seconds since the run started", examples=[12.5])
    cpu_s: float = Field(description="CPU seconds the run had used by then", examples=[11.9])
    cpu_cores: float = Field(description="CPU cores in use since the previous point", examples=[0.98])
    rss_bytes: int = Field(description="resident memory then, in bytes", examples=[73400320])


class UsageRunOut(BaseModel):
    attempt: int = Field(description="the task's run number", examples=[1])
    worker_id: str = Field(description="the worker that ran it", examples=["5f0c2a9e4b7d4e1f9a3c6b8d2e4f6a8c"])
    started_at: datetime = Field(description="when the run started (UTC)", examples=['2026-12-07T08:15:00'])
    points: list[UsagePointOut] = Field(description="CPU and memory over the run, at most 200 points")


class TaskUsageOut(BaseModel):
    task_id: str = Field(description="the task", examples=["9a3c6b8d2e4f6a8c5f0c2a9e4b7d4e1f"])
    runs: list[UsageRunOut] = Field(description="each run that reported its usage (a quorum task has several)")


class WorkerUsagePointOut(BaseModel):
    at: datetime = Field(description="a moment (UTC)", examples=['2026-12-07T08:15:00'])
    cpu_cores: float = Field(description="CPU cores its tasks used then", examples=[1.5])
    rss_bytes: int = Field(description="resident memory of its tasks then, in bytes", examples=[268435456])


class WorkerUsageOut(BaseModel):
    worker_id: str = Field(description="the worker", examples=["5f0c2a9e4b7d4e1f9a3c6b8d2e4f6a8c"])
    points: list[WorkerUsagePointOut] = Field(description="its tasks' load over their runs of the last 24 hours "
                                              "(empty: none reported usage)")


class LocationOut(BaseModel):
    data_id: str = Field(description="the data's SHA-256 (hex)",
                         examples=['3f2a000000000000000000000000000000000000000000000000000000009c1e'])
    holders: list[str] = Field(description='"master" or worker ids: who holds a copy',
                               examples=[['master', '5f0c2a9e4b7d4e1f9a3c6b8d2e4f6a8c']])


BAD_JOB = ("the job cannot be planned: a spec error (naming the key or task), a script that does not parse, "
           "a missing file, a bad memory size or requirement; the message says which")


def create_app(sv: Services) -> FastAPI:
    app = FastAPI(title="RunSurge master", version="0.1.0", max_body_size=http_security.JSON_BODY_LIMIT,
                  description="Submit Python jobs to a volunteer compute network.", docs_url=None, redoc_url=None)
    bearer = HTTPBearer(auto_error=False)
    http_security.install(app, sv.cfg, sv.tokens)
    uploads = http_security.upload_limit(sv.cfg)  # cut off while streaming, past this many bytes
    limiter = LoginLimiter(sv.cfg.login_attempts_per_minute)
    signups = LoginLimiter(sv.cfg.registrations_per_hour, window_s=3600.0)
    no_account = hash_password(secrets.token_hex(16))  # checked for unknown emails: a login takes as long

    def current_user(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
        if creds is None:
            raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
        try:
            user_id = sv.tokens.verify(creds.credentials, "access").sub
        except TokenError as e:
            raise HTTPException(401, f"invalid token: {e}", headers={"WWW-Authenticate": "Bearer"}) from None
        with sv.db.session() as s:  # a deleted account's tokens die with it
            if s.get(User, user_id) is None:
                raise HTTPException(401, "invalid token: no such account", headers={"WWW-Authenticate": "Bearer"})
        return user_id

    UserId = Annotated[str, Depends(current_user)]  # noqa: N806 - a type alias

    def pair(user_id: str) -> TokenPair:
        return TokenPair(access_token=sv.tokens.issue(user_id, "access", sv.cfg.access_token_ttl_s),
                         refresh_token=sv.tokens.issue(user_id, "refresh", sv.cfg.refresh_token_ttl_s),
                         expires_in=sv.cfg.access_token_ttl_s)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/")

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/join")
    def join() -> JoinInfo:
        """For `runsurge-worker --master-url URL --ca-fingerprint sha256:...`: the rest of the addresses."""
        host = sv.cfg.grpc_host
        return JoinInfo(grpc_host=None if is_wildcard(host) else host, grpc_port=sv.cfg.grpc_port,
                        enroll_port=sv.cfg.enroll_port, ca_pem=sv.tls.ca_pem.decode(),
                        ca_fingerprint=fingerprint(sv.tls.ca_pem))

    # -- accounts ------------------------------------------------------------------------------
    @app.post("/api/auth/register", status_code=201, responses={
        400: {"description": "the email or password breaks the sign-up rules (the message says which)"},
        403: {"description": "registration is closed on this master (allow_registration)"},
        409: {"description": "that email is already registered"}, 429: {"description": "too many sign-ups"}})
    def register(body: Credentials, request: Request) -> UserOut:
        if not sv.cfg.allow_registration:
            raise HTTPException(403, "registration is closed on this master")
        address = request.client.host if request.client else "?"
        wait = signups.retry_after(address)
        if wait:
            raise HTTPException(429, f"too many sign-ups from your address; try again in {wait} s",
                                headers={"Retry-After": str(wait)})
        signups.failed(address)  # every attempt counts
        try:
            email = accounts.normalize_email(body.email)
            accounts.check_password(body.password, email)
        except accounts.AccountError as e:
            raise HTTPException(400, str(e)) from None
        try:
            with sv.db.session() as s:
                u = User(email=email, password_hash=hash_password(body.password))
                s.add(u)
                s.flush()
                return UserOut(id=u.id, email=u.email)
        except DBIntegrityError:
            raise HTTPException(409, "that email is already registered") from None

    @app.post("/api/auth/login", responses={401: {"description": "wrong email or password"},
                                            429: {"description": "too many failed logins"}})
    def login(body: Credentials, request: Request) -> TokenPair:
        address, account = request.client.host if request.client else "?", accounts.lookup_email(body.email)
        wait = limiter.retry_after(address)  # the guessing address waits; the owner elsewhere never does
        if wait:
            raise HTTPException(429, f"too many failed logins from your address; try again in {wait} s",
                                headers={"Retry-After": str(wait)})
        with sv.db.session() as s:
            u = s.scalar(select(User).where(User.email == account)) if account else None
        ok = verify_password(body.password, u.password_hash if u else no_account) and u is not None
        if not ok:
            limiter.failed(address)
            raise HTTPException(401, "wrong email or password")
        return pair(u.id)

    @app.post("/api/auth/refresh", responses={401: {"description": "an expired, invalid or not-refresh token"}})
    def refresh(body: RefreshRequest) -> TokenPair:
        try:
            user_id = sv.tokens.verify(body.refresh_token, "refresh").sub
        except TokenError as e:
            raise HTTPException(401, f"invalid refresh token: {e}") from None
        with sv.db.session() as s:
            if s.get(User, user_id) is None:
                raise HTTPException(401, "unknown user")
        return pair(user_id)

    @app.get("/api/me")
    def me(user: UserId) -> UserOut:
        with sv.db.session() as s:
            u = s.get(User, user)
            return UserOut(id=u.id, email=u.email)

    # -- jobs ----------------------------------------------------------------------------------
    def _prepare(user: str, req: submission.Request):
        with sv.db.session() as s:
            memory = list(s.scalars(select(Worker.memory_bytes).where(Worker.online)))

        def observations(job_name: str) -> dict:
            with sv.db.session() as s:
                return submission.memory_observations(s, user, job_name)

        return submission.prepare(sv.cfg, req, memory, observations)

    def _request(files: Files = None, spec: SpecField = None, mode: ModeField = None, script: ScriptField = None,
                 aggregator: AggregatorField = None, chunks: ChunksField = None,
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

    SubmissionForm = Annotated[submission.Request, Depends(_request)]  # noqa: N806 - a type alias

    @app.post("/api/jobs", status_code=201, max_body_size=uploads, responses={400: {"description": BAD_JOB}})
    def submit(user: UserId, req: SubmissionForm) -> JobOut:
        try:
            with _prepare(user, req) as job:
                env_id, task_envs = _environments(job)
                stored = _store(job.sources)
                try:
                    with sv.db.session() as s:
                        for data_id, size in stored.values():
                            lifecycle.ensure_data(s, data_id, size, None)
                        row = lifecycle.create_job(s, user, job.spec, {n: d for n, (d, _) in stored.items()},
                                                   task_envs, env_id)
                        s.flush()
                        out = _job_out(s, row, with_tasks=True, min_trust=sv.cfg.quorum_min_trust)
                except BaseException:
                    _discard_unreferenced({d for d, _ in stored.values()})
                    raise
        except SpecError as e:
            raise HTTPException(400, str(e)) from None
        out.explanation = job.explanation
        log.info("job submitted job=%s mode=%s tasks=%d user=%s", out.id, job.mode, out.tasks_total, user)
        sv.scheduler.wake()
        return out

    @app.post("/api/plan", max_body_size=uploads, responses={400: {"description": BAD_JOB}})
    def plan(user: UserId, req: SubmissionForm) -> PlanOut:
        """What a submission would become (tasks, dependencies, memory, and why), without running it."""
        try:
            with _prepare(user, req) as job:
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

    def _environments(job: submission.Prepared) -> tuple[str | None, dict[str, str | None]]:
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
                submission.check_imports(job, lambda reqs: _modules(envs[tuple(reqs)]))
                env_ids = {reqs: env.id if env else None for reqs, env in envs.items()}
        except SpecError:
            _discard_unreferenced(wheels)  # wheels this submission stored (the rows were rolled back)
            raise
        return (env_ids.get(tuple(spec.requirements)),
                {t.name: env_ids[tuple(spec.requirements_of(t))] for t in spec.tasks})

    def _modules(env) -> set[str]:  # an Environment (or None): what its wheels put on sys.path
        return {m for w in (env.wheels if env else ()) for m in imports.wheel_modules(sv.store.path(w["data_id"]))}

    def _store(sources: dict[str, submission.Source]) -> dict[str, tuple[str, int]]:
        stored: dict[str, tuple[str, int]] = {}
        budget = sv.cfg.max_upload_bytes
        try:
            for name, source in sources.items():
                if source.path is not None:
                    stored[name] = sv.store.put_file(source.path, max_size=budget)
                else:
                    with source.open() as f:
                        stored[name] = sv.store.put_stream(iter(lambda f=f: f.read(CHUNK_SIZE), b""), max_size=budget)
                budget -= stored[name][1]
        except IntegrityError:
            _discard_unreferenced({d for d, _ in stored.values()})
            raise HTTPException(413, f"uploads larger than {format_size(sv.cfg.max_upload_bytes)} in total") from None
        return stored

    def _discard_unreferenced(data_ids: set[str]) -> None:
        """Undo a failed submission's files, keeping objects that stored rows already reference."""
        with sv.db.session() as s:
            known = set(s.scalars(select(DataObject.id).where(DataObject.id.in_(data_ids))))
        for data_id in data_ids - known:
            sv.store.path(data_id).unlink(missing_ok=True)

    @app.get("/api/jobs")
    def list_jobs(user: UserId, limit: Annotated[int, Query(ge=1, le=500, description="jobs per page")] = 50,
                  offset: Annotated[int, Query(ge=0, le=1 << 31, description="jobs to skip")] = 0) -> list[JobOut]:
        """Your jobs, newest first; `offset` skips that many (pages of `limit`, at most 500)."""
        with sv.db.session() as s:
            jobs = s.scalars(select(Job).where(Job.owner_id == user, Job.status != "deleted")
                             .order_by(Job.created_at.desc(), Job.id).offset(offset)
                             .limit(limit)).all()
            counts = {job_id: (total, done, redundancy) for job_id, total, done, redundancy in s.execute(select(
                Task.job_id, func.count(), func.sum(case((Task.status == "done", 1), else_=0)),
                func.max(Task.redundancy)).where(Task.job_id.in_([j.id for j in jobs])).group_by(Task.job_id))}
            costs = _costs(s, [j.id for j in jobs])
            return [_job_out(s, j, with_tasks=False, min_trust=sv.cfg.quorum_min_trust,
                             counts=counts.get(j.id, (0, 0, 1)), cost=costs.get(j.id, 0)) for j in jobs]

    @app.get("/api/jobs/{job_id}")
    def get_job(job_id: str, user: UserId) -> JobOut:
        with sv.db.session() as s:
            return _job_out(s, own_job(s, job_id, user), with_tasks=True,
                            min_trust=sv.cfg.quorum_min_trust, live=sv.scheduler.live)

    @app.post("/api/jobs/{job_id}/cancel", responses={404: {"description": "no such job"},
                                                      409: {"description": "the job already finished"}})
    def cancel_job(job_id: str, user: UserId) -> JobOut:
        """Stop a running job: queued tasks are dropped, running ones stopped on their workers; the bill
        counts only what ran (done tasks, and the stopped runs for the time they ran)."""
        with sv.db.session() as s:
            job = own_job(s, job_id, user)
            if job.status != "running":
                raise HTTPException(409, f"job {job.id} already {job.status}: nothing to cancel")
            stops = lifecycle.cancel_job(s, job)
            s.flush()
            out = _job_out(s, job, with_tasks=True, min_trust=sv.cfg.quorum_min_trust)
        sv.scheduler.cancel_remote(stops)
        return out

    @app.delete("/api/jobs/{job_id}", status_code=204, responses={404: {"description": "no such job"},
                                                                  409: {"description": "the job still runs"}})
    def delete_job(job_id: str, user: UserId) -> None:
        """Delete a finished job with its stored data (scripts, uploads, results, logs); its bill stays."""
        with sv.db.session() as s:
            job = own_job(s, job_id, user)
            if job.status == "running":
                raise HTTPException(409, f"job {job.id} still runs: cancel it first (runsurge cancel {job.id[:8]})")
            lifecycle.transition(s, job, lifecycle.J.DELETED)
            s.flush()
            gone, drop = store_gc.forget_job(s, job)
        for data_id in gone:  # after the commit: a failed request deletes nothing
            sv.store.path(data_id).unlink(missing_ok=True)
        for worker_id, data_ids in drop.items():
            sv.scheduler.delete_remote(worker_id, data_ids)

    @app.get("/api/jobs/{job_id}/results")
    def list_results(job_id: str, user: UserId) -> list[ResultOut]:
        with sv.db.session() as s:
            job = own_job(s, job_id, user)
            return [ResultOut(task=t.name, name=o.name, data_id=o.data_id, size=o.size or 0)
                    for t in job.tasks for o in t.outputs if o.is_result and o.data_id]

    @app.get("/api/jobs/{job_id}/results/{task_name}/{file_name}")
    def download_result(job_id: str, task_name: str, file_name: str, user: UserId) -> FileResponse:
        with sv.db.session() as s:
            job = own_job(s, job_id, user)
            match = [o.data_id for t in job.tasks if t.name == task_name
                     for o in t.outputs if o.name == file_name and o.is_result and o.data_id]
        if not match or not sv.store.has(match[0]):
            raise HTTPException(404, "no such result")
        return FileResponse(sv.store.path(match[0]), filename=file_name,
                            media_type="application/octet-stream")

    @app.get("/api/jobs/{job_id}/locations")
    def data_locations(job_id: str, user: UserId) -> list[LocationOut]:
        """Who holds each of the job's data objects (the master and/or workers' caches)."""
        with sv.db.session() as s:
            job = own_job(s, job_id, user)
            ids = {i.data_id for t in job.tasks for i in t.inputs if i.data_id}
            ids |= {o.data_id for t in job.tasks for o in t.outputs if o.data_id}
            holders: dict[str, list[str]] = {d: [] for d in ids}
            for data_id, worker_id in s.execute(select(DataLocation.data_id, DataLocation.worker_id)
                                                .where(DataLocation.data_id.in_(ids))):
                holders[data_id].append(worker_id or "master")
        return [LocationOut(data_id=d, holders=sorted(h)) for d, h in sorted(holders.items())]

    @app.get("/api/tasks/{task_id}/logs", response_class=PlainTextResponse, responses={
        200: {"description": "the log from `offset` (text); X-Log-Offset: where the next read starts, "
                             "X-Task-Running: 1 while more may come, X-Task-Status: the task's status"},
        400: {"description": "stream is neither stdout nor stderr"},
        503: {"description": "the task runs on a worker the master cannot reach now (Retry-After)"}})
    def task_logs(task_id: str, user: UserId,
                  stream: Annotated[str, Query(description="stdout or stderr", examples=["stdout"])] = "stdout",
                  offset: Annotated[int, Query(ge=0, le=1 << 62, description="the first byte wanted "
                                               "(the X-Log-Offset of the previous read)")] = 0) -> PlainTextResponse:
        """A task's output so far: while it runs, read from the worker running it; once it ended, the
        log the master keeps. Follow a running task by reading again from X-Log-Offset."""
        if stream not in ("stdout", "stderr"):
            raise HTTPException(400, "stream must be stdout or stderr")
        chunk = task_logs_module.read(sv, task_id, user, stream, offset)
        return PlainTextResponse(chunk.text, headers={
            "X-Task-Status": chunk.status, "X-Log-Offset": str(chunk.next_offset),
            "X-Task-Running": "1" if chunk.running else "0"})

    @app.get("/api/tasks/{task_id}/usage")
    def task_usage(task_id: str, user: UserId) -> TaskUsageOut:
        """CPU and memory over each run of a task, from its worker's metering samples (after the run)."""
        with sv.db.session() as s:
            t = s.get(Task, task_id)
            if t is None or t.job.owner_id != user or t.job.status == "deleted":
                raise HTTPException(404, "no such task")
            return TaskUsageOut(task_id=t.id, runs=[UsageRunOut(
                attempt=r.attempt, worker_id=r.worker_id, started_at=r.started_at,
                points=[UsagePointOut(t_s=t_s, cpu_s=cpu, cpu_cores=cores, rss_bytes=rss)
                        for t_s, cpu, cores, rss in usage.points(r.samples)])
                for r in usage.of_task(s, t.id)])

    # -- workers -------------------------------------------------------------------------------
    @app.get("/api/workers/{worker_id}/usage", responses={404: {"description": "no such worker of yours"}})
    def worker_usage(worker_id: str, user: UserId) -> WorkerUsageOut:
        """CPU and memory of one of your workers over its tasks' runs of the last 24 hours."""
        with sv.db.session() as s:
            w = s.get(Worker, worker_id)
            if w is None or w.owner_id != user:
                raise HTTPException(404, "no such worker of yours")
            return WorkerUsageOut(worker_id=w.id, points=[
                WorkerUsagePointOut(at=at, cpu_cores=cpu, rss_bytes=rss)
                for at, cpu, rss in usage.of_worker(s, w.id, utcnow())])

    @app.get("/api/workers")
    def my_workers(user: UserId) -> list[WorkerOut]:
        with sv.db.session() as s:
            return [WorkerOut(id=w.id, host=w.host, grpc_port=w.grpc_port, online=w.online, sandbox=w.sandbox,
                              memory_bytes=w.memory_bytes, cpus=w.cpus, slots=w.slots,
                              running_tasks=w.running_tasks, tasks_done=w.tasks_done, trust=w.trust,
                              last_heartbeat=w.last_heartbeat, benched=benching.benched(w),
                              benched_until=w.benched_until, bench_reason=w.bench_reason,
                              fault_streak=w.fault_streak or 0, suspended=w.suspended,
                              environments=sorted(sv.scheduler.live.environments(w.id)))
                    for w in s.scalars(select(Worker).where(Worker.owner_id == user).order_by(Worker.registered_at))]

    app.include_router(billing_router(sv, current_user))
    app.include_router(metrics_router(sv))
    app.include_router(web_router(sv))
    app.include_router(docs_router(app.title))  # offline: Swagger UI's assets come from the master
    document_errors(app, current_user)
    return app


def _source(src) -> str:
    return src.upload if src.upload else f"task:{src.task}/{src.output}"


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


def _costs(s, job_ids: list[str]) -> dict[str, int]:
    """Job id → micro-credits charged (the sum of its bill's lines), in one query for a page of jobs."""
    return dict(s.execute(select(LedgerTransaction.job_id, func.sum(LedgerTransaction.amount))
                          .where(LedgerTransaction.job_id.in_(job_ids), LedgerTransaction.kind == "charge")
                          .group_by(LedgerTransaction.job_id)).all()) if job_ids else {}


def _job_out(s, job: Job, with_tasks: bool, min_trust: int,
             counts: tuple[int, int, int] | None = None, cost: int | None = None,
             live: LiveState | None = None) -> JobOut:
    """`min_trust`: the master's quorum_min_trust (which workers count as available for a quorum).
    `live`: what workers last reported (the tasks' phases).
    Without tasks: `counts` = (tasks, done, redundancy), as list_jobs reads them for all jobs at once.
    A fixed number of queries however many tasks the job has (no load per task)."""
    if with_tasks:
        tasks = s.scalars(select(Task).where(Task.job_id == job.id).order_by(Task.seq).options(
            selectinload(Task.inputs), selectinload(Task.outputs))).all()
        total, done = len(tasks), sum(t.status == "done" for t in tasks)
        redundancy = max((t.redundancy for t in tasks), default=1)
    else:
        total, done, redundancy = counts
    out = JobOut(id=job.id, name=job.name, status=job.status, error=job.error, created_at=job.created_at,
                 finished_at=job.finished_at, tasks_total=total, tasks_done=done, redundancy=redundancy,
                 cost=_costs(s, [job.id]).get(job.id, 0) if cost is None else cost,
                 environment_id=job.environment_id)
    if with_tasks:
        names = {t.id: t.name for t in tasks}
        quorum = [t.id for t in tasks if t.redundancy > 1]
        runs = replicas.of_tasks(s, quorum) if quorum else {}
        phases = {t.id: text for t in tasks if t.status in lifecycle.ACTIVE and live is not None
                  and (text := waiting.phase_text(live.phase(t.worker_id, t.id)))}
        reasons = waiting.reasons(s, tasks, min_trust, phases) if job.status == "running" else {}
        envs = {t.id: environments.of_task(t) for t in tasks}
        out.waiting = waiting.summary(reasons)
        out.tasks = [TaskOut(
            id=t.id, name=t.name, status=t.status, worker_id=t.worker_id, attempts=t.attempts,
            inputs={i.name: i.data_id for i in t.inputs}, outputs={o.name: o.data_id for o in t.outputs},
            memory_bytes=t.memory_bytes, exit_code=t.exit_code, wall_s=t.wall_s, cpu_s=t.cpu_s,
            mem_avg_bytes=t.mem_avg_bytes, mem_peak_bytes=t.mem_peak_bytes, error=t.error,
            depends_on=sorted({names[i.producer_task_id] for i in t.inputs if i.producer_task_id}),
            started_at=t.started_at, finished_at=t.finished_at, restore_s=t.restore_s, redundancy=t.redundancy,
            waiting=reasons.get(t.id), phase=phases.get(t.id), environment=_environment_out(envs[t.id]),
            replicas=[_replica_out(r) for r in runs.get(t.id, [])] if t.redundancy > 1 else None)
            for t in tasks]
    return out


def _environment_out(env) -> EnvironmentOut | None:  # an Environment
    return None if env is None else EnvironmentOut(id=env.id, requirements=env.requirements.splitlines())


def _replica_out(r) -> ReplicaOut:  # a TaskReplica
    return ReplicaOut(worker_id=r.worker_id, attempt=r.attempt, status=r.status, verdict=r.verdict,
                      outputs={name: data_id for name, (data_id, _) in (r.outputs or {}).items()},
                      failed=r.result == FAILED, exit_code=r.exit_code, wall_s=r.wall_s, cpu_s=r.cpu_s, error=r.error)
