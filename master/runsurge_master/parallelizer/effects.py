"""What code may do besides computing a value: I/O, global state, changing objects it was given.

A function is *pure* (safe to run on a chunk in another process) when it does no I/O, reads no
module state that the main block changes, and never changes an object that may be shared with
its arguments or with module globals. Sharing is tracked as a depth: `share[v] = d` means the
objects reached from local `v` through d or more subscripts may be shared with the caller
(0: `v` itself may be shared; INF: everything reachable from `v` was built here).
The analysis is flow-insensitive and errs on the side of "shared" and "impure".
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

INF = 1 << 20

_EXCEPTIONS = {n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)}
IO_BUILTINS = {"open": "read", "print": "print", "input": "read", "exec": "read", "eval": "read",
               "compile": "read", "__import__": "read", "breakpoint": "read", "exit": "read",
               "quit": "read", "help": "read", "globals": "read", "locals": "read", "vars": "read",
               "setattr": "read", "delattr": "read", "id": "read", "hash": "read", "memoryview": "read"}
SCALAR_BUILTINS = {"abs", "all", "any", "ascii", "bin", "bool", "callable", "chr", "complex", "divmod",
                   "float", "format", "hasattr", "hex", "int", "isinstance", "issubclass", "len", "oct",
                   "ord", "pow", "range", "repr", "round", "str", "type", "bytes", "object"} | _EXCEPTIONS
CONTAINER_BUILTINS = {"dict", "enumerate", "filter", "frozenset", "iter", "list", "map", "reversed",
                      "set", "slice", "sorted", "sum", "tuple", "zip", "bytearray"}
ELEMENT_BUILTINS = {"min", "max", "next", "getattr"}
KNOWN_BUILTINS = SCALAR_BUILTINS | CONTAINER_BUILTINS | ELEMENT_BUILTINS
ALL_BUILTINS = set(dir(builtins))

SCALAR_MODULES = {"math", "cmath", "statistics", "string", "re", "unicodedata", "textwrap", "json"}
SHALLOW_MODULES = {"collections", "itertools", "functools", "operator", "copy", "bisect", "heapq"}
MODULE_IO = {"json.dump": "write", "json.load": "read", "csv.writer": "write", "csv.DictWriter": "write",
             "csv.reader": "read", "csv.DictReader": "read",
             # reading the clock: never pure, but harmless in the main block (timing a job)
             "time.time": "clock", "time.perf_counter": "clock", "time.monotonic": "clock",
             "time.process_time": "clock", "datetime.datetime.now": "clock", "datetime.date.today": "clock"}
WRITE_METHODS = {"write", "writelines", "writerow", "writerows", "writeheader", "flush", "close"}
READ_METHODS = {"read", "readline", "readlines", "seek", "tell", "fileno", "truncate"}
MODULE_MUTATES_FIRST = {"heapq.heappush", "heapq.heappop", "heapq.heapify", "heapq.heapreplace",
                        "heapq.heappushpop", "bisect.insort", "bisect.insort_left", "bisect.insort_right"}
MODULE_FRESH = {"copy.deepcopy", "decimal.Decimal", "fractions.Fraction"}  # (decimal's context is global)

STR_METHODS = {n for n in dir(str) if not n.startswith("_")}
MUTATING_METHODS = {"append", "extend", "insert", "pop", "remove", "clear", "sort", "reverse", "update",
                    "setdefault", "popitem", "add", "discard", "difference_update", "intersection_update",
                    "symmetric_difference_update", "appendleft", "extendleft", "popleft", "rotate",
                    "subtract", "move_to_end", "__setitem__", "__delitem__", "__iadd__"}
ELEMENT_METHODS = {"get", "pop", "setdefault", "popitem", "popleft"}
REGEX_METHODS = {"match", "search", "fullmatch", "findall", "finditer", "sub", "subn", "group", "groups",
                 "groupdict", "start", "end", "span"}
PURE_METHODS = STR_METHODS | REGEX_METHODS | {
    "index", "count", "copy", "get", "keys", "values", "items", "union", "intersection", "difference",
    "symmetric_difference", "issubset", "issuperset", "isdisjoint", "most_common", "elements", "total",
    "is_integer", "as_integer_ratio", "bit_length", "conjugate", "fromkeys", "decode", "hex"}
SCALAR_METHODS = (STR_METHODS - {"join"}) | REGEX_METHODS | {
    "index", "count", "is_integer", "as_integer_ratio", "bit_length", "conjugate", "decode", "hex", "total"}


def elem(d: int) -> int:
    return d if d >= INF else max(0, d - 1)


def box(d: int) -> int:
    return d if d >= INF else d + 1


def shallow(d: int) -> int:
    return max(1, d)


@dataclass
class Effects:
    """Reasons, each "line N: ...", by kind."""
    io: list[str] = field(default_factory=list)
    io_kinds: set[str] = field(default_factory=set)   # "print", "write", "clock", "read" (any other I/O)
    globals: list[str] = field(default_factory=list)
    mutates: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    def reasons(self) -> list[str]:
        return self.io + self.globals + self.mutates + self.unknown

    def merge(self, other: Effects) -> None:
        for name in ("io", "globals", "mutates", "unknown"):
            mine = getattr(self, name)
            mine.extend(r for r in getattr(other, name) if r not in mine)
        self.io_kinds |= other.io_kinds


@dataclass
class FunctionSummary:
    name: str
    node: ast.FunctionDef
    params: list[str]
    effects: Effects = field(default_factory=Effects)       # including what its callees do
    mutates_args: bool = False
    returns_fresh: bool = False
    return_depth: int = 0                                   # sharing depth of what it returns
    reads_constants: bool = False                           # reads module-level data (not functions)
    has_yield: bool = False
    calls: dict[str, int] = field(default_factory=dict)     # own functions called or referenced → line
    share: dict[str, int] = field(default_factory=dict)     # final sharing depths of locals

    @property
    def pure(self) -> bool:
        return not self.effects.reasons()


@dataclass
class Context:
    """What the analysis needs to know about the script around a piece of code."""
    functions: dict[str, ast.FunctionDef]
    imports: dict[str, str]
    module_names: set[str]
    mutable_globals: set[str] = field(default_factory=set)
    summaries: dict[str, FunctionSummary] = field(default_factory=dict)


# -- calls -------------------------------------------------------------------------------------------

@dataclass
class CallKind:
    kind: str          # builtin | io | own | module | module_io | module_mutates | method | unknown
    name: str          # function, dotted module function or method name
    receiver: ast.expr | None = None
    io_kind: str = ""


def dotted(expr: ast.expr, ctx: Context, is_local: Callable[[str], bool]) -> str | None:
    """`np.linalg.norm` → "numpy.linalg.norm" when the root is an imported module (not shadowed)."""
    parts = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name) or is_local(expr.id) or expr.id not in ctx.imports:
        return None
    return ".".join([ctx.imports[expr.id].lstrip("."), *reversed(parts)])


def classify_call(call: ast.Call, ctx: Context, is_local: Callable[[str], bool]) -> CallKind:
    func = call.func
    if isinstance(func, ast.Name):
        name = func.id
        if is_local(name):
            return CallKind("unknown", name)
        if name in ctx.imports:
            return _module_call(ctx.imports[name].lstrip("."))
        if name in ctx.functions:
            return CallKind("own", name)
        if name in ctx.module_names:
            return CallKind("unknown", name)  # a class or a callable constant: not analysed
        if name in IO_BUILTINS:
            return CallKind("io", name, io_kind=_open_kind(call) if name == "open" else IO_BUILTINS[name])
        if name in KNOWN_BUILTINS:
            return CallKind("builtin", name)
        return CallKind("unknown", name)
    if isinstance(func, ast.Attribute):
        mod = dotted(func, ctx, is_local)
        if mod is not None:
            return _module_call(mod)
        return CallKind("method", func.attr, receiver=func.value)
    return CallKind("unknown", ast.unparse(func))


def _module_call(name: str) -> CallKind:
    top = name.split(".")[0]
    if name in MODULE_IO:
        return CallKind("module_io", name, io_kind=MODULE_IO[name])
    if name in MODULE_MUTATES_FIRST:
        return CallKind("module_mutates", name)
    if top in SCALAR_MODULES or top in SHALLOW_MODULES or name in MODULE_FRESH:
        return CallKind("module", name)
    return CallKind("unknown", name)


def _open_kind(call: ast.Call) -> str:
    mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
    if mode is None:
        return "read"
    if isinstance(mode, ast.Constant) and isinstance(mode.value, str):
        return "write" if set(mode.value) & set("wax") and "+" not in mode.value else "read"
    return "read"


# -- sharing depths ----------------------------------------------------------------------------------

class Sharing:
    """Sharing depth of expressions given the depths of local names."""

    def __init__(self, ctx: Context, share: dict[str, int], is_local: Callable[[str], bool],
                 module_data: int = 0):
        self.ctx, self.share, self.is_local = ctx, share, is_local
        self.module_data = module_data  # depth of module-level data (0: it is what we track sharing with)

    def name(self, n: str) -> int:
        if self.is_local(n):
            return self.share.get(n, INF)
        if n in self.ctx.functions or n in self.ctx.imports or n in ALL_BUILTINS and n not in self.ctx.module_names:
            return INF
        return self.module_data  # a module global (or undefined)

    def of(self, e: ast.expr | None) -> int:  # one case per node type
        if e is None or isinstance(e, ast.Constant | ast.JoinedStr | ast.Compare | ast.UnaryOp | ast.Lambda):
            return INF
        if isinstance(e, ast.Name):
            return self.name(e.id)
        if isinstance(e, ast.Subscript):
            base = self.of(e.value)
            return shallow(base) if isinstance(e.slice, ast.Slice) else elem(base)
        if isinstance(e, ast.Attribute):
            return self.of(e.value)
        if isinstance(e, ast.Starred):
            return elem(self.of(e.value))
        if isinstance(e, ast.List | ast.Tuple | ast.Set):
            return box(min((self.of(x) for x in e.elts), default=INF))
        if isinstance(e, ast.Dict):
            parts = [self.of(v) for v in e.values] + [self.of(k) for k in e.keys if k is not None]
            parts += [elem(self.of(v)) for k, v in zip(e.keys, e.values, strict=True) if k is None]
            return box(min(parts, default=INF))
        if isinstance(e, ast.ListComp | ast.SetComp | ast.GeneratorExp):
            return box(self.of(e.elt))
        if isinstance(e, ast.DictComp):
            return box(min(self.of(e.key), self.of(e.value)))
        if isinstance(e, ast.BinOp):
            return shallow(min(self.of(e.left), self.of(e.right)))
        if isinstance(e, ast.BoolOp):
            return min(self.of(v) for v in e.values)
        if isinstance(e, ast.IfExp):
            return min(self.of(e.body), self.of(e.orelse))
        if isinstance(e, ast.NamedExpr):
            return self.of(e.value)
        if isinstance(e, ast.Call):
            return self.call(e)
        return 0

    def _args(self, call: ast.Call) -> int:
        return min([self.of(a) for a in call.args] + [self.of(k.value) for k in call.keywords], default=INF)

    def call(self, call: ast.Call) -> int:
        k = classify_call(call, self.ctx, self.is_local)
        if k.kind == "io":
            return INF  # open() gives a new file, print() None
        if k.kind == "module_io":
            return shallow(self._args(call))  # a csv reader/writer holds on to its file
        if k.kind == "builtin":
            if k.name in SCALAR_BUILTINS:
                return INF
            if k.name in CONTAINER_BUILTINS:
                return shallow(self._args(call))
            if len(call.args) == 1 and k.name != "getattr":
                return min(elem(self.of(call.args[0])), *[self.of(kw.value) for kw in call.keywords], INF)
            return self._args(call)
        if k.kind == "own":  # shares what its arguments share, at the depth it returns them
            summary = self.ctx.summaries.get(k.name)
            if summary is None:
                return 0
            if summary.returns_fresh:
                return INF
            return summary.return_depth if self._args(call) < INF or summary.reads_constants else INF
        if k.kind == "module":
            top = k.name.split(".")[0]
            if top in SCALAR_MODULES or k.name in MODULE_FRESH:
                return INF
            return shallow(self._args(call)) if top in {"collections", "itertools"} else self._args(call)
        if k.kind == "method":
            r = self.of(k.receiver)
            if k.name in SCALAR_METHODS:
                return INF
            if k.name in ELEMENT_METHODS:  # an element, or the default (never the key)
                return min([elem(r), *(self.of(a) for a in call.args[1:])])
            if k.name in {"copy", "keys", "values", "items", "most_common", "elements", "union",
                          "intersection", "difference", "symmetric_difference", "join"}:
                return shallow(min(r, self._args(call)))
            if k.name in MUTATING_METHODS:
                return INF  # append & co return None
        return 0


def root_name(e: ast.expr) -> tuple[str | None, int]:
    """`a[i].b[j]` → ("a", 3): the variable an lvalue hangs from and how deep."""
    steps = 0
    while True:
        if isinstance(e, ast.Subscript | ast.Attribute):
            e = e.value
        elif (isinstance(e, ast.Call) and isinstance(e.func, ast.Attribute)
              and e.func.attr in {"get", "setdefault"}):  # d.setdefault(k, []).append(x)
            e = e.func.value
        else:
            return (e.id if isinstance(e, ast.Name) else None), steps
        steps += 1


def numeric(e: ast.expr, numeric_names: set[str]) -> bool:
    """Surely a number: then `x += e` cannot be an in-place list extend."""
    if isinstance(e, ast.Constant):
        return isinstance(e.value, int | float | complex)
    if isinstance(e, ast.Name):
        return e.id in numeric_names
    if isinstance(e, ast.UnaryOp):
        return isinstance(e.op, ast.USub | ast.UAdd) and numeric(e.operand, numeric_names)
    if isinstance(e, ast.BinOp):
        if isinstance(e.op, ast.Div | ast.Pow):
            return numeric(e.left, numeric_names) or numeric(e.right, numeric_names)
        return numeric(e.left, numeric_names) and numeric(e.right, numeric_names)
    if isinstance(e, ast.Call) and isinstance(e.func, ast.Name):
        return e.func.id in {"float", "int", "len", "abs", "round", "ord"}
    if isinstance(e, ast.Call) and isinstance(e.func, ast.Attribute) and isinstance(e.func.value, ast.Name):
        return e.func.value.id == "math"
    return False


# -- bindings ---------------------------------------------------------------------------------------

def local_names(fn: ast.FunctionDef) -> set[str]:
    names = {a.arg for a in all_args(fn.args)}
    for node in walk_scope(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.Lambda):
            names |= {a.arg for a in all_args(node.args)}
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {a.asname or a.name.split(".")[0] for a in node.names}
    return names


def all_args(a: ast.arguments) -> list[ast.arg]:
    return [*a.posonlyargs, *a.args, *a.kwonlyargs, *([a.vararg] if a.vararg else []),
            *([a.kwarg] if a.kwarg else [])]


def walk_scope(fn: ast.AST) -> Iterator[ast.AST]:
    """Every node of the function body, without entering nested function or class bodies."""
    todo = list(ast.iter_child_nodes(fn))
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            todo.extend(ast.iter_child_nodes(node))


def bindings(node: ast.AST) -> Iterator[tuple[ast.expr, ast.expr | None, str]]:
    """(target, value, how) for every way a statement or expression binds or stores a value.
    how: "=" plain, "elem" target gets elements of value, "+=" in-place add, "shared" unknown."""
    for n in walk_scope(node) if isinstance(node, ast.FunctionDef) else ast.walk(node):
        if isinstance(n, ast.Assign):
            for t in n.targets:
                yield t, n.value, "="
        elif isinstance(n, ast.AnnAssign) and n.value is not None:
            yield n.target, n.value, "="
        elif isinstance(n, ast.AugAssign):
            yield n.target, n.value, "+="
        elif isinstance(n, ast.NamedExpr):
            yield n.target, n.value, "="
        elif isinstance(n, ast.For | ast.AsyncFor | ast.comprehension):
            yield n.target, n.iter, "elem"
        elif isinstance(n, ast.withitem) and n.optional_vars is not None:
            yield n.optional_vars, n.context_expr, "="  # __enter__ usually returns the object itself
        elif isinstance(n, ast.Lambda):
            for a in all_args(n.args):
                yield ast.Name(id=a.arg, ctx=ast.Store()), None, "shared"
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in MUTATING_METHODS:
            for a in n.args[-1:]:  # append(x), insert(i, x), setdefault(k, x), update(x)...
                how = "extend" if n.func.attr in {"extend", "update", "extendleft"} else "put"
                yield n.func.value, a, how


def bound_depths(target: ast.expr, value: ast.expr | None, how: str, sh: Sharing) -> Iterator[tuple[str, int]]:
    if how == "shared":
        d = 0
    elif how == "elem":
        d = elem(sh.of(value))
    elif how == "+=":
        d = shallow(sh.of(value))
    elif how == "extend":
        d = shallow(sh.of(value))
    elif how == "put":
        d = box(sh.of(value))
    else:
        d = sh.of(value)
    if how in {"extend", "put"}:  # value stored inside the receiver `target`
        name, steps = root_name(target)
        if name is not None:
            yield name, min(INF, steps + d)
        return
    if how == "elem" and isinstance(target, ast.Tuple) and isinstance(value, ast.Call):
        parts = _paired_iter(target, value, sh)
        if parts is not None:
            for t, depth in parts:
                yield from _bound_depth(t, depth)
            return
    if isinstance(target, ast.Name):
        yield target.id, min(d, sh.of(target)) if how == "+=" else d
    elif isinstance(target, ast.Tuple | ast.List):
        if isinstance(value, ast.Tuple | ast.List) and len(value.elts) == len(target.elts) and how == "=" \
                and not any(isinstance(x, ast.Starred) for x in (*value.elts, *target.elts)):
            for t, v in zip(target.elts, value.elts, strict=True):
                yield from bound_depths(t, v, "=", sh)
        else:
            for t in target.elts:
                yield from _bound_depth(t, elem(d))
    elif isinstance(target, ast.Starred):
        yield from _bound_depth(target.value, d)
    elif isinstance(target, ast.Subscript | ast.Attribute):
        name, steps = root_name(target)
        if name is not None:
            yield name, min(INF, steps + d)


def _paired_iter(target: ast.Tuple, it: ast.Call, sh: Sharing) -> list[tuple[ast.expr, int]] | None:
    """Precise depths for `for i, x in enumerate(a)`, `for k, v in d.items()`, `for x, y in zip(a, b)`."""
    n = len(target.elts)
    f = it.func
    if isinstance(f, ast.Name) and f.id == "enumerate" and sh.name("enumerate") == INF and n == 2 and it.args:
        return [(target.elts[0], INF), (target.elts[1], elem(sh.of(it.args[0])))]
    if isinstance(f, ast.Name) and f.id == "zip" and sh.name("zip") == INF and n == len(it.args) \
            and not any(isinstance(a, ast.Starred) for a in it.args):
        return [(t, elem(sh.of(a))) for t, a in zip(target.elts, it.args, strict=True)]
    if isinstance(f, ast.Attribute) and f.attr == "items" and n == 2 and not it.args:
        return [(target.elts[0], INF), (target.elts[1], elem(sh.of(f.value)))]
    return None


def _bound_depth(target: ast.expr, d: int) -> Iterator[tuple[str, int]]:
    for n in ast.walk(target):
        if isinstance(n, ast.Name):
            yield n.id, d
        elif isinstance(n, ast.Subscript | ast.Attribute):
            name, steps = root_name(n)
            if name is not None:
                yield name, min(INF, steps + d)
