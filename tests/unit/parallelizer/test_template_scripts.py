"""The original RunSurge template, unchanged: the loading block (nested infer_type, try/except,
readlines, a row per line with the header kept as data[0]), functions that skip the header
themselves, tags that may disagree with the code. Each of the nine kinds of work in
examples/template is planned, split into chunks, run task by task and compared with its
sequential run; then shapes that are not in those examples."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from plan_runner import assert_same_csv, run_plan, run_sequential

from runsurge_master.parallelizer import plan_job

TEMPLATE = Path(__file__).resolve().parents[3] / "examples" / "template"
sys.path.insert(0, str(TEMPLATE))
import make_data  # noqa: E402

KINDS = ["column_sum", "max_min", "mean_above_threshold", "population_std", "zscore", "correlation",
         "constant_columns", "smoothing", "sobel"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("template-data")
    return {"measurements.csv": make_data.measurements(d / "measurements.csv", 3000),
            "pixels.csv": make_data.pixels(d / "pixels.csv", 3000)}


def split_and_compare(source: str, name: str, data_name: str, path: Path, tmp: Path, chunks: int = 3):
    plan = plan_job(source, name, {data_name: path}, chunks=chunks)
    n_chunks = sum(1 for t in plan.tasks if t.kind == "chunk")
    assert n_chunks >= 2, "\n".join(plan.explanation)
    tmp.mkdir(parents=True, exist_ok=True)
    script = tmp / name
    script.write_text(source)
    assert_same_csv(run_plan(plan, tmp / "plan")["output.csv"], run_sequential(script, path, data_name, tmp / "seq"))
    return plan


@pytest.mark.parametrize("kind", KINDS)
def test_template_kind_splits_and_equals_sequential(kind, data, tmp_path):
    source = (TEMPLATE / f"{kind}.py").read_text()
    data_name = "pixels.csv" if "pixels.csv" in source else "measurements.csv"
    plan = split_and_compare(source, f"{kind}.py", data_name, data[data_name], tmp_path)
    assert "keep the header line first" in plan.explanation[0]
    assert "so it runs as one task" not in "\n".join(plan.explanation)


def variant(kind: str, old: str, new: str) -> str:
    source = (TEMPLATE / f"{kind}.py").read_text()
    assert old in source
    return source.replace(old, new)


LOAD = "            lines = file.readlines()\n"


@pytest.mark.parametrize("old, new", [
    # the file iterated directly; the loading as a loop; csv.reader with the header kept
    (LOAD + "            data = [[infer_type(cell) for cell in line.strip().split(',')] for line in lines]\n",
     "            data = [[infer_type(c) for c in line.rstrip('\\n').split(',')] for line in file]\n"),
    (LOAD + "            data = [[infer_type(cell) for cell in line.strip().split(',')] for line in lines]\n",
     LOAD + "            data = []\n            for line in lines:\n"
     "                data.append([infer_type(cell) for cell in line.strip().split(',')])\n"),
    (LOAD + "            data = [[infer_type(cell) for cell in line.strip().split(',')] for line in lines]\n",
     "            data = [[infer_type(c) for c in r] for r in csv.reader(file)]\n"),
    (LOAD, "            lines = file.read().splitlines()\n"),
])
def test_other_loaders_with_the_same_property(old, new, data, tmp_path):
    source = variant("column_sum", old, new)
    split_and_compare(source, "job.py", "measurements.csv", data["measurements.csv"], tmp_path)


def test_rows_bound_to_a_name_and_indexed_rows(data, tmp_path):
    source = variant("population_std", "    for row in data[1:]:\n",
                     "    body = data[1:]\n    for k in range(len(body)):\n        row = body[k]\n")
    split_and_compare(source, "job.py", "measurements.csv", data["measurements.csv"], tmp_path / "a")
    source = variant("column_sum", "    for row in data[1:]:  # Skip header\n",
                     "    for r in range(1, len(data)):\n        row = data[r]\n")
    split_and_compare(source, "job.py", "measurements.csv", data["measurements.csv"], tmp_path / "b")


def test_an_average_tag_on_a_filtered_mean_combines_as_the_code_does(data):
    """`a` would weight the chunks' means by their row counts; the code's sums and counts are exact."""
    plan = plan_job((TEMPLATE / "mean_above_threshold.py").read_text(), "m.py",
                    {"measurements.csv": data["measurements.csv"]}, chunks=3)
    text = "\n".join(plan.explanation)
    assert "element-wise sum of counts" in text and "the tag says average; combined as the code computes" in text


def test_a_result_that_starts_with_the_header_is_combined_once(data, tmp_path):
    source = variant("zscore", "    normalized = []\n", "    normalized = [data[0]]\n")
    split_and_compare(source, "z.py", "measurements.csv", data["measurements.csv"], tmp_path)


@pytest.mark.parametrize("old, new, why", [
    # the last line: differs per chunk
    ("    normalized = []\n", "    normalized = [data[-1]]\n", "data"),
    # it reads the rows other than from the header on
    ("    for row in data[1:]:\n        new_row = []\n",
     "    for row in data[2:]:\n        new_row = []\n", "data"),
    # the first data row as a reference: differs per chunk
    ("    for row in data[1:]:\n        new_row = []\n",
     "    ref = data[1]\n    for row in data[1:]:\n        new_row = [ref[0]]\n", "data"),
])
def test_unprovable_uses_of_header_rows_run_unsplit_and_still_equal(old, new, why, data, tmp_path):
    source = variant("zscore", old, new)
    plan = plan_job(source, "z.py", {"measurements.csv": data["measurements.csv"]}, chunks=3)
    text = "\n".join(plan.explanation)
    assert "normalize" in text and why in text and "cannot be split" in text
    (tmp_path / "z.py").write_text(source)
    seq = run_sequential(tmp_path / "z.py", data["measurements.csv"], "measurements.csv", tmp_path / "seq")
    assert_same_csv(run_plan(plan, tmp_path / "plan")["output.csv"], seq)


@pytest.mark.parametrize("kind", ["column_sum", "zscore", "smoothing"])
def test_memory_estimate_from_the_loader_covers_the_real_peak(kind, tmp_path):
    """The unsplit task's estimate, from the proven loader (types, kept lines), against the peak the
    script really reaches (the child's max RSS): never below it, and not wildly above it."""
    import shutil
    import subprocess

    source = (TEMPLATE / f"{kind}.py").read_text()
    data_name = "pixels.csv" if "pixels.csv" in source else "measurements.csv"
    maker = make_data.pixels if data_name == "pixels.csv" else make_data.measurements
    path = maker(tmp_path / data_name, 30_000)
    plan = plan_job(source, f"{kind}.py", {data_name: path}, chunks=1)
    task, = plan.tasks
    assert any("bytes per loaded row" in x for x in plan.explanation)
    shutil.copy(TEMPLATE / f"{kind}.py", tmp_path / "job.py")
    # VmHWM: the peak of this process's own memory (ru_maxrss would count the pages it shared with
    # pytest between fork and exec)
    run = ("import runpy, sys; runpy.run_path('job.py', run_name='__main__'); "
           "print(next(x for x in open('/proc/self/status') if x.startswith('VmHWM')).split()[1], file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", run], cwd=tmp_path, check=True, capture_output=True, text=True)
    peak = int(r.stderr.split()[-1]) << 10
    assert peak <= task.memory_bytes <= 4 * peak + (32 << 20), (peak >> 20, task.memory_bytes >> 20)
