"""Job environments on the worker: a job's wheels (fetched and hash-checked like any input) unpacked
ONCE per environment id into a read-only tree under the worker's home, which sandboxes put first on
the task's sys.path. Installing a wheel is unpacking it: no package code runs. Trees are kept with
a size cap (setting env_cache_bytes) and evicted least recently used, never while a task uses one.
For VM sandboxes each tree also gets a read-only ext4 image beside it (`<id>.ext4`, made once by
mke2fs -d, which needs no root and no mount): a VM gets it as a disc, not as thousands of files
over SMB."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from runsurge_proto.wire import is_data_id

log = logging.getLogger("runsurge.worker.environments")
MANIFEST = ".runsurge-env.json"  # beside the tree, not in it: {"wheels": [...], "size": N}


class WheelError(ValueError):
    """A wheel that cannot be installed safely (bad archive, a path escaping the tree)."""


def image_of(tree: Path) -> Path:
    """The ext4 image of an environment's tree (made when the cache keeps images)."""
    return tree.with_name(tree.name + ".ext4")


class EnvironmentCache:
    def __init__(self, root: Path, cap_bytes: int, images: bool = False):
        self.root, self.cap_bytes, self.images = root, cap_bytes, images
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._building: dict[str, threading.Lock] = {}
        self._in_use: dict[str, int] = {}
        self.builds = 0  # environments built by this process (the rest were reused)
        for tmp in root.glob(".tmp-*"):  # a build (tree or image) interrupted by a crash
            _remove(tmp)

    def held(self) -> list[str]:
        """Environment ids ready here (reported in the heartbeat)."""
        return sorted(p.name for p in self.root.iterdir() if is_data_id(p.name) and (p / MANIFEST).exists())

    @contextmanager
    def use(self, env_id: str, wheels: list[tuple[str, str]],
            wheel_path: Callable[[str], Path]) -> Iterator[Path]:
        """The tree of `env_id`, built from `wheels` [(file name, data id)] if not here yet; the
        wheels' bytes are at `wheel_path(data_id)` (already fetched, hash-checked). Held (never
        evicted) until the block ends."""
        if not is_data_id(env_id):
            raise WheelError("malformed environment id")
        with self._lock:
            gate = self._building.setdefault(env_id, threading.Lock())
            self._in_use[env_id] = self._in_use.get(env_id, 0) + 1
        try:
            with gate:
                tree = self.root / env_id
                ids = sorted(d for _, d in wheels)
                manifest = tree / MANIFEST
                if manifest.exists() and json.loads(manifest.read_text())["wheels"] == ids:
                    if self.images and not image_of(tree).exists():  # kept by a sandbox without VMs
                        self._image(tree)
                    os.utime(manifest)  # recently used
                    log.info("environment reused env=%s", env_id[:12])
                else:
                    start = time.monotonic()
                    self._build(tree, wheels, ids, wheel_path)
                    log.info("environment built env=%s wheels=%d in %.2fs", env_id[:12], len(wheels),
                             time.monotonic() - start)
            self._evict()
            yield tree
        finally:
            with self._lock:
                self._in_use[env_id] -= 1
                if not self._in_use[env_id]:
                    del self._in_use[env_id]

    def _build(self, tree: Path, wheels: list[tuple[str, str]], ids: list[str],
               wheel_path: Callable[[str], Path]) -> None:
        tmp = self.root / f".tmp-{uuid.uuid4().hex}"
        try:
            tmp.mkdir()
            size = sum(unpack_wheel(wheel_path(data_id), tmp, name) for name, data_id in wheels)
            (tmp / MANIFEST).write_text(json.dumps({"wheels": ids, "size": size}))
            _read_only(tmp)
            if tree.exists():  # a tree of other wheels under this id (a changed master): replaced
                _remove(tree)
            image_of(tree).unlink(missing_ok=True)
            tmp.rename(tree)
            if self.images:
                self._image(tree)
            self.builds += 1
        except BaseException:
            _remove(tmp)
            raise

    def _image(self, tree: Path) -> None:
        """Write the tree's ext4 image (atomically: a crash leaves a .tmp-, removed at start)."""
        tmp = self.root / f".tmp-{uuid.uuid4().hex}.ext4"
        try:
            make_ext4_image(tree, tmp)
            tmp.rename(image_of(tree))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _evict(self) -> None:
        """Drop least recently used trees not in use while the cache is over its cap."""
        with self._lock:
            entries = []
            for p in self.root.iterdir():
                m = p / MANIFEST
                if is_data_id(p.name) and m.exists():
                    image = image_of(p)
                    size = json.loads(m.read_text())["size"] + (image.stat().st_size if image.exists() else 0)
                    entries.append((m.stat().st_mtime, p, size))
            total = sum(size for _, _, size in entries)
            for _, p, size in sorted(entries, key=lambda e: e[0]):
                if total <= self.cap_bytes:
                    break
                if p.name in self._in_use:
                    continue
                _remove(p)
                image_of(p).unlink(missing_ok=True)
                total -= size
                log.info("environment evicted env=%s size=%d", p.name[:12], size)


def unpack_wheel(wheel: Path, dest: Path, name: str) -> int:
    """Unpack one wheel into `dest` as pip would install its purelib/platlib, without running
    anything; returns the bytes written. Scripts, headers and data of `*.data/` are not installed."""
    total = 0
    try:
        with zipfile.ZipFile(wheel) as z:
            for info in z.infolist():
                parts = PurePosixPath(info.filename).parts
                if info.is_dir():
                    continue
                if not parts or info.filename.startswith("/") or any(p in ("..", "") for p in parts) \
                        or "\\" in info.filename:
                    raise WheelError(f"wheel {name}: unsafe path {info.filename!r}")
                if parts[0].endswith(".data"):
                    if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                        continue
                    parts = parts[2:]
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise WheelError(f"wheel {name}: symbolic link {info.filename!r}")
                target = dest.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                total += info.file_size
    except (zipfile.BadZipFile, OSError) as e:
        raise WheelError(f"wheel {name} cannot be unpacked: {e}") from None
    return total


def make_ext4_image(tree: Path, image: Path) -> None:
    """An ext4 file system holding `tree`, sized to fit: 4 KiB blocks (a CD-ROM's 2 KiB sectors
    need at least that), no journal (it is never written), no reserved blocks."""
    files = blocks = 0
    for dirpath, dirnames, filenames in os.walk(tree):
        files += 1 + len(dirnames) + len(filenames)
        blocks += 1 + sum(-(-os.lstat(os.path.join(dirpath, f)).st_size // 4096) for f in filenames)
    size_kib = (blocks + files // 16 + 1024) * 4 * 11 // 10 + 8192  # +inode tables, metadata, slack
    cmd = ["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-O", "^has_journal", "-m", "0",
           "-N", str(files + 256), "-E", "root_owner=0:0", "-L", "runsurge-env", "-d", str(tree),
           str(image), f"{size_kib}K"]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise WheelError("mke2fs not found: install e2fsprogs for VM sandboxes' environments") from None
    except subprocess.CalledProcessError as e:
        raise WheelError(f"environment image failed: {e.stderr.strip()[-300:]}") from None
    image.chmod(0o444)


def _read_only(tree: Path) -> None:
    for dirpath, _, filenames in os.walk(tree):
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o444)
        os.chmod(dirpath, 0o555)


def _remove(tree: Path) -> None:
    if not tree.is_dir():
        tree.unlink(missing_ok=True)
        return
    for dirpath, _, _ in os.walk(tree):
        os.chmod(dirpath, 0o755)  # read-only folders cannot be emptied by a non-root worker
    shutil.rmtree(tree, ignore_errors=True)
