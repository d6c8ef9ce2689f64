"""Master settings (see runsurge_proto.settings for how defaults, TOML and RUNSURGE_* combine)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from runsurge_proto.settings import load_settings


def is_wildcard(host: str) -> bool:
    """A listen address meaning "every interface": not one a client can dial."""
    return host in ("", "0.0.0.0", "::")


def default_home() -> Path:
    if os.geteuid() == 0 and Path("/var/lib/runsurge").is_dir():
        return Path("/var/lib/runsurge")
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local/share")) / "runsurge"


@dataclass
class MasterConfig:
    home: Path = Path()                 # RUNSURGE_HOME: data dir (db, object store, keys)
    database_url: str = ""              # RUNSURGE_DATABASE_URL: default sqlite under home
    http_host: str = "127.0.0.1"        # RUNSURGE_HTTP_HOST
    http_port: int = 8080               # RUNSURGE_HTTP_PORT
    grpc_host: str = "127.0.0.1"        # RUNSURGE_GRPC_HOST
    grpc_port: int = 50051              # RUNSURGE_GRPC_PORT: mutual TLS, for registered workers
    enroll_port: int = 50052            # RUNSURGE_ENROLL_PORT: TLS, where workers register (send a CSR)
    tls_hosts: str = "127.0.0.1,localhost"  # RUNSURGE_TLS_HOSTS: names/IPs in the master's certificate
    pki_dir: Path = Path()              # RUNSURGE_PKI_DIR: the private CA (default: home/pki)
    heartbeat_interval_s: float = 2.0   # RUNSURGE_HEARTBEAT_INTERVAL_S: workers beat this often
    missed_heartbeats: int = 3          # RUNSURGE_MISSED_HEARTBEATS: then the worker is offline
    max_attempts: int = 3               # RUNSURGE_MAX_ATTEMPTS: worker faults of a task before its job fails
    prefetch: int = 2                   # RUNSURGE_PREFETCH: tasks queued on a busy worker beyond its slots (0: off)
    access_token_ttl_s: int = 900       # RUNSURGE_ACCESS_TOKEN_TTL_S
    refresh_token_ttl_s: int = 7 * 86400  # RUNSURGE_REFRESH_TOKEN_TTL_S
    max_upload_bytes: int = 2 << 30     # RUNSURGE_MAX_UPLOAD_BYTES: a submission's files together
    max_concurrent_uploads: int = 2     # RUNSURGE_MAX_CONCURRENT_UPLOADS: submissions one user may stream at once
    max_job_files: int = 256            # RUNSURGE_MAX_JOB_FILES
    max_tasks_per_job: int = 10000      # RUNSURGE_MAX_TASKS_PER_JOB
    default_task_memory: int = 256 << 20  # RUNSURGE_DEFAULT_TASK_MEMORY (bytes)
    default_task_timeout_s: float = 3600.0  # RUNSURGE_DEFAULT_TASK_TIMEOUT_S
    max_output_bytes: int = 1 << 30     # RUNSURGE_MAX_OUTPUT_BYTES: per task
    max_output_files: int = 1000        # RUNSURGE_MAX_OUTPUT_FILES: per task that collects every file it writes
    gc_interval_s: float = 600.0        # RUNSURGE_GC_INTERVAL_S: how often unreferenced objects are deleted
    gc_grace_s: float = 3600.0          # RUNSURGE_GC_GRACE_S: objects younger than this are kept (uploads in flight)
    allow_registration: bool = True     # RUNSURGE_ALLOW_REGISTRATION
    login_attempts_per_minute: int = 10  # RUNSURGE_LOGIN_ATTEMPTS_PER_MINUTE: failed logins per client address
    registrations_per_hour: int = 20    # RUNSURGE_REGISTRATIONS_PER_HOUR: sign-ups per client address
    cors_origins: str = ""              # RUNSURGE_CORS_ORIGINS: comma-separated origins allowed (default: none)
    log_level: str = "INFO"             # RUNSURGE_LOG_LEVEL
    price_cpu_hour: int = 1_000_000     # RUNSURGE_PRICE_CPU_HOUR: micro-credits per CPU-hour used (docs/billing.md)
    price_gib_hour: int = 250_000       # RUNSURGE_PRICE_GIB_HOUR: micro-credits per GiB-hour of reserved memory
    platform_fee_percent: int = 10      # RUNSURGE_PLATFORM_FEE_PERCENT: share of each charge kept by the platform
    # RUNSURGE_PACKAGE_INDEX_URL: where job requirements resolve (empty: no index, offline)
    package_index_url: str = "https://pypi.org/simple"
    wheelhouse_dir: Path = Path()       # RUNSURGE_WHEELHOUSE_DIR: an operator's folder of wheels (works offline)
    env_python_version: str = "3.11"    # RUNSURGE_ENV_PYTHON_VERSION: the guest's interpreter, wheels are chosen for it
    env_platform: str = "manylinux_2_36_x86_64"  # RUNSURGE_ENV_PLATFORM: the guest's platform tag (glibc 2.36)
    resolve_timeout_s: float = 300.0    # RUNSURGE_RESOLVE_TIMEOUT_S: one requirement set's resolution
    max_environment_bytes: int = 1 << 30  # RUNSURGE_MAX_ENVIRONMENT_BYTES: an environment's wheels together
    quorum_min_trust: int = -10         # RUNSURGE_QUORUM_MIN_TRUST: workers below this trust get no quorum replicas

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'master.db'}"

    @property
    def store_dir(self) -> Path:
        return self.home / "objects"


def load_config(path: Path | None = None, **overrides: object) -> MasterConfig:
    cfg = load_settings(MasterConfig, "master", path, **overrides)
    if cfg.home == Path():
        cfg.home = default_home()
    if cfg.pki_dir == Path():
        cfg.pki_dir = cfg.home / "pki"
    return cfg
