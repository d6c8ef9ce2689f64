"""Everything the planner needs to know about a script, in one pass: which functions are pure,
how the data is loaded, the main block's dependency graph, and which `x = f(rows, ...)` calls
can run on chunks (or at least on their own), with the reason for every refusal."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from runsurge_master.parallelizer.aggregation import (
    CannotSplitError,
    LoopReducer,
    TagReducer,
    find_tag,
    names_in,
    reducer_for,
)
from runsurge_master.parallelizer.convention import LoadBlock, NotConventionError, find_load_block
from runsurge_master.parallelizer.ddg import MODULE_DATA, Graph, MainAnalysis, StatementInfo, mutated_globals
from runsurge_master.parallelizer.effects import Context, FunctionSummary
from runsurge_master.parallelizer.purity import analyze_functions
from runsurge_master.parallelizer.script import Script, parse_script


@dataclass
class CallSite:
    """A main-block statement `target = f(..., rows, ...)`."""
    index: int                      # position in the main block
    node: ast.Assign
    call: ast.Call
    function: str
    rows_var: str                   # the rows variable passed
    rows_param: str                 # the parameter it binds to
    reducer: LoopReducer | TagReducer | None   # None: runs whole, on all the rows
    reason: str = ""                # why it is not split (reducer None)

    @property
    def id(self) -> str:
        return f"s{self.index}"

    @property
    def line(self) -> int:
        return self.node.lineno

    def arg_names(self) -> set[str]:
        """Names the call's other arguments read."""
        args = [a for a in self.call.args if not (isinstance(a, ast.Name) and a.id == self.rows_var)]
        return names_in(args + [k.value for k in self.call.keywords
                                if not (isinstance(k.value, ast.Name) and k.value.id == self.rows_var)])


@dataclass
class Analysis:
    script: Script
    ctx: Context
    summaries: dict[str, FunctionSummary]
    infos: list[StatementInfo]
    graph: Graph
    load: LoadBlock | None = None
    calls: dict[int, CallSite] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)   # why the job cannot be split at all

    def statement_indices(self) -> list[int]:
        """Main-block statements other than the load block, in order."""
        skip = range(self.load.start, self.load.end) if self.load else range(0)
        return [i for i in range(len(self.script.body)) if i not in skip]


def analyze(source: str, name: str) -> Analysis:
    """Raises PlanError for scripts that cannot run at all (syntax error, no main block, bad tag)."""
    script = parse_script(source, name)
    ctx = Context(functions=script.functions, imports=script.imports, module_names=script.module_names)
    ctx.mutable_globals = mutated_globals(script.tree, script.body, script.module_names)
    summaries = analyze_functions(ctx)
    main = MainAnalysis(script.body, ctx, extra_names=ctx.mutable_globals)
    infos = [main.statement(i, s) for i, s in enumerate(script.body)]
    load, why = _load_block(script, ctx)
    # A proven load block only reads the data file into fresh lists: it changes no module object.
    inside = range(load.start, load.end) if load else range(0)
    if any(MODULE_DATA in info.defs or info.barrier for k, info in enumerate(infos) if k not in inside):
        # The main block may change module-level objects (through an alias, or code that touches
        # globals): then no function may rely on them staying as they were. Analyse again.
        data = script.module_names - set(script.functions) - set(script.imports)
        if not data <= ctx.mutable_globals:
            ctx.mutable_globals |= data
            summaries = analyze_functions(ctx)
            main = MainAnalysis(script.body, ctx, extra_names=ctx.mutable_globals)
            infos = [main.statement(i, s) for i, s in enumerate(script.body)]
            load, why = _load_block(script, ctx)
    a = Analysis(script=script, ctx=ctx, summaries=summaries, infos=infos, graph=Graph.build(infos), load=load)
    a.problems.extend(f"{p}" for p in script.problems)
    if why:
        a.problems.append(f"the script does not follow the input convention: {why}. Accepted: a block that reads "
                          "FILE_NAME into lists with one element per line or csv record (readlines(), iterating "
                          "the file, csv.reader), each computed from its own line by pure code (see "
                          "examples/template and examples/auto/README.md)")
    for fn in script.functions.values():  # a malformed tag is a mistake even where it is not used
        find_tag(fn, name)
    if a.load is not None:
        _classify(a)
    return a


def _load_block(script: Script, ctx: Context) -> tuple[LoadBlock | None, str]:
    try:
        return find_load_block(script, ctx), ""
    except NotConventionError as e:
        return None, str(e)


def _classify(a: Analysis) -> None:
    load = a.load
    rows, temps = set(load.rows), set(load.temps)
    for i in a.statement_indices():
        stmt, info = a.script.body[i], a.infos[i]
        line = f"line {stmt.lineno}"
        changed = info.defs & rows
        if changed:
            a.problems.append(f"{line} changes the rows ({', '.join(sorted(changed))}) after loading them")
            continue
        site = _call_site(a, i, stmt, rows, temps)
        if isinstance(site, str):
            a.problems.append(f"{line}: {site}")
            continue
        if site is not None:
            a.calls[i] = site
            continue
        direct = _direct_uses(stmt, rows | temps, rows if load.header_row else set())
        temps -= _bound_names(stmt)  # a file or reader name bound again is no longer the data's
        if direct:
            also = f", {load.rows[0]}[0] (the header)" if load.header_row else ""
            a.problems.append(f"{line} uses {direct} directly in the main block (only len({load.rows[0]}){also} "
                              "and calls like `x = f(rows)` can be planned around)")
        if info.effects.unknown:
            a.problems.append(f"{info.effects.unknown[0]} (it could read the data again)")
        if "read" in info.effects.io_kinds:
            a.problems.append(f"{line} reads files or input ({info.effects.io[0]}), so it cannot be "
                              "moved away from the data")
        for f in _called_functions(stmt, a):
            leaked = (rows | temps) & _global_reads(a, f)
            if leaked:
                a.problems.append(f"{line} calls {f}, which reads {', '.join(sorted(leaked))} as a global")


def _call_site(a: Analysis, i: int, stmt: ast.stmt, rows: set[str], temps: set[str]) -> CallSite | str | None:
    """The call site, None when the statement is not `x = f(..., rows, ...)`, or why f cannot run
    apart from the main block."""
    if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.value, ast.Call)):
        return None
    t = stmt.targets[0]
    if not (isinstance(t, ast.Name) or isinstance(t, ast.Tuple | ast.List)
            and all(isinstance(x, ast.Name) for x in t.elts)):
        return None
    call = stmt.value
    if not isinstance(call.func, ast.Name) or call.func.id not in a.script.functions \
            or call.func.id in a.ctx.mutable_globals:  # rebound by the main block: not the function
        return None
    fn = a.script.functions[call.func.id]
    positional = [*fn.args.posonlyargs, *fn.args.args]
    bound = []
    for k, arg in enumerate(call.args):
        if isinstance(arg, ast.Starred):
            return None
        if isinstance(arg, ast.Name) and arg.id in rows:
            if k >= len(positional):
                return None
            bound.append((arg.id, positional[k].arg))
    for kw in call.keywords:
        if kw.arg is None:
            return None
        if isinstance(kw.value, ast.Name) and kw.value.id in rows:
            bound.append((kw.value.id, kw.arg))
    if len(bound) != 1:
        return None
    rows_var, param = bound[0]
    site = CallSite(index=i, node=stmt, call=call, function=fn.name, rows_var=rows_var, rows_param=param,
                    reducer=None)
    if site.arg_names() & (rows | temps):
        return None
    summary = a.summaries[fn.name]
    if not summary.pure:
        return f"{fn.name} gets the rows but is not pure ({summary.effects.reasons()[0]}), so it must run " \
               "in the main flow, with all the rows"
    if fn.args.vararg or fn.args.kwarg:
        return f"{fn.name} takes *args/**kwargs, which RunSurge does not analyse"
    try:
        site.reducer = reducer_for(summary, param, a.script.name, a.load.header_row)
    except CannotSplitError as e:
        site.reason = str(e)
    return site


def _bound_names(stmt: ast.stmt) -> set[str]:
    return {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _direct_uses(stmt: ast.stmt, names: set[str], headed: set[str]) -> str:
    """Uses of the rows (or the load block's file/reader) other than len(rows), and rows[0] for
    the rows in `headed` (they hold the header first, and every combine step loads the header)."""
    names = names - (_bound_names(stmt) - names.intersection(_loads_before_bind(stmt)))
    measured = {id(n.args[0]) for n in ast.walk(stmt) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
                and n.func.id == "len" and len(n.args) == 1 and isinstance(n.args[0], ast.Name)}
    measured |= {id(n.value) for n in ast.walk(stmt) if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name)
                 and n.value.id in headed and isinstance(n.slice, ast.Constant) and type(n.slice.value) is int
                 and n.slice.value == 0 and isinstance(n.ctx, ast.Load)}
    bad = sorted({n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and n.id in names
                  and id(n) not in measured})
    return ", ".join(bad)


def _loads_before_bind(stmt: ast.stmt) -> set[str]:
    """Names read by a statement before it binds them itself (conservatively: read outside the
    with-items and assignment values that bind them)."""
    bound = _bound_names(stmt)
    if isinstance(stmt, ast.With):
        inner = [i.context_expr for i in stmt.items]
        return {n.id for e in inner for n in ast.walk(e) if isinstance(n, ast.Name) and n.id in bound}
    if isinstance(stmt, ast.Assign):
        return {n.id for n in ast.walk(stmt.value) if isinstance(n, ast.Name) and n.id in bound}
    return bound


def _called_functions(stmt: ast.stmt, a: Analysis) -> set[str]:
    return {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and n.id in a.script.functions}


def _global_reads(a: Analysis, name: str) -> set[str]:
    """Module globals a function (or anything it calls) reads."""
    seen, todo, out = set(), [name], set()
    while todo:
        f = todo.pop()
        if f in seen or f not in a.summaries:
            continue
        seen.add(f)
        s = a.summaries[f]
        local = {arg.arg for arg in ast.walk(s.node) if isinstance(arg, ast.arg)} | set(s.share)
        out |= {n.id for n in ast.walk(s.node) if isinstance(n, ast.Name) and n.id not in local}
        todo.extend(s.calls)
    return out
