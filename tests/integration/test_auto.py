"""Automatic and group mode on real workers: every splittable script of the parallelizer's suite
runs distributed over two workers and its output equals the sequential run."""

import csv
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "parallelizer"))
from plan_data import make
from plan_runner import SCRIPTS, assert_same_csv, run_sequential
from test_parallelizer_group import AGGREGATOR, SCRIPT, archive
from test_parallelizer_plans import SPLIT, data_name

from localnet import LocalNet


@pytest.fixture(scope="module")
def net4(tmp_path_factory):
    """Two workers with two slots each: chunks spread over both machines."""
    n = LocalNet(tmp_path_factory.mktemp("auto") / "net", slots=2, heartbeat_s=0.5)
    try:
        n.start(workers=2)
        yield n
    finally:
        n.stop()


@pytest.mark.parametrize("name", SPLIT)
def test_split_script_runs_distributed_and_matches_the_sequential_run(net4, name, tmp_path):
    script = SCRIPTS / f"{name}.py"
    fname = data_name(script.read_text())
    data = make(fname, tmp_path / "in")
    client = net4.client()
    job = client.submit([script, data], chunks=4)
    assert any("chunk" in line for line in job["explanation"]), job["explanation"]
    job = client.wait(job["id"], timeout_s=180)
    assert job["status"] == "done", job["error"]
    chunk_workers = {t["worker_id"] for t in job["tasks"] if t["name"].startswith("chunk")}
    assert len([t for t in job["tasks"] if t["name"].startswith("chunk")]) >= 4
    assert len(chunk_workers) == 2, "the chunks ran on both workers"
    paths = client.download_results(job["id"], tmp_path / "out")
    got = next(p for p in paths if p.name == "output.csv")
    assert_same_csv(got, run_sequential(script, data, fname, tmp_path / "seq"))


def test_group_job_runs_each_archive_then_the_aggregator_on_a_worker(net4, tmp_path):
    (tmp_path / "count.py").write_text(SCRIPT)
    (tmp_path / "merge.py").write_text(AGGREGATOR)
    parts = [archive(tmp_path / f"part{i}.zip", list(range(i * 100, i * 100 + 50))) for i in range(3)]
    client = net4.client()
    job = client.submit([tmp_path / "count.py", tmp_path / "merge.py", *parts], script="count.py",
                        mode="group", aggregator="merge.py")
    job = client.wait(job["id"], timeout_s=120)
    assert job["status"] == "done", job["error"]
    assert {t["name"] for t in job["tasks"]} == {"part0", "part1", "part2", "aggregate"}
    assert all(t["worker_id"] for t in job["tasks"])  # the aggregator ran on a worker, not the master
    final = next(p for p in client.download_results(job["id"], tmp_path / "out") if p.name == "final.csv")
    with open(final) as f:
        expected = sum(range(50)) + sum(range(100, 150)) + sum(range(200, 250))
        assert [int(x) for x in next(csv.reader(f))] == [150, expected]


def test_plan_shows_the_split_without_running_it(net4, tmp_path):
    script = SCRIPTS / "mean_std.py"
    data = make(data_name(script.read_text()), tmp_path / "in")
    client = net4.client()
    before = len(client.jobs())
    plan = client.plan([script, data], chunks=3)
    assert plan["mode"] == "auto" and [t["kind"] for t in plan["tasks"]].count("chunk") >= 3
    assert all(t["memory_bytes"] > 0 for t in plan["tasks"])
    assert len(client.jobs()) == before  # nothing ran


@pytest.mark.parametrize("files, message", [
    ({"s.py": "def f(:\n"}, "line 1"),
    ({"s.py": "x = 1\n"}, "no main block"),
    ({"s.py": (SCRIPTS / "column_sums.py").read_text(), "numbers.csv": ""}, "empty"),
    ({"s.py": (SCRIPTS / "column_sums.py").read_text(), "numbers.csv": "a,b\n1,2\n3\n"}, "line 3"),
])
def test_bad_scripts_and_data_are_refused_at_submission(net4, tmp_path, files, message):
    paths = []
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        paths.append(tmp_path / name)
    client = net4.client()
    before = len(client.jobs())
    with pytest.raises(Exception, match=message):
        client.submit(paths, script="s.py")
    assert len(client.jobs()) == before
