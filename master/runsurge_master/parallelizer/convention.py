"""The input convention: the main block loads FILE_NAME into lists of rows (the "load block",
optionally between `#-----` markers). Recognising it tells which variables hold the rows (and so
can be cut into chunks) and how the file is parsed.

What is proven is a property, not a list of statements: every element of the row lists is a pure
function of ONE record of the file (a csv record, or a line read with readlines(), by iterating
the file, or splitlines()), and the lists keep the file's order. Then a chunk file (the header
line followed by a byte range of whole records) loads into exactly the matching slice of the
sequential run's lists. The header is either taken apart (`header = next(reader)`, `rows =
data[1:]`...) or kept as element 0 of the rows (`data = [parse(line) for line in lines]`, the
original RunSurge template): chunks then see it as their element 0 too. Nested pure helper
functions (`def infer_type(value): ...`) and a `try:` around the whole load whose handlers only
report (print, pass, raise, exit) are part of the block."""

from __future__ import annotations

import ast
import builtins
import copy
import csv
from dataclasses import dataclass, field

from runsurge_master.parallelizer.effects import (
    KNOWN_BUILTINS,
    SCALAR_METHODS,
    Context,
    all_args,
    classify_call,
    local_names,
)
from runsurge_master.parallelizer.purity import analyze_function
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
    lines: bool = False             # records are lines (read as text), not csv records
    header_row: bool = False        # the rows lists hold the header line as their element 0
    helpers: list[str] = field(default_factory=list)   # nested pure functions the block defines
    kept_lines: bool = False        # a variable still holds the file's lines (readlines()) after the block


class NotConventionError(Exception):
    """The main block does not load the data the conventional way (the job runs unsplit)."""


# Abstract values of the load block's variables. LINES: the file's lines, header first;
# DATA_LINES: the lines after the header. Both are record sources like a csv reader.
FILE, READER, HEADER, ROWS, ALL, EMPTY = "file", "reader", "header", "rows", "all", "empty"
LINES, DATA_LINES, HELPER = "lines", "data-lines", "helper"
_REPORTING_CALLS = {"print", "exit", "quit", "sys.exit"}


class _Interp:
    def __init__(self, script: Script, ctx: Context):
        self.script, self.ctx = script, ctx
        self.env: dict[str, str] = {}
        self.reader_pos: dict[str, int] = {}
        self.reader_kwargs: dict[str, object] | None = None
        self.encoding: str | None = None
        self.file_pos: dict[str, int] = {}   # FILE → records already consumed (0, or 1 for the header)
        self.uses_lines = False

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
        if self.reader_kwargs not in (None, kwargs) or self.uses_lines:
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

    def row_expr_ok(self, e: ast.expr, var: str | None) -> bool:
        """A per-record conversion: pure, and depends on nothing but the record `var`."""
        bound = {var} | {n.id for c in ast.walk(e) if isinstance(c, ast.comprehension)
                         for n in ast.walk(c.target) if isinstance(n, ast.Name)}
        return self.pure_expr(e, bound)

    def pure_expr(self, e: ast.AST, bound: set[str]) -> bool:
        helpers = {n for n, k in self.env.items() if k == HELPER}
        for n in ast.walk(e):
            if isinstance(n, ast.Name) and n.id not in bound and n.id not in helpers:
                known = n.id in self.script.module_names and n.id not in self.ctx.mutable_globals \
                    or n.id in dir(builtins) and n.id not in self.ctx.mutable_globals
                if not known or n.id in self.script.functions and not self.ctx.summaries[n.id].pure:
                    return False
            if isinstance(n, ast.Call):
                if isinstance(n.func, ast.Name) and n.func.id in helpers:
                    continue
                k = classify_call(n, self.ctx, lambda x: x in bound or x in self.env)
                ok = (k.kind == "builtin" and k.name in KNOWN_BUILTINS or k.kind == "module"
                      or k.kind == "own" and self.ctx.summaries[k.name].pure
                      or k.kind == "method" and k.name in SCALAR_METHODS | {"split", "rsplit", "splitlines"})
                if not ok:
                    return False
            if isinstance(n, ast.Lambda | ast.NamedExpr | ast.Yield | ast.Await | ast.YieldFrom):
                return False
        return True

    def helper(self, fn: ast.FunctionDef) -> None:
        """A function defined inside the load block: pure, and reading only its own arguments,
        module-level constants and builtins (so every chunk computes what the whole run does)."""
        line = f"line {fn.lineno}"
        if fn.decorator_list or fn.name in self.script.functions:
            raise NotConventionError(f"{line}: the helper {fn.name} is decorated or hides a function")
        summary = analyze_function(fn, self.ctx)
        if not summary.pure or summary.has_yield:
            why = summary.effects.reasons()[0] if not summary.pure else "it is a generator"
            raise NotConventionError(f"{line}: the helper {fn.name} is not pure ({why})")
        local = local_names(fn) | {a.arg for a in all_args(fn.args)}
        inner = ast.Module(body=fn.body, type_ignores=[])
        if any(isinstance(n, ast.Global | ast.Nonlocal) for n in ast.walk(inner)) \
                or not self.pure_expr(inner, local | {fn.name}):
            raise NotConventionError(f"{line}: the helper {fn.name} reads something other than its "
                                     "arguments and module constants")
        self.env[fn.name] = HELPER

    def lines_of(self, e: ast.expr) -> str | None:
        """`f.readlines()`, `list(f)`, `f.read().splitlines()` over the data file → LINES or
        DATA_LINES (when the header line was already consumed)."""
        def file_name(x: ast.expr) -> str | None:
            return x.id if isinstance(x, ast.Name) and self.env.get(x.id) == FILE else None
        f = None
        if isinstance(e, ast.Call) and not e.args and not e.keywords and isinstance(e.func, ast.Attribute):
            recv = e.func.value
            if e.func.attr == "readlines":
                f = file_name(recv)
            elif e.func.attr == "splitlines" and isinstance(recv, ast.Call) and not recv.args \
                    and not recv.keywords and isinstance(recv.func, ast.Attribute) and recv.func.attr == "read":
                f = file_name(recv.func.value)
        elif isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and e.func.id == "list" \
                and len(e.args) == 1 and not e.keywords:
            f = file_name(e.args[0])
        if f is None:
            return None
        return self.take_lines(f, e.lineno)

    def take_lines(self, f: str, lineno: int) -> str:
        if self.reader_kwargs is not None:
            raise NotConventionError(f"line {lineno}: the data is read both as lines and with csv.reader")
        pos = self.file_pos.get(f, 0)
        if pos < 0:
            raise NotConventionError(f"line {lineno}: reads the data twice")
        self.file_pos[f] = -1
        self.uses_lines = True
        return LINES if pos == 0 else DATA_LINES

    def header_line(self, e: ast.expr) -> bool:
        """`next(f)` / `f.readline()` (possibly parsed: `f.readline().strip().split(',')`), or a
        pure function of `lines[0]`: the header."""
        for n in ast.walk(e):
            src = None
            if isinstance(n, ast.Call) and not n.keywords:
                if isinstance(n.func, ast.Name) and n.func.id == "next" and len(n.args) == 1:
                    src = n.args[0]
                elif isinstance(n.func, ast.Attribute) and n.func.attr == "readline" and not n.args:
                    src = n.func.value
            if isinstance(src, ast.Name) and self.env.get(src.id) == FILE and self.file_pos.get(src.id, 0) == 0:
                if self.reader_kwargs is not None or not self.row_expr_ok(_replaced(e, n), "_rs_rec"):
                    return False
                self.file_pos[src.id] = 1
                self.uses_lines = True
                return True
            if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name) and self.env.get(n.value.id) == LINES \
                    and isinstance(n.slice, ast.Constant) and n.slice.value == 0:
                return self.row_expr_ok(_replaced(e, n), "_rs_rec")
        return False

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
        if (src := self.record_source(it)) is not None:
            return src
        if isinstance(it, ast.Name) and self.env.get(it.id) == ROWS:
            return ROWS
        if self.reader_call(it) is not None:
            return ALL
        return None

    def record_source(self, it: ast.expr) -> str | None:
        """What iterating `it` yields, as row lists: ALL (header first) or ROWS (data records only)."""
        if isinstance(it, ast.Name) and self.env.get(it.id) == FILE:
            return ALL if self.take_lines(it.id, it.lineno) == LINES else ROWS
        if isinstance(it, ast.Name) and self.env.get(it.id) in (LINES, DATA_LINES):
            return ALL if self.env[it.id] == LINES else ROWS
        if isinstance(it, ast.Subscript) and isinstance(it.value, ast.Name) and self.env.get(it.value.id) == LINES \
                and _is_tail(it.slice):
            return ROWS
        return None

    def harmless_handler(self, h: ast.ExceptHandler) -> bool:
        """An except branch that only reports: it binds nothing the rest of the script could use."""
        for s in h.body:
            if isinstance(s, ast.Pass | ast.Raise):
                continue
            if isinstance(s, ast.Expr) and isinstance(s.value, ast.Call) \
                    and ast.unparse(s.value.func) in _REPORTING_CALLS \
                    and all(self.pure_expr(a, {h.name} if h.name else set()) for a in s.value.args):
                continue
            return False
        return True

    # -- statements
    def stmt(self, s: ast.stmt) -> None:
        line = f"line {s.lineno}"
        if isinstance(s, ast.FunctionDef):
            self.helper(s)
            return
        if isinstance(s, ast.Try):
            if s.orelse or s.finalbody or not all(self.harmless_handler(h) for h in s.handlers):
                raise NotConventionError(f"{line}: a try statement whose except branch does more than "
                                         "report the error (print, pass, raise, exit)")
            before = dict(self.env)
            for inner in s.body:
                self.stmt(inner)
            # A name bound before the try and again inside would keep its old value where the load
            # fails: in one chunk but not in the others, or not in the whole run.
            again = sorted(n for n, k in self.env.items() if n in before and before[n] != k)
            if again:
                raise NotConventionError(f"{line}: {again[0]} is set before the try and again inside it")
            return
        if isinstance(s, ast.Expr) and isinstance(s.value, ast.Call) and self.header_line(s.value):
            return  # next(f) / f.readline(): skips the header line
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
        if isinstance(s, ast.For) and isinstance(s.target, ast.Name) and len(s.body) == 1 and not s.orelse:
            b = s.body[0]
            if isinstance(b, ast.Expr) and isinstance(b.value, ast.Call) \
                    and isinstance(b.value.func, ast.Attribute) and b.value.func.attr == "append" \
                    and isinstance(b.value.func.value, ast.Name) and self.env.get(b.value.func.value.id) == EMPTY \
                    and len(b.value.args) == 1 and self.row_expr_ok(b.value.args[0], s.target.id):
                if isinstance(s.iter, ast.Name) and self.env.get(s.iter.id) == READER:
                    pos = self.reader_pos[s.iter.id]
                    self.reader_pos[s.iter.id] = -1
                    if pos not in (0, 1):
                        raise NotConventionError(f"{line}: reads the data twice")
                    self.env[b.value.func.value.id] = ROWS if pos == 1 else ALL
                    return
                if (kind := self.record_source(s.iter)) is not None:
                    self.env[b.value.func.value.id] = kind
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
        elif (lines := self.lines_of(v)) is not None:
            kind = lines
        elif isinstance(v, ast.Subscript) and isinstance(v.value, ast.Name) and self.env.get(v.value.id) == LINES \
                and _is_tail(v.slice):
            kind = DATA_LINES
        elif self.header_line(v):
            kind = HEADER
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
            elif _is_tail(v.slice):
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
        rows = [n for n, k in self.env.items() if k in (ROWS, DATA_LINES)]  # lines are records too
        headers = [n for n, k in self.env.items() if k == HEADER]
        header_row = False
        if not rows:
            rows = [n for n, k in self.env.items() if k == ALL] + [n for n, k in self.env.items() if k == LINES]
            if not rows:
                raise NotConventionError("no list of data rows is built")
            if headers:
                raise NotConventionError("the header row is kept both on its own and among the rows")
            header_row = True
        if len(headers) > 1:
            raise NotConventionError(f"the header row is kept in several variables: {', '.join(headers)}")
        temps = {n for n, k in self.env.items() if n not in rows and k != HEADER}
        return LoadBlock(start=start, end=end, header=headers[0] if headers else None, rows=rows,
                         temps=temps, reader_kwargs=self.reader_kwargs or {}, encoding=self.encoding,
                         lines=self.uses_lines, header_row=header_row,
                         kept_lines=any(k in (LINES, DATA_LINES) for k in self.env.values()),
                         helpers=[n for n, k in self.env.items() if k == HELPER])


def _is_tail(e: ast.expr) -> bool:
    """The slice `[1:]`."""
    return isinstance(e, ast.Slice) and isinstance(e.lower, ast.Constant) and e.lower.value == 1 \
        and type(e.lower.value) is int and e.upper is None and e.step is None


def _replaced(e: ast.expr, part: ast.AST) -> ast.expr:
    """A copy of `e` with the sub-expression `part` replaced by the name _rs_rec (the record it reads)."""
    if e is part:
        return ast.Name("_rs_rec", ast.Load())
    out = copy.deepcopy(e)
    twin = next(c for o, c in zip(ast.walk(e), ast.walk(out), strict=True) if o is part)
    for node in ast.walk(out):
        for name, value in ast.iter_fields(node):
            if value is twin:
                setattr(node, name, ast.Name("_rs_rec", ast.Load()))
            elif isinstance(value, list) and twin in value:
                value[value.index(twin)] = ast.Name("_rs_rec", ast.Load())
    return out


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
        while start > 0 and isinstance(body[start - 1], ast.FunctionDef):
            start -= 1  # helpers defined just before the file is opened belong to the load
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
