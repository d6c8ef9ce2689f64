"""Speed-up of automatic mode over a generated CSV (default 1 GB), for two scripts:

- `stats`: examples/auto/column_stats.py, per-column sum, mean and standard deviation, loading
  with csv.reader;
- `template`: examples/template/column_sum.py, the original RunSurge template unchanged: its
  loading block (readlines, then infer_type on every cell, header kept as data[0]) and a
  column-wise sum over data[1:].

Each is run three ways on this machine in the same run:

  1. sequential: the user's script, `python3 column_stats.py`, one process, run by the same
     interpreter RunSurge's process sandbox runs tasks with (the system's python3);
  2. RunSurge automatic mode: master + 2 workers on loopback (process sandbox), the same script
     submitted as is; the parallelizer splits the rows and combines the partial sums;
  3. Dask distributed, 2 worker processes x 1 thread, dask.bag over the same file doing the same
     pure-Python parsing and arithmetic per partition (like for like: no pandas C parser); then
     once more with the rows loaded the way RunSurge's generated chunk scripts load them (garbage
     collector off while loading, rows frozen after), for information: the target is stock Dask.

Wall time is measured from the user's side: RunSurge's includes uploading the CSV, planning,
moving chunks to the workers and combining. RunSurge's result is checked against the sequential one.

    python bench/speedup.py [--size-mb 1024] [--chunks N] [--workloads stats,template]
"""

from __future__ import annotations

import argparse
import csv
import gc
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))
from localnet import LocalNet  # noqa: E402
from quiet import OtherLoad  # noqa: E402
from runsurge_worker.sandbox.process import PYTHON  # noqa: E402 - what tasks run with: like for like

SCRIPTS = {"stats": ROOT / "examples" / "auto" / "column_stats.py",
           "template": ROOT / "examples" / "template" / "column_sum.py"}
COLUMNS = 8


def generate(path: Path, size_mb: int) -> None:
    """A CSV of `size_mb` MB: a 1 MB block of random rows written again and again (fast to make;
    parsing cost per byte is what matters here)."""
    import random
    rnd = random.Random(42)
    rows = []
    size = 0
    while size < 1 << 20:
        row = ",".join(f"{rnd.uniform(-1000, 1000):.4f}" for _ in range(COLUMNS)) + "\n"
        rows.append(row)
        size += len(row)
    block = "".join(rows).encode()
    with open(path, "wb") as f:
        f.write((",".join(f"c{i}" for i in range(COLUMNS)) + "\n").encode())
        for _ in range(size_mb):
            f.write(block)


def sequential(script: Path, data: Path, work: Path) -> tuple[float, Path]:
    work.mkdir()
    shutil.copy(script, work / script.name)
    (work / "measurements.csv").symlink_to(data)
    start = time.perf_counter()
    subprocess.run([PYTHON, script.name], cwd=work, check=True)
    return time.perf_counter() - start, work / "output.csv"


def runsurge(script: Path, data: Path, work: Path, chunks: int | None) -> tuple[float, Path, int]:
    with LocalNet(work / "net", slots=1, worker_memory=10 << 30) as net:
        net.start(workers=2)
        client = net.client()
        named = work / "measurements.csv"
        named.symlink_to(data)
        start = time.perf_counter()
        job = client.submit([script, named], chunks=chunks)
        job = client.wait(job["id"], poll_s=0.2, timeout_s=3600)
        elapsed = time.perf_counter() - start
        if job["status"] != "done":
            raise SystemExit(f"RunSurge job failed: {job['error']}")
        out = next(p for p in client.download_results(job["id"], work / "out") if p.name == "output.csv")
        honest_plan(client.plan([script, named], chunks=chunks), job)
        return elapsed, out, sum(t["name"].startswith("chunk") for t in job["tasks"])


def honest_plan(plan: dict, job: dict) -> None:
    """The plan's time estimate for each chunk task beside what it took (target: within 2x)."""
    said = {t["name"]: t["estimated_s"] for t in plan["tasks"] if t.get("estimated_s")}
    took = {t["name"]: t["wall_s"] for t in job["tasks"] if t["wall_s"]}
    ratios = [took[n] / said[n] for n in said if n in took and n.startswith("chunk")]
    if ratios:
        print(f"  plan vs run, chunk tasks: measured/estimated from {min(ratios):.2f} to {max(ratios):.2f} "
              f"(target: within 0.5..2): {'met' if 0.5 <= min(ratios) and max(ratios) <= 2 else 'NOT met'}")


def _partition_stats(lines, frozen=False):  # runs inside Dask workers
    """The user script's work on one partition: read the rows into a list, then accumulate.
    `frozen`: load the rows with the garbage collector off and freeze them after, as RunSurge's
    generated chunk scripts do (codegen._load_block), to show what that alone is worth to Dask."""
    if frozen:
        gc.disable()
    rows = [row for row in csv.reader(lines) if row and not row[0].startswith("c")]  # skip the header
    if frozen:
        gc.freeze()
        gc.enable()
    n, sums, squares = 0, [0.0] * COLUMNS, [0.0] * COLUMNS
    for row in rows:
        n += 1
        for i, value in enumerate(row):
            x = float(value)
            sums[i] += x
            squares[i] += x * x
    if frozen:
        gc.unfreeze()  # a Dask worker lives on: let the next partition's collections see these again
    return [(n, sums, squares)]


def _infer_type(value):  # the template's own conversion
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value.strip()


def _partition_template(lines):  # runs inside Dask workers
    """The template's work on one partition: every line parsed with infer_type, then column sums."""
    data = [[_infer_type(c) for c in line.strip().split(",")] for line in lines if not line.startswith("c")]
    sums = [0] * COLUMNS
    for row in data:
        for i in range(len(row)):
            sums[i] += row[i]
    return [sums]


def dask(data: Path, frozen: bool = False, workload: str = "stats") -> float:
    import dask.bag as db
    from dask.distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster):
        start = time.perf_counter()
        bag = db.read_text(str(data), blocksize="64MB")
        if workload == "template":
            parts = bag.map_partitions(_partition_template).compute()
            _ = [sum(p[i] for p in parts) for i in range(COLUMNS)]
            return time.perf_counter() - start
        parts = bag.map_partitions(_partition_stats, frozen=frozen).compute()
        n = sum(p[0] for p in parts)
        sums = [sum(p[1][i] for p in parts) for i in range(COLUMNS)]
        squares = [sum(p[2][i] for p in parts) for i in range(COLUMNS)]
        means = [s / n for s in sums]
        _ = [math.sqrt(max(0.0, q / n - m * m)) for q, m in zip(squares, means, strict=True)]
        return time.perf_counter() - start


def same(a: Path, b: Path) -> bool:
    ra, rb = list(csv.reader(open(a))), list(csv.reader(open(b)))
    if len(ra) != len(rb):
        return False
    for x, y in zip(ra, rb, strict=True):
        for u, v in zip(x, y, strict=True):
            try:
                fu, fv = float(u), float(v)
            except ValueError:
                if u != v:
                    return False
                continue
            if abs(fu - fv) > 1e-9 * max(abs(fu), abs(fv), 1e-300):
                return False
    return True


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-mb", type=int, default=1024)
    p.add_argument("--chunks", type=int, help="RunSurge chunks (default: the parallelizer decides)")
    p.add_argument("--workloads", default="stats,template", help="comma-separated: stats, template")
    args = p.parse_args()
    workloads = [w for w in args.workloads.split(",") if w]
    if not workloads or set(workloads) - set(SCRIPTS):
        p.error(f"--workloads: choose from {', '.join(SCRIPTS)}")
    work = Path(tempfile.mkdtemp(prefix="runsurge-speedup-"))
    try:
        data = work / "data.csv"
        t0 = time.perf_counter()
        generate(data, args.size_mb)
        print(f"generated {data.stat().st_size / 1e6:.0f} MB ({COLUMNS} columns) in {time.perf_counter() - t0:.1f} s")
        load = OtherLoad()
        rows, ok, targets = [], True, []
        for w in workloads:
            script = SCRIPTS[w]
            seq_s, seq_out = sequential(script, data, work / f"seq-{w}")
            print(f"{w}: sequential {seq_s:.1f} s")
            rs_s, rs_out, chunks = runsurge(script, data, work / f"rs-{w}", args.chunks)
            print(f"{w}: runsurge {rs_s:.1f} s ({chunks} chunks)")
            dask_s = dask(data, workload=w)
            print(f"{w}: dask {dask_s:.1f} s")
            correct = same(rs_out, seq_out)
            ok &= correct
            rows += [(f"{w}: sequential Python", seq_s, seq_s), (f"{w}: RunSurge auto, 2 workers", rs_s, seq_s),
                     (f"{w}: Dask bag, 2 workers", dask_s, seq_s)]
            if w == "stats":
                rows.append(("stats:   Dask, loading as RunSurge does", dask(data, frozen=True), seq_s))
            want = 1.6 if w == "stats" else 1.7
            targets.append(f"{w}: RunSurge >= {want}x sequential: {'met' if seq_s / rs_s >= want else 'NOT met'} "
                           f"({seq_s / rs_s:.2f}x); no slower than Dask: {'met' if rs_s <= dask_s else 'NOT met'}; "
                           f"output equals the sequential run: {correct}")
        quiet = load.stop()
        print()
        print(f"{'':<42}{'wall s':>8}{'speed-up':>10}")
        for name, t, base in rows:
            print(f"{name:<42}{t:>8.1f}{base / t:>10.2f}")
        print()
        for line in targets:
            print(line)
        print(quiet)
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
