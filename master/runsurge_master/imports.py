"""Which modules a job's scripts import, and whether each task will find them, checked at submission.

A task finds a module in the guest image (its importable top-level modules, recorded when the image
is built: guest_python_modules.txt), among the task's own files (`helper.py` beside the script),
or in its environment's wheels (what unpacking the wheel puts on sys.path: its file list, so
`scikit-learn` provides `sklearn`). A script importing anything else would stop with
ModuleNotFoundError on every worker, so it is refused with the module's name and how to add it.

Imports are read from the syntax tree, nothing runs: `import x` and `from x import y` anywhere
(module level, functions, classes, branches) count, except where they cannot or need not succeed:
relative imports (the script's own package); the body of a `try` that catches ImportError (or any
exception) and its `else` (the script copes without the module); `contextlib.suppress(ImportError)`;
`if TYPE_CHECKING:` and branches a guest never takes (`sys.version_info`, `sys.platform`, `os.name`
compared with constants). Dynamic imports (`importlib.import_module`, `__import__`) are not checked.
"""

from __future__ import annotations

import ast
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from runsurge_master.jobspec import SpecError

GUEST_MODULES_FILE = "guest_python_modules.txt"  # vm-images/build.py writes it (python-modules.txt)
GUEST_PLATFORM, GUEST_OS_NAME = "linux", "posix"
_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
# Import names whose package is called otherwise on the index (only for the hint in the message).
_DISTRIBUTIONS = {"sklearn": "scikit-learn", "yaml": "pyyaml", "PIL": "pillow", "cv2": "opencv-python-headless",
                  "bs4": "beautifulsoup4", "skimage": "scikit-image", "dateutil": "python-dateutil",
                  "Crypto": "pycryptodome", "attr": "attrs", "jwt": "pyjwt", "serial": "pyserial",
                  "magic": "python-magic", "dotenv": "python-dotenv", "docx": "python-docx"}


@cache
def guest_modules() -> frozenset[str]:
    """The guest image's importable top-level modules (stdlib and Debian's python3-* packages)."""
    text = resources.files("runsurge_master").joinpath(GUEST_MODULES_FILE).read_text()
    return frozenset(ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#"))


@dataclass(frozen=True)
class Import:
    module: str  # the top-level name: `import a.b` needs `a`
    line: int


def required_imports(tree: ast.Module, python: tuple[int, int]) -> list[Import]:
    """The top-level modules a script needs, first line each, in order. `python`: the guest's version.
    Walks statements only (an expression holds no import), iteratively (deep nesting is fine)."""
    first: dict[str, int] = {}
    todo: list[tuple[ast.stmt, bool]] = [(n, False) for n in reversed(tree.body)]
    while todo:
        node, optional = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom) and not optional:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if node.level == 0 and node.module else []
            for name in names:
                top = name.split(".", 1)[0]
                first[top] = min(first.get(top, node.lineno), node.lineno)
        for block, block_optional in _blocks(node, python):
            todo.extend((n, optional or block_optional) for n in reversed(block))
    return [Import(m, line) for m, line in sorted(first.items(), key=lambda x: (x[1], x[0]))]


def _blocks(node: ast.stmt, python: tuple[int, int]) -> list[tuple[list[ast.stmt], bool]]:
    """A statement's nested blocks that may run, each with whether a failed import there is handled."""
    if isinstance(node, ast.Try | ast.TryStar):
        guarded = any(_catches_import_error(h.type) for h in node.handlers)
        return [(node.body, guarded), (node.orelse, guarded), (node.finalbody, False),
                *((h.body, False) for h in node.handlers)]  # a handler's fallback import must work
    if isinstance(node, ast.If):
        taken = _static_truth(node.test, python)
        return [(b, False) for b, runs in ((node.body, taken is not False), (node.orelse, taken is not True)) if runs]
    if isinstance(node, ast.With | ast.AsyncWith):
        return [(node.body, any(_suppresses_import_error(i.context_expr) for i in node.items))]
    if isinstance(node, ast.Match):
        return [(c.body, False) for c in node.cases]
    blocks = (getattr(node, f, None) for f in ("body", "orelse", "finalbody"))  # def, class, for, while
    return [(b, False) for b in blocks if isinstance(b, list)]


def _catches_import_error(t: ast.expr | None) -> bool:
    if t is None:  # a bare `except:`
        return True
    if isinstance(t, ast.Tuple):
        return any(_catches_import_error(e) for e in t.elts)
    return _name(t) in _IMPORT_ERRORS


def _suppresses_import_error(e: ast.expr) -> bool:
    return isinstance(e, ast.Call) and _name(e.func) == "suppress" and any(_catches_import_error(a) for a in e.args)


def _name(e: ast.expr) -> str | None:
    return e.id if isinstance(e, ast.Name) else e.attr if isinstance(e, ast.Attribute) else None


def _static_truth(test: ast.expr, python: tuple[int, int]) -> bool | None:
    """What a condition is on every guest, when that is known without running anything; else None."""
    if _name(test) == "TYPE_CHECKING":
        return False
    if isinstance(test, ast.Constant):
        return bool(test.value)
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        inner = _static_truth(test.operand, python)
        return None if inner is None else not inner
    if isinstance(test, ast.BoolOp):
        values = [_static_truth(v, python) for v in test.values]
        decisive = isinstance(test.op, ast.Or)  # any True decides an `or`, any False an `and`
        if decisive in values:
            return decisive
        return None if None in values else not decisive
    if isinstance(test, ast.Call) and isinstance(test.func, ast.Attribute) and test.func.attr == "startswith" \
            and _dotted(test.func.value) == "sys.platform" and len(test.args) == 1 \
            and isinstance(test.args[0], ast.Constant) and isinstance(test.args[0].value, str):
        return GUEST_PLATFORM.startswith(test.args[0].value)
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, right = _known_value(test.left, python), _literal(test.comparators[0])
        if left is None or right is None or type(left) is not type(right) and not isinstance(right, tuple | int):
            return None
        if isinstance(left, tuple) and isinstance(right, int):
            left = left[0]
        try:
            return _compare(test.ops[0], left, right)
        except TypeError:
            return None
    return None


def _compare(op: ast.cmpop, a, b) -> bool | None:
    ops = {ast.Eq: a == b, ast.NotEq: a != b}
    if isinstance(a, tuple | int) and isinstance(b, tuple | int):
        ops.update({ast.Lt: a < b, ast.LtE: a <= b, ast.Gt: a > b, ast.GtE: a >= b})
    return ops.get(type(op))


def _dotted(e: ast.expr) -> str | None:
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.Attribute):
        base = _dotted(e.value)
        return f"{base}.{e.attr}" if base else None
    return None


def _known_value(e: ast.expr, python: tuple[int, int]) -> str | tuple | int | None:
    """sys.platform, os.name, sys.version_info (whole, [:n], [n], .major/.minor) on the guest."""
    version = (*python, 0)
    if isinstance(e, ast.Subscript) and _dotted(e.value) == "sys.version_info":
        s = e.slice
        if isinstance(s, ast.Slice) and s.lower is None and s.step is None and isinstance(s.upper, ast.Constant) \
                and isinstance(s.upper.value, int) and s.upper.value <= 2:
            return version[:s.upper.value]
        if isinstance(s, ast.Constant) and s.value in (0, 1):
            return version[s.value]
        return None
    return {"sys.platform": GUEST_PLATFORM, "os.name": GUEST_OS_NAME, "sys.version_info": python,
            "sys.version_info.major": python[0], "sys.version_info.minor": python[1]}.get(_dotted(e) or "")


def _literal(e: ast.expr) -> str | tuple | int | None:
    try:
        value = ast.literal_eval(e)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(value, str) or isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return value
    return None


def local_modules(file_names: set[str]) -> set[str]:
    """Modules a task's own files provide in its folder (which is the script's directory on sys.path):
    `helper.py`, `helper.pyc`, an extension module `fast.cpython-311-x86_64-linux-gnu.so` or `fast.so`."""
    out = set()
    for name in file_names:
        stem, _, ext = name.partition(".")
        if stem.isidentifier() and (ext in ("py", "pyc", "so") or ext.endswith(".so")):
            out.add(stem)
    return out


def wheel_modules(path: Path) -> set[str]:
    """The top-level modules installing a wheel provides: its file list (the RECORD's truth; a
    package's folder, a module file, what its .data/purelib or platlib holds), not its metadata."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (OSError, zipfile.BadZipFile):
        return set()
    out = set()
    for name in names:
        parts = name.split("/")
        if parts[0].endswith(".data") and len(parts) > 2 and parts[1] in ("purelib", "platlib"):
            parts = parts[2:]
        elif parts[0].endswith((".dist-info", ".data")):
            continue
        if len(parts) > 1:
            out.add(parts[0])
        elif parts[0].endswith((".py", ".so", ".pyc")):
            out.add(parts[0].split(".", 1)[0])
    return {m for m in out if m.isidentifier()}


@dataclass(frozen=True)
class Missing:
    script: str  # the file that imports it (the task's script, or a local module it imports)
    module: str
    line: int


def missing_modules(script: str, tree: ast.Module, files: dict[str, Callable[[], ast.Module | None]],
                    provided: set[str], python: tuple[int, int]) -> list[Missing]:
    """What a task's script imports that neither the guest, nor its folder, nor `provided` has.
    `files`: the task folder's other files, name → its syntax tree when read (None: not Python).
    A local module the script imports is followed: what it imports must be found too."""
    found, beside = guest_modules() | provided, local_modules(set(files) | {script})
    out: list[Missing] = []
    todo, seen = [(script, tree)], {script}
    while todo:
        name, module_tree = todo.pop()
        for imp in required_imports(module_tree, python):
            if imp.module in beside:
                helper = f"{imp.module}.py"
                if helper in files and helper not in seen:
                    seen.add(helper)
                    helper_tree = files[helper]()
                    if helper_tree is not None:
                        todo.append((helper, helper_tree))
            elif imp.module not in found:
                out.append(Missing(name, imp.module, imp.line))
    return out


def refusal(missing: Missing, task: str | None, requirements: list[str], own_list: bool) -> SpecError:
    """The message for a module nobody provides, naming it and how to add it. `task`: in a job spec
    (None: the job's one script, or the script every automatic task runs)."""
    dist = _DISTRIBUTIONS.get(missing.module, missing.module)
    if own_list:
        reqs, how = f"task {task!r}'s requirements", f'add "{dist}" to task {task!r}\'s requirements in the job spec'
    elif task is not None:
        reqs, how = "the job's requirements", f'add requirements = ["{dist}"] to the job spec (or --requirements ' \
                                              "requirements.txt)"
    else:
        reqs, how = "the job's requirements", f"list {dist} in a requirements.txt and submit with --requirements " \
                                              "requirements.txt"
    listed = f" ({', '.join(requirements)})" if requirements else ""
    files = f"task {task!r}'s files" if task is not None else "the job's files"
    return SpecError(f"{missing.script} imports {missing.module!r} (line {missing.line}), which is neither in the "
                     f"worker image, nor among {files}, nor in {reqs}{listed}; {how}")
