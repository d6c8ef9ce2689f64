"""A job's Python packages: requirement lines checked, resolved to wheels, stored as one environment.

Resolution never runs package code: `pip download --only-binary=:all:` for the guest's interpreter
and platform (settings env_python_version, env_platform) only ever fetches wheels, whose metadata
is read, not executed; a package with only a source distribution is refused, never built here.
Sources: an operator's wheelhouse folder (works offline) and/or a package index (package_index_url).
Every wheel goes into the object store (content-addressed); the environment id is the sha256 of
the lock (sorted `name==version sha256` lines), so identical sets across users share one
environment, and a requirement set already resolved is looked up, not resolved again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from sqlalchemy import select
from sqlalchemy.orm import Session

from runsurge_master.config import MasterConfig
from runsurge_master.jobspec import SpecError
from runsurge_master.lifecycle import ensure_data
from runsurge_master.models import Environment, EnvironmentResolution, Task
from runsurge_master.store import ObjectStore

MAX_REQUIREMENTS = 200


@dataclass(frozen=True)
class Wheel:
    name: str      # canonical project name
    version: str
    data_id: str   # sha256 of the wheel file = its object id
    size: int
    filename: str  # the wheel's own name (its tags say where it installs)


def parse_requirements(lines: list[str], where: str) -> list[str]:
    """Requirement lines as a user wrote them → sorted canonical lines. Comments and blank lines are
    skipped; pip options, URLs and paths are refused (the master's configured sources are the only
    sources), as is anything `packaging` cannot parse."""
    out: set[str] = set()
    for n, raw in enumerate(lines, 1):
        if not isinstance(raw, str):
            raise SpecError(f"{where}: requirement #{n} must be a string like 'pandas==2.2.3'")
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        if line.startswith("-"):
            raise SpecError(f"{where} line {n}: {line!r}: pip options are not accepted (only requirements "
                            "like 'pandas==2.2.3'; the master chooses the package sources)")
        try:
            req = Requirement(line)
        except InvalidRequirement as e:
            why = str(e).splitlines()[0] if str(e) else "unparsable"  # packaging's message draws a caret below
            raise SpecError(f"{where} line {n}: {line!r} is not a valid requirement ({why})") from None
        if req.url:
            raise SpecError(f"{where} line {n}: {line!r}: URL requirements are not accepted (name a "
                            "package from the master's index or wheelhouse)")
        req.name = canonicalize_name(req.name)
        out.add(str(req))
    if len(out) > MAX_REQUIREMENTS:
        raise SpecError(f"{where}: {len(out)} requirements, the limit is {MAX_REQUIREMENTS}")
    return sorted(out)


def requirements_key(cfg: MasterConfig, requirements: list[str]) -> str:
    """What a resolution depends on: the set, the target interpreter/platform and the sources."""
    basis = {"requirements": requirements, "python": cfg.env_python_version, "platform": cfg.env_platform,
             "index": cfg.package_index_url, "wheelhouse": str(cfg.wheelhouse_dir)}
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()


def lock_text(wheels: list[Wheel]) -> str:
    return "".join(f"{w.name}=={w.version} {w.data_id}\n" for w in sorted(wheels, key=lambda w: (w.name, w.data_id)))


def environment_id(wheels: list[Wheel]) -> str:
    return hashlib.sha256(lock_text(wheels).encode()).hexdigest()


def of_task(task: Task) -> Environment | None:
    """The environment a task runs with (its own, or its job's: chosen when the job was created).
    Every reader of a task's environment goes through here or of_tasks."""
    return task.environment


def resolve(s: Session, cfg: MasterConfig, store: ObjectStore, requirements: list[str]) -> Environment:
    """The environment for a requirement set: looked up if this set was resolved before, else
    resolved to wheels (SpecError with the resolver's reason when it cannot be), stored, recorded."""
    key = requirements_key(cfg, requirements)
    cached = s.get(EnvironmentResolution, key)
    if cached is not None:
        return s.get(Environment, cached.environment_id)
    wheels = _download(cfg, store, requirements, keep=lambda ids: _referenced_wheels(s) & ids)
    for w in wheels:
        ensure_data(s, w.data_id, w.size, None)
    env_id = environment_id(wheels)
    env = s.get(Environment, env_id)
    if env is None:
        env = Environment(id=env_id, requirements="\n".join(requirements), lock=lock_text(wheels),
                          wheels=[w.__dict__ for w in wheels], size=sum(w.size for w in wheels))
        s.add(env)
    s.add(EnvironmentResolution(key=key, environment_id=env_id))
    s.flush()
    return env


def of_tasks(s: Session, task_ids: list[str]) -> dict[str, tuple[str, int]]:
    """Task id → (environment id, size in bytes), for those of `task_ids` that have one (as of_task)."""
    if not task_ids:
        return {}
    return {tid: (env_id, size) for tid, env_id, size in s.execute(
        select(Task.id, Environment.id, Environment.size)
        .join(Environment, Environment.id == Task.environment_id).where(Task.id.in_(task_ids)))}


def _referenced_wheels(s: Session) -> set[str]:
    return {w["data_id"] for wheels in s.scalars(select(Environment.wheels)) for w in wheels}


def referenced_wheels(s: Session) -> set[str]:
    """Every stored environment's wheels (for the store's garbage collector)."""
    return _referenced_wheels(s)


def platform_tags(platform: str) -> list[str]:
    """Every platform tag a guest of `platform` runs: a glibc 2.36 guest runs wheels built for any
    older glibc (manylinux_2_28, manylinux2014 = 2_17, ...). pip takes --platform literally."""
    m = re.fullmatch(r"manylinux_(\d+)_(\d+)_(\w+)", platform)
    if not m:
        return [platform]
    major, minor, arch = int(m[1]), int(m[2]), m[3]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags = []
    for y in range(minor, 4, -1):
        tags.append(f"manylinux_{major}_{y}_{arch}")
        if major == 2 and y in legacy:
            tags.append(f"{legacy[y]}_{arch}")
    return tags


def _pip_command(cfg: MasterConfig, dest: Path, req_file: Path) -> list[str]:
    py = cfg.env_python_version
    cmd = [sys.executable, "-m", "pip", "download", "--isolated", "--disable-pip-version-check", "--no-input",
           "--progress-bar", "off", "--only-binary=:all:", "--dest", str(dest),
           "--python-version", py, "--implementation", "cp", "--abi", "cp" + py.replace(".", ""),
           *[a for tag in platform_tags(cfg.env_platform) for a in ("--platform", tag)], "-r", str(req_file)]
    cmd += ["--index-url", cfg.package_index_url] if cfg.package_index_url else ["--no-index"]
    if cfg.wheelhouse_dir != Path():
        cmd += ["--find-links", str(cfg.wheelhouse_dir)]
    return cmd


def _download(cfg: MasterConfig, store: ObjectStore, requirements: list[str],
              keep: Callable[[set[str]], set[str]]) -> list[Wheel]:
    """Stores the wheels; on a refusal, removes those it stored that nothing else holds."""
    stored: list[Wheel] = []
    try:
        return _fetch(cfg, store, requirements, stored)
    except BaseException:
        ids = {w.data_id for w in stored}
        for data_id in ids - keep(ids):
            store.path(data_id).unlink(missing_ok=True)
        raise


def _fetch(cfg: MasterConfig, store: ObjectStore, requirements: list[str], wheels: list[Wheel]) -> list[Wheel]:
    if not cfg.package_index_url and cfg.wheelhouse_dir == Path():
        raise SpecError("this master has no package source (settings package_index_url, wheelhouse_dir): "
                        "jobs cannot ask for packages here")
    with tempfile.TemporaryDirectory(prefix="runsurge-resolve-") as tmp:
        dest, req_file = Path(tmp) / "wheels", Path(tmp) / "requirements.txt"
        req_file.write_text("\n".join(requirements) + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        try:
            done = subprocess.run(_pip_command(cfg, dest, req_file), capture_output=True, text=True, env=env,
                                  timeout=cfg.resolve_timeout_s, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise SpecError(f"resolving the requirements took longer than {cfg.resolve_timeout_s:.0f} s") from None
        if done.returncode != 0:
            raise SpecError(_reason(done.stderr, cfg))
        total = 0
        for path in sorted(dest.iterdir()):
            try:
                name, version, _, _ = parse_wheel_filename(path.name)
            except InvalidWheelFilename:  # --only-binary makes pip fetch wheels only; never trust that blindly
                raise SpecError(f"the resolver produced {path.name!r}, which is not a wheel") from None
            total += path.stat().st_size
            if total > cfg.max_environment_bytes:
                raise SpecError(f"the requirements' wheels exceed {cfg.max_environment_bytes} bytes "
                                "(setting max_environment_bytes)")
            data_id, size = store.add_file(path, max_size=cfg.max_environment_bytes, link=True)
            wheels.append(Wheel(name=str(name), version=str(version), data_id=data_id, size=size,
                                filename=path.name))
        if not wheels:
            raise SpecError("the requirements resolved to no wheels")
        return wheels


def _reason(stderr: str, cfg: MasterConfig) -> str:
    """pip's own ERROR lines, with what they mean here."""
    errors = [ln.removeprefix("ERROR: ").strip() for ln in stderr.splitlines() if ln.startswith("ERROR:")]
    reason = "; ".join(e for e in errors if e) or (stderr.strip().splitlines() or ["the resolver failed"])[-1]
    hint = ""
    if "Could not find a version" in reason or "No matching distribution" in reason:
        hint = (f" (RunSurge installs wheels only, for CPython {cfg.env_python_version} on {cfg.env_platform}: "
                "a package that is unknown to the master's sources, or has only a source distribution, "
                "cannot be used; packages are never built from source)")
    elif "ResolutionImpossible" in reason or "conflict" in reason.lower():
        hint = " (the requirements pin versions that cannot all be installed together)"
    return f"cannot resolve the requirements: {reason[:2000]}{hint}"
