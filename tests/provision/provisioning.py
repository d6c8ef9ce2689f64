"""Helpers for the provisioning tests: the control node's tools, running the playbook, its recap."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ANSIBLE_DIR = ROOT / "ansible"
ANSIBLE_VENV = ROOT / ".venv" / "ansible"
ANSIBLE_BIN = ANSIBLE_VENV / "bin"
LOGS = ROOT / "build" / "provision-logs"  # every playbook run's output, kept after the test


def ensure_ansible() -> Path:
    """The control node's tools, installed as `make provision` does (.venv/ansible)."""
    requirements = ANSIBLE_DIR / "requirements.txt"
    stamp = ANSIBLE_VENV / ".installed"
    if not stamp.is_file() or stamp.read_text() != requirements.read_text():
        subprocess.run([sys.executable, "-m", "venv", str(ANSIBLE_VENV)], check=True)
        subprocess.run([str(ANSIBLE_BIN / "pip"), "install", "-q", "-r", str(requirements)], check=True)
        stamp.write_text(requirements.read_text())
    return ANSIBLE_BIN


@dataclass
class PlaybookRun:
    rc: int
    output: str
    seconds: float

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        """PLAY RECAP: host -> {ok, changed, unreachable, failed, skipped, rescued, ignored}."""
        hosts = {}
        tail = self.output.rsplit("PLAY RECAP", 1)[-1]
        for host, counts in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", tail, re.MULTILINE):
            hosts[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)}
        return hosts

    def changed_tasks(self) -> list[str]:
        """The names of the tasks that reported a change (for a readable failure)."""
        names, current = [], ""
        for line in self.output.splitlines():
            if line.startswith(("TASK [", "RUNNING HANDLER [")):
                current = line
            elif line.startswith("changed:") and current not in names:
                names.append(current)
        return names


def run(argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path = ANSIBLE_DIR) -> PlaybookRun:
    """Run a command (make provision, ansible-playbook); its output is kept in build/provision-logs/
    under `log`'s name."""
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", **(env or {})},
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    result = PlaybookRun(proc.returncode, proc.stdout, time.monotonic() - started)
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{time.strftime('%Y%m%d-%H%M%S')}-{log.name}"
    log.write_text(proc.stdout)
    print(f"{' '.join(argv)}: rc={proc.returncode} in {result.seconds:.0f}s (log: {log})")
    return result


SOURCES = ["proto", "pki", "master", "worker", "client", "vm-images"]


def snapshot_sources(dest: Path) -> Path:
    """Copy what the playbook reads from the repo (packages, the image builder) to `dest`."""
    for name in SOURCES:
        shutil.copytree(ROOT / name, dest / name, symlinks=True, ignore=shutil.ignore_patterns(
            "__pycache__", "*.egg-info", "*.pyc", "build", "dist", "out"))
    return dest


def make_provision(source_dir: Path | None = None) -> list[str]:
    """`make provision`, optionally from a snapshot of the sources (runsurge_source_dir)."""
    argv = ["make", "-C", str(ROOT), "provision"]
    if source_dir is not None:
        argv.append(f"ANSIBLE_ARGS=-e runsurge_source_dir={source_dir}")
    return argv

