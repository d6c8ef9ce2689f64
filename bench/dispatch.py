"""Dispatch benchmark: how many no-op tasks per second the control plane pushes through.

RunSurge: one job of N independent no-op tasks (a job spec, distinct task names) on a real master
and 2 workers on loopback, `process` sandbox. The same-shaped work runs on Dask distributed
(LocalCluster, 2 worker processes, `--slots` threads each) in two variants:
  - Dask (in-process): each task is a Python no-op function call;
  - Dask (subprocess): each task runs the same no-op script in a fresh interpreter, the same work
    per task as a RunSurge task in the process sandbox.

Figures, per system: tasks/s = N / (submit → last task finished), and the p50/p99 latency of
submit → each task finished. All N tasks are submitted at once, so latency includes queueing.
  - RunSurge's clock starts just before the HTTP submit (upload and spec parsing included); each
    task's finish is the master's own `tasks.finished_at` (when it recorded TaskComplete and could
    release dependants), read from its SQLite database. The database is read, not the HTTP API, so
    waiting does not load the master being measured.
  - Dask's clock starts just before `client.map`; each finish is when the client learns of it
    (`as_completed`), one hop after the scheduler knows: if anything, this flatters RunSurge.
`--chain N` runs instead a chain of N dependent tasks (each reads its predecessor's output file),
one at a time, and prints the per-step latency: the makespan / N, and the median gap between one
step's finish and the next's (RunSurge: `tasks.finished_at`; Dask: when the client sees each future
complete). Dask's chain is N futures, each taking the previous one as its argument.
Both systems stay up for the whole run and the rounds alternate (RunSurge, Dask, RunSurge, ...),
so load from other programs on the machine hits them alike; each reports its median round (by
tasks/s). A warm-up batch (connections, imports) precedes the measured rounds on each system.
RunSurge's CPU per task is also shown: each process's utime + stime (/proc/PID/stat) over a round,
divided by N, and the scripts' own CPU (their rusage, as metered). Other programs on a shared machine
move the wall-clock figures a lot and these much less.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from localnet import LocalNet  # noqa: E402
from quiet import OtherLoad  # noqa: E402

NOOP_SCRIPT = "pass\n"
# A chain step: reads its predecessor's output (if any), writes its own.
STEP_SCRIPT = ("import os\n"
               "n = int(open('in.txt').read()) if os.path.exists('in.txt') else 0\n"
               "open('out.txt', 'w').write(str(n + 1))\n")
WARMUP_TASKS = 4
POLL_S = 0.05


@dataclass
class Result:
    label: str
    tasks: int
    seconds: float          # submit → last task finished
    latencies: list[float]  # submit → each task finished
    job_id: str = ""        # RunSurge's job, to look into afterwards
    cpu_ms: dict[str, float] = field(default_factory=dict)  # RunSurge: CPU ms per task, by process

    @property
    def tasks_per_s(self) -> float:
        return self.tasks / self.seconds

    def pct(self, q: int) -> float:
        """q-th percentile (linear interpolation between closest ranks)."""
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1]


# -- RunSurge ------------------------------------------------------------------------------------
def write_job(folder: Path, n: int) -> Path:
    """A spec of n independent tasks running noop.py; no `outputs`, so nothing is collected."""
    folder.mkdir(parents=True)
    (folder / "noop.py").write_text(NOOP_SCRIPT)
    lines = [f'name = "{folder.name}"']
    for i in range(n):
        lines += ["[[tasks]]", f'name = "t{i:05d}"', 'script = "noop.py"', 'memory = "64MiB"']
    spec = folder / "job.toml"
    spec.write_text("\n".join(lines) + "\n")
    return spec


def write_chain(folder: Path, n: int) -> Path:
    """A spec of n tasks, each consuming the previous one's out.txt."""
    folder.mkdir(parents=True)
    (folder / "step.py").write_text(STEP_SCRIPT)
    lines = [f'name = "{folder.name}"']
    for i in range(n):
        lines += ["[[tasks]]", f'name = "s{i:05d}"', 'script = "step.py"', 'memory = "64MiB"', 'outputs = ["out.txt"]']
        if i:
            lines.append(f'inputs = {{ "in.txt" = "task:s{i - 1:05d}/out.txt" }}')
    spec = folder / "job.toml"
    spec.write_text("\n".join(lines) + "\n")
    return spec


def process_cpu_s(pid: int) -> float:
    """utime + stime of one process (its own threads, not its reaped children: the scripts)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def utc_seconds(value: str | None) -> float:
    """The master stores naive UTC datetimes; as seconds since the epoch."""
    if value is None:
        raise RuntimeError("a finished task has no timestamp")
    return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()


class RunSurge:
    """A master and 2 workers on loopback, and a read-only view of the master's database."""

    def __init__(self, root: Path, slots: int, timeout_s: float):
        self.root, self.timeout_s, self.jobs = root, timeout_s, 0
        self.per_call: dict[str, float] = {}  # tasks per AssignTasks / CompleteTasks call, last round
        self.net = LocalNet(root / "net", sandbox="process", slots=slots)
        self.db: sqlite3.Connection | None = None

    def __enter__(self) -> RunSurge:
        try:
            self.net.start(workers=2)
            self.client = self.net.client()  # one login (a deliberately slow KDF), not one per round
            self.db = sqlite3.connect(f"file:{self.net.root / 'master' / 'master.db'}?mode=ro", uri=True)
            self.run(WARMUP_TASKS)
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if exc and isinstance(exc[1], Exception):  # a failure, not a kill or Ctrl-C
            print_log_tails(self.net)
        if self.db is not None:
            self.db.close()
        self.net.stop()

    def run(self, n: int, chain: bool = False) -> Result:
        self.jobs += 1
        spec = (write_chain if chain else write_job)(self.root / f"job{self.jobs}", n)
        client = self.client
        pids = {"master": self.net.master.pid, **{f"worker{i}": p.pid for i, p in self.net.workers.items()}}
        calls0 = self.task_calls()
        cpu0 = {name: process_cpu_s(pid) for name, pid in pids.items()}
        t0 = time.time()
        job_id = client.submit_spec(spec)["id"]
        self._wait(job_id)
        cpu = {name: (process_cpu_s(pid) - cpu0[name]) * 1000 / n for name, pid in pids.items()}
        calls = {k: v - calls0.get(k, 0) for k, v in self.task_calls().items()}
        for method in ("AssignTasks", "CompleteTasks"):
            if calls.get(("calls", method)):
                self.per_call[method] = calls[("tasks", method)] / calls[("calls", method)]
        rows = self.db.execute("SELECT finished_at, cpu_s FROM tasks WHERE job_id = ?", (job_id,)).fetchall()
        cpu["script (median)"] = statistics.median(r[1] for r in rows) * 1000
        finished = sorted(utc_seconds(r[0]) for r in rows)
        return Result("RunSurge", n, max(finished) - t0, [f - t0 for f in finished], job_id, cpu)

    def task_calls(self) -> dict[tuple[str, str], float]:
        """The master's counts of task-carrying calls and the tasks they carried (absent before batching)."""
        import httpx
        from prometheus_client.parser import text_string_to_metric_families

        names = {"runsurge_task_calls_total": "calls", "runsurge_task_call_tasks_total": "tasks"}
        text = httpx.get(f"{self.net.url}/metrics", timeout=10).text
        return {(names[smp.name], smp.labels["method"]): smp.value for fam in text_string_to_metric_families(text)
                for smp in fam.samples if smp.name in names}

    def _wait(self, job_id: str) -> None:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            status, error = self.db.execute("SELECT status, error FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if status == "done":
                return
            if status == "failed":
                raise RuntimeError(f"RunSurge job failed: {error}")
            time.sleep(POLL_S)
        raise TimeoutError(f"RunSurge job {job_id} not done after {self.timeout_s:g}s")

    def phases(self, job_id: str) -> dict[str, float]:
        """Where a task's time goes once it leaves the queue (medians over the job, seconds)."""
        rows = self.db.execute("SELECT assigned_at, started_at, finished_at, wall_s FROM tasks WHERE job_id = ?",
                               (job_id,)).fetchall()
        t = [[utc_seconds(v) for v in r[:3]] for r in rows]
        return {
            "assigned → started (prepare, wait for a slot)": statistics.median(r[1] - r[0] for r in t),
            "started → finished (run, upload logs, report)": statistics.median(r[2] - r[1] for r in t),
            "of which the script's own wall time": statistics.median(r[3] for r in rows),
        }


def print_log_tails(net: LocalNet, lines: int = 15) -> None:
    for log in sorted(net.root.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- last lines of {log.name} ---", *tail, sep="\n", file=sys.stderr)


# -- Dask ----------------------------------------------------------------------------------------
def noop(i: int) -> int:
    return i


def step(n: int | None) -> int:
    return (n or 0) + 1


def run_step(prev: int | None, script: str, work_dir: str) -> int:
    """A chain step as a fresh interpreter: the step script, its predecessor's value in in.txt."""
    import shutil
    import uuid

    from runsurge_worker.sandbox.process import PYTHON

    folder = Path(work_dir) / f"step-{uuid.uuid4().hex}"
    folder.mkdir()
    try:
        if prev is not None:
            (folder / "in.txt").write_text(str(prev))
        subprocess.run([PYTHON, script], cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True,
                       env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder)})
        return int((folder / "out.txt").read_text())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run_script(i: int, script: str, work_dir: str) -> int:
    """The same work as a RunSurge task: a fresh interpreter (the process sandbox's, started the same
    way) running the no-op script."""
    from runsurge_worker.sandbox.process import PYTHON

    subprocess.run([PYTHON, script], cwd=work_dir, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": work_dir})
    return i


class Dask:
    """LocalCluster: 2 worker processes with `slots` threads each, like RunSurge's 2 workers."""

    def __init__(self, root: Path, slots: int, timeout_s: float):
        self.root, self.slots, self.timeout_s = root, slots, timeout_s
        self.stack = ExitStack()

    def __enter__(self) -> Dask:
        from dask.distributed import Client, LocalCluster

        with self.stack:
            script = self.root / "noop.py"
            script.write_text(NOOP_SCRIPT)
            step_script = self.root / "step.py"
            step_script.write_text(STEP_SCRIPT)
            cluster = self.stack.enter_context(LocalCluster(
                n_workers=2, threads_per_worker=self.slots, processes=True, dashboard_address=None,
                silence_logs=logging.ERROR, local_directory=self.root))
            self.client = self.stack.enter_context(Client(cluster))
            self.variants: dict[str, tuple[Callable, tuple]] = {
                "Dask (in-process)": (noop, ()),
                "Dask (subprocess)": (run_script, (str(script), str(self.root))),
            }
            self.chains: dict[str, tuple[Callable, tuple]] = {
                "Dask (in-process)": (step, ()),
                "Dask (subprocess)": (run_step, (str(step_script), str(self.root))),
            }
            for label in self.variants:
                self.run(label, WARMUP_TASKS)
            self.stack = self.stack.pop_all()  # success: keep the cluster until __exit__
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def run(self, label: str, n: int) -> Result:
        from dask.distributed import as_completed

        fn, args = self.variants[label]
        t0 = time.time()
        futures = self.client.map(fn, range(n), *[[a] * n for a in args], pure=False)
        latencies = []
        for fut in as_completed(futures, timeout=self.timeout_s):
            latencies.append(time.time() - t0)
            if fut.status != "finished":
                raise RuntimeError(f"Dask task failed: {fut.exception()!r}")
        return Result(label, n, max(latencies), latencies)

    def run_chain(self, label: str, n: int) -> Result:
        """n futures, each on the previous one's result, submitted at once (the scheduler orders them)."""
        from dask.distributed import as_completed

        fn, args = self.chains[label]
        t0 = time.time()
        futures, prev = [], None
        for _ in range(n):
            prev = self.client.submit(fn, prev, *args, pure=False)
            futures.append(prev)
        latencies = []
        for fut in as_completed(futures, timeout=self.timeout_s):
            latencies.append(time.time() - t0)
            if fut.status != "finished":
                raise RuntimeError(f"Dask task failed: {fut.exception()!r}")
        if futures[-1].result() != n:
            raise RuntimeError(f"Dask chain computed {futures[-1].result()}, not {n}")
        return Result(label, n, max(latencies), sorted(latencies))


# -- report --------------------------------------------------------------------------------------
def median_round(rounds: list[Result]) -> Result:
    return sorted(rounds, key=lambda r: r.tasks_per_s)[len(rounds) // 2]


def print_table(results: list[Result], rounds: dict[str, list[Result]]) -> None:
    print(f"\n{'system':<20} {'tasks':>6} {'seconds':>8} {'tasks/s':>8} {'p50 ms':>8} {'p99 ms':>8}   "
          "tasks/s of each round")
    for r in results:
        each = " ".join(f"{x.tasks_per_s:.1f}" for x in rounds[r.label])
        print(f"{r.label:<20} {r.tasks:>6} {r.seconds:>8.2f} {r.tasks_per_s:>8.1f} "
              f"{r.pct(50) * 1000:>8.0f} {r.pct(99) * 1000:>8.0f}   {each}")


def print_verdict(runsurge: Result, peers: list[Result]) -> None:
    print("\ntarget: RunSurge tasks/s >= Dask tasks/s")
    for peer in peers:
        ratio = runsurge.tasks_per_s / peer.tasks_per_s
        print(f"  vs {peer.label:<18} {ratio:6.2f}x  {'MET' if ratio >= 1 else 'NOT met'}")


def print_chain(results: list[Result], rounds: dict[str, list[Result]]) -> None:
    print(f"\n{'system':<20} {'steps':>6} {'seconds':>8} {'ms/step':>8} {'gap p50':>8} {'gap p99':>8}   "
          "ms/step of each round")
    for r in results:
        gaps = [b - a for a, b in zip(r.latencies, r.latencies[1:], strict=False)]
        q = statistics.quantiles(gaps, n=100, method="inclusive")
        each = " ".join(f"{x.seconds * 1000 / x.tasks:.1f}" for x in rounds[r.label])
        print(f"{r.label:<20} {r.tasks:>6} {r.seconds:>8.2f} {r.seconds * 1000 / r.tasks:>8.1f} "
              f"{q[49] * 1000:>8.1f} {q[98] * 1000:>8.1f}   {each}")
    print("  (ms/step: submit -> last step finished, / steps; gap: one step's finish -> the next's)")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=200, help="no-op tasks per round and system (default 200)")
    p.add_argument("--slots", type=int, default=1,
                   help="tasks at once per worker; Dask gets as many threads per worker (default 1)")
    p.add_argument("--repeat", type=int, default=3, help="measured rounds per system; the median is shown")
    p.add_argument("--chain", type=int, default=0, metavar="N",
                   help="instead: a chain of N dependent tasks, per-step latency (default: off)")
    p.add_argument("--timeout", type=float, default=300, help="give up on one round after this many seconds")
    args = p.parse_args()
    if args.tasks < 2 or args.slots < 1 or args.repeat < 1 or args.chain == 1 or args.chain < 0:
        p.error("need --tasks >= 2, --slots >= 1, --repeat >= 1, --chain 0 or >= 2")
    # A plain `kill` must still run every `finally` (stop the processes, delete the temp dirs).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    what = f"a chain of {args.chain} dependent tasks" if args.chain else f"{args.tasks} no-op tasks"
    print(f"{what} x {args.repeat} rounds, 2 workers x {args.slots} slot(s), {os.cpu_count()} CPUs, loopback")
    load = OtherLoad()
    rounds: dict[str, list[Result]] = {}
    with tempfile.TemporaryDirectory(prefix="runsurge-bench-dispatch-") as tmp:
        with RunSurge(Path(tmp) / "runsurge", args.slots, args.timeout) as rs, \
                Dask(Path(tmp), args.slots, args.timeout) as dask:
            for _ in range(args.repeat):
                if args.chain:
                    rounds.setdefault("RunSurge", []).append(rs.run(args.chain, chain=True))
                    for label in dask.chains:
                        rounds.setdefault(label, []).append(dask.run_chain(label, args.chain))
                    continue
                rounds.setdefault("RunSurge", []).append(rs.run(args.tasks))
                for label in dask.variants:
                    rounds.setdefault(label, []).append(dask.run(label, args.tasks))
            phases = rs.phases(median_round(rounds["RunSurge"]).job_id)
            per_call = rs.per_call
    quiet = load.stop()

    results = [median_round(r) for r in rounds.values()]
    if args.chain:
        print_chain(results, rounds)
        rs_cpu = median_round(rounds["RunSurge"]).cpu_ms
        print("\nRunSurge CPU ms per step: " + "  ".join(f"{name} {ms:.1f}" for name, ms in rs_cpu.items()))
        print("RunSurge tasks per call: " + ("  ".join(f"{m} {v:.2f}" for m, v in per_call.items()) or "n/a"))
        print(f"\n{quiet}")
        return 0
    print_table(results, rounds)
    print("\nRunSurge per-task phases (median, in the median round):")
    for name, seconds in phases.items():
        print(f"  {name:<46} {seconds * 1000:7.1f} ms")
    rs_cpu = median_round(rounds["RunSurge"]).cpu_ms
    print("\nRunSurge tasks per call (last round): " + ("  ".join(f"{m} {v:.2f}" for m, v in per_call.items())
                                                   or "n/a (one task per AssignTask / TaskComplete)"))
    print("\nRunSurge CPU ms per task (median round; from /proc/PID/stat, the scripts' CPU from their rusage):")
    print("  " + "  ".join(f"{name} {ms:.1f}" for name, ms in rs_cpu.items()))
    print_verdict(results[0], results[1:])
    print(f"\n{quiet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
