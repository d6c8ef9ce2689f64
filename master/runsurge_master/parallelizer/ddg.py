"""The data-dependency graph of the main block: what each statement defines and uses (including
objects it changes through aliases and calls), which statements have effects that must stay in
order, and which statements have no path between them (so they may run at the same time)."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from runsurge_master.parallelizer.effects import (
    INF,
    MUTATING_METHODS,
    PURE_METHODS,
    READ_METHODS,
    WRITE_METHODS,
    Context,
    Effects,
    Sharing,
    bindings,
    bound_depths,
    classify_call,
    numeric,
)


@dataclass
class StatementInfo:
    index: int
    node: ast.stmt
    defs: set[str] = field(default_factory=set)      # names bound or objects changed
    uses: set[str] = field(default_factory=set)
    effects: Effects = field(default_factory=Effects)

    @property
    def line(self) -> int:
        return self.node.lineno

    @property
    def barrier(self) -> bool:
        """Touches state nobody can see (globals, unknown code): ordered against everything."""
        return bool(self.effects.globals or self.effects.unknown)

    @property
    def has_effects(self) -> bool:
        return bool(self.effects.io) or self.barrier


def main_names(stmts: list[ast.stmt]) -> set[str]:
    """Names the main block binds (they are module globals at run time)."""
    names = set()
    for s in stmts:
        for n in ast.walk(s):
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store | ast.Del):
                names.add(n.id)
            elif isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(n.name)
            elif isinstance(n, ast.Import | ast.ImportFrom):
                names |= {a.asname or a.name.split(".")[0] for a in n.names}
    return names


def mutated_globals(tree: ast.Module, main: list[ast.stmt], module_names: set[str]) -> set[str]:
    """Module-level names whose value may change while the main block runs: functions that read
    them cannot run elsewhere."""
    out = main_names(main)
    for n in ast.walk(tree):
        target = None
        if isinstance(n, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
            for t in (n.targets if isinstance(n, ast.Assign | ast.Delete) else [n.target]):
                if isinstance(t, ast.Subscript | ast.Attribute):
                    target = t
                    while isinstance(target, ast.Subscript | ast.Attribute):
                        target = target.value
                    if isinstance(target, ast.Name) and target.id in module_names:
                        out.add(target.id)
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in MUTATING_METHODS:
            target = n.func.value
            while isinstance(target, ast.Subscript | ast.Attribute):
                target = target.value
            if isinstance(target, ast.Name) and target.id in module_names:
                out.add(target.id)
        elif isinstance(n, ast.Global):
            out |= set(n.names)
    return out


MODULE_DATA = "<module data>"  # stands for every module-level object the main block does not bind


class MainAnalysis:
    """Statement summaries for main-block statements; all of them share one namespace."""

    def __init__(self, stmts: list[ast.stmt], ctx: Context, extra_names: set[str] = frozenset()):
        self.ctx = ctx
        self.names = main_names(stmts) | set(extra_names)
        self.share = self._sharing(stmts)  # share[u][v]: depth at which v may share objects with u

    def is_local(self, n: str) -> bool:
        return n in self.names

    def _sharer(self, u: str, row: dict[str, int]) -> Sharing:
        return Sharing(self.ctx, row, self.is_local, module_data=0 if u == MODULE_DATA else INF)

    def _sharing(self, stmts: list[ast.stmt]) -> dict[str, dict[str, int]]:
        share = {u: {v: (0 if v == u else INF) for v in self.names} for u in [*self.names, MODULE_DATA]}
        binds = [b for s in stmts for b in bindings(s)]
        for _ in range(30):
            changed = False
            for u, row in share.items():
                sh = self._sharer(u, row)
                for target, value, how in binds:
                    for name, depth in bound_depths(target, value, how, sh):
                        if name in row and name != u and depth < row[name]:
                            row[name], changed = depth, True
            if not changed:
                break
        return share

    def affected(self, obj: ast.expr, any_depth: bool = False) -> set[str]:
        """Names whose objects change when `obj` changes in place (or anything inside it)."""
        out = set()
        for u, row in self.share.items():
            d = self._sharer(u, row).of(obj)
            if d == 0 or any_depth and d < INF:
                out.add(u)
        return out

    def statement(self, index: int, node: ast.stmt) -> StatementInfo:
        info = StatementInfo(index=index, node=node)
        e = info.effects
        for n in ast.walk(node):
            line = f"line {getattr(n, 'lineno', node.lineno)}"
            if isinstance(n, ast.Name):
                (info.defs if isinstance(n.ctx, ast.Store | ast.Del) else info.uses).add(n.id)
            elif isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                info.defs.add(n.name)
                e.unknown.append(f"{line}: defines {n.name} inside the main block")
            elif isinstance(n, ast.Import | ast.ImportFrom):
                info.defs |= {a.asname or a.name.split(".")[0] for a in n.names}
            elif isinstance(n, ast.Call):
                self._call(n, info, line)
            if isinstance(n, ast.Assign | ast.AugAssign | ast.AnnAssign | ast.Delete):
                targets = n.targets if isinstance(n, ast.Assign | ast.Delete) else [n.target]
                for t in targets:
                    for sub in ast.walk(t):
                        if isinstance(sub, ast.Subscript | ast.Attribute):
                            info.defs |= self.affected(sub.value)
                if isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name) \
                        and not numeric(n.value, set()):  # `x += [..]` extends x in place
                    info.defs |= self.affected(n.target)
        info.uses = {u for u in info.uses if u not in _comprehension_names(node)}
        return info

    def _call(self, call: ast.Call, info: StatementInfo, line: str) -> None:
        e = info.effects
        k = classify_call(call, self.ctx, self.is_local)
        if k.kind in {"io", "module_io"}:
            e.io.append(f"{line}: calls {k.name}()")
            e.io_kinds.add(k.io_kind)
        elif k.kind == "unknown":
            e.unknown.append(f"{line}: calls {k.name}(), which RunSurge cannot see into")
        elif k.kind == "own":
            callee = self.ctx.summaries[k.name]
            for r in callee.effects.io:
                e.io.append(f"{line}: calls {k.name}, which {r.split(': ', 1)[-1]}")
            e.io_kinds |= callee.effects.io_kinds
            for r in callee.effects.globals + callee.effects.unknown:
                e.globals.append(f"{line}: calls {k.name}, which {r.split(': ', 1)[-1]}")
            if callee.mutates_args:
                for a in [*call.args, *(kw.value for kw in call.keywords)]:
                    info.defs |= self.affected(a, any_depth=True)
        elif k.kind == "module_mutates" and call.args or k.kind == "builtin" and k.name == "next" and call.args:
            info.defs |= self.affected(call.args[0])  # heappush(h, x), next(iterator)
        elif k.kind == "method":
            if k.name in WRITE_METHODS | READ_METHODS:
                e.io.append(f"{line}: calls .{k.name}()")
                e.io_kinds.add("write" if k.name in WRITE_METHODS else "read")
            elif k.name in MUTATING_METHODS:
                info.defs |= self.affected(k.receiver)
            elif k.name not in PURE_METHODS:
                e.unknown.append(f"{line}: calls .{k.name}(), which RunSurge cannot prove harmless")
        for a in [*call.args, *(kw.value for kw in call.keywords)]:  # map(f, xs), sorted(key=f)
            if isinstance(a, ast.Name) and a.id in self.ctx.functions and not self.is_local(a.id):
                callee = self.ctx.summaries[a.id]
                if not callee.pure:
                    e.globals.append(f"{line}: hands {a.id} to other code, and {a.id} is not pure")


def _comprehension_names(node: ast.AST) -> set[str]:
    out = set()
    for n in ast.walk(node):
        if isinstance(n, ast.comprehension):
            out |= {x.id for x in ast.walk(n.target) if isinstance(x, ast.Name)}
        elif isinstance(n, ast.Lambda):
            out |= {a.arg for a in n.args.args}
    return out


@dataclass
class Graph:
    """Dependencies between statements (i → j: j must run after i)."""
    infos: list[StatementInfo]
    edges: dict[tuple[int, int], str] = field(default_factory=dict)

    @classmethod
    def build(cls, infos: list[StatementInfo]) -> Graph:
        g = cls(infos)
        everything = set().union(*(i.defs | i.uses for i in infos)) if infos else set()
        for b, j in enumerate(infos):
            for i in infos[:b]:
                reason = _dependence(i, j, everything)
                if reason:
                    g.edges[(i.index, j.index)] = reason
        return g

    def reaches(self) -> dict[int, set[int]]:
        """Transitive closure: statement → every statement that must come after it."""
        after: dict[int, set[int]] = {i.index: set() for i in self.infos}
        for i in reversed(self.infos):
            for (a, b) in self.edges:
                if a == i.index:
                    after[a] |= {b} | after[b]
        return after

    def independent_pairs(self) -> list[tuple[int, int]]:
        after = self.reaches()
        idx = [i.index for i in self.infos]
        return [(a, b) for n, a in enumerate(idx) for b in idx[n + 1:] if b not in after[a]]


def _dependence(i: StatementInfo, j: StatementInfo, everything: set[str]) -> str:
    di = everything if i.barrier else i.defs
    dj = everything if j.barrier else j.defs
    ui = everything if i.barrier else i.uses
    uj = everything if j.barrier else j.uses
    if di & uj:
        return f"uses {', '.join(sorted(di & uj)[:3])} from line {i.line}"
    if ui & dj:
        return f"changes {', '.join(sorted(ui & dj)[:3])} after line {i.line} reads it"
    if di & dj:
        return f"rebinds {', '.join(sorted(di & dj)[:3])} after line {i.line}"
    if i.has_effects and j.has_effects:
        return f"both have side effects (line {i.line} first)"
    return ""
