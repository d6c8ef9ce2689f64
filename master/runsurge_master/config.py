"""Master settings: embedded defaults, overridden by a TOML file, then by RUNSURGE_* variables."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path


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
    grpc_port: int = 50051              # RUNSURGE_GRPC_PORT
    heartbeat_interval_s: float = 2.0   # RUNSURGE_HEARTBEAT_INTERVAL_S: workers beat this often
    missed_heartbeats: int = 3          # RUNSURGE_MISSED_HEARTBEATS: then the worker is offline
    max_attempts: int = 3               # RUNSURGE_MAX_ATTEMPTS: runs of a task before its job fails
    access_token_ttl_s: int = 900       # RUNSURGE_ACCESS_TOKEN_TTL_S
    refresh_token_ttl_s: int = 7 * 86400  # RUNSURGE_REFRESH_TOKEN_TTL_S
    max_upload_bytes: int = 2 << 30     # RUNSURGE_MAX_UPLOAD_BYTES: per uploaded file
    max_job_files: int = 256            # RUNSURGE_MAX_JOB_FILES
    max_tasks_per_job: int = 10000      # RUNSURGE_MAX_TASKS_PER_JOB
    default_task_memory: int = 256 << 20  # RUNSURGE_DEFAULT_TASK_MEMORY (bytes)
    default_task_timeout_s: float = 3600.0  # RUNSURGE_DEFAULT_TASK_TIMEOUT_S
    max_output_bytes: int = 1 << 30     # RUNSURGE_MAX_OUTPUT_BYTES: per task
    allow_registration: bool = True     # RUNSURGE_ALLOW_REGISTRATION
    log_level: str = "INFO"             # RUNSURGE_LOG_LEVEL

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'master.db'}"

    @property
    def store_dir(self) -> Path:
        return self.home / "objects"


def _coerce(kind: type | str, value: object) -> object:
    kind = {"Path": Path, "str": str, "int": int, "float": float, "bool": bool}.get(kind, kind)  # type: ignore[arg-type]
    if kind is bool and isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return kind(value)  # type: ignore[operator]


def load_config(path: Path | None = None, **overrides: object) -> MasterConfig:
    """Defaults < TOML file (RUNSURGE_CONFIG or `path`) < environment < explicit overrides."""
    values: dict[str, object] = {}
    path = path or (Path(os.environ["RUNSURGE_CONFIG"]) if os.environ.get("RUNSURGE_CONFIG") else None)
    if path:
        values.update(tomllib.loads(Path(path).read_text()).get("master", {}))
    for f in fields(MasterConfig):
        env = os.environ.get(f"RUNSURGE_{f.name.upper()}")
        if env is not None:
            values[f.name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name: f.type for f in fields(MasterConfig)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"unknown master setting(s): {', '.join(sorted(unknown))}")
    cfg = MasterConfig(**{k: _coerce(known[k], v) for k, v in values.items()})
    if cfg.home == Path():
        cfg.home = default_home()
    return cfg
