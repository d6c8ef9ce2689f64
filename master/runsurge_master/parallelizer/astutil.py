"""Small AST questions the analysis keeps asking: names read and written, definite assignment."""

from __future__ import annotations

import ast

from runsurge_master.parallelizer.effects import MUTATING_METHODS


def same(a: ast.AST | None, b: ast.AST | None) -> bool:
    """Structurally equal expressions (whether loaded or stored)."""
    return a is not None and b is not None and ast.unparse(a) == ast.unparse(b)


def names_in(node: ast.AST | list) -> set[str]:
    nodes = node if isinstance(node, list) else [node]
    return {n.id for x in nodes for n in ast.walk(x) if isinstance(n, ast.Name)}


def stores_in(nodes: list[ast.stmt]) -> set[str]:
    """Names bound, plus variables whose objects are changed in place."""
    out = set()
    for x in nodes:
        for n in ast.walk(x):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store | ast.Del):
                out.add(n.id)
            elif isinstance(n, ast.Subscript | ast.Attribute) and isinstance(n.ctx, ast.Store | ast.Del):
                out |= root_names(n)
            elif isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name):
                out.add(n.target.id)
            elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in MUTATING_METHODS:
                out |= root_names(n.func.value)
    return out


def root_names(e: ast.expr) -> set[str]:
    while True:
        if isinstance(e, ast.Subscript | ast.Attribute):
            e = e.value
        elif isinstance(e, ast.Call) and isinstance(e.func, ast.Attribute) and e.func.attr in {"get", "setdefault"}:
            e = e.func.value
        else:
            return {e.id} if isinstance(e, ast.Name) else set()


def loads_in(nodes: list[ast.AST]) -> set[str]:
    return {n.id for x in nodes for n in ast.walk(x) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def falls_through(body: list[ast.stmt]) -> bool:
    """False when the block surely ends in continue/break/return/raise."""
    return not body or not isinstance(body[-1], ast.Continue | ast.Break | ast.Return | ast.Raise)


def used_before_assigned(stmts: list[ast.stmt], candidates: set[str], assigned: set[str]) -> set[str]:
    """Candidates read somewhere before every path has assigned them (conservative)."""
    bad: set[str] = set()

    def reads(node: ast.AST, have: set[str]) -> None:
        scoped = {n.id for c in ast.walk(node) if isinstance(c, ast.comprehension)
                  for n in ast.walk(c.target) if isinstance(n, ast.Name)}
        for n in ast.walk(node):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id in candidates \
                    and n.id not in have and n.id not in scoped:
                bad.add(n.id)

    def block(body: list[ast.stmt], have: set[str]) -> set[str]:
        have = set(have)
        for s in body:
            have = stmt(s, have)
        return have

    def targets(t: ast.AST) -> set[str]:
        return {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}

    def stmt(s: ast.stmt, have: set[str]) -> set[str]:
        if isinstance(s, ast.Assign):
            reads(s.value, have)
            for t in s.targets:
                if not isinstance(t, ast.Name | ast.Tuple | ast.List | ast.Starred):
                    reads(t, have)
            return have | set().union(*(targets(t) for t in s.targets if not isinstance(t, ast.Subscript)))
        if isinstance(s, ast.AugAssign | ast.AnnAssign):
            reads(s, have)
            return have | (targets(s.target) if isinstance(s.target, ast.Name) and s.value is not None else set())
        if isinstance(s, ast.If):
            reads(s.test, have)
            paths = [block(b, have) for b in (s.body, s.orelse) if falls_through(b)]
            return set.intersection(*paths) if paths else have
        if isinstance(s, ast.For):
            reads(s.iter, have)
            block(s.body, have | targets(s.target))
            block(s.orelse, have)
            return have
        if isinstance(s, ast.While):
            reads(s.test, have)
            block(s.body, have)
            block(s.orelse, have)
            return have
        if isinstance(s, ast.With):
            for item in s.items:
                reads(item.context_expr, have)
            return block(s.body, have | set().union(*(targets(i.optional_vars) for i in s.items
                                                      if i.optional_vars is not None)))
        if isinstance(s, ast.Try):
            done = block(s.orelse, block(s.body, have))
            paths = [done] if falls_through(s.body + s.orelse) else []
            for h in s.handlers:  # a handler may start before the body assigned anything
                after = block(h.body, have | ({h.name} if h.name else set()))
                if falls_through(h.body):
                    paths.append(after)
            out = set.intersection(*paths) if paths else have
            return block(s.finalbody, out)
        reads(s, have)
        return have

    block(stmts, assigned)
    return bad


def located(nodes: list[ast.stmt], src: ast.stmt) -> list[ast.stmt]:
    """Generated statements report the line of the statement they were rewritten from."""
    for top in nodes:
        for n in ast.walk(top):
            if "lineno" in n._attributes and not hasattr(n, "lineno"):
                n.lineno, n.col_offset = src.lineno, src.col_offset
                n.end_lineno, n.end_col_offset = src.end_lineno, src.end_col_offset
    return nodes


def assign(name: str, value: ast.expr) -> ast.Assign:
    return ast.Assign([ast.Name(id=name, ctx=ast.Store())], value)
