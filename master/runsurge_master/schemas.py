"""The HTTP API's request and response models (pydantic), one place for every router's shapes.
Amounts are integer micro-credits; each also comes formatted in credits (`*_credits`, a decimal
string) for people."""

from datetime import datetime

from pydantic import BaseModel, Field

from runsurge_master import submission


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



class BillReplica(BaseModel):
    """A quorum task's agreeing run, billed within its task's line (the outvoted one earns nothing)."""
    worker_id: str = Field(description='the worker that ran it', examples=['5f0c2a9e4b7d4e1f9a3c6b8d2e4f6a8c'])
    attempt: int = Field(description='its run number', examples=[1])
    cpu_s: float = Field(description='CPU seconds billed', examples=[2.1])
    wall_s: float = Field(description='seconds billed', examples=[2.5])
    price_factor: str = Field(description="its worker's price factor", examples=['1.000'])
    earned: int = Field(description="micro-credits paid to its contributor out of the line's amount", examples=[24])


class BillLine(BaseModel):
    task_id: str = Field(description='the task', examples=['9a3c6b8d2e4f6a8c5f0c2a9e4b7d4e1f'])
    task: str = Field(description='its name', examples=['total'])
    attempt: int = Field(description='the run billed (0: a quorum task, charged once for its agreeing replicas)',
                         examples=[1])
    worker_id: str | None = Field(description='the worker that ran it (null for a quorum task: see replicas)',
                                  examples=['5f0c2a9e4b7d4e1f9a3c6b8d2e4f6a8c'])
    outcome: str = Field(description="done | failed (the user's script failed) | cancelled (stopped by its owner: what "
                                     "it ran)",
                         examples=['done'])
    cpu_s: float = Field(description='CPU seconds billed (a quorum task: the sum over its billed replicas)',
                         examples=[2.1])
    wall_s: float = Field(description='seconds billed (a quorum task: the sum over its billed replicas)',
                          examples=[2.5])
    memory_bytes: int = Field(description='memory reserved', examples=[268435456])
    price_factor: str | None = Field(description="the worker's price factor (a quorum task: per replica)",
                                     examples=['1.000'])
    amount: int = Field(description='micro-credits', examples=[53])
    paid: bool = Field(description="the job's owner paid it", examples=[False])
    replicas: list[BillReplica] = Field(default_factory=list, description="a quorum task's billed replicas")


class BillOut(BaseModel):
    job_id: str = Field(description='the job', examples=['bd46d5c1a2f34e7f9c0b8a1d2e3f4a5b'])
    unit: str = Field("micro-credits", description='the unit of every amount', examples=['micro-credits'])
    lines: list[BillLine] = Field(description='one line per billed run')
    total: int = Field(description='micro-credits charged', examples=[53])
    paid: int = Field(description='micro-credits paid', examples=[0])
    due: int = Field(description='micro-credits still due', examples=[53])
    total_credits: str = Field(description='total in credits (exact decimal)', examples=['0.000053'])
    due_credits: str = Field(description='due in credits (exact decimal)', examples=['0.000053'])


class PaymentOut(BaseModel):
    payment_id: int = Field(description="the payment's id", examples=[7])
    amount: int = Field(description='micro-credits paid', examples=[53])
    amount_credits: str = Field(description='amount in credits (exact decimal)', examples=['0.000053'])
    bill: BillOut = Field(description='the bill after the payment')


class WorkerEarnings(BaseModel):
    worker_id: str = Field(description='your worker', examples=['5f0c2a9e4b7d4e1f9a3c6b8d2e4f6a8c'])
    host: str = Field(description='its address', examples=['192.168.1.20'])
    tasks: int = Field(description='tasks it was paid for', examples=[12])
    pending: int = Field(description='micro-credits not paid yet', examples=[120])
    paid: int = Field(description='micro-credits paid', examples=[480])


class TaskEarning(BaseModel):
    task_id: str = Field(description='the task', examples=['9a3c6b8d2e4f6a8c5f0c2a9e4b7d4e1f'])
    job_id: str = Field(description='its job', examples=['bd46d5c1a2f34e7f9c0b8a1d2e3f4a5b'])
    attempt: int = Field(description='its run number', examples=[1])
    worker_id: str = Field(description='your worker that ran it', examples=['5f0c2a9e4b7d4e1f9a3c6b8d2e4f6a8c'])
    kind: str = Field(description="charge (the job's owner pays) | earning (a quorum replica's share) | recompute (the "
                                  "platform pays a re-run)",
                      examples=['charge'])
    #           | recompute (the platform pays a re-run)
    outcome: str = Field(description='done | failed | cancelled', examples=['done'])
    cpu_s: float = Field(description='CPU seconds', examples=[2.1])
    wall_s: float = Field(description='seconds it ran', examples=[2.5])
    at: datetime = Field(description='when it was billed (UTC)', examples=['2026-12-07T08:15:00'])
    amount: int = Field(description='micro-credits earned', examples=[48])
    paid: bool = Field(description="the job's owner paid it", examples=[True])


class EarningsOut(BaseModel):
    unit: str = Field("micro-credits", description='the unit of every amount', examples=['micro-credits'])
    total: int = Field(description='micro-credits earned', examples=[600])
    pending: int = Field(description='micro-credits not paid yet', examples=[120])
    paid: int = Field(description='micro-credits paid', examples=[480])
    total_credits: str = Field(description='total in credits (exact decimal)', examples=['0.000600'])
    pending_credits: str = Field(description='pending in credits', examples=['0.000120'])
    paid_credits: str = Field(description='paid in credits', examples=['0.000480'])
    workers: list[WorkerEarnings] = Field(description='per worker')
    tasks: list[TaskEarning] = Field(description='per task, newest first (the latest `limit`)')
