"""What one call of a user's function costs per row of the data, read from its code.

Inside the function's loop over the rows, every statement costs its AST nodes (a call counts as
CALL nodes: calling is what CPython does slowest) times how often it runs per row: the product of
the trip counts of the loops around it (`range(...)` of sizes the code computes from a row's length,
constants, or module constants; otherwise a row's width), each loop step costing ITER nodes more,
and half for each branch of an `if` (a branch runs on some rows only). Comprehensions count their
element the same way. A node costs NODE_S seconds, fitted on this project's 2-core reference
machine to the nine template kinds and examples/auto/column_stats.py (measured per field 0.04 µs
for a running sum to 0.43 µs for a correlation matrix; this model lands within 0.5–1.4x of each).
A function with no loop over its rows parameter (it hands the rows to something else) gets None:
the caller then assumes the conservative per-field figure.
"""

from __future__ import annotations

import ast
import math

NODE_S = 2.7e-9
CALL, ITER = 8.0, 3.0
_ROWS = "rows"  # a size that is the number of rows: the loop goes over the data


def _size(e: ast.expr, env: dict[str, float], cols: int, rows: str) -> float | str | None:
    """A number for a size expression, _ROWS for the number of rows, None when unknown."""
    if isinstance(e, ast.Constant) and type(e.value) in (int, float):
        return e.value
    if isinstance(e, ast.Name):
        return env.get(e.id)
    if isinstance(e, ast.UnaryOp) and isinstance(e.op, ast.USub):
        v = _size(e.operand, env, cols, rows)
        return -v if isinstance(v, (int, float)) else None
    if isinstance(e, ast.Call) and e.args:
        f = e.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        if name == "len":
            a = e.args[0]
            base = a.value if isinstance(a, ast.Subscript) and isinstance(a.slice, ast.Slice) else a
            return _ROWS if isinstance(base, ast.Name) and base.id == rows else cols
        if name in ("int", "round", "abs", "float"):
            return _size(e.args[0], env, cols, rows)
        if name in ("sqrt", "isqrt"):
            v = _size(e.args[0], env, cols, rows)
            return math.sqrt(v) if isinstance(v, (int, float)) and v >= 0 else None
        return None
    if isinstance(e, ast.BinOp):
        a, b = _size(e.left, env, cols, rows), _size(e.right, env, cols, rows)
        if not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
            return _ROWS if _ROWS in (a, b) else None
        try:
            if isinstance(e.op, ast.Add):
                return a + b
            if isinstance(e.op, ast.Sub):
                return a - b
            if isinstance(e.op, ast.Mult):
                return a * b
            if isinstance(e.op, (ast.Div, ast.FloorDiv)):
                return a / b
            if isinstance(e.op, ast.Pow) and abs(b) <= 4:
                return float(a) ** b
        except (ZeroDivisionError, OverflowError, ValueError):
            return None
    return None


def _trips(it: ast.expr, env: dict[str, float], cols: int, rows: str) -> float | str:
    """How often a loop over `it` turns per row, or _ROWS when it goes over the rows themselves."""
    if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range" and it.args:
        vals = [_size(a, env, cols, rows) for a in it.args[:3]]
        if _ROWS in vals:
            return _ROWS
        if all(isinstance(v, (int, float)) for v in vals):
            start, stop, step = (0, vals[0], 1) if len(vals) == 1 else (*vals[:2], vals[2] if len(vals) > 2 else 1)
            return max(0.0, (stop - start) / step) if step else cols
        return cols
    if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.args \
            and it.func.id in ("enumerate", "zip", "reversed", "sorted", "list"):
        return _trips(it.args[0], env, cols, rows)
    base = it.value if isinstance(it, ast.Subscript) else it
    return _ROWS if isinstance(base, ast.Name) and base.id == rows else cols


def _nodes(s: ast.AST) -> float:
    """Nodes of a statement without the statements nested in it."""
    n, todo = 0.0, [s]
    while todo:
        x = todo.pop()
        n += CALL if isinstance(x, ast.Call) else 1
        for name, v in ast.iter_fields(x):
            if isinstance(x, ast.stmt) and name in ("body", "orelse", "finalbody", "handlers"):
                continue
            for c in v if isinstance(v, list) else [v]:
                if isinstance(c, ast.comprehension):
                    todo += [c.target, c.iter, *c.ifs]
                elif isinstance(c, (ast.expr, ast.keyword)):
                    todo.append(c)
    return n


def _comprehensions(s: ast.stmt, env: dict[str, float], cols: int, rows: str) -> float:
    """The work of the comprehensions in a statement: their elements times their trips."""
    u = 0.0
    for c in ast.walk(s):
        if isinstance(c, (ast.ListComp, ast.GeneratorExp, ast.SetComp, ast.DictComp)):
            t = 1.0
            for g in c.generators:
                tr = _trips(g.iter, env, cols, rows)
                t *= 1.0 if tr == _ROWS else tr
            elts = [c.key, c.value] if isinstance(c, ast.DictComp) else [c.elt]
            u += t * (ITER + sum(_nodes(e) for e in elts))
    return u


class _Walk:
    def __init__(self, cols: int, rows: str, env: dict[str, float]):
        self.cols, self.rows, self.env, self.found = cols, rows, env, False

    def block(self, body: list[ast.stmt], inrow: bool, mult: float) -> float:
        u = 0.0
        for s in body:
            if isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name):
                v = _size(s.value, self.env, self.cols, self.rows)
                if isinstance(v, (int, float)):
                    self.env[s.targets[0].id] = v
            if isinstance(s, (ast.For, ast.While)):
                tr = _trips(s.iter, self.env, self.cols, self.rows) if isinstance(s, ast.For) else self.cols
                if tr == _ROWS and not inrow:
                    self.found = True
                    u += self.block(s.body, True, 1.0)
                    continue
                m = mult * (self.cols if tr == _ROWS else tr)
                u += (mult * _nodes(s) + m * ITER if inrow else 0.0) + self.block(s.body, inrow, m)
            elif isinstance(s, ast.If):
                u += mult * _nodes(s) if inrow else 0.0
                u += self.block(s.body, inrow, mult / 2) + self.block(s.orelse, inrow, mult / 2)
            elif isinstance(s, (ast.With, ast.Try)):
                u += self.block(s.body, inrow, mult)
            elif inrow:
                u += mult * (_nodes(s) + _comprehensions(s, self.env, self.cols, self.rows))
            elif any(isinstance(c, ast.comprehension) and _trips(c.iter, self.env, self.cols, self.rows) == _ROWS
                     for c in ast.walk(s)):  # a comprehension over the rows is a pass too
                self.found = True
                u += _comprehensions(s, self.env, self.cols, self.rows)
        return u


def pass_seconds_per_row(tree: ast.Module, function: ast.FunctionDef, rows_param: str, cols: int) -> float | None:
    """Seconds one call of `function` spends per row, or None when it has no loop over the rows."""
    env: dict[str, float] = {}
    for s in tree.body:  # module constants such as WIDTH = 6
        if isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name):
            v = _size(s.value, env, cols, "")
            if isinstance(v, (int, float)):
                env[s.targets[0].id] = v
    walk = _Walk(max(1, cols), rows_param, env)
    units = walk.block(function.body, False, 1.0)
    return units * NODE_S if walk.found else None
