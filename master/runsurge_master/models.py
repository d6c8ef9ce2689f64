"""SQLAlchemy 2 models: the master's whole state. Schema changes go through Alembic migrations."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Worker(Base):
    __tablename__ = "workers"
    __table_args__ = (UniqueConstraint("owner_id", "fingerprint"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    fingerprint: Mapped[str] = mapped_column(String(128))
    host: Mapped[str] = mapped_column(String(255))
    grpc_port: Mapped[int] = mapped_column(Integer)
    memory_bytes: Mapped[int] = mapped_column(BigInteger)
    cpus: Mapped[int] = mapped_column(Integer)
    slots: Mapped[int] = mapped_column(Integer)
    sandbox: Mapped[str] = mapped_column(String(32), default="")
    online: Mapped[bool] = mapped_column(Boolean, default=True, index=True)
    last_heartbeat: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    running_tasks: Mapped[int] = mapped_column(Integer, default=0)
    memory_used_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    registered_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    tasks_done: Mapped[int] = mapped_column(Integer, default=0)
    cert_serial: Mapped[str | None] = mapped_column(String(40), nullable=True)  # its current TLS certificate
    cert_not_after: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # Billing: this worker's prices are the base tariff times price_factor_milli / 1000 (set by the operator).
    price_factor_milli: Mapped[int] = mapped_column(Integer, default=1000, server_default="1000")
    # Reputation from quorum tasks (quorum.py): agreeing raises it a little, being the odd one out drops it a lot.
    trust: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Benching (benching.py): faults since its last success; gets no tasks until benched_until, and why.
    fault_streak: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    benched_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    bench_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Its owner's machine is busy, outside its schedule, or the worker is stopping (its heartbeat says
    # why): no new task goes there and its queued tasks move to other workers. None: takes work.
    suspended: Mapped[str | None] = mapped_column(String(200), nullable=True)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.grpc_port}"


class RevokedCert(Base):
    """Certificates the master no longer accepts (a worker retired or compromised)."""

    __tablename__ = "revoked_certs"
    serial: Mapped[str] = mapped_column(String(40), primary_key=True)  # hex
    revoked_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    reason: Mapped[str] = mapped_column(String(200), default="")


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="running", index=True)  # running|done|failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    environment_id: Mapped[str | None] = mapped_column(ForeignKey("environments.id"), nullable=True)  # its packages
    tasks: Mapped[list[Task]] = relationship(back_populates="job", order_by="Task.seq")
    environment: Mapped[Environment | None] = relationship()


class Environment(Base):
    """A resolved set of wheels (environments.py); the id is the sha256 of the lock."""

    __tablename__ = "environments"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    requirements: Mapped[str] = mapped_column(Text)  # the canonical lines it was first resolved from
    lock: Mapped[str] = mapped_column(Text)          # `name==version sha256` lines, sorted
    wheels: Mapped[list] = mapped_column(JSON)       # [{name, version, data_id, size, filename}]
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class EnvironmentResolution(Base):
    """The resolution cache: a requirement set (with target and sources) → its environment."""

    __tablename__ = "environment_resolutions"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    environment_id: Mapped[str] = mapped_column(ForeignKey("environments.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class DataObject(Base):
    """Content-addressed bytes: the id is the sha256 hex of the content."""

    __tablename__ = "data_objects"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class DataLocation(Base):
    """Who holds a copy: the master (worker_id NULL) or a worker's cache."""

    __tablename__ = "data_locations"
    __table_args__ = (UniqueConstraint("data_id", "worker_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    data_id: Mapped[str] = mapped_column(ForeignKey("data_objects.id"), index=True)
    worker_id: Mapped[str | None] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"),
                                                  nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class RunMetering:
    """What a run reported, as the master accepted it (metering.py clamps it): the columns of a plain
    task's run on its Task, and of each run of a quorum task on its TaskReplica (the winner's are
    copied to the task when the quorum decides)."""

    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    wall_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    cpu_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    mem_avg_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    mem_peak_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    stdout_data_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # its logs, once uploaded
    stderr_data_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


METERING = tuple(RunMetering.__annotations__)  # the names of those columns


class Task(RunMetering, Base):
    __tablename__ = "tasks"
    __table_args__ = (UniqueConstraint("job_id", "name"), Index("ix_tasks_status", "status"))
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)  # order in the spec
    name: Mapped[str] = mapped_column(String(200))
    script_name: Mapped[str] = mapped_column(String(255))
    script_data_id: Mapped[str] = mapped_column(ForeignKey("data_objects.id"))
    # pending (waits for inputs) | ready | assigned | running | checkpointed | done | failed | cancelled
    status: Mapped[str] = mapped_column(String(16), default="pending")
    worker_id: Mapped[str | None] = mapped_column(ForeignKey("workers.id"), nullable=True, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Distinct workers that faulted on it (lost, crashed, refused, could not fetch: TaskFault rows): the
    # retry budget. `attempts` also counts lineage re-runs and moves to an idle worker, not the task's fault.
    faults: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    memory_bytes: Mapped[int] = mapped_column(BigInteger)
    # RunSurge chose memory_bytes (an estimate or the default), so it may raise it after a kill at the limit.
    memory_estimated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    cpus: Mapped[int] = mapped_column(Integer, default=1)
    timeout_s: Mapped[float] = mapped_column(Float)
    collect_all_outputs: Mapped[bool] = mapped_column(Boolean, default=False)
    # Workers of different contributors that must agree on the outputs (1: no quorum; see quorum.py).
    # With 2, the task runs as TaskReplica rows and worker_id is only set once the quorum decided.
    redundancy: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    ready_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # last became ready (metrics)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # Its worker stopped and saved the run (checkpointed): kept for that worker until this + checkpoint_grace_s.
    checkpointed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # A resumed run: seconds its VM took to come back (kept out of wall_s), summed over its resumes.
    restore_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Its packages: the job-wide environment, or its own (a spec task's `requirements`); None: none.
    # Read through environments.of_task.
    environment_id: Mapped[str | None] = mapped_column(ForeignKey("environments.id"), nullable=True)
    job: Mapped[Job] = relationship(back_populates="tasks")
    environment: Mapped[Environment | None] = relationship()
    inputs: Mapped[list[TaskInput]] = relationship(back_populates="task", cascade="all, delete-orphan",
                                                   foreign_keys="TaskInput.task_id")
    outputs: Mapped[list[TaskOutput]] = relationship(back_populates="task", cascade="all, delete-orphan")


class TaskFault(Base):
    """A worker that refused, faulted or timed out on a task: the task is never offered to it again,
    and the task's retry budget counts these rows (distinct workers), not retries."""

    __tablename__ = "task_faults"
    __table_args__ = (UniqueConstraint("task_id", "worker_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), index=True)
    worker_id: Mapped[str] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class TaskUsage(Base):
    """CPU and memory over one run of a task, from its worker's metering samples (usage.py clips them)."""

    __tablename__ = "task_usage"
    __table_args__ = (UniqueConstraint("task_id", "attempt"), Index("ix_task_usage_worker", "worker_id", "started_at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    # [[seconds since start, CPU seconds so far, resident bytes], ...]: times and CPU never go back
    samples: Mapped[list] = mapped_column(JSON)


class TaskUpload(Base):
    """An object a worker uploaded for its run of a task (ReceiveData): a run may upload only its task's
    results and logs, each once, and its report may name as results and logs only what it uploaded."""

    __tablename__ = "task_uploads"
    __table_args__ = (UniqueConstraint("task_id", "worker_id", "attempt", "data_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), index=True)
    worker_id: Mapped[str] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    data_id: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class TaskInput(Base):
    """Task↔data dependency: a file the task reads, either uploaded or another task's output."""

    __tablename__ = "task_inputs"
    __table_args__ = (UniqueConstraint("task_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    # Known for uploads; filled in when the producer completes for task outputs.
    data_id: Mapped[str | None] = mapped_column(ForeignKey("data_objects.id"), nullable=True)
    producer_task_id: Mapped[str | None] = mapped_column(ForeignKey("tasks.id"), nullable=True, index=True)
    producer_output: Mapped[str | None] = mapped_column(String(255), nullable=True)
    task: Mapped[Task] = relationship(back_populates="inputs", foreign_keys=[task_id])


class TaskOutput(Base):
    __tablename__ = "task_outputs"
    __table_args__ = (UniqueConstraint("task_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    # A job result (no task consumes it, or the spec says so): uploaded to the master.
    is_result: Mapped[bool] = mapped_column(Boolean, default=False)
    data_id: Mapped[str | None] = mapped_column(ForeignKey("data_objects.id"), nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    task: Mapped[Task] = relationship(back_populates="outputs")


class TaskReplica(RunMetering, Base):
    """One run of a quorum task (redundancy > 1) on one worker. The replicas of a task run on workers of
    different contributors; their results are compared and the majority wins (quorum.py, replicas.py)."""

    __tablename__ = "task_replicas"
    __table_args__ = (UniqueConstraint("task_id", "attempt"), Index("ix_task_replicas_status", "status"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)  # the task's run number (Task.attempts when placed)
    worker_id: Mapped[str] = mapped_column(ForeignKey("workers.id"), index=True)
    # assigned | running | done (reported a result) | lost (a worker fault: not a vote) | cancelled
    status: Mapped[str] = mapped_column(String(16), default="assigned")
    # Once the task's quorum decided: agree | odd (outvoted) | differ (no majority). NULL: still in play.
    verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)
    result: Mapped[str | None] = mapped_column(String(64), nullable=True)  # quorum.result_key of what it reported
    outputs: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # name → [data id, size]
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class LedgerTransaction(Base):
    """One balanced posting of the double-entry ledger (see billing.py): a task's charge, a quorum replica's
    earning paid out of its task's charge, a platform-paid recomputation, or a job owner's payment. Its
    entries always sum to zero."""

    __tablename__ = "ledger_transactions"
    # One posting per task run (a quorum task's charge: attempt 0, the task as a whole; its replicas' earnings:
    # their own attempts): a retried or duplicated report can never bill twice.
    __table_args__ = (UniqueConstraint("task_id", "attempt"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # charge | earning | recompute | payment
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    task_id: Mapped[str | None] = mapped_column(ForeignKey("tasks.id"), nullable=True, index=True)
    attempt: Mapped[int | None] = mapped_column(Integer, nullable=True)
    worker_id: Mapped[str | None] = mapped_column(ForeignKey("workers.id"), nullable=True, index=True)
    contributor_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), nullable=True, index=True)
    amount: Mapped[int] = mapped_column(BigInteger)  # micro-credits: the charge, or the payment
    # The usage and prices the amount was computed from (a later tariff change does not rewrite a bill).
    cpu_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    wall_us: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    memory_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    price_factor_milli: Mapped[int | None] = mapped_column(Integer, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)  # the task's: done | failed
    # For a charge: the payment that settled it (NULL while due).
    paid_by_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    entries: Mapped[list[LedgerEntry]] = relationship(back_populates="txn", cascade="all, delete-orphan")


class LedgerEntry(Base):
    """One leg of a posting. Accounts are named "user:<id>" (a job owner: negative = owes),
    "contributor:<id>" (earnings), "platform:fees" and "external:payments" (money from outside)."""

    __tablename__ = "ledger_entries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    txn_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    account: Mapped[str] = mapped_column(String(80), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)  # micro-credits, signed
    txn: Mapped[LedgerTransaction] = relationship(back_populates="entries")
