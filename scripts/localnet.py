"""A RunSurge network on this machine's loopback: one master and N workers as real processes.

Used by `make demo`, the integration tests and the benchmarks. Each process logs to a file in the
network's root folder; `stop()` ends them all. Workers belong to the EMAIL account unless started
with another `owner` (an account made on the fly, with the same password): contributors differ.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

EMAIL = "demo@runsurge.local"
PASSWORD = "demo-password-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalNet:
    def __init__(self, root: Path, sandbox: str = "process", slots: int = 1, heartbeat_s: float = 1.0,
                 worker_memory: int = 2 << 30, extra_env: dict[str, str] | None = None, host: str = "127.0.0.1"):
        """`host`: the address the master listens on and workers use by default (another local
        address than loopback lets workers in a network namespace reach the master)."""
        self.root = root
        self.sandbox, self.slots, self.heartbeat_s, self.worker_memory = sandbox, slots, heartbeat_s, worker_memory
        self.extra_env = extra_env or {}
        self.host = host
        self.http_port, self.grpc_port, self.enroll_port = free_port(), free_port(), free_port()
        self.url = f"http://{host}:{self.http_port}"
        self.master: subprocess.Popen | None = None
        self.workers: dict[int, subprocess.Popen] = {}
        self.worker_ports: dict[int, int] = {}
        self.worker_owners: dict[int, str] = {}
        self.worker_envs: dict[int, dict[str, str]] = {}  # the settings each worker was started with
        root.mkdir(parents=True, exist_ok=True)
        (root / "password").write_text(PASSWORD)

    def _spawn(self, name: str, args: list[str], env: dict[str, str],
               prefix: tuple[str, ...] = ()) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "ab")
        return subprocess.Popen([*prefix, sys.executable, *args], stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **self.extra_env, **env}, start_new_session=True)

    def start_master(self) -> None:
        self.master_env = {
            "RUNSURGE_HOME": str(self.root / "master"), "RUNSURGE_HTTP_PORT": str(self.http_port),
            "RUNSURGE_GRPC_PORT": str(self.grpc_port), "RUNSURGE_ENROLL_PORT": str(self.enroll_port),
            "RUNSURGE_HEARTBEAT_INTERVAL_S": str(self.heartbeat_s), "RUNSURGE_HTTP_HOST": self.host,
            "RUNSURGE_GRPC_HOST": self.host,
            "RUNSURGE_TLS_HOSTS": ",".join(dict.fromkeys([self.host, "127.0.0.1", "localhost"]))}
        self.master = self._spawn("master", ["-m", "runsurge_master"], self.master_env)
        self._until(lambda: httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200, "master up")
        self.register(EMAIL)

    def register(self, email: str) -> None:
        """An account with the network's password (already there: fine)."""
        httpx.post(f"{self.url}/api/auth/register", json={"email": email, "password": PASSWORD}, timeout=10)

    def start_worker(self, i: int, sandbox: str | None = None, wait: bool = True, netns: str | None = None,
                     host: str | None = None, owner: str | None = None, program: list[str] | None = None,
                     env: dict[str, str] | None = None) -> None:
        """Worker `i` (the same home, port, owner and so worker id when started again). `netns`: run it in
        that network namespace (`ip netns exec`), listening on and announcing `host`, its address there.
        `owner`: the contributor's email (default EMAIL). `program`: what to run with this Python instead
        of `-m runsurge_worker` (a test's launcher script). `env`: more RUNSURGE_* settings for this worker."""
        port = self.worker_ports.setdefault(i, free_port())
        host = host or self.host
        owner = self.worker_owners.setdefault(i, owner or EMAIL)
        if owner != EMAIL:
            self.register(owner)
        self.worker_envs[i] = {
            "RUNSURGE_HOME": str(self.root / f"worker{i}"), "RUNSURGE_MASTER_URL": self.url,
            "RUNSURGE_MASTER_GRPC": f"{self.host}:{self.grpc_port}", "RUNSURGE_EMAIL": owner,
            "RUNSURGE_MASTER_ENROLL": f"{self.host}:{self.enroll_port}", "RUNSURGE_CA_FILE": str(self.ca_file),
            "RUNSURGE_PASSWORD_FILE": str(self.root / "password"), "RUNSURGE_PORT": str(port),
            "RUNSURGE_HOST": host, "RUNSURGE_LISTEN": host,
            "RUNSURGE_SLOTS": str(self.slots), "RUNSURGE_MEMORY": str(self.worker_memory),
            "RUNSURGE_SANDBOX": sandbox or self.sandbox, **(env or {})}
        self.workers[i] = self._spawn(f"worker{i}", program or ["-m", "runsurge_worker"], self.worker_envs[i],
                                      prefix=("ip", "netns", "exec", netns) if netns else ())
        if wait:  # a VM worker first boots its guest once and saves the snapshot (~1 min under TCG)
            self.wait_online(i, timeout_s=60 if (sandbox or self.sandbox) == "process" else 600)

    @property
    def ca_file(self) -> Path:
        return self.root / "master" / "pki" / "ca.pem"  # the master creates its CA on first start

    def worker_online(self, port: int, owner: str = EMAIL) -> bool:
        return any(w["grpc_port"] == port and w["online"] for w in self.client(owner).workers())

    def wait_online(self, i: int, timeout_s: float = 60) -> None:
        """Until worker `i` is registered and beating (after starting, or once its network is back)."""
        self._until(lambda: self.worker_online(self.worker_ports[i], self.worker_owners.get(i, EMAIL)),
                    f"worker {i} online", timeout_s)

    def start(self, workers: int = 2) -> LocalNet:
        self.start_master()
        for i in range(workers):  # start all, then wait: VM workers boot their guests in parallel
            self.start_worker(i, wait=False)
        for i in range(workers):
            self.wait_online(i, timeout_s=60 if self.sandbox == "process" else 600)
        return self

    def client(self, email: str = EMAIL):
        from runsurge_client.api import Client
        c = Client(self.url)
        c.login(email, PASSWORD)
        return c

    def restart_master(self, sig: int = signal.SIGKILL, down_s: float = 0) -> None:
        """Kill the master and start it again (after `down_s`) on the same ports, home and database."""
        os.killpg(self.master.pid, sig)
        self.master.wait(timeout=30)
        time.sleep(down_s)
        self.master = self._spawn("master", ["-m", "runsurge_master"], self.master_env)
        self._until(lambda: httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200, "master back")

    def index_of(self, worker_id: str) -> int:
        """Which of our worker processes registered as `worker_id`."""
        ports = {w["id"]: w["grpc_port"] for owner in {EMAIL, *self.worker_owners.values()}
                 for w in self.client(owner).workers()}
        return next(i for i, port in self.worker_ports.items() if ports.get(worker_id) == port)

    def kill_worker(self, i: int, sig: int = signal.SIGKILL) -> None:
        proc = self.workers.pop(i)
        os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def stop(self) -> None:
        procs = [*self.workers.values(), *([self.master] if self.master else [])]
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.workers.clear()
        self.master = None

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def _until(self, ok, what: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for p in [self.master, *self.workers.values()]:
                if p is not None and p.poll() is not None:
                    raise RuntimeError(f"a process exited while waiting for {what}; see logs in {self.root}")
            try:
                if ok():
                    return
            except (httpx.HTTPError, OSError, RuntimeError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"timed out waiting for {what}; see logs in {self.root}")

    def __enter__(self) -> LocalNet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
