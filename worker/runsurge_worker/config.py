"""Worker settings (see runsurge_proto.settings for how defaults, TOML and RUNSURGE_* combine).
Environment names: RUNSURGE_<FIELD>, e.g. RUNSURGE_MASTER_URL, RUNSURGE_SLOTS."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from runsurge_proto.settings import load_settings
from runsurge_worker.hostload import parse_users
from runsurge_worker.sandbox import BACKENDS
from runsurge_worker.schedule import Schedule


def _total_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 1 << 30


@dataclass
class WorkerConfig:
    home: Path = Path()                      # state: cache, task area, sandbox files
    master_url: str = "http://127.0.0.1:8080"  # the master's HTTP API (login)
    master_grpc: str = "127.0.0.1:50051"     # the master's gRPC address (mutual TLS)
    master_enroll: str = "127.0.0.1:50052"   # the master's enrolment address (registration)
    ca_file: Path = Path("/etc/runsurge/ca.pem")  # the private CA's certificate (from the master's pki dir)
    ca_fingerprint: str = ""                 # sha256:... of the CA: then the master's URL is enough (join.py)
    email: str = ""                          # the contributor's account
    password: str = ""                       # (or password_file)
    password_file: str = ""
    host: str = "127.0.0.1"                  # address the master and peers use to reach this worker
    listen: str = "127.0.0.1"                # interface the WorkerService binds
    port: int = 50061                        # WorkerService port (0: any free port)
    memory: int = 0                          # bytes offered to tasks (0: half of this machine's RAM)
    cpus: int = 0                            # CPUs offered (0: all)
    slots: int = 0                           # tasks at once (0: = cpus)
    sandbox: str = "qemu"                    # qemu | bwrap | virtualbox | process (development only)
    image_dir: Path = Path("/var/cache/runsurge/images")  # the guest image (qemu/virtualbox)
    pool_size: int = 2                       # idle VMs kept ready
    vm_memory_mb: int = 2048                 # size of each task VM (a task may use it less 160 MiB)
    input_wait_s: float = 120.0              # how long a task waits for NotifyData
    env_cache_bytes: int = 4 << 30           # job environments (unpacked wheels) kept, least recently used out
    log_level: str = "INFO"
    # The contributor's machine stays theirs (governor.py; README "Contributing a worker").
    busy_cpu_percent: float = 0.0            # suspend while other processes use this % of the host (0: never)
    busy_users: str = ""                     # only these users' processes count as busy (empty: all)
    suspend_after_s: float = 1.0             # ...for this long
    resume_after_idle_s: float = 30.0        # resume once below it this long
    suspend_on_battery: bool = True          # suspend while a laptop runs on battery
    suspend_when_user_active: bool = True    # suspend while a desktop/tty session is not idle (logind)
    suspend_when_remote_user_active: bool = False  # ...an SSH login (no seat) too
    max_suspended_s: float = 1800.0          # give a task stopped this long back to the master (0: never)
    hours: str = ""                          # take work only in these windows, e.g. "19:00-08:00" (empty: always)
    days: str = ""                           # ...on these days, e.g. "mon-fri" (empty: every day)
    outside_hours: str = "finish"            # outside them: "finish" running tasks, or "suspend" them
    max_cpu_percent: float = 0.0             # CPU cap of the whole worker, % of the host (0: none)
    download_limit_bps: int = 0              # bytes/s fetched from peers and the master (0: no limit)
    upload_limit_bps: int = 0                # bytes/s served to peers (0: no limit)
    cache_max_bytes: int = 0                 # disk cap of the data cache, least recently used out first (0: none)
    stop_grace_s: float = 30.0               # on SIGTERM: how long running tasks get to be released
    governor_tick_s: float = 0.5             # how often the host is looked at

    def resolved(self) -> WorkerConfig:
        if self.home == Path():
            self.home = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local/share")) / "runsurge-worker"
        self.cpus = self.cpus or os.cpu_count() or 1
        self.slots = self.slots or self.cpus
        self.memory = self.memory or _total_memory() // 2
        if self.sandbox not in BACKENDS:
            raise ValueError(f"sandbox (RUNSURGE_SANDBOX, --sandbox): no sandbox {self.sandbox!r}; choose from "
                             f"{', '.join(sorted(BACKENDS))}")
        if self.outside_hours not in ("finish", "suspend"):
            raise ValueError(f"outside_hours must be 'finish' or 'suspend', not {self.outside_hours!r}")
        for name in ("busy_cpu_percent", "max_cpu_percent"):
            if not 0 <= getattr(self, name) <= 100:
                raise ValueError(f"{name} must be between 0 and 100")
        if min(self.download_limit_bps, self.upload_limit_bps, self.cache_max_bytes) < 0 or self.governor_tick_s <= 0:
            raise ValueError("bandwidth limits and cache_max_bytes must not be negative, governor_tick_s must be "
                             "positive")
        Schedule.parse(self.hours, self.days)  # raises ValueError with what is wrong
        parse_users(self.busy_users)
        if not self.password and self.password_file:
            self.password = Path(self.password_file).read_text().strip()
        return self


def load_config(path: Path | None = None, **overrides: object) -> WorkerConfig:
    return load_settings(WorkerConfig, "worker", path, **overrides).resolved()
