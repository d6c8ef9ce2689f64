"""The per-row cost of a pass is read from the code: it follows the loops' trip counts (sizes from a
row's length, constants, module constants), a correlation's k×k inner loop costs k times a running
sum's, and a function with no loop over its rows is left to the conservative default."""

import ast

from runsurge_master.parallelizer.passcost import pass_seconds_per_row


def cost(src: str, cols: int = 6, name: str = "f") -> float | None:
    tree = ast.parse(src)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    return pass_seconds_per_row(tree, fn, fn.args.args[0].arg, cols)


RUNNING_SUM = """
def f(data):
    sums = [0] * len(data[0])
    for row in data[1:]:
        for i in range(len(row)):
            sums[i] += row[i]
    return sums
"""

PAIRS = """
def f(data):
    k = len(data[0])
    s = [[0.0] * k for _ in range(k)]
    for row in data[1:]:
        for i in range(k):
            for j in range(k):
                s[i][j] += row[i] * row[j]
    return s
"""


def test_inner_loops_multiply_by_their_trip_counts():
    one, pairs = cost(RUNNING_SUM), cost(PAIRS)
    assert 4 < pairs / one < 9  # 6 columns: the pair loop does 6 times the running sum's steps
    assert 4 < cost(PAIRS, cols=36) / cost(PAIRS, cols=6) / 6 < 7  # k² per row: 36x the work per row


def test_sizes_come_from_module_constants_and_arithmetic():
    kernel = """
WIDTH = 4
def f(data):
    out = []
    for row in data[1:]:
        for r in range(1, WIDTH - 1):
            for c in range(1, WIDTH - 1):
                for d in range(-1, 2):
                    out.append(row[r * WIDTH + c + d])
    return out
"""
    wide = kernel.replace("WIDTH = 4", "WIDTH = 10")
    assert 12 < cost(wide, cols=100) / cost(kernel, cols=16) < 20  # 8*8*3 steps against 2*2*3


def test_index_loops_over_the_rows_and_comprehensions_count_as_passes():
    by_index = """
def f(data):
    total = 0
    for i in range(1, len(data)):
        total += data[i][0]
    return total
"""
    comprehension = """
def f(data):
    return [sum(row) for row in data]
"""
    assert cost(by_index) > 0 and cost(comprehension) > 0


def test_branches_count_half_and_a_function_without_a_row_loop_is_unknown():
    branchy = RUNNING_SUM.replace("sums[i] += row[i]", "if row[i] > 0:\n                sums[i] += row[i]")
    assert cost(RUNNING_SUM) < cost(branchy) < 2 * cost(RUNNING_SUM)
    assert cost("def f(data):\n    return helper(data)\n") is None
