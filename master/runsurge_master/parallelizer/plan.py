"""plan_job: a script and its data → a task graph (spec + files + explanation).

Stages. The main block runs in order inside combine tasks; each split call's chunk tasks run as
soon as its arguments are known. A call whose arguments come from the statements before it (the
`stds = col_std(rows, means)` after `means = col_mean(rows)`) must wait for the combine step that
computes them: the main block is cut there, the combine saves its variables (the *state*), the
chunks of that call read it, and the next combine step carries on. Calls with no path between
them in the dependency graph land in the same group: one pass over each chunk computes them all.
"""

from __future__ import annotations

import ast
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from runsurge_master.jobspec import SpecError, check_file_name
from runsurge_master.parallelizer import codegen, memory
from runsurge_master.parallelizer.aggregation import LoopReducer, TagReducer
from runsurge_master.parallelizer.analysis import Analysis, CallSite, analyze
from runsurge_master.parallelizer.chunking import (
    THROUGHPUT_BPS,
    CsvScan,
    check_not_empty,
    choose_chunks,
    header_bytes,
    plan_chunks,
    scan_csv,
    write_chunks,
)
from runsurge_master.parallelizer.cost import RowCost, row_cost
from runsurge_master.parallelizer.model import Plan, PlanError, PlanFiles, PlannedTask
from runsurge_master.parallelizer.script import replace_file_name
from runsurge_master.parallelizer.spec import render_spec

STARTUP_S = 0.05  # a task's interpreter start, imports and file writes, beside its work


@dataclass
class Layout:
    stages: int = 1
    stage_of: dict[int, int] = field(default_factory=dict)    # main-block index → combine stage
    group_of: dict[int, int] = field(default_factory=dict)    # call-site index → group
    live: dict[int, list[str]] = field(default_factory=dict)  # stage → variables saved at its end
    waits: list[str] = field(default_factory=list)            # why a call waits for a stage
    replicated: list[int] = field(default_factory=list)       # statements the first chunks repeat

    def groups(self, a: Analysis, chunked: bool) -> dict[int, list[CallSite]]:
        out: dict[int, list[CallSite]] = {}
        for i, g in sorted(self.group_of.items()):
            site = a.calls[i]
            if (site.reducer is not None) == chunked:
                out.setdefault(g, []).append(site)
        return out


def plan_job(script: str, script_name: str, data: dict[str, Path], *, chunks: int | None = None,
             worker_free_memory: list[int] = (), per_task_overhead_s: float = 0.5,
             workdir: Path | None = None) -> Plan:
    """`workdir`: where chunk files are written (the master passes its object store's file system,
    so storing a chunk is a hard link, not a copy); the system's temporary folder by default."""
    _check_names(script_name, data)
    if chunks is not None and (not isinstance(chunks, int) or chunks < 1):
        raise PlanError(f"chunks must be a positive integer, got {chunks!r}")
    a = analyze(script, script_name)
    data_name = _data_file(a, data)
    notes: list[str] = []
    if data_name is None:
        return _single(a, data, None, None, ["the script has no FILE_NAME = '...': it runs as one task"])
    path = Path(data[data_name])
    if a.load is None:
        check_not_empty(path, data_name)
        return _single(a, data, data_name, None, [*a.problems, "so it runs as one task"])
    scan = scan_csv(path, data_name, a.load.reader_kwargs, a.load.encoding, strict=True, lines=a.load.lines)
    notes.append(f"{script_name} follows the input convention: FILE_NAME → {data_name} "
                 f"({scan.rows} rows × {scan.columns} columns, {scan.size} bytes)"
                 + ("; its rows keep the header line first, as every chunk will" if a.load.header_row else ""))
    notes += _call_notes(a)
    cost = row_cost(scan, a.load, a.script, list(a.calls.values()))
    notes.append(f"memory estimated from {cost.source}")
    if a.problems:
        return _single(a, data, data_name, scan, notes + a.problems + ["so it runs as one task"])
    if scan.unsplittable:
        return _single(a, data, data_name, scan, notes + [f"{data_name} is not split: {scan.unsplittable}"])
    if scan.rows < 2:
        return _single(a, data, data_name, scan, notes + [f"{data_name} has {scan.rows} data row(s): nothing to split"])
    layout = _layout(a, multi_stage=True)
    if isinstance(layout, Layout) and _needs_single_stage(a, layout):
        layout = _layout(a, multi_stage=False)
    if isinstance(layout, str):
        return _single(a, data, data_name, scan, notes + [layout, "so it runs as one task"])
    chunked, whole = layout.groups(a, True), layout.groups(a, False)
    if not chunked and not any(len(v) > 1 for v in whole.values()):
        return _single(a, data, data_name, scan,
                       notes + ["nothing can be split and no two calls can run side by side: one task"])

    def chunk_memory(data_bytes: int) -> int:
        rows = scan.rows * data_bytes / max(1, scan.data_bytes)
        return memory.estimate(rows, scan.columns, scan.field_chars, copies=1 + _row_sized(chunked, None),
                               per_row=cost.bytes_per_row)

    choice = choose_chunks(scan, max(1, len(chunked)), list(worker_free_memory), per_task_overhead_s,
                           chunk_memory, chunks, work_s=cost.seconds(scan.rows, list(a.calls.values())))
    if choice.k == 1:
        return _single(a, data, data_name, scan, notes + [f"not split: {choice.why}"])
    notes.append(choice.why if chunked else
                 f"nothing can be split; {sum(len(v) for v in whole.values())} calls with no path between them "
                 "run side by side, each on all the rows")
    notes += layout.waits
    notes += _independence_notes(a, layout)
    return _build(a, data, data_name, scan, layout, choice.k, notes, workdir, cost)


# -- inputs -------------------------------------------------------------------------------------------

def _check_names(script_name: str, data: dict[str, Path]) -> None:
    try:
        check_file_name(script_name, "script")
        for name in data:
            check_file_name(name, "data file")
    except SpecError as e:
        raise PlanError(str(e)) from None
    if not script_name.endswith(".py"):
        raise PlanError(f"the script {script_name!r} must be a .py file")
    if script_name in data:
        raise PlanError(f"a data file has the script's name {script_name!r}")
    for name, p in data.items():
        if not Path(p).is_file():
            raise PlanError(f"data file {name!r} is missing")


def _data_file(a: Analysis, data: dict[str, Path]) -> str | None:
    """The uploaded file FILE_NAME means (RunSurge points FILE_NAME at it)."""
    node = a.script.file_name
    if node is None:
        return None
    wanted = PurePath(node.value.replace("\\", "/")).name
    if wanted in data:
        return wanted
    if len(data) == 1:
        return next(iter(data))
    if not data:
        raise PlanError(f"{a.script.name} reads FILE_NAME = {node.value!r}, but no data file was uploaded")
    raise PlanError(f"FILE_NAME = {node.value!r} is none of the uploaded files ({', '.join(sorted(data))}); "
                    "name the data file like FILE_NAME, or upload only one")


# -- stages ---------------------------------------------------------------------------------------------

def _layout(a: Analysis, multi_stage: bool) -> Layout | str:
    if not a.calls:
        return "the main block has no call of the form `x = f(rows, ...)` over the data rows"
    lay = Layout()
    avail: dict[str, int] = {}      # name → stage that last set it (absent: the load block / module)
    in_chunks: set[str] = set()     # set by cheap pure statements the first chunks can repeat
    floor = 0                       # a statement with unknown effects "sets" everything
    hidden = set(a.load.rows) | a.load.temps
    c = 1
    for i in a.statement_indices():
        info = a.infos[i]
        site = a.calls.get(i)
        if site is not None:
            need = max([0 if n in in_chunks or n not in avail else avail[n] for n in site.arg_names()] + [floor])
            if need >= c:
                if not multi_stage:
                    return (f"line {site.line} needs values computed by the main block before it "
                            "(and the main block cannot be cut there)")
                c += 1
                names = sorted(n for n in site.arg_names() if avail.get(n, 0) == need) or ["(everything)"]
                lay.waits.append(f"line {site.line} needs {', '.join(names)} from earlier statements: its "
                                 f"tasks start after combine step {need}")
            lay.group_of[i] = need
            in_chunks -= info.defs
        elif _repeatable(a, i, hidden) and all(u not in avail or u in in_chunks for u in info.uses):
            lay.replicated.append(i)
            in_chunks |= info.defs
        else:
            in_chunks -= info.defs
            if info.barrier:
                floor, in_chunks = c, set()
        lay.stage_of[i] = c
        for d in info.defs:
            avail[d] = c
    lay.stages = c
    return _live(a, lay) if c > 1 else lay


def _repeatable(a: Analysis, i: int, hidden: set[str]) -> bool:
    """No effects, changes nothing but what it binds, never touches the rows: chunks may repeat it."""
    info, stmt = a.infos[i], a.script.body[i]
    bound = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return isinstance(stmt, ast.Assign | ast.AugAssign | ast.AnnAssign) and not info.has_effects \
        and info.defs <= bound and not (info.uses | info.defs) & hidden


def _live(a: Analysis, lay: Layout) -> Layout | str:
    """Variables each non-final stage must save for the later ones."""
    load = a.load
    hidden = set(load.rows) | load.temps
    unsafe = _unpicklable(a)
    for c in range(1, lay.stages):
        defined = {load.header} - {None}
        later_uses: set[str] = set()
        everything = False
        for i, s in lay.stage_of.items():
            info = a.infos[i]
            if s <= c:
                defined |= info.defs
            else:
                later_uses |= info.uses
                everything |= info.barrier
        for i, g in lay.group_of.items():
            if g >= c:
                later_uses |= a.calls[i].arg_names()
        live = sorted((defined if everything else defined & later_uses) - hidden)
        bad = sorted(set(live) & unsafe)
        if bad:
            return f"{', '.join(bad)} would have to be saved between steps, and cannot be (file, function...)"
        lay.live[c] = live
    return lay


def _unpicklable(a: Analysis) -> set[str]:
    out = set()
    for s in a.script.body:
        for n in ast.walk(s):
            if isinstance(n, ast.withitem) and n.optional_vars is not None:
                out |= {x.id for x in ast.walk(n.optional_vars) if isinstance(x, ast.Name)}
            elif isinstance(n, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
                out.add(n.name)
            elif isinstance(n, ast.Import | ast.ImportFrom):
                out |= {x.asname or x.name.split(".")[0] for x in n.names}
            elif isinstance(n, ast.Assign) and isinstance(n.value, ast.Lambda | ast.GeneratorExp):
                out |= {x.id for t in n.targets for x in ast.walk(t) if isinstance(x, ast.Name)}
    return out


def _needs_single_stage(a: Analysis, lay: Layout) -> bool:
    """Files written before the last stage would be lost (only the last stage's files are results)."""
    return any(s < lay.stages and "write" in a.infos[i].effects.io_kinds for i, s in lay.stage_of.items())


# -- explanation ----------------------------------------------------------------------------------------

def _call_notes(a: Analysis) -> list[str]:
    out = []
    for site in a.calls.values():
        text = ast.unparse(site.node)
        if site.reducer is not None:
            out.append(f"line {site.line}: `{text}` is split by rows; chunks combine as: {site.reducer.describe()}")
        else:
            out.append(f"line {site.line}: `{text}` cannot be split ({site.reason}); it runs on all the "
                       "rows, in a task of its own")
    return out


def _independence_notes(a: Analysis, lay: Layout) -> list[str]:
    out = []
    by_group: dict[int, list[CallSite]] = {}
    for i, g in lay.group_of.items():
        by_group.setdefault(g, []).append(a.calls[i])
    after = a.graph.reaches()
    for _, sites in sorted(by_group.items()):
        if len(sites) < 2:
            continue
        lines = ", ".join(str(s.line) for s in sites)
        free = all(y.index not in after[x.index] for x in sites for y in sites if x is not y)
        how = "no path between them in the dependency graph" if free else "their arguments are ready together"
        split = [s for s in sites if s.reducer is not None]
        what = []
        if len(split) > 1:
            what.append("one pass over each chunk computes the split ones")
        if len(split) < len(sites):
            what.append("calls that cannot be split get tasks of their own")
        out.append(f"lines {lines} run at the same time ({how}): {'; '.join(what)}")
    return out


# -- building the plan ----------------------------------------------------------------------------------

def _row_sized(groups: dict[int, list[CallSite]], group: int | None) -> int:
    """How many results as big as the rows themselves (concatenations) a task may hold."""
    n = 0
    for g, sites in groups.items():
        if group is not None and g != group:
            continue
        for s in sites:
            if isinstance(s.reducer, TagReducer) and s.reducer.kind == "c":
                n += 1
            elif isinstance(s.reducer, LoopReducer) and any(x.reset in ("[]", "()", "''") for x in s.reducer.accs):
                n += 1
    return n


class _Names:
    """File names that collide with nothing uploaded."""

    def __init__(self, taken: set[str]):
        self.taken = set(taken)

    def __call__(self, want: str) -> str:
        stem, dot, ext = want.rpartition(".")
        name, n = want, 1
        while name in self.taken:
            name, n = f"{stem}_{n}{dot}{ext}", n + 1
        self.taken.add(name)
        return name


def _repeat(lay: Layout, group: int, sites: list[CallSite]) -> list[int]:
    last = max(s.index for s in sites)
    return [i for i in lay.replicated if i < last] if group == 0 else []


def _build(a: Analysis, data: dict[str, Path], data_name: str, scan: CsvScan, lay: Layout, k: int,
           notes: list[str], workdir: Path | None, cost: RowCost) -> Plan:
    files = PlanFiles()
    tmp = Path(tempfile.mkdtemp(prefix="runsurge-plan-", dir=workdir))
    files.own_dir(tmp)
    names = _Names({a.script.name, *data})
    stem, dstem = Path(a.script.name).stem, Path(data_name).stem
    chunked, whole = lay.groups(a, True), lay.groups(a, False)
    parts = plan_chunks(scan, k) if chunked else []
    tasks: list[dict] = []
    planned: list[PlannedTask] = []
    cols, fc, per_row = scan.columns, scan.field_chars, cost.bytes_per_row

    def add(task: dict, kind: str, mem: int, input_bytes: int, seconds: float) -> None:
        task["memory"] = mem
        tasks.append(task)
        deps = sorted({v[5:].split("/")[0] for v in task.get("inputs", {}).values() if v.startswith("task:")})
        planned.append(PlannedTask(task["name"], kind, mem, deps, input_bytes, STARTUP_S + seconds))

    if parts:
        paths = write_chunks(scan, parts, tmp, dstem)
        part_names = [names(p.name) for p in paths]
        for n, p in zip(part_names, paths, strict=True):
            files.add_path(n, p)
    hdr = header_bytes(scan)
    state_of = {c: f"task:combine{c}/{codegen.state_name(c)}" for c in range(1, lay.stages)}
    merged: dict[int, list[str]] = {}   # call index → partial files the combine step reads
    inputs_of_stage: dict[int, dict[str, str]] = {c: {} for c in range(1, lay.stages + 1)}
    for g, sites in sorted(chunked.items()):
        script_name = names(f"{stem}_chunk{g}.py")
        files.add_bytes(script_name, codegen.worker_script(a, data_name, sites, False, g, _repeat(lay, g, sites))
                        .encode())
        extra = {codegen.state_name(g): state_of[g]} if g > 0 else {}
        for i, (part, pname) in enumerate(zip(parts, part_names, strict=True)):
            task = {"name": f"chunk{g}-{i:03d}", "script": script_name,
                    "inputs": {data_name: pname, **extra}, "outputs": [codegen.PARTIAL]}
            mem = memory.estimate(part.rows, cols, fc, copies=1 + _row_sized(chunked, g), per_row=per_row)
            add(task, "chunk", mem, len(hdr) + part.end - part.start, cost.seconds(part.rows, sites))
        for site in sites:
            local = [codegen.partial_name(g, i) for i in range(len(parts))]
            merged[site.index] = local
            stage_inputs = inputs_of_stage[lay.stage_of[site.index]]
            for i, name in enumerate(local):
                stage_inputs[name] = f"task:chunk{g}-{i:03d}/{codegen.PARTIAL}"
    for g, sites in sorted(whole.items()):
        for site in sites:
            script_name = names(f"{stem}_call{g}_{site.id}.py")
            files.add_bytes(script_name, codegen.worker_script(a, data_name, [site], True, g,
                                                               _repeat(lay, g, [site])).encode())
            files.add_path(data_name, Path(data[data_name]))
            extra = {codegen.state_name(g): state_of[g]} if g > 0 else {}
            task = {"name": f"call{g}-{site.id}", "script": script_name,
                    "inputs": {data_name: data_name, **extra}, "outputs": [codegen.PARTIAL]}
            add(task, "call", memory.estimate(scan.rows, cols, fc, copies=2, per_row=per_row), scan.size,
                cost.seconds(scan.rows, [site]))
            local = codegen.partial_name(g, call=site.id)
            merged[site.index] = [local]
            inputs_of_stage[lay.stage_of[site.index]][local] = f"task:call{g}-{site.id}/{codegen.PARTIAL}"
    header_name = names(f"{dstem}_header.csv")
    files.add_bytes(header_name, hdr)
    for c in range(1, lay.stages + 1):
        final = c == lay.stages
        order = [i for i, s in lay.stage_of.items() if s == c]
        if c == 1:  # the load block runs where it stood (after statements that precede it)
            order = [i for i in order if i < a.load.start] + [-1] + [i for i in order if i > a.load.start]
        script_name = names(f"{stem}_combine{c}.py")
        text = codegen.combine_script(a, data_name, stage=c, final=final, statements=order,
                                      merged={i: merged[i] for i in order if i in merged},
                                      n_rows=scan.rows, live=lay.live.get(c, []))
        files.add_bytes(script_name, text.encode())
        inputs = {data_name: header_name} if c == 1 else {codegen.state_name(c - 1): state_of[c - 1]}
        if c > 1 and a.load.header_row:
            inputs[data_name] = header_name
        inputs.update(inputs_of_stage[c])
        task = {"name": f"combine{c}", "script": script_name, "inputs": inputs}
        if not final:
            task["outputs"] = [codegen.state_name(c)]
        row_sized = sum(1 for i in order if i in merged and _row_sized({0: [a.calls[i]]}, 0))
        row_sized += 0.5 * sum(1 for i in order if i in merged and a.calls[i].reducer is None)
        add(task, "combine", memory.estimate(scan.rows, cols, fc, copies=row_sized, per_row=per_row),
            len(hdr) if c == 1 else 0, row_sized * scan.rows * cost.default_pass_s)
    spec = render_spec(f"{a.script.name} (automatic)", tasks)
    notes.append(f"{len(tasks)} tasks: " + ", ".join(
        f"{n} {kind}" for kind in ("chunk", "call", "combine")
        if (n := sum(1 for t in planned if t.kind == kind))))
    return Plan(spec_toml=spec, files=files, explanation=notes, tasks=planned)


def _single(a: Analysis, data: dict[str, Path], data_name: str | None, scan: CsvScan | None,
            notes: list[str]) -> Plan:
    """The script as it is (FILE_NAME pointed at the upload), one task, every data file an input."""
    files = PlanFiles()
    source = replace_file_name(a.script, data_name) if data_name else a.script.source
    files.add_bytes(a.script.name, source.encode())
    for name, p in data.items():
        files.add_path(name, Path(p))
    size = sum(Path(p).stat().st_size for p in data.values())
    seconds = size / THROUGHPUT_BPS
    if scan is not None and a.load is not None:
        cost = row_cost(scan, a.load, a.script, list(a.calls.values()))
        mem = memory.estimate(scan.rows, scan.columns, scan.field_chars, copies=2, per_row=cost.bytes_per_row)
        seconds = cost.seconds(scan.rows, list(a.calls.values()))
    else:
        mem = memory.estimate_plain(size)
    task = {"name": "main", "script": a.script.name, "inputs": {n: n for n in data}, "memory": mem}
    spec = render_spec(a.script.name, [task])
    return Plan(spec_toml=spec, files=files, explanation=notes,
                tasks=[PlannedTask("main", "single", mem, [], size, STARTUP_S + seconds)])
