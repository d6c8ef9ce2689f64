"""Functions that get every line of the file, header first (the original RunSurge template:
`data[0]` is the header, `for row in data[1:]` the rows).

Each task loads its chunk with the header line in front, so `data[0]` is the same header in every
task and `data[1:]` is the task's slice of the sequential run's rows. The function is rewritten
into the shape the loop proof handles, where the rows are a list of their own: `data[1:]` (and a
name bound to it once) becomes `_rs_rows_data`, bound by one statement the rewritten function
starts with; `len(data)` becomes `len(_rs_rows_data) + 1`; `for i in range(1, len(data))` that
uses i only as `data[i]` becomes a loop over the indices of `_rs_rows_data`. `data[0]` and
`len(data[0])` stay: the header is everywhere. Any other use of `data` refuses the split.
"""

from __future__ import annotations

import ast
import copy

from runsurge_master.parallelizer.astutil import stores_in
from runsurge_master.parallelizer.reducers import CannotSplitError


def rows_name(param: str) -> str:
    return f"_rs_rows_{param}"


def _is_tail(e: ast.AST, p: str) -> bool:
    """`p[1:]`"""
    return isinstance(e, ast.Subscript) and isinstance(e.value, ast.Name) and e.value.id == p \
        and isinstance(e.slice, ast.Slice) and isinstance(e.slice.lower, ast.Constant) \
        and type(e.slice.lower.value) is int and e.slice.lower.value == 1 \
        and e.slice.upper is None and e.slice.step is None


def _is_head(e: ast.AST, p: str) -> bool:
    """`p[0]`"""
    return isinstance(e, ast.Subscript) and isinstance(e.value, ast.Name) and e.value.id == p \
        and isinstance(e.slice, ast.Constant) and type(e.slice.value) is int and e.slice.value == 0


def _is_len(e: ast.AST, p: str) -> bool:
    return isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id == "len" and len(e.args) == 1 \
        and not e.keywords and isinstance(e.args[0], ast.Name) and e.args[0].id == p


def _index_range(loop: ast.stmt, p: str) -> str | None:
    """`for i in range(1, len(p))` → i."""
    if not (isinstance(loop, ast.For) and isinstance(loop.target, ast.Name) and isinstance(loop.iter, ast.Call)):
        return None
    it = loop.iter
    if isinstance(it.func, ast.Name) and it.func.id == "range" and len(it.args) == 2 and not it.keywords \
            and isinstance(it.args[0], ast.Constant) and type(it.args[0].value) is int and it.args[0].value == 1 \
            and _is_len(it.args[1], p):
        return loop.target.id
    return None


class _Rewrite(ast.NodeTransformer):
    def __init__(self, p: str, aliases: set[str]):
        self.p, self.rows, self.aliases = p, rows_name(p), aliases
        self.index: list[str] = []   # loop variables of `for i in range(1, len(p))`

    def name(self, node: ast.AST) -> ast.Name:
        return ast.copy_location(ast.Name(self.rows, ast.Load()), node)

    def visit_For(self, node: ast.For) -> ast.AST:
        i = _index_range(node, self.p)
        if i is None:
            return self.generic_visit(node)
        stored = stores_in(node.body)
        if i in stored:
            raise CannotSplitError(f"line {node.lineno}: changes the row number {i}")
        node.iter = ast.copy_location(ast.parse(f"range(len({self.rows}))", mode="eval").body, node.iter)
        self.index.append(i)
        node.body = [self.visit(s) for s in node.body]
        self.index.pop()
        node.orelse = [self.visit(s) for s in node.orelse]
        return node

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        if _is_tail(node, self.p):
            return self.name(node)
        if _is_head(node, self.p):
            return node
        if isinstance(node.value, ast.Name) and node.value.id == self.p and isinstance(node.slice, ast.Name) \
                and node.slice.id in self.index:
            node.value = self.name(node.value)  # data[i] for i ≥ 1 is rows[i - 1]: the loop now counts from 0
            return node
        return self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if _is_len(node, self.p):
            return ast.copy_location(ast.parse(f"(len({self.rows}) + 1)", mode="eval").body, node)
        return self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.aliases and isinstance(node.ctx, ast.Load):
            return self.name(node)
        if node.id == self.p:
            raise CannotSplitError(f"line {node.lineno}: uses {self.p} other than as {self.p}[0] (the header), "
                                   f"{self.p}[1:] (the rows) or len({self.p})")
        if node.id in self.index:
            raise CannotSplitError(f"line {node.lineno}: uses the row number {node.id} other than as "
                                   f"{self.p}[{node.id}]")
        return node


def split_header(fn: ast.FunctionDef, param: str) -> tuple[ast.FunctionDef, ast.stmt]:
    """The function rewritten over `_rs_rows_<param>` (without its first statement, which binds
    it), and that statement. Raises CannotSplitError when `param` is used any other way."""
    if param in stores_in(fn.body):
        raise CannotSplitError(f"changes or rebinds {param}")
    body = list(fn.body)
    aliases: set[str] = set()
    stored = [n for s in body for n in ast.walk(s) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
    for s in body:  # rows = data[1:]: one more name for the rows
        if isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Name) \
                and _is_tail(s.value, param) and sum(1 for n in stored if n.id == s.targets[0].id) == 1:
            aliases.add(s.targets[0].id)
    body = [s for s in body if not (isinstance(s, ast.Assign) and isinstance(s.targets[0], ast.Name)
                                    and s.targets[0].id in aliases)]
    rw = _Rewrite(param, aliases)
    new = copy.deepcopy(fn)
    new.body = [ast.fix_missing_locations(rw.visit(copy.deepcopy(s))) for s in body]
    bind = ast.fix_missing_locations(ast.copy_location(
        ast.parse(f"{rows_name(param)} = {param}[1:]").body[0], fn.body[0]))
    return new, bind
