"""Every script under scripts/: plan it, run the plan locally task by task, and compare output.csv
with the original script run sequentially (floats equal up to reassociation, 1e-9 relative)."""

from __future__ import annotations

import ast

import pytest
from plan_data import make
from plan_runner import SCRIPTS, assert_same_csv, run_plan, run_sequential

from runsurge_master.jobspec import parse_spec
from runsurge_master.parallelizer import plan_job

SPLIT = ["column_sums", "min_max", "mean_std", "zscore", "correlation", "filter_rows", "word_count",
         "word_frequency_counter", "constant_columns", "smooth_rows", "smooth_2d", "tagged", "median_and_sums",
         "comprehension_stats", "product_flags"]
UNSPLIT = ["order_dependent", "global_state", "io_in_loop", "two_pass", "ordinary"]


def data_name(source: str) -> str:
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "FILE_NAME":
            return node.value.value
    return "numbers.csv"


def plan_and_run(name: str, tmp_path, chunks: int | None = 3, **kw):
    script = SCRIPTS / f"{name}.py"
    source = script.read_text()
    fname = data_name(source)
    data = make(fname, tmp_path / "in")
    plan = plan_job(source, script.name, {fname: data}, chunks=chunks, **kw)
    results = run_plan(plan, tmp_path / "dist")
    want = run_sequential(script, data, fname, tmp_path / "seq")
    assert_same_csv(results["output.csv"], want)
    return plan


@pytest.mark.parametrize("name", SPLIT)
def test_split_plan_matches_sequential_run(name, tmp_path):
    plan = plan_and_run(name, tmp_path)
    kinds = [t.kind for t in plan.tasks]
    assert kinds.count("chunk") >= 3, plan.explanation
    assert kinds[-1] == "combine"
    spec = parse_spec(plan.spec_toml, set(plan.files), 256 << 20, 3600, 10000)
    assert {t.name for t in spec.tasks} == {t.name for t in plan.tasks}
    assert all(t.memory_bytes == s.memory_bytes for t, s in zip(plan.tasks, spec.tasks, strict=True))
    plan.cleanup()


@pytest.mark.parametrize("name", UNSPLIT)
def test_unsplit_plan_still_runs_and_says_why(name, tmp_path):
    plan = plan_and_run(name, tmp_path)
    assert not any(t.kind == "chunk" for t in plan.tasks)
    assert plan.explanation


@pytest.mark.parametrize("chunks", [2, 5, 17])
def test_chunk_count_does_not_change_the_result(chunks, tmp_path):
    plan = plan_and_run("zscore", tmp_path, chunks=chunks)
    per_round = sum(1 for t in plan.tasks if t.name.startswith("chunk0-"))
    assert per_round == chunks


def test_zscore_runs_in_three_rounds(tmp_path):
    plan = plan_and_run("zscore", tmp_path)
    combines = [t for t in plan.tasks if t.kind == "combine"]
    assert [t.name for t in combines] == ["combine1", "combine2", "combine3"]
    chunk1 = next(t for t in plan.tasks if t.name == "chunk1-000")
    assert set(chunk1.depends_on) == {"combine1"}
    assert "combine2" in combines[2].depends_on
    assert any("needs means" in line for line in plan.explanation)


def test_independent_calls_share_one_pass_and_a_call_task_runs_beside(tmp_path):
    plan = plan_and_run("median_and_sums", tmp_path)
    calls = [t for t in plan.tasks if t.kind == "call"]
    assert len(calls) == 1 and calls[0].depends_on == []
    assert any("run at the same time" in line for line in plan.explanation)


def test_order_dependent_calls_run_side_by_side_without_splitting(tmp_path):
    plan = plan_and_run("order_dependent", tmp_path)
    assert [t.kind for t in plan.tasks] == ["call", "call", "call", "combine"]


def test_small_input_is_not_split_without_override(tmp_path):
    plan = plan_and_run("column_sums", tmp_path, chunks=None, worker_free_memory=[1 << 30, 1 << 30])
    assert [t.kind for t in plan.tasks] == ["single"]
    assert any("overhead" in line or "not split" in line for line in plan.explanation)


def test_generated_scripts_are_standard_library_only(tmp_path):
    plan = plan_and_run("word_frequency_counter", tmp_path)
    allowed = {"csv", "gc", "math", "collections", "pickle", "statistics"}
    for name in plan.files:
        if name.endswith(".py"):
            tree = ast.parse(plan.files[name])
            mods = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            mods |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
            assert mods <= allowed, (name, mods)


EXAMPLES = SCRIPTS.parent.parent.parent.parent / "examples" / "auto"


@pytest.mark.parametrize("script, data", [("column_stats.py", "measurements.csv"), ("zscore.py", "measurements.csv"),
                                          ("sales_report.py", "sales.csv")])
def test_examples(script, data, tmp_path):
    plan = plan_job((EXAMPLES / script).read_text(), script, {data: EXAMPLES / data}, chunks=3)
    assert any(t.kind == "chunk" for t in plan.tasks)
    results = run_plan(plan, tmp_path / "dist")
    assert_same_csv(results["output.csv"], run_sequential(EXAMPLES / script, EXAMPLES / data, data, tmp_path / "seq"))
