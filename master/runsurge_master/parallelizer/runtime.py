"""Helpers every generated script carries (this file's text is copied into each one, so it uses
the standard library only and every name starts with _rs_).

Partial results travel as pickle files: exact for floats (inf and nan included), tuples, dict
keys of any type, sets, Counter and defaultdict. They only ever pass between the tasks of one
job, inside its sandboxes, so unpickling trusts nothing it did not produce itself.
"""

import gc as _rs_gc  # noqa: F401 - used by the generated load block (codegen._load_block)
import pickle as _rs_pickle


def _rs_save(obj, path):
    with open(path, "wb") as f:
        _rs_pickle.dump(obj, f, protocol=4)


def _rs_load(path):
    with open(path, "rb") as f:
        return _rs_pickle.load(f)


def _rs_check_rows(parts, expected):
    seen = sum(p["_n"] for p in parts)
    if seen != expected:
        raise RuntimeError(f"RunSurge: the chunks held {seen} rows, the data has {expected}; refusing to "
                           "combine (rerun with chunks=1)")


def _rs_same(values, what):
    if any(v != values[0] for v in values):
        raise RuntimeError(f"RunSurge: chunks disagree on {what} ({values}); rerun with chunks=1")
    return values[0]


def _rs_zip(a, b):
    if len(a) != len(b):
        raise RuntimeError(f"RunSurge: partial results have different lengths ({len(a)} and {len(b)})")
    return zip(a, b, strict=True)


def _rs_elementwise(a, b, depth, leaf):
    """Combine two partial results depth levels down (lists by position, dicts by key)."""
    if depth == 0:
        return leaf(a, b)
    if isinstance(a, dict):
        for k, v in b.items():  # keys keep their first-seen order, as in the sequential run
            a[k] = _rs_elementwise(a[k], v, depth - 1, leaf) if k in a else v
        return a
    out = [_rs_elementwise(x, y, depth - 1, leaf) for x, y in _rs_zip(a, b)]
    return tuple(out) if isinstance(a, tuple) else out


def _rs_fold(start, parts, depth, op):
    """Running sums (op '+', also concatenation) and products ('*'), in chunk order. A whole
    variable (depth 0) starts from its start value; element-wise ones started from zeros/empties."""
    def leaf(a, b):
        return a + b if op == "+" else a * b
    acc = start if depth == 0 else parts[0]
    for p in parts if depth == 0 else parts[1:]:
        acc = _rs_elementwise(acc, p, depth, leaf)
    return acc


def _rs_fold_pick(parts, depth, take, none_guard):
    """Running min/max: the later value replaces the earlier one exactly when the loop's own test
    would have replaced it, so ties resolve as in the sequential run."""
    def leaf(a, b):
        if none_guard and (a is None or b is None):
            return a if b is None else b
        return b if take(a, b) else a
    acc = parts[0]
    for p in parts[1:]:
        acc = _rs_elementwise(acc, p, depth, leaf)
    return acc


def _rs_fold_union(parts, depth):
    acc = parts[0]
    for p in parts[1:]:
        acc = _rs_elementwise(acc, p, depth, lambda a, b: a | b)
    return acc


def _rs_latch(parts, depth, value):
    """A flag that switches to `value` when some row says so: switched if any chunk switched it."""
    if depth == 0:
        return next((p for p in parts if type(p) is type(value) and p == value), parts[0])
    first = parts[0]
    for p in parts[1:]:
        _rs_zip(first, p)
    return [_rs_latch([p[i] for p in parts], depth - 1, value) for i in range(len(first))]


def _rs_tag_pair(kind, a, b):
    if kind == "c":
        return a + b
    if isinstance(a, dict) and isinstance(b, dict):
        for k, v in b.items():
            a[k] = _rs_tag_pair(kind, a[k], v) if k in a else v
        return a
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        out = [_rs_tag_pair(kind, x, y) for x, y in _rs_zip(a, b)]
        return tuple(out) if isinstance(a, tuple) else out
    if kind in ("s", "l"):
        return a + b
    if kind == "i":
        return a * b
    if kind == "m":
        return b if b > a else a
    if kind == "n":
        return b if b < a else a
    raise ValueError(f"unknown aggregation kind {kind!r}")


def _rs_weighted_mean(parts, counts):
    first = parts[0]
    if isinstance(first, (list, tuple)):
        for p in parts[1:]:
            _rs_zip(first, p)
        out = [_rs_weighted_mean([p[i] for p in parts], counts) for i in range(len(first))]
        return tuple(out) if isinstance(first, tuple) else out
    return sum(p * n for p, n in zip(parts, counts, strict=True)) / sum(counts)


def _rs_tag(kind, parts, counts):
    """Combine results of a function tagged `aggregation = "<kind>:<var>"`."""
    if kind == "a":
        return _rs_weighted_mean(parts, counts)
    acc = parts[0]
    for p in parts[1:]:
        acc = _rs_tag_pair(kind, acc, p)
    return acc
