"""Worker settings (see runsurge_proto.settings for how defaults, TOML and RUNSURGE_* combine).
Environment names: RUNSURGE_<FIELD>, e.g. RUNSURGE_MASTER_URL, RUNSURGE_SLOTS."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from runsurge_proto.settings import load_settings


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

    def resolved(self) -> WorkerConfig:
        if self.home == Path():
            self.home = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local/share")) / "runsurge-worker"
        self.cpus = self.cpus or os.cpu_count() or 1
        self.slots = self.slots or self.cpus
        self.memory = self.memory or _total_memory() // 2
        if not self.password and self.password_file:
            self.password = Path(self.password_file).read_text().strip()
        return self


def load_config(path: Path | None = None, **overrides: object) -> WorkerConfig:
    return load_settings(WorkerConfig, "worker", path, **overrides).resolved()
