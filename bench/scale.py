"""Scale benchmark: how far one master goes with many workers heartbeating and 10,000 tasks waiting.

One real master (SQLite, or a throw-away PostgreSQL cluster started here as the tests do) and N
simulated workers spread over a few client processes. Each simulated worker enrols for real: its own
EC key and CSR (runsurge_worker.tls.WorkerTLS), NodeRegister on the enrolment port with the account's
token (one HTTP login per client process, not per worker: the login KDF is deliberately slow and is not
what this measures), then mutual TLS with the certificate it got, its own grpc.aio channel to the
master and its own grpc.aio WorkerService server (the master dials each worker and checks its
identity). It heartbeats at the interval the master gives it at registration (the master's default,
as a real worker does), saying which tasks it holds. It accepts AssignTasks and at once reports
each completion (CompleteTasks, one report a call) with plausible metering (no task runs, no logs
are uploaded; the master's token on incoming calls is not verified: that is worker-side cost).

Two windows per configuration (database x N):
  - idle: the N workers only heartbeat;
  - load: a 10,000-task no-op job is submitted over HTTP and the workers take and complete its tasks,
    until the job is done or the window's time limit.
Figures: the master's CPU (% of one core, utime + stime from /proc/PID/stat over the window), the
heartbeat RPC latency p50/p99 as the simulated workers see it (client side: includes the TLS channel
and the client's own event loop, so it is an upper bound of the master's handling), placement: the
master's `runsurge_scheduling_pass_seconds` histogram (one scheduling pass that placed tasks: the
placement decision, p50/p99 interpolated within its buckets) and `runsurge_scheduling_latency_seconds`
(ready -> assigned, which includes the wait in the queue), completions/s (the master's done count over
the window). Each configuration stops by itself and everything is torn down.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import grpc
import httpx

from runsurge_pki.ca import MASTER_NAME, expect_identity
from runsurge_proto import master_pb2, master_pb2_grpc, worker_pb2, worker_pb2_grpc
from runsurge_proto.wire import CHANNEL_OPTIONS, bearer
from runsurge_worker.backoff import Backoff

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))
from dispatch import process_cpu_s, write_job  # noqa: E402

from localnet import EMAIL, PASSWORD, LocalNet, free_port  # noqa: E402
from quiet import OtherLoad  # noqa: E402

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)
TASKS = 10_000
REGISTER_AT_ONCE = 16  # registrations in flight per client process


# -- simulated workers (in the client processes) -------------------------------------------------
class SimWorker:
    """One worker's master-facing side: its key, certificate, channel to the master and WorkerService."""

    def __init__(self, home: Path, ca_file: Path, slots: int, memory: int, stats: dict):
        from runsurge_worker.tls import WorkerTLS

        self.tls = WorkerTLS(home, ca_file)
        self.slots, self.memory, self.stats = slots, memory, stats
        self.port = free_port()
        self.fingerprint = os.urandom(16).hex()
        self.worker_id = self.token = ""
        self.held: dict[str, int] = {}  # task id -> memory reserved
        self.interval_s = 2.0
        self.channel: grpc.aio.Channel | None = None

    async def register(self, enroll_stub, user_token: str, master_grpc: str) -> None:
        self.again = (enroll_stub, user_token, master_grpc)
        resp = await enroll_stub.NodeRegister(master_pb2.NodeRegisterRequest(
            fingerprint=self.fingerprint, memory_bytes=self.memory, cpus=self.slots, slots=self.slots,
            host="127.0.0.1", grpc_port=self.port, sandbox="process", csr_pem=self.tls.csr()),
            metadata=bearer(user_token), timeout=60)
        self.tls.set_certificate(resp.certificate_pem, resp.ca_pem)
        self.worker_id, self.token = resp.worker_id, resp.worker_token
        self.interval_s = resp.heartbeat_interval_s or 2.0
        if self.channel is not None:  # registering again: the server keeps its identity
            await self.channel.close()
        elif not await self._serve():  # another process took the port meanwhile: register with another
            self.port = free_port()
            self.stats["errors"]["port taken, registered again"] = (
                self.stats["errors"].get("port taken, registered again", 0) + 1)
            return await self.register(enroll_stub, user_token, master_grpc)
        self.channel = grpc.aio.secure_channel(master_grpc, self.tls.channel_credentials(),
                                               options=CHANNEL_OPTIONS + expect_identity(MASTER_NAME))
        self.stub = master_pb2_grpc.MasterServiceStub(self.channel)
        self.metadata = bearer(self.token)

    async def _serve(self) -> bool:
        # No SO_REUSEPORT (gRPC's default): two simulated workers sharing a port would answer each
        # other's calls (the master then sees the wrong identity); a taken port fails here instead.
        server = grpc.aio.server(options=[*CHANNEL_OPTIONS, ("grpc.so_reuseport", 0)])
        worker_pb2_grpc.add_WorkerServiceServicer_to_server(_Servicer(self), server)
        try:
            server.add_secure_port(f"127.0.0.1:{self.port}", grpc.ssl_server_credentials(
                [(self.tls.key_pem, self.tls.cert_pem)], self.tls.ca_pem, require_client_auth=True))
        except RuntimeError:
            return False
        await server.start()
        self.server = server
        return True

    async def beat_forever(self, phase: list[str]) -> None:
        await asyncio.sleep(random.uniform(0, self.interval_s))  # workers start at different times
        offline = Backoff(base_s=self.interval_s, cap_s=60.0)  # the real worker's (master_link.py)
        while True:
            held = list(self.held)
            req = master_pb2.NodeHeartbeatRequest(
                worker_id=self.worker_id, running_tasks=min(len(held), self.slots),
                memory_used_bytes=sum(self.held.values()), free_slots=max(0, self.slots - len(held)),
                running_task_ids=held)
            t0 = time.perf_counter()
            try:
                resp = await self.stub.NodeHeartbeat(req, metadata=self.metadata, timeout=10)
                self.stats["beats"].setdefault(phase[0], []).append(time.perf_counter() - t0)
                if resp.worker_token:
                    self.metadata = (("authorization", f"Bearer {resp.worker_token}"),)
                if resp.reregister:  # declared offline: as the real worker, register again after a jittered wait
                    self.stats["reregister"] += 1
                    self.held.clear()
                    await asyncio.sleep(offline.next())
                    await self.register(*self.again)
                else:
                    offline.reset()
            except grpc.aio.AioRpcError as e:
                self.stats["errors"][f"heartbeat {e.code().name}"] = self.stats["errors"].get(
                    f"heartbeat {e.code().name}", 0) + 1
            await asyncio.sleep(max(0.0, self.interval_s - (time.perf_counter() - t0)))

    async def complete(self, task_id: str, attempt: int) -> None:

        wall, cpu, rss = random.uniform(0.02, 0.05), random.uniform(0.01, 0.02), random.randint(12, 20) << 20
        try:
            (answer,) = (await self.stub.CompleteTasks(master_pb2.CompleteTasksRequest(reports=[
                master_pb2.TaskCompleteRequest(
                    worker_id=self.worker_id, task_id=task_id, status=master_pb2.TASK_STATUS_SUCCEEDED, exit_code=0,
                    wall_s=wall, cpu_s=cpu, mem_avg_bytes=rss * 3 // 4, mem_peak_bytes=rss, attempt=attempt,
                    usage=[master_pb2.UsageSample(t_s=wall, cpu_s=cpu, rss_bytes=rss)])]),
                metadata=self.metadata, timeout=30)).results
            if answer.result == master_pb2.REPORT_RESULT_ACKNOWLEDGED:
                self.stats["completed"] += 1
            else:
                key = f"CompleteTasks {master_pb2.ReportResult.Name(answer.result)}"
                self.stats["errors"][key] = self.stats["errors"].get(key, 0) + 1
        except grpc.aio.AioRpcError as e:
            key = f"CompleteTasks {e.code().name}"
            self.stats["errors"][key] = self.stats["errors"].get(key, 0) + 1
        finally:
            self.held.pop(task_id, None)


class _Servicer(worker_pb2_grpc.WorkerServiceServicer):
    """The calls the master makes to a worker; tasks complete at once."""

    def __init__(self, w: SimWorker):
        self.w = w

    async def AssignTasks(self, request, context):
        for t in request.tasks:
            self.w.held[t.task_id] = t.limits.memory_bytes
            self.w.stats["assigned"] += 1
            task = asyncio.get_running_loop().create_task(self.w.complete(t.task_id, t.attempt))
            self.w.stats["pending"].add(task)
            task.add_done_callback(self.w.stats["pending"].discard)
        return worker_pb2.AssignTasksResponse(results=[worker_pb2.AssignTaskResponse(accepted=True)
                                                       for _ in request.tasks])

    async def NotifyData(self, request, context):
        return worker_pb2.NotifyDataResponse()

    async def GetWorkerStatus(self, request, context):
        return worker_pb2.WorkerStatus(worker_id=self.w.worker_id, running_task_ids=list(self.w.held),
                                       free_slots=max(0, self.w.slots - len(self.w.held)))

    async def CancelTask(self, request, context):
        self.w.held.pop(request.task_id, None)
        return worker_pb2.CancelTaskResponse()

    async def DeleteData(self, request, context):
        return worker_pb2.DeleteDataResponse()


def client_main(conn, home: Path, n: int, url: str, grpc_addr: str, enroll_addr: str, ca_file: Path,
                slots: int, memory: int) -> None:
    """One client process: n simulated workers on one asyncio loop; commands arrive on `conn`."""
    signal.signal(signal.SIGTERM, lambda *_: os._exit(143))
    asyncio.run(_client(conn, home, n, url, grpc_addr, enroll_addr, ca_file, slots, memory))


async def _client(conn, home, n, url, grpc_addr, enroll_addr, ca_file, slots, memory) -> None:
    from runsurge_worker.master_link import login

    stats = {"beats": {}, "errors": {}, "assigned": 0, "completed": 0, "reregister": 0, "pending": set()}
    phase = ["enrol"]
    loop = asyncio.get_running_loop()
    user_token = await loop.run_in_executor(None, login, url, EMAIL, PASSWORD)
    ca_pem = ca_file.read_bytes()
    enroll = grpc.aio.secure_channel(enroll_addr, grpc.ssl_channel_credentials(ca_pem),
                                     options=CHANNEL_OPTIONS + expect_identity(MASTER_NAME))
    enroll_stub = master_pb2_grpc.MasterServiceStub(enroll)
    workers = [SimWorker(home / f"w{i}", ca_file, slots, memory, stats) for i in range(n)]
    gate = asyncio.Semaphore(REGISTER_AT_ONCE)
    beats = []

    async def enrol(w: SimWorker) -> None:
        for attempt in range(5):  # as a real worker, retry a registration the master did not answer
            try:
                async with gate:
                    await w.register(enroll_stub, user_token, grpc_addr)
                break
            except grpc.aio.AioRpcError as e:
                key = f"NodeRegister {e.code().name}"
                stats["errors"][key] = stats["errors"].get(key, 0) + 1
                await asyncio.sleep(2 ** attempt)
        else:
            return  # this one never enrolled: it shows as a worker missing from "online"
        beats.append(loop.create_task(w.beat_forever(phase)))

    t0 = time.perf_counter()
    await asyncio.gather(*(enrol(w) for w in workers))
    await loop.run_in_executor(None, conn.send, ("ready", time.perf_counter() - t0))
    while True:
        cmd = await loop.run_in_executor(None, conn.recv)
        if cmd[0] == "phase":
            phase[0] = cmd[1]
            conn.send(("ok",))
        elif cmd[0] == "count":
            conn.send(("count", stats["completed"], stats["assigned"]))
        elif cmd[0] == "stop":
            phase[0] = "stopping"
            for b in beats:
                b.cancel()
            conn.send(("stats", {k: v for k, v in stats.items() if k != "pending"}))
            return


# -- the master and its database ---------------------------------------------------------------
class PostgreSQL:
    """A throw-away cluster on a unix socket (as tests/integration/test_postgresql.py starts it)."""

    def __init__(self) -> None:
        if PG_BIN is None:
            raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
        self.data = Path(tempfile.mkdtemp(prefix="runsurge-bench-pg-"))
        self.as_postgres = []
        if os.geteuid() == 0:  # the server refuses to run as root
            shutil.chown(self.data, "postgres", "postgres")
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()

    def __enter__(self) -> str:
        try:
            subprocess.run([*self.as_postgres, PG_BIN / "initdb", "-D", self.data, "-U", "runsurge", "-A", "trust"],
                           check=True, capture_output=True)
            subprocess.run([*self.as_postgres, PG_BIN / "pg_ctl", "-D", self.data, "-w", "-l", self.data / "log",
                            "start", "-o", f"-p {self.port} -k {self.data} -c listen_addresses=''"],
                           check=True, capture_output=True)
            subprocess.run([PG_BIN / "createdb", "-h", self.data, "-p", str(self.port), "-U", "runsurge",
                            "runsurge"], check=True)
        except BaseException:
            self.__exit__()
            raise
        return f"postgresql+psycopg://runsurge@/runsurge?host={self.data}&port={self.port}"

    def __exit__(self, *exc: object) -> None:
        subprocess.run([*self.as_postgres, PG_BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(self.data, ignore_errors=True)

    def cpu_s(self) -> float:
        """CPU seconds of the server: the postmaster, its live backends and those that exited."""
        top = int((self.data / "postmaster.pid").read_text().split()[0])
        fields = Path(f"/proc/{top}/stat").read_text().rsplit(")", 1)[1].split()
        total = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                f = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(f[1]) == top:
                total += (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def lock_waits(self) -> int:
        """Backends waiting on a lock right now."""
        out = subprocess.run([PG_BIN / "psql", "-h", self.data, "-p", str(self.port), "-U", "runsurge", "-tAc",
                              "select count(*) from pg_stat_activity where wait_event_type = 'Lock'", "runsurge"],
                             capture_output=True, text=True)
        return int(out.stdout.strip() or 0)


def scrape(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def hist_quantile(before: dict, after: dict, name: str, q: float) -> float | None:
    """q-quantile of a Prometheus histogram's observations between two scrapes (linear in the bucket)."""
    buckets = []
    for key, value in after.items():
        m = re.fullmatch(rf'{name}_bucket\{{le="([^"]+)"\}}', key)
        if m:
            buckets.append((float(m.group(1)), value - before.get(key, 0.0)))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    rank, lo, below = q * total, 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return lo
            return lo + (le - lo) * (rank - below) / max(count - below, 1e-9)
        lo, below = le, count
    return lo


def hist_bucket(before: dict, after: dict, name: str, q: float) -> tuple[float, float] | None:
    """The bucket (lower, upper bound) holding a histogram's q-quantile between two scrapes: for coarse buckets,
    where interpolating would invent precision."""
    buckets = sorted((float(m.group(1)), v - before.get(k, 0.0)) for k, v in after.items()
                     if (m := re.fullmatch(rf'{name}_bucket\{{le="([^"]+)"\}}', k)))
    if not buckets or not buckets[-1][1]:
        return None
    lo = 0.0
    for le, count in buckets:
        if count >= q * buckets[-1][1]:
            return lo, le
        lo = le
    return lo, float("inf")


def pct(values: list[float], q: int) -> float | None:
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def tree_cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += process_cpu_s(pid)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


@dataclass
class Window:
    seconds: float = 0.0
    master_cpu_pct: float = 0.0
    clients_cpu_pct: float = 0.0
    db_cpu_pct: float | None = None  # the PostgreSQL server's processes (SQLite runs inside the master)
    beats: list[float] = field(default_factory=list)
    completed: int = 0
    pass_p50: float | None = None
    pass_p99: float | None = None
    wait_p50: tuple[float, float] | None = None
    wait_p99: tuple[float, float] | None = None
    passes: int = 0
    lock_waits: int = 0
    online_end: int = 0  # workers online at the window's end


@dataclass
class Config:
    db: str
    workers: int
    enrol_s: float = 0.0
    submit_s: float = 0.0
    online_before: int = 0  # workers online when the idle window began
    offline_events: int = 0  # times the master declared a worker offline (missed heartbeats), whole run
    submit_beats: list[float] = field(default_factory=list)  # heartbeats while the job was being submitted
    states: dict[str, int] = field(default_factory=dict)  # tasks by state at the end
    idle: Window = field(default_factory=Window)
    load: Window = field(default_factory=Window)
    remaining: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    log_problems: dict[str, int] = field(default_factory=dict)
    master_fds: int = 0
    failure: str = ""


LOG_PATTERNS = {"database is locked": "SQLite lock timeouts", "Too many open files": "fd limit",
                "dispatch failed": "dispatch failures", "scheduling pass failed": "scheduler errors",
                "QueuePool limit": "DB connection pool exhausted", "deadlock": "PostgreSQL deadlocks"}


def run_config(db: str, n: int, clients: int, slots: int, idle_s: float, load_s: float, tmp: Path) -> Config:
    from runsurge_master.config import MasterConfig

    cfg = Config(db, n)
    heartbeat_s = next(f.default for f in fields(MasterConfig) if f.name == "heartbeat_interval_s")
    pg = PostgreSQL() if db == "postgresql" else None
    root = tmp / f"{db}-{n}"
    procs: list[tuple[mp.Process, object]] = []
    with pg or contextlib.nullcontext() as pg_url:
        net = LocalNet(root / "net", heartbeat_s=heartbeat_s,
                       extra_env={"RUNSURGE_DATABASE_URL": pg_url} if pg_url else {})
        try:
            net.start_master()
            master = net.master.pid
            ctx = mp.get_context("spawn")
            for c in range(clients):
                share = n // clients + (c < n % clients)
                parent, child = ctx.Pipe()
                p = ctx.Process(target=client_main, args=(
                    child, root / f"client{c}", share, net.url, f"127.0.0.1:{net.grpc_port}",
                    f"127.0.0.1:{net.enroll_port}", net.ca_file, slots, 4 << 30), daemon=True)
                p.start()
                procs.append((p, parent))
            t0 = time.monotonic()
            deadline = t0 + max(120, n * 0.2)
            for _, conn in procs:
                if not conn.poll(max(1, deadline - time.monotonic())):
                    raise TimeoutError(f"the simulated workers did not enrol within {deadline - t0:.0f}s")
                conn.recv()
            cfg.enrol_s = time.monotonic() - t0
            cfg.online_before = _until_online(net.url, n, 60)

            def tell(cmd):
                for _, conn in procs:
                    conn.send(cmd)
                return [conn.recv() for _, conn in procs]

            client_pids = [p.pid for p, _ in procs]

            def cpu(pids):
                return tree_cpu_s(pids), pg.cpu_s() if pg else None

            # idle: heartbeats only
            tell(("phase", "idle"))
            m0, c0, w0, s0 = process_cpu_s(master), cpu(client_pids), time.monotonic(), scrape(net.url)
            time.sleep(idle_s)
            cfg.idle = _window(master, cpu, client_pids, m0, c0, w0, s0, scrape(net.url))
            # load: 10,000 no-op tasks
            client = net.client()
            spec = write_job(root / "job", TASKS)
            tell(("phase", "submit"))
            t0 = time.monotonic()
            client.submit_spec(spec)  # the job's tasks are ready once this returns
            cfg.submit_s = time.monotonic() - t0
            tell(("phase", "load"))
            m0, c0, w0, s0 = process_cpu_s(master), cpu(client_pids), time.monotonic(), scrape(net.url)
            done0 = sum(r[1] for r in tell(("count",)))
            lock_peak = 0
            while time.monotonic() - w0 < load_s:
                time.sleep(1)
                done = sum(r[1] for r in tell(("count",)))
                if pg is not None:
                    lock_peak = max(lock_peak, pg.lock_waits())
                if done - done0 >= TASKS:
                    break
            s1 = scrape(net.url)
            cfg.load = _window(master, cpu, client_pids, m0, c0, w0, s0, s1)
            cfg.load.lock_waits = lock_peak
            cfg.remaining = int(s1.get('runsurge_tasks{state="ready"}', 0))
            cfg.states = {k[len('runsurge_tasks{state="'):-2]: int(v) for k, v in s1.items()
                          if k.startswith('runsurge_tasks{state="') and v}
            cfg.master_fds = len(os.listdir(f"/proc/{master}/fd"))
            for stats in (r[1] for r in tell(("stop",))):
                cfg.idle.beats += stats["beats"].get("idle", [])
                cfg.load.beats += stats["beats"].get("load", [])
                cfg.submit_beats += stats["beats"].get("submit", [])
                for k, v in stats["errors"].items():
                    cfg.errors[k] = cfg.errors.get(k, 0) + v
                if stats["reregister"]:
                    cfg.errors["told to re-register"] = cfg.errors.get("told to re-register", 0) + stats["reregister"]
            log = net.log("master")
            cfg.offline_events = log.count("worker offline worker=")
            cfg.log_problems = {label: log.count(pat) for pat, label in LOG_PATTERNS.items() if pat in log}
        except (OSError, RuntimeError, TimeoutError, EOFError, httpx.HTTPError) as e:  # fds ran out...: report it
            cfg.failure = f"{type(e).__name__}: {e}"
            log = (root / "net" / "master.log")
            if log.exists():
                text = log.read_text(errors="replace")
                cfg.log_problems = {label: text.count(pat) for pat, label in LOG_PATTERNS.items() if pat in text}
        finally:
            for p, _ in procs:
                if p.is_alive():
                    p.terminate()
            for p, _ in procs:
                p.join(10)
                if p.is_alive():
                    p.kill()
                    p.join()
            net.stop()
    return cfg




def _until_online(url: str, n: int, timeout_s: float) -> int:
    """Wait until all n are online, for at most timeout_s; how many are (a master that cannot keep them
    all online is a result, not a failure of the bench)."""
    deadline = time.monotonic() + timeout_s
    while True:
        online = int(scrape(url).get("runsurge_workers_online", 0))
        if online >= n or time.monotonic() > deadline:
            return online
        time.sleep(1)


def _window(master: int, cpu, clients: list[int], m0: float, c0: tuple, w0: float, s0: dict,
            s1: dict) -> Window:
    w = Window(seconds=time.monotonic() - w0, online_end=int(s1.get("runsurge_workers_online", 0)))
    w.master_cpu_pct = (process_cpu_s(master) - m0) / w.seconds * 100
    c1 = cpu(clients)
    w.clients_cpu_pct = (c1[0] - c0[0]) / w.seconds * 100
    if c1[1] is not None:
        w.db_cpu_pct = (c1[1] - c0[1]) / w.seconds * 100
    w.completed = int(s1.get('runsurge_tasks{state="done"}', 0) - s0.get('runsurge_tasks{state="done"}', 0))
    w.passes = int(s1.get("runsurge_scheduling_pass_seconds_count", 0)
                   - s0.get("runsurge_scheduling_pass_seconds_count", 0))
    w.pass_p50 = hist_quantile(s0, s1, "runsurge_scheduling_pass_seconds", 0.5)
    w.pass_p99 = hist_quantile(s0, s1, "runsurge_scheduling_pass_seconds", 0.99)
    w.wait_p50 = hist_bucket(s0, s1, "runsurge_scheduling_latency_seconds", 0.5)
    w.wait_p99 = hist_bucket(s0, s1, "runsurge_scheduling_latency_seconds", 0.99)
    return w


# -- report --------------------------------------------------------------------------------------
def ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.1f}"


def span(b: tuple[float, float] | None) -> str:
    return "-" if b is None else f"{b[0]:g}-{b[1]:g}s"


def pct_s(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def limit_of(c: Config, other_cpus: float) -> str:
    """Which resource ran out, from the evidence gathered."""
    if c.failure:
        return f"did not complete: {c.failure}"
    found = []
    for name, w in (("idle", c.idle), ("load", c.load)):
        if w.master_cpu_pct >= 90:
            found.append(f"master CPU ({name}): its one process at {w.master_cpu_pct:.0f}% of a core")
        elif (pct(w.beats, 99) or 0) > 1.0:
            found.append(f"master responsiveness ({name}): heartbeat p99 {pct(w.beats, 99):.1f} s with the master at "
                         f"only {w.master_cpu_pct:.0f}% of a core: its calls wait (queued for the one database writer, "
                         "or no CPU to be had)")
    if c.offline_events:
        found.append(f"heartbeats handled too late: workers declared offline x{c.offline_events} (then re-registered)")
    if c.log_problems:
        found.append(", ".join(f"{label} x{k}" for label, k in c.log_problems.items()))
    if c.load.lock_waits:
        found.append(f"PostgreSQL lock waits (peak {c.load.lock_waits} backends)")
    if c.errors:
        found.append(", ".join(f"{k} x{v}" for k, v in c.errors.items()))
    busy = (c.load.master_cpu_pct + c.load.clients_cpu_pct + (c.load.db_cpu_pct or 0)) / 100 + other_cpus
    if busy >= 0.9 * (os.cpu_count() or 1):
        found.append(f"machine CPU: master + database + simulated workers + other programs ~{busy:.1f} of "
                     f"{os.cpu_count()} CPUs")
    return "; ".join(found) or "nothing ran out"


def print_report(configs: list[Config], other: str, other_cpus: float) -> None:
    ok = [c for c in configs if c.load.seconds]
    print(f"\nidle (heartbeats only)\n{'db':<11} {'N':>5} {'enrol s':>7} {'master %':>8} {'db %':>5} "
          f"{'hb p50':>7} {'hb p99':>8} {'clients %':>9} {'online: start':>13} {'end':>5}")
    for c in ok:
        i = c.idle
        print(f"{c.db:<11} {c.workers:>5} {c.enrol_s:>7.1f} {i.master_cpu_pct:>8.1f} {pct_s(i.db_cpu_pct):>5} "
              f"{ms(pct(i.beats, 50)):>7} {ms(pct(i.beats, 99)):>8} {i.clients_cpu_pct:>9.1f} {c.online_before:>13} "
              f"{i.online_end:>5}")
    print(f"\nload ({TASKS} no-op tasks)\n{'db':<11} {'N':>5} {'submit s':>8} {'hb p99 (submit)':>15} "
          f"{'master %':>8} {'db %':>5} {'hb p50':>7} {'hb p99':>8} {'pass p50':>8} {'pass p99':>8} {'passes':>6} "
          f"{'wait p50':>8} {'wait p99':>8} {'done/s':>7} {'window s':>8} {'online':>6}  tasks at the end")
    for c in ok:
        ld = c.load
        print(f"{c.db:<11} {c.workers:>5} {c.submit_s:>8.1f} {ms(pct(c.submit_beats, 99)):>15} "
              f"{ld.master_cpu_pct:>8.1f} {pct_s(ld.db_cpu_pct):>5} {ms(pct(ld.beats, 50)):>7} "
              f"{ms(pct(ld.beats, 99)):>8} {ms(ld.pass_p50):>8} {ms(ld.pass_p99):>8} {ld.passes:>6} "
              f"{span(ld.wait_p50):>8} {span(ld.wait_p99):>8} {ld.completed / ld.seconds:>7.1f} "
              f"{ld.seconds:>8.0f} {ld.online_end:>6}  "
              + " ".join(f"{k} {v}" for k, v in sorted(c.states.items())))
    for c in configs:
        if not c.load.seconds:
            print(f"{c.db:<11} {c.workers:>5}  FAILED: {c.failure}")
    print("\nms unless said; master % / db % = CPU of the master process / the PostgreSQL server as % of one core; "
          "hb = heartbeat RPC latency seen by the simulated workers (client side, an upper bound of the master's "
          "handling); pass = one scheduling pass that placed tasks (the master's runsurge_scheduling_pass_seconds, "
          "interpolated in its buckets); wait = ready -> assigned (runsurge_scheduling_latency_seconds: includes "
          "the wait in the queue; the bucket holding the quantile); done/s over the load window; "
          "clients % = the simulated workers' processes")
    print("\nwhere it tops out:")
    for c in configs:
        print(f"  {c.db:<11} N={c.workers:<5} {limit_of(c, other_cpus)}  (master fds at the end: {c.master_fds})")
    print("\ntargets: 1,000 workers heartbeating < 50% of one core (idle window); placement pass p99 < 50 ms")
    for c in ok:
        if c.workers == 1000:
            print(f"  {c.db:<11} heartbeats {c.idle.master_cpu_pct:.0f}% "
                  f"{'MET' if c.idle.master_cpu_pct < 50 else 'NOT met'}; pass p99 {ms(c.load.pass_p99)} ms "
                  f"{'MET' if (c.load.pass_p99 or 1) < 0.05 else 'NOT met'}")
    print(f"\n{other}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", default="100,1000", help="N values, comma-separated (default 100,1000)")
    p.add_argument("--db", default="sqlite,postgresql", help="databases (default sqlite,postgresql)")
    p.add_argument("--clients", type=int, default=4, help="client processes for the simulated workers (default 4)")
    p.add_argument("--slots", type=int, default=2, help="slots per simulated worker (default 2)")
    p.add_argument("--idle", type=float, default=20, help="seconds of heartbeats only (default 20)")
    p.add_argument("--load", type=float, default=60, help="time limit of the load window, seconds (default 60)")
    args = p.parse_args()
    ns = [int(x) for x in args.workers.split(",")]
    dbs = args.db.split(",")
    if any(n < 1 for n in ns) or not set(dbs) <= {"sqlite", "postgresql"} or args.clients < 1:
        p.error("--workers must be positive numbers, --db sqlite and/or postgresql, --clients >= 1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the master and clients inherit it
    print(f"N = {ns} simulated workers x {args.slots} slots over {args.clients} client processes, {TASKS} no-op "
          f"tasks, databases {dbs}; {os.cpu_count()} CPUs (shared with other sessions), RLIMIT_NOFILE {hard}")
    load = OtherLoad()
    configs = []
    with tempfile.TemporaryDirectory(prefix="runsurge-bench-scale-") as tmp:
        for db in dbs:
            for n in ns:
                c = run_config(db, n, min(args.clients, n), args.slots, args.idle, args.load, Path(tmp))
                print(f"  {db} N={n}: done{' (' + c.failure + ')' if c.failure else ''}", flush=True)
                configs.append(c)
    other = load.stop()
    m = re.search(r"used ([0-9.]+) of", other)
    print_report(configs, other, float(m.group(1)) if m else 0.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
