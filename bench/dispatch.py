"""Dispatch benchmark: how many no-op tasks per second the control plane pushes through.

RunSurge: one job of N independent no-op tasks (a job spec, distinct task names) on a real master
and 2 workers on loopback, `process` sandbox. The same-shaped work then runs on Dask distributed
(LocalCluster, 2 worker processes, `--slots` threads each) in two variants:
  - dask (in-process): each task is a Python no-op function call;
  - dask (subprocess): each task runs the same no-op script in a fresh interpreter, the same work
    per task as a RunSurge task in the process sandbox.

Figures, per system: tasks/s = N / (submit → last task finished), and the p50/p99 latency of
submit → each task finished. All N tasks are submitted at once, so latency includes queueing.
  - RunSurge's clock starts just before the HTTP submit (upload + spec parsing included) and each
    task's finish is the master's own `tasks.finished_at` (the moment it recorded TaskComplete and
    could release dependants), read from its SQLite database. The database is read, not the HTTP
    API, so waiting does not load the master being measured.
  - Dask's clock starts just before `client.map`; each finish is when the client learns of it
    (`as_completed`): one hop later than the scheduler knows, which if anything favours RunSurge's
    figure less, not more.
Each system gets a small warm-up batch first (connections, imports) and runs alone on the machine.
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
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from localnet import LocalNet  # noqa: E402

NOOP_SCRIPT = "pass\n"
WARMUP_TASKS = 4
POLL_S = 0.05


@dataclass
class Result:
    label: str
    tasks: int
    seconds: float      # submit → last task finished
    latencies: list[float]  # submit → each task finished

    @property
    def tasks_per_s(self) -> float:
        return self.tasks / self.seconds

    def pct(self, q: int) -> float:
        """q-th percentile (linear interpolation between closest ranks)."""
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1]


# -- RunSurge ------------------------------------------------------------------------------------
def write_job(folder: Path, name: str, n: int) -> Path:
    """A spec of n independent tasks running noop.py; no `outputs`, so nothing is collected."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "noop.py").write_text(NOOP_SCRIPT)
    lines = [f'name = "{name}"']
    for i in range(n):
        lines += ["[[tasks]]", f'name = "t{i:05d}"', 'script = "noop.py"', 'memory = "64MiB"']
    spec = folder / "job.toml"
    spec.write_text("\n".join(lines) + "\n")
    return spec


def utc_seconds(value: str | None) -> float:
    """The master stores naive UTC datetimes; as seconds since the epoch."""
    if value is None:
        raise RuntimeError("a task has no finish time")
    return datetime.fromisoformat(value).replace(tzinfo=timezone.utc).timestamp()


def wait_job(db: sqlite3.Connection, job_id: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, error = db.execute("SELECT status, error FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if status == "done":
            return
        if status == "failed":
            raise RuntimeError(f"RunSurge job failed: {error}")
        time.sleep(POLL_S)
    raise TimeoutError(f"RunSurge job {job_id} not done after {timeout_s:g}s")


def run_runsurge_job(net: LocalNet, db: sqlite3.Connection, folder: Path, n: int,
                     timeout_s: float) -> tuple[Result, dict[str, float]]:
    spec = write_job(folder, folder.name, n)
    client = net.client()
    t0 = time.time()
    job_id = client.submit_spec(spec)["id"]
    wait_job(db, job_id, timeout_s)
    rows = db.execute("SELECT created_at, assigned_at, started_at, finished_at, wall_s FROM tasks "
                      "WHERE job_id = ?", (job_id,)).fetchall()
    finished = [utc_seconds(r[3]) for r in rows]
    phases = phase_medians(rows)
    return Result("RunSurge", n, max(finished) - t0, [f - t0 for f in finished]), phases


def phase_medians(rows: list[tuple]) -> dict[str, float]:
    """Where a task's time goes once it leaves the queue (medians, seconds)."""
    t = [[utc_seconds(v) for v in r[:4]] for r in rows]
    return {
        "assigned → started (fetch script, prepare)": statistics.median(r[2] - r[1] for r in t),
        "started → finished (run script, report)": statistics.median(r[3] - r[2] for r in t),
        "of which the script's own wall time": statistics.median(r[4] for r in rows),
    }


def bench_runsurge(n: int, slots: int, timeout_s: float) -> tuple[Result, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="runsurge-bench-dispatch-") as tmp:
        root = Path(tmp)
        net = LocalNet(root / "net", sandbox="process", slots=slots)
        try:
            net.start(workers=2)
            db = sqlite3.connect(f"file:{root / 'net' / 'master' / 'master.db'}?mode=ro", uri=True)
            try:
                run_runsurge_job(net, db, root / "warmup", WARMUP_TASKS, timeout_s)
                return run_runsurge_job(net, db, root / "measured", n, timeout_s)
            finally:
                db.close()
        except BaseException:
            print_log_tails(net)
            raise
        finally:
            net.stop()


def print_log_tails(net: LocalNet, lines: int = 15) -> None:
    for log in sorted(net.root.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- last lines of {log.name} ---", *tail, sep="\n", file=sys.stderr)


# -- Dask ----------------------------------------------------------------------------------------
def noop(i: int) -> int:
    return i


def run_script(i: int, script: str, work_dir: str) -> int:
    """The same work as a RunSurge task: a fresh interpreter running the no-op script."""
    subprocess.run([sys.executable, script], cwd=work_dir, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": work_dir})
    return i


def run_dask_batch(client, label: str, fn, n: int, *args: object) -> Result:  # noqa: ANN001
    from dask.distributed import as_completed

    t0 = time.time()
    futures = client.map(fn, range(n), *[[a] * n for a in args], pure=False)
    latencies = []
    for fut in as_completed(futures):
        latencies.append(time.time() - t0)
        if fut.status != "finished":
            raise RuntimeError(f"Dask task failed: {fut.exception()!r}")
    return Result(label, n, max(latencies), latencies)


def bench_dask(n: int, slots: int) -> list[Result]:
    from dask.distributed import Client, LocalCluster

    with tempfile.TemporaryDirectory(prefix="runsurge-bench-dask-") as tmp:
        script = Path(tmp) / "noop.py"
        script.write_text(NOOP_SCRIPT)
        with LocalCluster(n_workers=2, threads_per_worker=slots, processes=True, dashboard_address=None,
                          silence_logs=logging.ERROR, local_directory=tmp) as cluster, Client(cluster) as client:
            results = []
            for label, fn, args in (("Dask (in-process)", noop, ()),
                                    ("Dask (subprocess)", run_script, (str(script), tmp))):
                run_dask_batch(client, "warm-up", fn, WARMUP_TASKS, *args)
                results.append(run_dask_batch(client, label, fn, n, *args))
            return results


# -- report --------------------------------------------------------------------------------------
def print_table(results: list[Result]) -> None:
    print(f"\n{'system':<20} {'tasks':>6} {'seconds':>8} {'tasks/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for r in results:
        print(f"{r.label:<20} {r.tasks:>6} {r.seconds:>8.2f} {r.tasks_per_s:>9.1f} "
              f"{r.pct(50) * 1000:>8.0f} {r.pct(99) * 1000:>8.0f}")


def print_verdict(runsurge: Result, peers: list[Result]) -> None:
    print("\ntarget: RunSurge tasks/s >= Dask tasks/s")
    for peer in peers:
        ratio = runsurge.tasks_per_s / peer.tasks_per_s
        verdict = "MET" if ratio >= 1 else "NOT met"
        print(f"  vs {peer.label:<18} {ratio:6.2f}x  {verdict}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=200, help="no-op tasks per system (default 200)")
    p.add_argument("--slots", type=int, default=1,
                   help="tasks at once per worker; Dask gets as many threads per worker (default 1)")
    p.add_argument("--timeout", type=float, default=300, help="give up on a RunSurge job after this (s)")
    args = p.parse_args()
    if args.tasks < 2 or args.slots < 1:
        p.error("--tasks must be >= 2 and --slots >= 1")
    # A plain `kill` must still run every `finally` (stop the processes, delete the temp dirs).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    print(f"{args.tasks} no-op tasks, 2 workers x {args.slots} slot(s), {os.cpu_count()} CPUs, loopback")
    runsurge, phases = bench_runsurge(args.tasks, args.slots, args.timeout)
    dask = bench_dask(args.tasks, args.slots)
    print_table([runsurge, *dask])
    print("\nRunSurge per-task phases (median):")
    for name, seconds in phases.items():
        print(f"  {name:<44} {seconds * 1000:7.1f} ms")
    print_verdict(runsurge, dask)
    return 0


if __name__ == "__main__":
    sys.exit(main())
