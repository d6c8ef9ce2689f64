"""Parse the user's script: syntax, the main block, `#-----` markers, FILE_NAME, imports,
top-level functions, and whether module-level code is safe to repeat in every task."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass, field

from runsurge_master.parallelizer.model import PlanError, ScriptSyntaxError

MARKER_RE = re.compile(r"^#\s*-{5,}\s*$")
RESERVED_PREFIX = "_rs_"  # names of generated code; a script using them is not split


@dataclass
class Script:
    name: str
    source: str
    tree: ast.Module
    main: ast.If
    functions: dict[str, ast.FunctionDef] = field(default_factory=dict)
    imports: dict[str, str] = field(default_factory=dict)   # local name -> "module" or "module.attr"
    module_names: set[str] = field(default_factory=set)     # bound at module level outside main
    file_name: ast.Constant | None = None                   # the string node of FILE_NAME = '...'
    markers: list[int] = field(default_factory=list)        # line numbers of #----- inside main
    problems: list[str] = field(default_factory=list)       # why module-level code cannot be repeated

    @property
    def body(self) -> list[ast.stmt]:
        return self.main.body

    def identifiers(self) -> set[str]:
        names = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.FunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
        return names


def is_main_test(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    t = node.test
    if len(t.ops) != 1 or not isinstance(t.ops[0], ast.Eq):
        return False
    sides = [t.left, t.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(consts) == 1


def parse_script(source: str, name: str) -> Script:
    try:
        tree = ast.parse(source, filename=name)
    except SyntaxError as e:
        where = f"line {e.lineno}" + (f", column {e.offset}" if e.offset else "")
        raise ScriptSyntaxError(f"{name}: syntax error at {where}: {e.msg}") from None
    except ValueError as e:  # e.g. NUL bytes
        raise ScriptSyntaxError(f"{name}: cannot be parsed: {e}") from None
    mains = [i for i, s in enumerate(tree.body) if is_main_test(s)]
    if not mains:
        raise PlanError(f"{name}: no main block; put the job's work under "
                        "`if __name__ == '__main__':` so RunSurge knows what to run")
    if len(mains) > 1:
        raise PlanError(f"{name}: {len(mains)} `if __name__ == '__main__':` blocks; keep one")
    main = tree.body[mains[0]]
    script = Script(name=name, source=source, tree=tree, main=main)
    if main.orelse:
        script.problems.append(f"line {main.lineno}: the main block has an else branch")
    if mains[0] != len(tree.body) - 1:
        script.problems.append(f"line {tree.body[mains[0] + 1].lineno}: module-level code after the main block")
    for stmt in tree.body[:mains[0]]:
        _module_statement(script, stmt)
    script.markers = _markers(source, main)
    used = {n for n in script.identifiers() if n.startswith(RESERVED_PREFIX)}
    if used:
        script.problems.append(f"uses names reserved for generated code: {', '.join(sorted(used))}")
    return script


def _markers(source: str, main: ast.If) -> list[int]:
    lines = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT and MARKER_RE.match(tok.string.strip()):
                if main.lineno < tok.start[0] <= (main.end_lineno or tok.start[0]):
                    lines.append(tok.start[0])
    except (tokenize.TokenError, SyntaxError):
        pass
    return lines


def _module_statement(script: Script, stmt: ast.stmt) -> None:
    """Module-level code runs again in every generated task: it must only bind names."""
    line = f"line {stmt.lineno}"
    if isinstance(stmt, ast.FunctionDef):
        script.functions[stmt.name] = stmt
        script.module_names.add(stmt.name)
        if stmt.decorator_list:
            script.problems.append(f"{line}: decorated function {stmt.name}")
    elif isinstance(stmt, ast.AsyncFunctionDef | ast.ClassDef):
        script.module_names.add(stmt.name)  # calling it counts as unknown code (never split)
        if stmt.decorator_list:
            script.problems.append(f"{line}: decorated {stmt.name}")
    elif isinstance(stmt, ast.Import):
        for a in stmt.names:
            local = a.asname or a.name.split(".")[0]
            script.imports[local] = a.name if a.asname else a.name.split(".")[0]
            script.module_names.add(local)
    elif isinstance(stmt, ast.ImportFrom):
        for a in stmt.names:
            if a.name == "*":
                script.problems.append(f"{line}: `from {stmt.module} import *`")
                continue
            script.imports[a.asname or a.name] = f"{'.' * stmt.level}{stmt.module or ''}.{a.name}"
            script.module_names.add(a.asname or a.name)
    elif isinstance(stmt, ast.Assign | ast.AnnAssign):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        for t in targets:
            for n in ast.walk(t):
                if isinstance(n, ast.Name):
                    script.module_names.add(n.id)
            if not all(isinstance(n, ast.Name | ast.Tuple | ast.List | ast.Starred | ast.Store)
                       for n in ast.walk(t)):
                script.problems.append(f"{line}: module-level assignment into an object")
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                and stmt.targets[0].id == "FILE_NAME"):
            if isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str):
                script.file_name = stmt.value
            else:
                script.problems.append(f"{line}: FILE_NAME is not a plain string")
        if stmt.value is not None and not _constant_like(stmt.value):
            script.problems.append(f"{line}: module-level code that calls functions")
    elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
        pass  # docstring
    elif isinstance(stmt, ast.Pass):
        pass
    else:
        script.problems.append(f"{line}: module-level {type(stmt).__name__.lower()} statement")


_SAFE_MODULE_CALLS = {"set", "frozenset", "dict", "list", "tuple", "range", "float", "int", "str",
                      "bool", "len", "sorted", "re.compile", "object", "namedtuple",
                      "collections.namedtuple"}


def _constant_like(expr: ast.expr) -> bool:
    """Literals, names and a few pure constructors: cheap and free of side effects."""
    for node in ast.walk(expr):
        if isinstance(node, ast.Call):
            if ast.unparse(node.func) not in _SAFE_MODULE_CALLS:
                return False
        elif isinstance(node, ast.Await | ast.Yield | ast.YieldFrom | ast.NamedExpr):
            return False
    return True


def replace_file_name(script: Script, new_name: str) -> str:
    """The script's source with FILE_NAME pointing at `new_name` (everything else byte-identical)."""
    node = script.file_name
    if node is None or node.value == new_name:
        return script.source
    lines = script.source.splitlines(keepends=True)
    first, last = node.lineno - 1, node.end_lineno - 1
    start = lines[first].encode()[:node.col_offset].decode()
    end = lines[last].encode()[node.end_col_offset:].decode()
    return "".join(lines[:first]) + start + repr(new_name) + end + "".join(lines[last + 1:])


def module_prelude(script: Script, data_name: str) -> str:
    """Module-level code before the main block (FILE_NAME rewritten): every generated task runs it."""
    text = replace_file_name(script, data_name)
    lines = text.splitlines(keepends=True)
    # The FILE_NAME rewrite keeps line numbers, so the main block starts where it did.
    head = "".join(lines[:script.main.lineno - 1])
    return head if head.endswith("\n") or not head else head + "\n"
