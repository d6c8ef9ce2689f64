"""Build the wheelhouse the playbook installs from: RunSurge's five packages and every dependency.

    python ansible/build_wheelhouse.py [--out DIR] [--src DIR]

Runs on the control node (the playbook calls it; `make provision` too). The result is ONE file,
`DIR/runsurge-wheelhouse-<hash>.tar`, holding the wheels and `wheelhouse.json` (the Python version
they were built for): targets install from it with `pip --no-index --find-links`, never from the
registry. `<hash>` covers the packages' sources (paths and contents), so an unchanged tree is never
rebuilt and a changed one gives a new file. Prints one JSON line: {"path", "hash", "python", "built"}.
The control node's Python must have the targets' major.minor version (3.11 for Debian 12): the
playbook checks it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["proto", "pki", "master", "worker", "client"]
EXTRAS = {"master": "[postgresql]"}  # the master's wheelhouse can also talk to PostgreSQL
SKIP_DIRS = {"__pycache__", "build", "dist", ".pytest_cache", ".ruff_cache"}
KEEP = 2  # wheelhouses kept in DIR (the newest ones)


def _source_files(package: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(package):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        files += [Path(dirpath) / f for f in sorted(filenames) if not f.endswith((".pyc", ".pyo"))]
    return files


def source_hash(src: Path = ROOT) -> str:
    """SHA-256 over every source file of the five packages (relative path and bytes), 16 hex digits."""
    h = hashlib.sha256()
    h.update(f"python{sys.version_info.major}.{sys.version_info.minor}\0".encode())
    for name in PACKAGES:
        for path in _source_files(src / name):
            h.update(str(path.relative_to(src)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build(out: Path, src: Path = ROOT) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    key = source_hash(src)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    final = out / f"runsurge-wheelhouse-{key}.tar"
    result = {"path": str(final), "hash": key, "python": python, "built": False}
    if final.is_file():
        return result
    with tempfile.TemporaryDirectory(prefix="wheelhouse-", dir=out) as tmp:
        clean, wheels = Path(tmp) / "src", Path(tmp) / "wheels"
        for name in PACKAGES:  # build from a clean copy: nothing is written into the work tree
            shutil.copytree(src / name, clean / name, ignore=shutil.ignore_patterns(
                *SKIP_DIRS, "*.egg-info", "*.pyc"))
        targets = [str(clean / name) + EXTRAS.get(name, "") for name in PACKAGES]
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(wheels), *targets],
                       check=True, stdout=sys.stderr)
        names = sorted(p.name for p in wheels.glob("*.whl"))
        (wheels / "wheelhouse.json").write_text(json.dumps(
            {"hash": key, "python": python, "wheels": names}, indent=2) + "\n")
        part = out / f".{final.name}.part"
        with tarfile.open(part, "w") as tar:
            for path in sorted(wheels.iterdir()):
                tar.add(path, arcname=path.name)
        os.replace(part, final)
    old = sorted(out.glob("runsurge-wheelhouse-*.tar"), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in old[KEEP:]:
        stale.unlink()
    result["built"] = True
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "wheelhouse",
                        help="where the wheelhouse tarballs go (default build/wheelhouse)")
    parser.add_argument("--src", type=Path, default=ROOT,
                        help="the folder holding proto/ pki/ master/ worker/ client/ (default: this repo)")
    parser.add_argument("--hash", action="store_true", help="print the source hash and exit")
    args = parser.parse_args()
    if args.hash:
        print(source_hash(args.src.resolve()))
        return
    print(json.dumps(build(args.out.resolve(), args.src.resolve())))


if __name__ == "__main__":
    main()
