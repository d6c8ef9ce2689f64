"""The analysis on its own: which calls split and how they combine, which are refused and why,
the main block's dependency graph, function purity, and how the load block is recognised."""

from __future__ import annotations

import textwrap

import pytest
from plan_runner import SCRIPTS

from runsurge_master.parallelizer import PlanError, analyze
from runsurge_master.parallelizer.aggregation import LoopReducer, TagReducer


def load(name: str):
    return analyze((SCRIPTS / f"{name}.py").read_text(), f"{name}.py")


def sites(a):
    return {s.function: s for s in a.calls.values()}


def accs(site):
    return {x.name: (x.op, x.depth) for x in site.reducer.accs}


def test_column_sums_is_an_element_wise_sum():
    a = load("column_sums")
    assert not a.problems
    site = sites(a)["column_sums"]
    assert accs(site) == {"sums": ("sum", 1)}
    assert site.reducer.uses_ncols  # [0.0] * len(rows[0]): every chunk must agree on it


def test_min_max_keep_the_loops_own_comparisons():
    s = sites(load("min_max"))
    low, = s["column_min"].reducer.accs
    high, = s["column_max"].reducer.accs
    assert (low.op, low.depth, low.take, low.none_guard) == ("pick", 1, "b < a", True)
    assert (high.op, high.depth, high.take, high.none_guard) == ("pick", 1, "b > a", False)


def test_mean_and_std_carry_sums_and_counts_not_averages():
    s = sites(load("mean_std"))
    assert accs(s["column_means"]) == {"n": ("sum", 0), "sums": ("sum", 1)}
    assert accs(s["column_stds"]) == {"sums": ("sum", 1), "squares": ("sum", 1)}
    # the division by n happens once, after merging
    post = "\n".join(__import__("ast").unparse(x) for x in s["column_means"].reducer.post)
    assert "s / n" in post


def test_zscore_needs_three_rounds_in_the_dependency_graph():
    a = load("zscore")
    s = sites(a)
    means, stds, norm = s["column_means"], s["column_stds"], s["normalize"]
    assert {"means"} <= stds.arg_names() and {"means", "stds"} <= norm.arg_names()
    after = a.graph.reaches()
    assert stds.index in after[means.index] and norm.index in after[stds.index]
    assert accs(norm) == {"out": ("sum", 0)} and norm.reducer.accs[0].concat


def test_correlation_sums_a_matrix_of_products():
    a = load("correlation")
    assert accs(sites(a)["moments"]) == {"n": ("sum", 0), "sums": ("sum", 1), "products": ("sum", 2)}
    assert "correlation" not in sites(a)  # not a call over the rows: it runs in the combine step


def test_filter_concatenates_in_row_order():
    acc, = sites(load("filter_rows"))["big_sales"].reducer.accs
    assert (acc.op, acc.depth, acc.concat, acc.reset) == ("sum", 0, True, "[]")


def test_word_counts_and_counters_merge_per_key():
    s = sites(load("word_count"))
    assert accs(s["count_words"]) == {"counts": ("sum", 1)}
    assert accs(s["letters"]) == {"total": ("sum", 1)}
    s = sites(load("word_frequency_counter"))
    assert accs(s["frequencies"]) == {"counter": ("sum", 1)}  # Counter.update counts
    assert accs(s["ids_by_category"]) == {"groups": ("sum", 1)}


def test_constant_columns_use_sets_only_through_len():
    acc, = sites(load("constant_columns"))["distinct_values"].reducer.accs
    assert (acc.op, acc.depth) == ("union", 1)


def test_products_and_flags():
    s = sites(load("product_flags"))
    assert accs(s["growth"]) == {"factor": ("prod", 0)}
    assert accs(s["flags"]) == {"negative": ("latch", 1), "zero": ("latch", 0)}


def test_comprehensions_become_one_fused_loop():
    red = sites(load("comprehension_stats"))["summary"].reducer
    assert isinstance(red, LoopReducer)
    assert sorted(x.op for x in red.accs) == ["pick", "pick", "sum", "sum", "sum"]
    assert any("len([r for r in rows" in x.label for x in red.accs)


def test_smoothing_rows_is_a_map_and_the_2d_stencil_runs_after_the_merge():
    assert accs(sites(load("smooth_rows"))["smooth_lines"]) == {"out": ("sum", 0)}
    red = sites(load("smooth_2d"))["blur"].reducer
    # only the conversion of the rows is split; the 3x3 stencil needs neighbouring rows and
    # runs once over the merged image
    assert len(red.accs) == 1 and red.accs[0].concat
    assert any("image[y + dy]" in __import__("ast").unparse(x) for x in red.post)


def test_tags_decide_where_the_code_cannot():
    s = sites(load("tagged"))
    kinds = {name: site.reducer.kind for name, site in s.items() if isinstance(site.reducer, TagReducer)}
    assert kinds == {"largest": "m", "average_of_second": "a", "column_products": "i", "count_rows": "l"}
    assert s["first_values"].reducer is None and "never split" in s["first_values"].reason


def test_median_cannot_be_split_but_runs_as_its_own_task():
    s = sites(load("median_and_sums"))
    assert s["median"].reducer is None and "no `for` loop" in s["median"].reason
    assert accs(s["totals"]) == {"sums": ("sum", 1)}


@pytest.mark.parametrize("function, reason", [
    ("running_total", "reads total inside the loop"),
    ("changes", "reads previous inside the loop"),
    ("until_negative", "break inside the loop"),
])
def test_order_dependent_loops_are_refused(function, reason):
    site = sites(load("order_dependent"))[function]
    assert site.reducer is None and reason in site.reason


def test_global_state_is_a_barrier():
    a = load("global_state")
    assert not a.calls
    text = "\n".join(a.problems)
    assert "SEEN" in text and "calls" in text and "factor" in text
    assert not a.summaries["remember"].pure and not a.summaries["count_calls"].pure
    assert a.infos[[s.lineno for s in a.script.body].index(37)].barrier  # `global calls`


def test_io_in_the_loop_is_refused():
    a = load("io_in_loop")
    text = "\n".join(a.problems)
    assert "print()" in text and ".write()" in text


def test_two_passes_in_one_function_are_refused():
    site = sites(load("two_pass"))["variance"]
    assert site.reducer is None and "two passes" in site.reason


def test_independent_statements_have_no_path_between_them():
    a = load("mean_std")
    s = sites(a)
    pair = (s["column_means"].index, s["column_stds"].index)
    assert pair in a.graph.independent_pairs()
    out = next(i for i in a.infos if "output" in i.defs)
    after = a.graph.reaches()
    assert out.index in after[pair[0]] and out.index in after[pair[1]]


SHELL = '''
import csv
FILE_NAME = 'd.csv'

def total(rows):
    s = 0.0
    for r in rows:
        s += float(r[0])
    return s

if __name__ == '__main__':
{load}
    t = total(rows)
    output = [header, [t]]
    with open('output.csv', 'w', newline='') as f:
        csv.writer(f).writerows(output)
'''


@pytest.mark.parametrize("load_block", [
    "with open(FILE_NAME) as f:\n    reader = csv.reader(f)\n    header = next(reader)\n    rows = list(reader)",
    "with open(FILE_NAME, newline='') as f:\n    data = list(csv.reader(f))\nheader = data[0]\nrows = data[1:]",
    "with open(FILE_NAME) as f:\n    data = list(csv.reader(f, delimiter=';'))\nheader = data.pop(0)\nrows = data",
    "with open(FILE_NAME, encoding='utf-8') as f:\n    r = csv.reader(f)\n    header = next(r)\n    rows = []\n"
    "    for line in r:\n        rows.append([x.strip() for x in line])",
    "f = open(FILE_NAME)\nreader = csv.reader(f)\nheader = next(reader)\n"
    "rows = [[float(v) for v in row] for row in reader]\nf.close()",
    "with open('d.csv') as f:\n    header, *rows = csv.reader(f)",
    # lines parsed by the script itself
    "with open(FILE_NAME) as f:\n    header = f.readline().split(',')\n    rows = [l.split(',') for l in f]",
    "with open(FILE_NAME) as f:\n    lines = f.readlines()\nheader = lines[0].strip().split(',')\n"
    "rows = [[float(x) for x in l.strip().split(',')] for l in lines[1:]]",
    "with open(FILE_NAME) as f:\n    next(f)\n    rows = []\n    for line in f:\n"
    "        rows.append(line.rstrip('\\n').split(','))\nheader = None",
    "with open(FILE_NAME) as f:\n    text_lines = f.read().splitlines()\nheader = text_lines[0]\nrows = text_lines[1:]",
])
def test_load_block_forms(load_block):
    a = analyze(SHELL.format(load=textwrap.indent(load_block, "    ")), "job.py")
    if "header, *rows" in load_block:
        assert a.problems  # unpacking a reader directly is not recognised: the job runs unsplit
        return
    assert not a.problems, a.problems
    assert a.load.header == ("header" if "header = None" not in load_block else None) and "rows" in a.load.rows
    assert sites(a)["total"].reducer is not None
    if "delimiter" in load_block:
        assert a.load.reader_kwargs == {"delimiter": ";"}


@pytest.mark.parametrize("load_block, why", [
    ("with open(FILE_NAME) as f:\n    rows = list(csv.DictReader(f))\n    header = list(rows[0])", "convention"),
    ("with open(FILE_NAME) as f:\n    rows = list(csv.reader(f))\n    header = rows[0]", "header"),
    # a filter, or text split on "\\n" (an empty last element), breaks "one element per line"
    ("with open(FILE_NAME) as f:\n    next(f)\n    rows = [l.split(',') for l in f if l.strip()]", "convention"),
    ("with open(FILE_NAME) as f:\n    parts = f.read().split('\\n')\nheader = parts[0]\nrows = parts[1:]",
     "convention"),
    # a helper that does I/O, or an except branch that sets the data, is not part of a pure load
    ("def conv(v):\n    print(v)\n    return v\nwith open(FILE_NAME) as f:\n    lines = f.readlines()\n"
     "data = [[conv(c) for c in l.split(',')] for l in lines]", "not pure"),
    ("try:\n    with open(FILE_NAME) as f:\n        data = [l.split(',') for l in f]\nexcept OSError:\n"
     "    data = []", "except branch"),
    ("#-----\ndata = []\ntry:\n    with open(FILE_NAME) as f:\n        data = [l.split(',') for l in f]\n"
     "except OSError:\n    pass\n#-----", "set before the try"),
    # reading the lines twice
    ("with open(FILE_NAME) as f:\n    a = f.readlines()\n    b = f.readlines()\ndata = [l for l in a]", "twice"),
])
def test_unconventional_loads_run_unsplit(load_block, why):
    a = analyze(SHELL.format(load=textwrap.indent(load_block, "    ")), "job.py")
    assert a.problems and why in " ".join(a.problems)


@pytest.mark.parametrize("tag, message", [
    ('"x:total"', "expected"),
    ('"s:other"', "names 'other'"),
    ("42", "must be a string"),
])
def test_malformed_tags_are_user_errors(tag, message):
    source = SHELL.format(load="    with open(FILE_NAME) as f:\n        rows = list(csv.reader(f))")
    source = source.replace("    return s\n", f"    aggregation = {tag}\n    return s\n", 1)
    with pytest.raises(PlanError, match=message):
        analyze(source, "job.py")


def test_tag_not_just_before_the_return_is_a_user_error():
    source = SHELL.format(load="    pass").replace("    s = 0.0\n", '    s = 0.0\n    aggregation = "s:s"\n', 1)
    with pytest.raises(PlanError, match="just before"):
        analyze(source, "job.py")


PURITY = '''
import math, random, os
K = 3
STATE = []

def pure(rows, k=K):
    return [math.sqrt(abs(float(r[0]))) * k for r in rows]

def sorts_in_place(rows):
    rows.sort()
    return rows

def appends_global(x):
    STATE.append(x)

def calls_impure(rows):
    return sorts_in_place(rows)

def uses_random(rows):
    return random.random()

def lists_dir():
    return os.listdir('.')

def builds_locally(rows):
    tmp = []
    for r in rows:
        tmp.append(r[0])
    tmp.sort()
    return tmp

if __name__ == '__main__':
    pass
'''


@pytest.mark.parametrize("function, pure, reason", [
    ("pure", True, ""),
    ("sorts_in_place", False, "changes its arguments"),
    ("appends_global", False, "a module global"),
    ("calls_impure", False, "passes rows to sorts_in_place"),
    ("uses_random", False, "random.random"),
    ("lists_dir", False, "os.listdir"),
    ("builds_locally", True, ""),
])
def test_function_purity(function, pure, reason):
    s = analyze(PURITY, "job.py").summaries[function]
    assert s.pure == pure
    assert reason in " ".join(s.effects.reasons())


ORDER = '''
import csv
FILE_NAME = 'd.csv'

def total(rows):
    s = 0.0
    for r in rows:
        s += float(r[0])
    return s

if __name__ == '__main__':
    with open(FILE_NAME) as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    print('start')
    a = total(rows)
    names = header
    names.append('extra')
    b = len(header)
    print('done', a)
    output = [[a, b]]
'''


def test_effects_stay_in_order_and_changes_through_aliases_count():
    a = analyze(ORDER, "job.py")
    line = {s.lineno: i for i, s in enumerate(a.script.body)}
    start, total, alias, append, length, done = (line[n] for n in (16, 17, 18, 19, 20, 21))
    edges = a.graph.edges
    assert (start, done) in edges and "side effects" in edges[(start, done)]
    assert (start, total) not in edges and (total, done) in edges  # done prints a
    assert "header" in a.infos[append].defs  # names is header: appending changes header
    assert (append, length) in edges
    assert (total, length) not in edges and (total, length) in a.graph.independent_pairs()
