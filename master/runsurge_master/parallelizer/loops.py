"""Bringing a function into the shape the proof handles: comprehensions over the rows become
explicit loops (`x = sum(f(r) for r in rows)` → `x = 0; for v in rows: x += f(v)`), and
independent loops over the rows are fused into one."""

from __future__ import annotations

import ast
import copy

from runsurge_master.parallelizer.astutil import assign, loads_in, located, names_in, stores_in, used_before_assigned
from runsurge_master.parallelizer.reducers import CannotSplitError

# -- rewriting comprehensions into loops, fusing loops --------------------------------------------

class Rewriter:
    """`x = sum(f(r) for r in rows)` → `x = 0; for v in rows: x += f(v)` (and len/list/max/min)."""

    def __init__(self, rows: str):
        self.rows, self.n = rows, 0
        self.labels: dict[str, str] = {}

    def fresh(self, base: str) -> str:
        self.n += 1
        return f"_rs_{base}{self.n}"

    def statements(self, body: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for s in body:
            if isinstance(s, ast.Assign | ast.Return | ast.AugAssign | ast.AnnAssign) and s.value is not None:
                hoisted: list[ast.stmt] = []
                s = copy.deepcopy(s)
                s.value = self.expr(s.value, hoisted)
                out.extend(located(hoisted, s))
            out.append(s)
        return out

    def expr(self, e: ast.expr, hoisted: list[ast.stmt]) -> ast.expr:
        loop = self.reduction(e)
        if loop is not None:
            var = self.fresh("r")
            self.labels[var] = ast.unparse(e)
            init, stmts = loop
            hoisted.append(assign(var, init))
            hoisted.extend(self.bind(stmts, var))
            return ast.Name(id=var, ctx=ast.Load())
        if isinstance(e, ast.IfExp | ast.BoolOp | ast.Lambda | ast.ListComp | ast.SetComp | ast.DictComp
                      | ast.GeneratorExp):
            return e  # evaluated conditionally or in its own scope: leave alone
        for name, value in ast.iter_fields(e):
            if isinstance(value, ast.expr):
                setattr(e, name, self.expr(value, hoisted))
            elif isinstance(value, list):
                setattr(e, name, [self.expr(v, hoisted) if isinstance(v, ast.expr) else v for v in value])
        return e

    def bind(self, stmts: list[ast.stmt], var: str) -> list[ast.stmt]:
        for n in ast.walk(ast.Module(body=stmts, type_ignores=[])):
            if isinstance(n, ast.Name) and n.id == "_rs_X":
                n.id = var
        return stmts

    def reduction(self, e: ast.expr) -> tuple[ast.expr, list[ast.stmt]] | None:
        """(initial value, loop statements over the rows updating _rs_X) for a reducible expression."""
        if not isinstance(e, ast.Call | ast.ListComp) or isinstance(e, ast.Call) and e.keywords:
            return None
        acc = ast.Name(id="_rs_X", ctx=ast.Load())
        if isinstance(e, ast.ListComp):
            comp, update, init = e, "append", ast.List(elts=[], ctx=ast.Load())
        elif isinstance(e.func, ast.Name) and e.func.id == "sum" and 1 <= len(e.args) <= 2:
            comp, update = e.args[0], "add"
            init = e.args[1] if len(e.args) == 2 else ast.Constant(0)
        elif isinstance(e.func, ast.Name) and e.func.id == "len" and len(e.args) == 1 \
                and isinstance(e.args[0], ast.ListComp):
            comp, update, init = e.args[0], "count", ast.Constant(0)
        elif isinstance(e.func, ast.Name) and e.func.id in {"max", "min"} and len(e.args) == 1:
            comp, update, init = e.args[0], e.func.id, ast.Constant(None)
        else:
            return None
        if not isinstance(comp, ast.GeneratorExp | ast.ListComp):
            return None
        gens = comp.generators
        if not (isinstance(gens[0].iter, ast.Name) and gens[0].iter.id == self.rows) or \
                any(g.is_async for g in gens) or self.rows in names_in([g.iter for g in gens[1:]]):
            return None
        if update in {"max", "min"} and (len(gens) > 1 or gens[0].ifs):
            return None  # a chunk could see no element where the whole input does
        comp = copy.deepcopy(comp)
        renames = {n.id: self.fresh("v") for g in comp.generators for n in ast.walk(g.target)
                   if isinstance(n, ast.Name)}
        for n in ast.walk(comp):
            if isinstance(n, ast.Name) and n.id in renames:
                n.id = renames[n.id]
        elt = comp.elt
        if update == "append":
            inner: list[ast.stmt] = [ast.Expr(ast.Call(ast.Attribute(acc, "append", ast.Load()), [elt], []))]
        elif update == "add":
            inner = [ast.AugAssign(ast.Name("_rs_X", ast.Store()), ast.Add(), elt)]
        elif update == "count":
            inner = [ast.AugAssign(ast.Name("_rs_X", ast.Store()), ast.Add(), ast.Constant(1))]
        else:
            op = ast.Gt() if update == "max" else ast.Lt()
            test = ast.BoolOp(ast.Or(), [ast.Compare(acc, [ast.Is()], [ast.Constant(None)]),
                                         ast.Compare(elt, [op], [acc])])
            inner = [ast.If(test, [ast.Assign([ast.Name("_rs_X", ast.Store())], copy.deepcopy(elt))], [])]
        for g in reversed(comp.generators):
            for cond in reversed(g.ifs):
                inner = [ast.If(cond, inner, [])]
            inner = [ast.For(target=g.target, iter=g.iter, body=inner, orelse=[])]
        return init, inner


def is_rows_loop(s: ast.stmt, rows: str) -> bool:
    if not isinstance(s, ast.For):
        return False
    it = s.iter
    if isinstance(it, ast.Name) and it.id == rows:
        return True
    if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and not it.keywords and len(it.args) == 1:
        a = it.args[0]
        if it.func.id == "enumerate" and isinstance(a, ast.Name) and a.id == rows:
            return True
        if it.func.id == "range" and isinstance(a, ast.Call) and isinstance(a.func, ast.Name) \
                and a.func.id == "len" and len(a.args) == 1 and isinstance(a.args[0], ast.Name) \
                and a.args[0].id == rows:
            return True
    return False


def row_level(body: list[ast.stmt], kinds: tuple[type, ...]) -> ast.stmt | None:
    """A break/continue that acts on the loop over the rows itself (not on an inner loop)."""
    todo = list(body)
    while todo:
        s = todo.pop()
        if isinstance(s, kinds):
            return s
        if isinstance(s, ast.For | ast.While | ast.AsyncFor):
            todo.extend(s.orelse)
            continue
        if isinstance(s, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            continue
        for child in ast.iter_child_nodes(s):
            if isinstance(child, ast.stmt | ast.excepthandler):
                todo.append(child)
    return None


def fuse(body: list[ast.stmt], rows: str) -> list[ast.stmt]:
    """Several loops over the rows → one, when no loop needs another's result. Statements between
    the loops move before the fused loop, or after it, whichever they commute with."""
    idx = [i for i, s in enumerate(body) if is_rows_loop(s, rows)]
    if len(idx) < 2:
        return body
    loops = [body[i] for i in idx]
    for lp in loops:
        if not (isinstance(lp.iter, ast.Name) and isinstance(lp.target, ast.Name)) or lp.orelse:
            raise CannotSplitError(f"line {lp.lineno}: loops over the rows more than once")
        if row_level(lp.body, (ast.Continue, ast.Break)):
            raise CannotSplitError(f"line {lp.lineno}: loops over the rows more than once (with break/continue)")

    def rw(s: ast.stmt) -> tuple[set[str], set[str]]:
        if s in loops:
            return loads_in([s.iter, *s.body]), stores_in(s.body) | {s.target.id}
        return loads_in([s]), stores_in([s])

    def commute(a: ast.stmt, b: ast.stmt) -> bool:
        (ra, wa), (rb, wb) = rw(a), rw(b)
        return not (wa & (rb | wb) or wb & ra)

    before: list[ast.stmt] = []
    after: list[ast.stmt] = []
    passed: list[ast.stmt] = []  # loops and after-statements the next statement would have to overtake
    for s in body[idx[0]:idx[-1] + 1]:
        if s in loops:
            early = set().union(*(rw(lp)[1] for lp in passed if lp in loops))
            leaked = used_before_assigned(s.body, early, {s.target.id}) & early
            if leaked:
                raise CannotSplitError(f"line {s.lineno}: this pass over the rows needs {sorted(leaked)[0]} "
                                       "from an earlier pass")
            for a in after:
                if not commute(a, s):
                    raise CannotSplitError(f"line {a.lineno}: needs the result of one pass over the rows "
                                           "before the next pass (two passes cannot be split)")
            passed.append(s)
        elif all(commute(s, p) for p in passed):
            before.append(s)
        else:
            after.append(s)
            passed.append(s)
    first = loops[0]
    fused_body: list[ast.stmt] = []
    for lp in loops:
        if lp.target.id != first.target.id:
            fused_body.extend(located([assign(lp.target.id, ast.Name(id=first.target.id, ctx=ast.Load()))], lp))
        fused_body.extend(lp.body)
    fused = ast.For(target=first.target, iter=first.iter, body=fused_body, orelse=[])
    ast.copy_location(fused, first)
    return body[:idx[0]] + before + [fused] + after + body[idx[-1] + 1:]
