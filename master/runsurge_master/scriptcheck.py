"""What a job's scripts are checked for before anything is stored, in every mode: they must parse
(a syntax error is refused with its line), and a name no scope ever binds (not a builtin, not
imported, not assigned anywhere the lookup would find it) is flagged, since the script will stop
with NameError when it gets there. The flag is a warning, not a refusal: the line may never run."""

from __future__ import annotations

import ast
import builtins
import symtable

from runsurge_master.jobspec import SpecError

_MODULE_NAMES = {"__name__", "__file__", "__doc__", "__builtins__", "__spec__", "__loader__", "__package__",
                 "__annotations__", "__dict__", "__path__", "__cached__"}


def check_script(text: str, name: str) -> list[str]:
    """Raises SpecError for a script that cannot run at all; returns warnings."""
    try:
        tree = ast.parse(text, filename=name)
        compile(tree, name, "exec", dont_inherit=True)  # what only the compiler refuses (`return` outside a def)
        table = symtable.symtable(text, name, "exec")
    except SyntaxError as e:
        if e.lineno is None:  # e.g. NUL bytes: nothing to point at
            raise SpecError(f"{name}: cannot be parsed: {e.msg}") from None
        where = f"line {e.lineno}" + (f", column {e.offset}" if e.offset else "")
        raise SpecError(f"{name}: syntax error at {where}: {e.msg}") from None
    except (ValueError, RecursionError, MemoryError) as e:  # NUL bytes; nesting too deep to parse
        why = "an expression is too long or nested too deeply for Python" \
            if isinstance(e, RecursionError | MemoryError) else str(e)
        raise SpecError(f"{name}: cannot be parsed: {why}") from None
    return [f"warning: {name}: line {line}: the name {n!r} is not defined anywhere: the script will stop "
            f"with NameError when it gets there" for n, line in unresolved(tree, table)]


def unresolved(tree: ast.Module, table: symtable.SymbolTable) -> list[tuple[str, int]]:
    """(name, first line it is read) for globals that nothing binds; none when `import *` is used."""
    if any(isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names) for n in ast.walk(tree)):
        return []
    bound = set(dir(builtins)) | _MODULE_NAMES
    wanted: set[str] = set()
    todo = [table]
    while todo:
        t = todo.pop()
        todo.extend(t.get_children())
        for sym in t.get_symbols():
            n = sym.get_name()
            module_level = t.get_type() == "module" or sym.is_declared_global()
            if module_level and (sym.is_assigned() or sym.is_imported() or sym.is_namespace()):
                bound.add(n)
            if sym.is_referenced() and (t.get_type() == "module" or sym.is_global()):
                wanted.add(n)
    missing = wanted - bound
    first: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in missing:
            first[node.id] = min(first.get(node.id, node.lineno), node.lineno)
    return sorted(first.items(), key=lambda x: (x[1], x[0]))
