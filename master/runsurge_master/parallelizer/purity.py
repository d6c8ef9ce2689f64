"""Which of the script's functions are pure: no I/O, no module state that changes, no change
to any object that may be shared with their arguments or with module globals (see effects.py
for how sharing is tracked). A function is as impure as the functions it calls."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator

from runsurge_master.parallelizer.effects import (
    INF,
    MUTATING_METHODS,
    PURE_METHODS,
    READ_METHODS,
    WRITE_METHODS,
    Context,
    Effects,
    FunctionSummary,
    Sharing,
    all_args,
    bindings,
    bound_depths,
    classify_call,
    local_names,
    numeric,
    root_name,
    walk_scope,
)


def analyze_function(fn: ast.FunctionDef, ctx: Context) -> FunctionSummary:
    """One function on its own; callees are taken from ctx.summaries (see analyze_functions)."""
    params = [a.arg for a in all_args(fn.args)]
    s = FunctionSummary(name=fn.name, node=fn, params=params)
    locals_ = local_names(fn)
    declared_global = {n for node in walk_scope(fn) if isinstance(node, ast.Global | ast.Nonlocal)
                       for n in node.names}
    locals_ -= declared_global

    def is_local(n: str) -> bool:
        return n in locals_

    share = {n: INF for n in locals_} | {p: 0 for p in params}
    sh = Sharing(ctx, share, is_local)
    for _ in range(50):  # fixpoint: depths only decrease
        changed = False
        for target, value, how in bindings(fn):
            for name, depth in bound_depths(target, value, how, sh):
                if name in share and depth < share[name]:
                    share[name], changed = depth, True
        if not changed:
            break
    s.share = share
    numeric_names = _numeric_names(fn, locals_)
    e = s.effects
    called = {id(n.func) for n in walk_scope(fn) if isinstance(n, ast.Call)}
    for node in walk_scope(fn):
        line = f"line {getattr(node, 'lineno', fn.lineno)}"
        if isinstance(node, ast.Global | ast.Nonlocal):
            e.globals.append(f"{line}: declares {', '.join(node.names)} global")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            e.unknown.append(f"{line}: defines {node.name} inside {fn.name}")
        elif isinstance(node, ast.Yield | ast.YieldFrom):
            s.has_yield = True
        elif isinstance(node, ast.Await | ast.AsyncFor | ast.AsyncWith):
            e.unknown.append(f"{line}: asynchronous code")
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and not is_local(node.id):
            if node.id in ctx.mutable_globals:
                e.globals.append(f"{line}: reads the global {node.id}, which changes while the script runs")
            elif node.id in ctx.functions:
                s.calls.setdefault(node.id, node.lineno)
                callee = ctx.summaries.get(node.id)
                if id(node) not in called and callee is not None and callee.mutates_args:
                    e.mutates.append(f"{line}: hands {node.id}, which changes its arguments, to other code")
        elif isinstance(node, ast.Call):
            _call_effects(node, ctx, is_local, sh, e, s, line)
        for obj, what in _mutations(node, numeric_names):
            if sh.of(obj) == 0:
                name, _ = root_name(obj)
                bucket = e.globals if name is not None and not is_local(name) else e.mutates
                bucket.append(f"{line}: {_mut_reason(obj, what, params, is_local)}")
    s.return_depth = min((sh.of(r.value) for r in walk_scope(fn) if isinstance(r, ast.Return)), default=INF)
    s.returns_fresh = s.return_depth >= INF
    s.reads_constants = any(isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and not is_local(n.id)
                            and sh.name(n.id) == 0 for n in walk_scope(fn))
    return s


def _numeric_names(fn: ast.FunctionDef, locals_: set[str]) -> set[str]:
    """Locals only ever bound to numbers (so `x += 1` on them mutates nothing)."""
    candidates = set(locals_)
    for _ in range(10):
        before = set(candidates)
        for target, value, how in bindings(fn):
            names = [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
            ok = isinstance(target, ast.Name) and value is not None and (
                how in {"=", "+="} and numeric(value, candidates)
                or how == "elem" and isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                and value.func.id == "range")
            if not ok:
                candidates -= set(names)
        params = {a.arg for a in all_args(fn.args)}
        candidates -= params
        if candidates == before:
            break
    return candidates


def _mutations(node: ast.AST, numeric_names: set[str]) -> Iterator[tuple[ast.expr, str]]:
    """(object changed in place, how) for one node."""
    if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.Delete):
        targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
        for t in targets:
            for n in ast.walk(t) if isinstance(t, ast.Tuple | ast.List) else [t]:
                if isinstance(n, ast.Subscript | ast.Attribute):
                    yield n.value, "stores into"
        if isinstance(node, ast.AugAssign) and not numeric(node.value, numeric_names):
            if isinstance(node.target, ast.Name) and node.target.id not in numeric_names:
                yield node.target, "extends in place"
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATING_METHODS:
        yield node.func.value, f"calls .{node.func.attr}() on"
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "next" and node.args:
        yield node.args[0], "advances the iterator"


def _mut_reason(obj: ast.expr, what: str, params: list[str], is_local: Callable[[str], bool]) -> str:
    name, _ = root_name(obj)
    text = ast.unparse(obj)
    if name in params:
        return f"{what} {text}, which may be its argument's data (changes its arguments)"
    if name is not None and not is_local(name):
        return f"{what} {text}, a module global"
    return f"{what} {text}, which may share data with an argument or global"


def _call_effects(node: ast.Call, ctx: Context, is_local: Callable[[str], bool], sh: Sharing,
                  e: Effects, s: FunctionSummary, line: str) -> None:
    k = classify_call(node, ctx, is_local)
    if k.kind in {"io", "module_io"}:
        e.io.append(f"{line}: calls {k.name}()")
        e.io_kinds.add(k.io_kind)
    elif k.kind == "unknown":
        e.unknown.append(f"{line}: calls {k.name}(), which RunSurge cannot see into")
    elif k.kind == "own":
        callee = ctx.summaries.get(k.name)
        if callee is not None and callee.mutates_args:
            for a in [*node.args, *(kw.value for kw in node.keywords)]:
                if sh.of(a) < INF:
                    e.mutates.append(f"{line}: passes {ast.unparse(a)} to {k.name}, which changes its arguments")
    elif k.kind == "module_mutates" and node.args and sh.of(node.args[0]) == 0:
        e.mutates.append(f"{line}: {k.name}() changes {ast.unparse(node.args[0])}")
    elif k.kind == "method" and k.name in WRITE_METHODS | READ_METHODS:
        e.io.append(f"{line}: calls .{k.name}()")
        e.io_kinds.add("write" if k.name in WRITE_METHODS else "read")
    elif k.kind == "method" and k.name not in PURE_METHODS and k.name not in MUTATING_METHODS:
        e.unknown.append(f"{line}: calls .{k.name}(), which RunSurge cannot prove harmless")


def analyze_functions(ctx: Context) -> dict[str, FunctionSummary]:
    """All top-level functions; a function does whatever the functions it calls do."""
    ctx.summaries = {}
    for _ in range(20):  # returns_fresh / mutates_args of callees refine what callers share
        local = {name: analyze_function(fn, ctx) for name, fn in ctx.functions.items()}
        new = {name: _with_callees(name, local) for name in local}
        stable = bool(ctx.summaries) and all(
            (new[n].effects.reasons(), new[n].returns_fresh, new[n].mutates_args) ==
            (ctx.summaries[n].effects.reasons(), ctx.summaries[n].returns_fresh, ctx.summaries[n].mutates_args)
            for n in new)
        ctx.summaries = new
        if stable:
            break
    return ctx.summaries


def _with_callees(name: str, local: dict[str, FunctionSummary]) -> FunctionSummary:
    s = local[name]
    out = FunctionSummary(name=s.name, node=s.node, params=s.params, returns_fresh=s.returns_fresh,
                          return_depth=s.return_depth, reads_constants=s.reads_constants,
                          has_yield=s.has_yield, calls=dict(s.calls), share=s.share)
    out.effects.merge(s.effects)
    out.mutates_args = bool(s.effects.mutates)
    seen = {name}
    todo = [(callee, callee, line) for callee, line in sorted(s.calls.items())]
    while todo:  # breadth first: explain each reached function through the direct call that leads to it
        via, callee, line = todo.pop(0)
        if callee in seen or callee not in local:
            continue
        seen.add(callee)
        c = local[callee]
        how = f"calls {via}, which " + ("" if via == callee else f"(through {callee}) ")
        for bucket in ("io", "globals", "unknown"):
            getattr(out.effects, bucket).extend(f"line {line}: {how}{r.split(': ', 1)[-1]}"
                                                for r in getattr(c.effects, bucket))
        out.effects.io_kinds |= c.effects.io_kinds
        todo.extend((via, nxt, line) for nxt in sorted(c.calls))
    return out
