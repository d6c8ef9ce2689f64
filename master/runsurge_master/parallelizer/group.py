"""plan_group: manual mode's "group" shape. One script runs over each of N zip archives (a task
per archive, each with its own memory), then an aggregator script, on a worker like every other
task, receives all N outputs."""

from __future__ import annotations

import ast
import re
import zipfile
from pathlib import Path, PurePath

from runsurge_master.jobspec import NAME_RE, SpecError, check_file_name
from runsurge_master.parallelizer import memory as mem
from runsurge_master.parallelizer.model import Plan, PlanError, PlanFiles, PlannedTask, ScriptSyntaxError
from runsurge_master.parallelizer.spec import render_spec

DEFAULT_INPUT = "input.zip"
AGGREGATOR_MEMORY = 256 << 20


def plan_group(script_name: str, script: str, archives: dict[str, Path], memory: dict[str, int],
               aggregator_name: str, aggregator: str) -> Plan:
    try:
        for n in (script_name, aggregator_name, *archives):
            check_file_name(n, "file")
    except SpecError as e:
        raise PlanError(str(e)) from None
    for n in (script_name, aggregator_name):
        if not n.endswith(".py"):
            raise PlanError(f"{n!r} must be a .py script")
    if script_name == aggregator_name:
        raise PlanError("the group script and the aggregator need different names")
    if not archives:
        raise PlanError("a group job needs at least one archive")
    clash = {script_name, aggregator_name} & set(archives)
    if clash:
        raise PlanError(f"an archive has a script's name: {', '.join(sorted(clash))}")
    unknown = set(memory) - set(archives)
    if unknown:
        raise PlanError(f"memory given for unknown archive(s): {', '.join(sorted(unknown))}")
    tree = _parse(script, script_name)
    _parse(aggregator, aggregator_name)
    outputs = _written_files(tree)
    if not outputs:
        raise PlanError(f"{script_name}: cannot tell which file it writes; write the result with "
                        "open('result.csv', 'w') (a constant name) so the aggregator can receive it")
    local = _input_name(tree)
    files = PlanFiles()
    files.add_bytes(script_name, script.encode())
    files.add_bytes(aggregator_name, aggregator.encode())
    tasks, planned, agg_inputs = [], [], {}
    used: set[str] = {"aggregate"}
    for archive, path in archives.items():
        path = Path(path)
        if not path.is_file() or not zipfile.is_zipfile(path):
            raise PlanError(f"{archive} is not a zip archive")
        need = memory.get(archive)
        if need is not None and (not isinstance(need, int) or isinstance(need, bool) or need <= 0):
            raise PlanError(f"memory for {archive} must be a positive number of bytes")
        if need is None:
            with zipfile.ZipFile(path) as z:
                need = mem.estimate_plain(sum(i.file_size for i in z.infolist()))
        name = _task_name(archive, used)
        files.add_path(archive, path)
        tasks.append({"name": name, "script": script_name, "inputs": {local: archive}, "outputs": outputs,
                      "memory": need})
        planned.append(PlannedTask(name, "group", need, [], path.stat().st_size))
        for out in outputs:
            agg_inputs[f"{name}_{out}"] = f"task:{name}/{out}"
    tasks.append({"name": "aggregate", "script": aggregator_name, "inputs": agg_inputs,
                  "memory": AGGREGATOR_MEMORY})
    planned.append(PlannedTask("aggregate", "aggregate", AGGREGATOR_MEMORY, [t["name"] for t in tasks[:-1]], 0))
    example = next(iter(agg_inputs))
    explanation = [
        f"{len(archives)} task(s) run {script_name}, each with its archive as {local}",
        f"each writes {', '.join(outputs)}; {aggregator_name} then runs on a worker and finds them as "
        f"<task>_<file> (e.g. {example})",
    ]
    spec = render_spec(f"{Path(script_name).stem} (group)", tasks)
    return Plan(spec_toml=spec, files=files, explanation=explanation, tasks=planned)


def _parse(source: str, name: str) -> ast.Module:
    try:
        return ast.parse(source, filename=name)
    except SyntaxError as e:
        raise ScriptSyntaxError(f"{name}: syntax error at line {e.lineno}: {e.msg}") from None
    except ValueError as e:
        raise ScriptSyntaxError(f"{name}: cannot be parsed: {e}") from None


def _const(e: ast.expr) -> str | None:
    return e.value if isinstance(e, ast.Constant) and isinstance(e.value, str) else None


def _written_files(tree: ast.Module) -> list[str]:
    """Constant file names the script opens for writing (open, Path(...).write_*, ZipFile(..., 'w'))."""
    out: list[str] = []
    for n in ast.walk(tree):
        if not isinstance(n, ast.Call):
            continue
        f = n.func
        fname = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        name = None
        if fname in {"open", "ZipFile"} and n.args:
            mode = n.args[1] if len(n.args) > 1 else next((k.value for k in n.keywords if k.arg == "mode"), None)
            if _const(mode) and set(_const(mode)) & set("wax"):
                name = _const(n.args[0])
        elif fname in {"write_text", "write_bytes"} and isinstance(f, ast.Attribute) \
                and isinstance(f.value, ast.Call) and f.value.args:
            name = _const(f.value.args[0])
        if name and NAME_RE.match(name) and name not in out:
            out.append(name)
    return out


def _input_name(tree: ast.Module) -> str:
    """The archive's name in the task folder: FILE_NAME or the one .zip constant the script names."""
    for s in tree.body:
        if isinstance(s, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "FILE_NAME" for t in s.targets) \
                and _const(s.value):
            return PurePath(_const(s.value).replace("\\", "/")).name
    zips = {c for n in ast.walk(tree) if (c := _const(n)) and c.endswith(".zip") and NAME_RE.match(c)}
    return zips.pop() if len(zips) == 1 else DEFAULT_INPUT


def _task_name(archive: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]", "_", PurePath(archive).stem)[:100] or "part"
    name, n = base, 1
    while name in used or not NAME_RE.match(name):
        name, n = f"{base}-{n}", n + 1
    used.add(name)
    return name
