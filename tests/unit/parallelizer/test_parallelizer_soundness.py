"""Differential tests on tricky programs: whatever the plan (split or not), running it gives the
sequential run's output.csv. `expect` pins down whether the analysis splits (True), refuses to
split (False) the call on the marked line."""

from __future__ import annotations

import textwrap

import pytest
from plan_data import numbers
from plan_runner import assert_same_csv, run_plan, run_sequential

from runsurge_master.parallelizer import plan_job

TEMPLATE = '''\
import csv
import math
from collections import Counter, defaultdict

FILE_NAME = 'numbers.csv'
LIMITS = [10, 20]
{functions}

if __name__ == '__main__':
    #-----
    with open(FILE_NAME) as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = [row for row in reader]
    #-----
{main}
    #-----
    with open('output.csv', 'w', newline='') as fh:
        csv.writer(fh).writerows(output)
    #-----
'''

CASES = {
    # accumulator shared with another variable before the loop: refused
    "alias_before_loop": (False, '''
def f(rows):
    a = [0.0] * 3
    b = a
    for r in rows:
        a[0] += float(r[0])
    return b
''', "x = f(rows)\noutput = [x]"),
    # a module-level list changed by the main block before the call
    "mutated_module_constant": (None, '''
def f(rows, limits):
    n = 0
    for r in rows:
        if float(r[1]) > limits[-1]:
            n += 1
    return n
''', "LIMITS.append(40)\nx = f(rows, LIMITS)\noutput = [[x]]"),
    # a module-level list changed through another name: functions reading it cannot run elsewhere
    "module_constant_changed_through_alias": (False, '''
def f(rows):
    n = 0
    for r in rows:
        if float(r[1]) > LIMITS[-1]:
            n += 1
    return n
''', "lim = LIMITS\nlim.append(40)\nx = f(rows)\noutput = [[x]]"),
    # `k not in A` on a list tests values, and the "guard" resets an element: refused
    "list_pseudo_guard": (False, '''
def f(rows):
    a = [0] * 3
    for r in rows:
        k = int(float(r[4]) * 2) % 3
        if k not in a:
            a[k] = 0
        a[k] += 1
    return a
''', "x = f(rows)\noutput = [x]"),
    # one pass per column in a nested comprehension: refused (not one loop over the rows)
    "comprehension_per_column": (False, '''
def f(rows):
    return [sum(float(r[i]) for r in rows) for i in range(len(rows[0]))]
''', "x = f(rows)\noutput = [x]"),
    # ties between equal values of different types keep the sequential winner
    "max_ties_mixed_types": (True, '''
def f(rows):
    best = -1
    worst = None
    for r in rows:
        v = int(float(r[4]) * 2) // 2
        w = v if len(r[0]) % 2 else float(v)
        best = max(best, w)
        if worst is None or w <= worst:
            worst = w
    return best, worst
''', "b, w = f(rows)\noutput = [[b, w, type(b).__name__, type(w).__name__]]"),
    # concatenation that starts from a non-empty value
    "concat_with_start": (True, '''
def f(rows, head):
    out = [head]
    text = '>'
    for r in rows:
        if float(r[0]) > 90:
            out.append(r[:2])
            text += r[1][:1]
    return out + [[text]]
''', "output = f(rows, header)"),
    # a set iterated in order after the loop: refused (set order is not preserved)
    "set_iterated": (False, '''
def f(rows):
    s = set()
    for r in rows:
        s.add(int(r[1]) * 1000)
    return [x for x in s]
''', "x = f(rows)\noutput = [x]"),
    "set_sorted": (True, '''
def f(rows):
    s = set()
    for r in rows:
        s.add(r[1])
    return sorted(s, key=int)
''', "x = f(rows)\noutput = [x]"),
    # the value of a loop variable after the loop depends on the last row: refused
    "last_value": (False, '''
def f(rows):
    last = None
    for r in rows:
        if float(r[0]) > 0:
            last = r[1]
    return last
''', "x = f(rows)\noutput = [[x]]"),
    # a helper that changes the row it is given makes the caller impure
    "helper_mutates_row": (False, '''
def fix(r):
    r[0] = r[0].strip()
    return r

def f(rows):
    t = 0.0
    for r in rows:
        t += float(fix(r)[0])
    return t
''', "x = f(rows)\ny = sum(float(r[0]) for r in rows)\noutput = [[x]]"),
    # a cheap statement rebinding a name between two calls: chunks must see each call's value
    "rebound_between_calls": (True, '''
def count_above(rows, t):
    n = 0
    for r in rows:
        if float(r[0]) > t:
            n += 1
    return n
''', "t = 10\na = count_above(rows, t)\nt = 50\nb = count_above(rows, t)\noutput = [[a, b]]"),
    # the header changed between the load and the call (the chunks must see the change)
    "header_changed": (True, '''
def where(rows, names):
    idx = names.index('c2')
    s = 0.0
    for r in rows:
        s += float(r[idx])
    return s
''', "header[2] = 'c2'\nx = where(rows, header)\noutput = [[x]]"),
    # a filtered list that shares rows, changed afterwards, then the rows used again: refused
    "rows_changed_through_alias": (False, '''
def keep(rows):
    out = []
    for r in rows:
        if float(r[0]) > 0:
            out.append(r)
    return out

def total(rows):
    s = 0.0
    for r in rows:
        s += float(r[0])
    return s
''', "k = keep(rows)\nfor r in k:\n    r[0] = '0'\nt = total(rows)\noutput = [[len(k), t]]"),
    # len(rows) in the main block is the total, not a chunk's count
    "len_rows_in_main": (True, '''
def scaled_sum(rows, n):
    s = 0.0
    for r in rows:
        s += float(r[0]) / n
    return s
''', "n = len(rows)\nx = scaled_sum(rows, n)\noutput = [[n, x]]"),
    # try/except and continue inside the loop
    "try_continue": (True, '''
def f(rows):
    good = 0
    bad = 0
    for r in rows:
        try:
            v = math.log(float(r[0]))
        except ValueError:
            bad += 1
            continue
        if v > 3:
            continue
        good += 1
    return good, bad
''', "g, b = f(rows)\noutput = [[g, b]]"),
    # a row-number loop, strings and subtraction
    "index_loop": (True, '''
def f(rows):
    s = ''
    d = 0.0
    for i in range(len(rows)):
        row = rows[i]
        if row[1].startswith('-4'):
            s += row[1]
        d -= float(row[3])
    return s, d
''', "s, d = f(rows)\noutput = [[s, d]]"),
    # the row number matters: refused
    "row_number_used": (False, '''
def f(rows):
    s = 0.0
    for i, r in enumerate(rows):
        if i % 2 == 0:
            s += float(r[0])
    return s
''', "x = f(rows)\noutput = [[x]]"),
    # per-key maximum guarded by `not in`, dict keys in first-seen order
    "per_key_max": (True, '''
def f(rows):
    best = {}
    for r in rows:
        k = r[4]
        v = float(r[0])
        if k not in best or v > best[k]:
            best[k] = v
    return best
''', "x = f(rows)\noutput = [[k, v] for k, v in x.items()]"),
    # Counter.most_common keeps first-seen order among equal counts
    "counter_ties": (True, '''
def f(rows):
    c = Counter()
    for r in rows:
        c[r[1][-1]] += 1
    return c.most_common()
''', "x = f(rows)\noutput = [list(p) for p in x]"),
    # defaultdict of lists and setdefault
    "grouping": (True, '''
def f(rows):
    g = defaultdict(list)
    h = {}
    for r in rows:
        g[r[4]].append(r[1])
        h.setdefault(r[1][-1], []).append(r[4])
    return g, h
''', "g, h = f(rows)\noutput = [[k] + v[:5] for k, v in g.items()] + [[k, len(v), v[-1]] for k, v in h.items()]"),
    # a function that rebinds itself in the main block is not the function any more
    "shadowed_function": (None, '''
def f(rows):
    n = 0
    for r in rows:
        n += 1
    return n
''', "g = f\nf = lambda rows: -1\nx = f(rows)\ny = g(rows)\noutput = [[x, y]]"),
    # a pure helper called in the loop, keyword arguments, a default
    "helpers_and_keywords": (True, '''
def clean(v, scale=1.0):
    return float(v.strip()) * scale

def f(rows, column=0, scale=2.0):
    total = 0.0
    for r in rows:
        total += clean(r[column], scale=scale)
    return total
''', "x = f(column=2, rows=rows)\noutput = [[x]]"),
    # nan, inf and -0.0 survive the trip between tasks
    "special_floats": (True, '''
def f(rows):
    lo = math.inf
    s = -0.0
    n = 0
    for r in rows:
        v = float(r[0])
        lo = min(lo, v)
        s += v * 0.0
        n += 1 if v > 99 else 0
    return lo, s, math.nan if n < 0 else n
''', "lo, s, n = f(rows)\noutput = [[lo, s, n]]"),
    # random is hidden global state: refused
    "random_state": (False, '''
import random

def f(rows):
    s = 0.0
    for r in rows:
        s += float(r[0]) * random.random()
    return round(s * 0)
''', "x = f(rows)\noutput = [[x]]"),
    # a flag that switches, and a product
    "flags_and_product": (True, '''
def f(rows):
    seen_big = 'no'
    p = 1
    for r in rows:
        if float(r[0]) > 99.5:
            seen_big = 'yes'
        p *= 1 if float(r[1]) >= 0 else -1
    return seen_big, p
''', "a, b = f(rows)\noutput = [[a, b]]"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_plan_gives_the_sequential_output(case, tmp_path):
    expect, functions, main = CASES[case]
    source = TEMPLATE.format(functions=functions, main=textwrap.indent(main, "    "))
    script = tmp_path / "job.py"
    script.write_text(source)
    data = numbers(tmp_path / "numbers.csv", rows=300)
    plan = plan_job(source, "job.py", {"numbers.csv": data}, chunks=3)
    split = any(t.kind == "chunk" for t in plan.tasks)
    if expect is not None:
        assert split == expect, "\n".join(plan.explanation)
    results = run_plan(plan, tmp_path / "dist")
    want = run_sequential(script, data, "numbers.csv", tmp_path / "seq")
    assert_same_csv(results["output.csv"], want)
