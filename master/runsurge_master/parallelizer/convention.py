"""The input convention: the main block loads FILE_NAME with the csv module into a header and a
list of data rows (the "load block", optionally between `#-----` markers). Recognising it tells
which variables hold the rows (and so can be cut into chunks) and how the CSV is parsed."""

from __future__ import annotations

import ast
import builtins
import csv
from dataclasses import dataclass, field

from runsurge_master.parallelizer.effects import KNOWN_BUILTINS, Context, classify_call
from runsurge_master.parallelizer.script import Script

_READER_KWARGS = {"delimiter", "quotechar", "escapechar", "doublequote", "skipinitialspace",
                  "quoting", "strict", "dialect"}
_OPEN_KWARGS = {"mode", "encoding", "newline", "errors"}


@dataclass
class LoadBlock:
    start: int                      # index of its first statement in the main block
    end: int                        # index after its last statement
    header: str | None              # variable holding the header row
    rows: list[str]                 # variables holding the data rows (all row-aligned)
    temps: set[str] = field(default_factory=set)   # file, reader...: never usable elsewhere
    reader_kwargs: dict[str, object] = field(default_factory=dict)
    encoding: str | None = None


class NotConventionError(Exception):
    """The main block does not load the data the conventional way (the job runs unsplit)."""


# Abstract values of the load block's variables.
FILE, READER, HEADER, ROWS, ALL, EMPTY = "file", "reader", "header", "rows", "all", "empty"


class _Interp:
    def __init__(self, script: Script, ctx: Context):
        self.script, self.ctx = script, ctx
        self.env: dict[str, str] = {}
        self.reader_pos: dict[str, int] = {}
        self.reader_kwargs: dict[str, object] | None = None
        self.encoding: str | None = None

    # -- expressions
    def is_data_file(self, e: ast.expr) -> bool:
        if isinstance(e, ast.Name) and e.id == "FILE_NAME":
            return True
        fn = self.script.file_name
        return isinstance(e, ast.Constant) and fn is not None and e.value == fn.value

    def open_call(self, e: ast.expr) -> bool:
        if not (isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id == "open"
                and e.args and self.is_data_file(e.args[0])):
            return False
        mode = e.args[1] if len(e.args) > 1 else next((k.value for k in e.keywords if k.arg == "mode"), None)
        if mode is not None and not (isinstance(mode, ast.Constant) and mode.value in {"r", "rt", "tr"}):
            raise NotConventionError(f"line {e.lineno}: opens the data file in mode {ast.unparse(mode)}")
        if len(e.args) > 2 or any(k.arg not in _OPEN_KWARGS for k in e.keywords):
            raise NotConventionError(f"line {e.lineno}: unusual arguments to open()")
        for k in e.keywords:
            if k.arg == "encoding":
                if not isinstance(k.value, ast.Constant):
                    raise NotConventionError(f"line {e.lineno}: the encoding is not a constant")
                self.encoding = k.value.value
        return True

    def reader_call(self, e: ast.expr) -> str | None:
        """`csv.reader(F, ...)` → F's name (or the open() inline)."""
        if not isinstance(e, ast.Call) or not e.args or len(e.args) > 2:
            return None
        f = e.func
        is_reader = (isinstance(f, ast.Attribute) and f.attr == "reader" and isinstance(f.value, ast.Name)
                     and self.script.imports.get(f.value.id) == "csv") or \
                    (isinstance(f, ast.Name) and self.script.imports.get(f.id) == "csv.reader")
        if not is_reader:
            return None
        kwargs: dict[str, object] = {}
        if len(e.args) == 2:
            kwargs["dialect"] = self.const(e.args[1])
        for k in e.keywords:
            if k.arg not in _READER_KWARGS:
                raise NotConventionError(f"line {e.lineno}: csv.reader argument {k.arg}")
            kwargs[k.arg] = self.const(k.value)
        try:
            csv.reader([], **kwargs)
        except (TypeError, csv.Error) as err:
            raise NotConventionError(f"line {e.lineno}: csv.reader arguments: {err}") from None
        if self.reader_kwargs not in (None, kwargs):
            raise NotConventionError(f"line {e.lineno}: the data is read twice with different settings")
        self.reader_kwargs = kwargs
        src = e.args[0]
        if isinstance(src, ast.Name) and self.env.get(src.id) == FILE:
            return src.id
        if self.open_call(src):
            return "<inline>"
        return None

    def const(self, e: ast.expr) -> object:
        if isinstance(e, ast.Constant):
            return e.value
        if (isinstance(e, ast.Attribute) and isinstance(e.value, ast.Name)
                and self.script.imports.get(e.value.id) == "csv" and hasattr(csv, e.attr)):
            return getattr(csv, e.attr)
        raise NotConventionError(f"line {e.lineno}: csv setting {ast.unparse(e)} is not a constant")

    def row_expr_ok(self, e: ast.expr, var: str) -> bool:
        """A per-row conversion: pure, and depends on nothing but the row."""
        bound = {var} | {n.id for c in ast.walk(e) if isinstance(c, ast.comprehension)
                         for n in ast.walk(c.target) if isinstance(n, ast.Name)}
        for n in ast.walk(e):
            if isinstance(n, ast.Name) and n.id not in bound:
                known = n.id in self.script.module_names and n.id not in self.ctx.mutable_globals \
                    or n.id in dir(builtins) and n.id not in self.ctx.mutable_globals
                if not known or n.id in self.script.functions and not self.ctx.summaries[n.id].pure:
                    return False
            if isinstance(n, ast.Call):
                k = classify_call(n, self.ctx, lambda x: x in bound or x in self.env)
                ok = (k.kind == "builtin" and k.name in KNOWN_BUILTINS or k.kind == "module"
                      or k.kind == "own" and self.ctx.summaries[k.name].pure
                      or k.kind == "method" and k.name in {"strip", "lower", "upper", "replace", "split"})
                if not ok:
                    return False
            if isinstance(n, ast.Lambda | ast.NamedExpr | ast.Yield | ast.Await):
                return False
        return True

    def collect(self, e: ast.expr) -> str | None:
        """What kind of row list `e` builds: list(reader), [f(r) for r in reader], [..for r in ROWS]."""
        it, elt, var = None, None, None
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id == "list" \
                and len(e.args) == 1 and not e.keywords:
            it = e.args[0]
        elif isinstance(e, ast.ListComp) and len(e.generators) == 1:
            g = e.generators[0]
            if g.ifs or g.is_async or not isinstance(g.target, ast.Name):
                return None  # a filter would break row alignment between the row lists
            it, elt, var = g.iter, e.elt, g.target.id
        if it is None or elt is not None and not self.row_expr_ok(elt, var):
            return None
        if isinstance(it, ast.Name) and self.env.get(it.id) == READER:
            pos = self.reader_pos[it.id]
            self.reader_pos[it.id] = -1  # exhausted
            return {0: ALL, 1: ROWS}.get(pos)
        if isinstance(it, ast.Name) and self.env.get(it.id) == ROWS:
            return ROWS
        if self.reader_call(it) is not None:
            return ALL
        return None

    # -- statements
    def stmt(self, s: ast.stmt) -> None:
        line = f"line {s.lineno}"
        if isinstance(s, ast.With):
            for item in s.items:
                if not (self.open_call(item.context_expr) and isinstance(item.optional_vars, ast.Name)):
                    raise NotConventionError(f"{line}: a with statement that is not `with open(FILE_NAME) as f`")
                self.env[item.optional_vars.id] = FILE
            for inner in s.body:
                self.stmt(inner)
            return
        if isinstance(s, ast.Expr):
            v = s.value
            if isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "next" \
                    and len(v.args) == 1 and isinstance(v.args[0], ast.Name) \
                    and self.reader_pos.get(v.args[0].id) == 0:
                self.reader_pos[v.args[0].id] = 1
                return
            if isinstance(v, ast.Call) and isinstance(v.func, ast.Attribute) and v.func.attr == "close" \
                    and isinstance(v.func.value, ast.Name) and self.env.get(v.func.value.id) == FILE:
                return
            raise NotConventionError(f"{line}: not part of loading the data")
        if isinstance(s, ast.For) and isinstance(s.target, ast.Name) and isinstance(s.iter, ast.Name) \
                and self.env.get(s.iter.id) == READER and len(s.body) == 1 and not s.orelse:
            b = s.body[0]
            if isinstance(b, ast.Expr) and isinstance(b.value, ast.Call) \
                    and isinstance(b.value.func, ast.Attribute) and b.value.func.attr == "append" \
                    and isinstance(b.value.func.value, ast.Name) and self.env.get(b.value.func.value.id) == EMPTY \
                    and len(b.value.args) == 1 and self.row_expr_ok(b.value.args[0], s.target.id):
                pos = self.reader_pos[s.iter.id]
                self.reader_pos[s.iter.id] = -1
                if pos not in (0, 1):
                    raise NotConventionError(f"{line}: reads the data twice")
                self.env[b.value.func.value.id] = ROWS if pos == 1 else ALL
                return
        if isinstance(s, ast.Assign) and len(s.targets) == 1:
            self.assign(s.targets[0], s.value, line)
            return
        raise NotConventionError(f"{line}: not part of loading the data")

    def assign(self, t: ast.expr, v: ast.expr, line: str) -> None:
        if isinstance(t, ast.Tuple):
            if isinstance(v, ast.Tuple) and len(v.elts) == len(t.elts):
                for a, b in zip(t.elts, v.elts, strict=True):
                    self.assign(a, b, line)
                return
            if len(t.elts) == 2 and isinstance(t.elts[1], ast.Starred) and isinstance(v, ast.Name) \
                    and self.env.get(v.id) == ALL and isinstance(t.elts[0], ast.Name) \
                    and isinstance(t.elts[1].value, ast.Name):
                self.env[t.elts[0].id], self.env[t.elts[1].value.id] = HEADER, ROWS
                return
            raise NotConventionError(f"{line}: not part of loading the data")
        if not isinstance(t, ast.Name):
            raise NotConventionError(f"{line}: not part of loading the data")
        name = t.id
        kind = None
        if self.open_call(v):
            kind = FILE
        elif (src := self.reader_call(v)) is not None:
            kind = READER
            self.reader_pos[name] = 0
            if src == "<inline>":
                raise NotConventionError(f"{line}: reader over an unclosed file")
        elif isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "next" \
                and len(v.args) == 1 and isinstance(v.args[0], ast.Name) and self.reader_pos.get(v.args[0].id) == 0:
            self.reader_pos[v.args[0].id] = 1
            kind = HEADER
        elif isinstance(v, ast.List) and not v.elts:
            kind = EMPTY
        elif isinstance(v, ast.Name) and self.env.get(v.id) == ROWS:
            kind = ROWS  # another name for the same list (both count as the rows)
        elif isinstance(v, ast.Subscript) and isinstance(v.value, ast.Name) and self.env.get(v.value.id) == ALL:
            if isinstance(v.slice, ast.Constant) and v.slice.value == 0:
                kind = HEADER
            elif isinstance(v.slice, ast.Slice) and isinstance(v.slice.lower, ast.Constant) \
                    and v.slice.lower.value == 1 and v.slice.upper is None and v.slice.step is None:
                kind = ROWS
        elif isinstance(v, ast.Call) and isinstance(v.func, ast.Attribute) and v.func.attr == "pop" \
                and isinstance(v.func.value, ast.Name) and self.env.get(v.func.value.id) == ALL \
                and len(v.args) == 1 and isinstance(v.args[0], ast.Constant) and v.args[0].value == 0:
            self.env[v.func.value.id] = ROWS
            kind = HEADER
        else:
            kind = self.collect(v)
        if kind is None:
            raise NotConventionError(f"{line}: not part of loading the data")
        self.env[name] = kind

    def result(self, start: int, end: int) -> LoadBlock:
        rows = [n for n, k in self.env.items() if k == ROWS]
        headers = [n for n, k in self.env.items() if k == HEADER]
        if not rows:
            if ALL in self.env.values():
                raise NotConventionError("the data rows keep the header row (the first row) among them")
            raise NotConventionError("no list of data rows is built")
        if len(headers) > 1:
            raise NotConventionError(f"the header row is kept in several variables: {', '.join(headers)}")
        temps = {n for n, k in self.env.items() if k not in (ROWS, HEADER)}
        return LoadBlock(start=start, end=end, header=headers[0] if headers else None, rows=rows,
                         temps=temps, reader_kwargs=self.reader_kwargs or {}, encoding=self.encoding)


def find_load_block(script: Script, ctx: Context) -> LoadBlock:
    """Raises NotConventionError (with the reason) when the data is not loaded the conventional way."""
    if script.file_name is None:
        raise NotConventionError("there is no module-level FILE_NAME = '...' naming the data file")
    body = script.body
    if len(script.markers) >= 2:
        first, second = script.markers[:2]
        idx = [i for i, s in enumerate(body) if first < s.lineno < second]
        if not idx:
            raise NotConventionError(f"nothing between the #----- markers at lines {first} and {second}")
        if any(body[i].end_lineno >= second for i in idx):
            raise NotConventionError(f"the #----- marker at line {second} is inside a statement")
        interp = _Interp(script, ctx)
        for i in idx:
            interp.stmt(body[i])
        return interp.result(idx[0], idx[-1] + 1)
    for start, s in enumerate(body):  # no markers: the load starts where the data file is opened
        if not any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "open"
                   and n.args and _Interp(script, ctx).is_data_file(n.args[0]) for n in ast.walk(s)):
            continue
        interp = _Interp(script, ctx)
        end = start
        while end < len(body):
            saved = (dict(interp.env), dict(interp.reader_pos), interp.reader_kwargs, interp.encoding)
            try:
                interp.stmt(body[end])
            except NotConventionError:
                if end == start:
                    raise
                interp.env, interp.reader_pos, interp.reader_kwargs, interp.encoding = saved
                break
            end += 1
        return interp.result(start, end)
    raise NotConventionError("the main block never opens FILE_NAME")
