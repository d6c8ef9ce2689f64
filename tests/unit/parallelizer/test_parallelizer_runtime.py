"""The merge helpers generated scripts carry, plan files, and memory estimates."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from plan_data import numbers
from plan_runner import SCRIPTS

from runsurge_master.parallelizer import fit_memory_model, plan_job, refine_plan, refined
from runsurge_master.parallelizer import runtime as rt


def test_sums_fold_from_the_start_value_in_chunk_order():
    assert rt._rs_fold(0.5, [1, 2, 3], 0, "+") == 6.5
    assert rt._rs_fold(["head"], [["a"], [], ["b", "c"]], 0, "+") == ["head", "a", "b", "c"]
    assert rt._rs_fold(None, [[[1], [2]], [[10], [20]]], 2, "+") == [[11], [22]]
    assert rt._rs_fold(2, [3, 4], 0, "*") == 24


def test_dicts_merge_by_key_in_first_seen_order_and_keep_their_type():
    a, b = Counter({"x": 1, "y": 2}), Counter({"z": 5, "x": 1})
    merged = rt._rs_fold(None, [a, b], 1, "+")
    assert type(merged) is Counter and list(merged.items()) == [("x", 2), ("y", 2), ("z", 5)]
    g1, g2 = defaultdict(list, k=[1]), defaultdict(list, j=[2], k=[3])
    assert dict(rt._rs_fold(None, [g1, g2], 1, "+")) == {"k": [1, 3], "j": [2]}


def test_lengths_must_agree():
    with pytest.raises(RuntimeError, match="different lengths"):
        rt._rs_fold(None, [[1, 2], [1]], 1, "+")


@pytest.mark.parametrize("take, parts, want", [
    (lambda a, b: b > a, [1, 1.0, 0], 1),            # max(acc, x) keeps the first of equals
    (lambda a, b: not a > b, [1, 1.0, 0], 1.0),      # max(x, acc) keeps the last
    (lambda a, b: b < a, [3, 2, 2.0], 2),
])
def test_ties_resolve_like_the_loop(take, parts, want):
    got = rt._rs_fold_pick(parts, 0, take, False)
    assert got == want and type(got) is type(want)


def test_none_means_nothing_seen():
    assert rt._rs_fold_pick([None, 4, None, 2], 0, lambda a, b: b < a, True) == 2
    assert rt._rs_fold_pick([[None, 5], [3, None]], 1, lambda a, b: b > a, True) == [3, 5]


def test_flags_sets_and_tags():
    assert rt._rs_latch([False, True, False], 0, True) is True
    assert rt._rs_latch([0, 0], 0, False) == 0  # 0 is not the flag value False
    assert rt._rs_latch([[1, 0], [1, 1]], 1, 0) == [1, 0]
    assert rt._rs_fold_union([{1}, {2}, {1, 3}], 0) == {1, 2, 3}
    assert rt._rs_tag("a", [2.0, 4.0], [1, 3]) == 3.5
    assert rt._rs_tag("a", [[1.0, 2.0], [3.0, 4.0]], [1, 1]) == [2.0, 3.0]
    assert rt._rs_tag("m", [[1, 9], [5, 2]], [1, 1]) == [5, 9]
    assert rt._rs_tag("c", [[1], [2, 3]], [1, 2]) == [1, 2, 3]
    assert rt._rs_tag("s", [{"a": 1}, {"a": 2, "b": 1}], [1, 1]) == {"a": 3, "b": 1}


def test_plan_files_are_read_lazily_and_cleaned_up(tmp_path):
    source = (SCRIPTS / "column_sums.py").read_text()
    plan = plan_job(source, "job.py", {"numbers.csv": numbers(tmp_path / "n.csv")}, chunks=2)
    part = plan.files.path("numbers_part000.csv")
    assert part is not None and part.exists() and plan.files["numbers_part000.csv"].startswith(b"a,b,c,d,e\r\n")
    assert all(plan.files.size(n) == len(plan.files[n]) for n in plan.files)
    plan.cleanup()
    assert not part.exists()


def test_memory_model_from_measured_peaks():
    assert fit_memory_model([(1 << 20, 40 << 20)] * 2) is None  # too few
    model = fit_memory_model([(10 << 20, 100 << 20), (20 << 20, 180 << 20), (0, 30 << 20)])
    assert model.base == 30 << 20 and model.per_byte == pytest.approx(7.5)
    assert model.predict(40 << 20) >= (30 << 20) + 7.5 * (40 << 20)  # an envelope, with a margin
    assert refined(123, 10, []) == 123


def test_refine_plan_rewrites_the_spec(tmp_path):
    source = (SCRIPTS / "column_sums.py").read_text()
    plan = plan_job(source, "job.py", {"numbers.csv": numbers(tmp_path / "n.csv")}, chunks=2)
    better = refine_plan(plan, {"chunk": [(1000, 900 << 20), (2000, 901 << 20), (3000, 902 << 20)]})
    chunk = next(t for t in better.tasks if t.kind == "chunk")
    assert chunk.memory_bytes >= 900 << 20
    assert f"memory = {chunk.memory_bytes}" in better.spec_toml
    combine = next(t for t in better.tasks if t.kind == "combine")
    assert combine.memory_bytes == next(t for t in plan.tasks if t.kind == "combine").memory_bytes
    plan.cleanup()
