"""The original RunSurge template on real workers: each of the nine kinds of work in
examples/template, at 100,000 rows, split over two workers and equal to its sequential run; and
memory that fits: a task killed at RunSurge's own estimate runs again with more, unbilled, while
memory the user stated is never raised."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "unit" / "parallelizer"))
sys.path.insert(0, str(ROOT / "examples" / "template"))
import make_data  # noqa: E402
from plan_runner import assert_same_csv, run_sequential  # noqa: E402

from localnet import LocalNet  # noqa: E402

KINDS = ["column_sum", "max_min", "mean_above_threshold", "population_std", "zscore", "correlation",
         "constant_columns", "smoothing", "sobel"]
ROWS = 100_000


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    n = LocalNet(tmp_path_factory.mktemp("template") / "net", slots=1, heartbeat_s=0.5)
    try:
        n.start(workers=2)
        yield n
    finally:
        n.stop()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("template-data")
    return {"measurements.csv": make_data.measurements(d / "measurements.csv", ROWS),
            "pixels.csv": make_data.pixels(d / "pixels.csv", ROWS)}


@pytest.mark.parametrize("kind", KINDS)
def test_template_kind_runs_split_on_workers_and_equals_sequential(net, data, kind, tmp_path):
    script = ROOT / "examples" / "template" / f"{kind}.py"
    name = "pixels.csv" if "pixels.csv" in script.read_text() else "measurements.csv"
    client = net.client()
    job = client.submit([script, data[name]], chunks=2)
    job = client.wait(job["id"], timeout_s=300)
    assert job["status"] == "done", job["error"]
    chunks = [t for t in job["tasks"] if t["name"].startswith("chunk")]
    assert len(chunks) >= 2 and len({t["worker_id"] for t in chunks}) == 2
    got = next(p for p in client.download_results(job["id"], tmp_path / "out") if p.name == "output.csv")
    # z-scores near 0 are differences of values ~1000 apart by 1e-3: reassociating the sums of 100,000
    # of them moves the mean by ~1e-11, which is 1e-9 of the operands, not of the tiny difference
    assert_same_csv(got, run_sequential(script, data[name], name, tmp_path / "seq"), abs_tol=1e-9)


HUNGRY = ("block = bytearray(400 << 20)\nfor i in range(0, len(block), 4096):\n    block[i] = 1\n"
          "print('held', len(block))\n")


def test_a_task_killed_at_its_estimated_memory_runs_again_with_more(net, tmp_path):
    (tmp_path / "hungry.py").write_text(HUNGRY)
    client = net.client()
    job = client.submit([tmp_path / "hungry.py"], script="hungry.py", mode="single")  # the default: 256 MiB
    job = client.wait(job["id"], timeout_s=120)
    assert job["status"] == "done", job["error"]
    task, = job["tasks"]
    assert task["memory_bytes"] == 512 << 20 and task["mem_peak_bytes"] > 256 << 20
    assert task["attempts"] == 2 and "killed at its memory limit (256 MiB" in task["error"]
    bill = client._json("GET", f"/api/jobs/{job['id']}/bill")
    line, = bill["lines"]  # one charge: the killed run is not billed
    assert line["attempt"] == 2 and line["outcome"] == "done" and line["memory_bytes"] == 512 << 20


def test_memory_the_user_stated_is_not_raised(net, tmp_path):
    (tmp_path / "hungry.py").write_text(HUNGRY)
    client = net.client()
    job = client.submit([tmp_path / "hungry.py"], script="hungry.py", mode="single", memory="300MiB")
    job = client.wait(job["id"], timeout_s=120)
    assert job["status"] == "failed"
    task, = job["tasks"]
    assert task["memory_bytes"] == 300 << 20 and task["attempts"] == 1
    assert task["error"].startswith("memory limit exceeded (300 MiB)")
