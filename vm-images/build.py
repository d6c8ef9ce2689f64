"""Build the RunSurge guest image from Debian's packages (debootstrap), cached by recipe hash.

    python vm-images/build.py [--out DIR]

Prints the image directory (``DIR/<hash>``) holding ``disk.qcow2``, ``vmlinuz``, ``initrd.img``,
``disk.vdi`` and ``manifest.json``. The hash covers every recipe file and this builder, so a changed
recipe gives a new directory and an unchanged one is never rebuilt. A build happens in a temporary
directory renamed into place at the end: a crashed build never leaves an image that looks valid.
Needs root (debootstrap, chroot), debootstrap, e2fsprogs >= 1.43 (mkfs.ext4 -d) and qemu-img.

``disk.qcow2`` is the bare ext4 root file system, booted with QEMU's ``-kernel``. ``disk.vdi`` is
the same file system as partition 2 of a disk whose partition 1 is a small FAT boot partition with
syslinux, the same kernel and initrd (VirtualBox boots from its BIOS). The boot loader tools are
Debian packages installed in the tree for the build and purged before the file system is made.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECIPE = HERE / "recipe"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Free space left in the guest's root file system beyond what the tree uses. Kept small on purpose:
# a script that fills the disk fills this, inside its own throw-away overlay.
HEADROOM_MB = 768
MANIFEST = "manifest.json"
# The guest's importable top-level Python modules, one a line (the master refuses a job whose script
# imports anything else that its requirements do not provide: master/runsurge_master/imports.py).
MODULES = "python-modules.txt"
MODULES_SCRIPT = (  # run by the guest's own python3; find_spec only consults finders, no module runs
    "import importlib.util, pkgutil, sys\n"
    "names = {m.name for m in pkgutil.iter_modules()} | set(sys.builtin_module_names)\n"
    "names |= {n for n in sys.stdlib_module_names if importlib.util.find_spec(n) is not None}\n"
    "print('\\n'.join(sorted(n for n in names if n.isidentifier())))\n")
# The VDI's boot partition (FAT16, syslinux) and the kernel command line its boot loader passes.
BOOT_TOOLS = ["syslinux", "syslinux-common", "mtools", "dosfstools"]
BOOT_PART_MB = 48
VDI_CMDLINE = "root=LABEL=rsroot rw console=ttyS0 quiet net.ifnames=0 random.trust_cpu=on"
SECTOR = 512


def default_out_dir() -> Path:
    return Path(os.environ.get("RUNSURGE_IMAGE_DIR", "/var/cache/runsurge/images"))


def recipe_hash() -> str:
    """SHA-256 over the recipe files (path, mode, content) and this builder, first 16 hex digits."""
    h = hashlib.sha256()
    files = sorted(p for p in RECIPE.rglob("*") if p.is_file()) + [Path(__file__).resolve()]
    for path in files:
        h.update(str(path.relative_to(HERE)).encode() + b"\0")
        h.update(oct(path.stat().st_mode & 0o777).encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def find_image(out: Path | None = None) -> Path | None:
    """The finished image for the current recipe, or None when it has not been built."""
    path = (out or default_out_dir()) / recipe_hash()
    return path if (path / MANIFEST).is_file() else None


def _run(cmd: list[str], **kw) -> None:
    """Run a build step in its own process group, so an interrupted build stops all of it."""
    print("+", " ".join(cmd)[:200], file=sys.stderr, flush=True)
    proc = subprocess.Popen(cmd, start_new_session=True, **kw)
    try:
        if proc.wait():
            raise subprocess.CalledProcessError(proc.returncode, cmd)
    except BaseException:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        raise


def _packages() -> list[str]:
    lines = (RECIPE / "packages.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def _bootstrap(tree: Path) -> None:
    mirror = os.environ.get("RUNSURGE_DEBIAN_MIRROR", DEFAULT_MIRROR)
    _run(["debootstrap", "--variant=minbase", "--components=main",
          "--include=" + ",".join(_packages() + BOOT_TOOLS), SUITE, str(tree), mirror],
         stdout=subprocess.DEVNULL)


def _configure(tree: Path) -> None:
    shutil.copytree(RECIPE / "overlay", tree, dirs_exist_ok=True, symlinks=True)
    shutil.copy2(RECIPE / "setup.sh", tree / "setup.sh")
    _run(["mount", "-t", "proc", "proc", str(tree / "proc")])
    try:
        _run(["chroot", str(tree), "/setup.sh"])
        _boot_partition(tree)
        listing = subprocess.run(
            ["chroot", str(tree), "dpkg-query", "-W", "-f", "${Package}=${Version}\n"],
            check=True, capture_output=True, text=True).stdout
        modules = subprocess.run(["chroot", str(tree), "/usr/bin/python3", "-I", "-c", MODULES_SCRIPT],
                                 check=True, capture_output=True, text=True, cwd="/").stdout
    finally:
        _run(["umount", str(tree / "proc")])
    (tree / "setup.sh").unlink()
    (tree / "etc/runsurge/packages.lock").write_text(listing)
    (tree / "etc/runsurge" / MODULES).write_text(modules)


def _boot_partition(tree: Path) -> None:
    """Make the VDI's boot partition (tree/boot.fat, syslinux + kernel + initrd) and keep the MBR
    boot code (tree/boot.mbr), with the tools of the tree's own Debian, then purge those tools."""
    cfg = (f"DEFAULT runsurge\nPROMPT 0\nTIMEOUT 0\nSERIAL 0 115200\nLABEL runsurge\n"
           f"  LINUX /vmlinuz\n  INITRD /initrd.img\n  APPEND {VDI_CMDLINE}\n")
    (tree / "syslinux.cfg").write_text(cfg)
    script = (
        "set -e; cd /boot; k=$(ls vmlinuz-*); v=${k#vmlinuz-}; "
        f"mkfs.fat -F 16 -n RSBOOT -i 52535253 -C /boot.fat {BOOT_PART_MB * 1024} >/dev/null; "
        "mcopy -i /boot.fat $k ::/vmlinuz; mcopy -i /boot.fat initrd.img-$v ::/initrd.img; "
        "mcopy -i /boot.fat /syslinux.cfg ::/syslinux.cfg; syslinux --install /boot.fat; "
        "cp /usr/lib/syslinux/mbr/mbr.bin /boot.mbr; rm /syslinux.cfg; "
        "dpkg --purge " + " ".join(BOOT_TOOLS) + " >/dev/null")
    _run(["chroot", str(tree), "sh", "-c", script])


def _mbr(boot_code: bytes, partitions: list[tuple[int, int, int, bool]]) -> bytes:
    """A DOS partition table: (type, first sector, sectors, active) per partition; LBA only."""
    mbr = bytearray(SECTOR)
    mbr[:440] = boot_code[:440]
    mbr[440:444] = b"RSRS"  # disk signature: fixed, the build is reproducible
    for i, (ptype, first, count, active) in enumerate(partitions):
        entry = struct.pack("<B3sB3sII", 0x80 if active else 0, b"\xfe\xff\xff", ptype,
                            b"\xfe\xff\xff", first, count)
        mbr[446 + 16 * i:462 + 16 * i] = entry
    mbr[510:] = b"\x55\xaa"
    return bytes(mbr)


def _bootable_raw(boot_mbr: Path, boot_fat: Path, root_raw: Path, out: Path) -> None:
    """MBR + FAT boot partition (active) + the root file system as partition 2, sparse."""
    first = (1 << 20) // SECTOR  # 1 MiB alignment
    fat_sectors = boot_fat.stat().st_size // SECTOR
    root_first = first + fat_sectors
    root_sectors = root_raw.stat().st_size // SECTOR
    with open(out, "wb") as f:
        f.write(_mbr(boot_mbr.read_bytes(), [(0x0E, first, fat_sectors, True),  # FAT16 LBA
                                             (0x83, root_first, root_sectors, False)]))
        f.truncate((root_first + root_sectors) * SECTOR)
    for part, at in ((boot_fat, first), (root_raw, root_first)):
        _run(["dd", f"if={part}", f"of={out}", "bs=1M", f"seek={at * SECTOR}", "oflag=seek_bytes",
              "conv=sparse,notrunc", "status=none"])


def _boot_files(tree: Path, dest: Path) -> str:
    """Copy the kernel and initrd out of /boot (direct kernel boot); returns the kernel version."""
    kernels = sorted((tree / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise RuntimeError(f"expected one kernel in /boot, found {kernels}")
    version = kernels[0].name.removeprefix("vmlinuz-")
    shutil.copy2(kernels[0], dest / "vmlinuz")
    shutil.copy2(tree / "boot" / f"initrd.img-{version}", dest / "initrd.img")
    return version


def _tree_mb(tree: Path) -> int:
    out = subprocess.run(["du", "-sxm", str(tree)], check=True, capture_output=True, text=True)
    return int(out.stdout.split()[0])


def _make_disks(tree: Path, dest: Path) -> int:
    # The boot partition and MBR code leave the tree: they are not part of the root file system.
    boot_fat, boot_mbr = dest / "boot.fat", dest / "boot.mbr"
    shutil.move(tree / "boot.fat", boot_fat)
    shutil.move(tree / "boot.mbr", boot_mbr)
    size_mb = (_tree_mb(tree) * 115 // 100 + HEADROOM_MB + 63) // 64 * 64
    raw = dest / "disk.raw"
    with open(raw, "wb") as f:
        f.truncate(size_mb << 20)
    _run(["mkfs.ext4", "-q", "-F", "-L", "rsroot", "-d", str(tree), str(raw)])
    _run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(dest / "disk.qcow2")])
    bootable = dest / "disk-bootable.raw"
    _bootable_raw(boot_mbr, boot_fat, raw, bootable)
    _run(["qemu-img", "convert", "-f", "raw", "-O", "vdi", str(bootable), str(dest / "disk.vdi")])
    for path in (raw, bootable, boot_fat, boot_mbr):
        path.unlink()
    return size_mb


def build(out: Path | None = None, force: bool = False) -> Path:
    """Build (or find) the image for the current recipe; returns its directory."""
    out = (out or default_out_dir()).resolve()
    out.mkdir(parents=True, exist_ok=True)
    key = recipe_hash()
    final = out / key
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; a waiter then finds it done
        if (final / MANIFEST).is_file() and not force:
            return final
        if os.geteuid() != 0:
            raise SystemExit("building the image needs root (debootstrap, chroot): run `sudo make image`")
        tools = [t for t in ("debootstrap", "mkfs.ext4", "qemu-img", "chroot") if shutil.which(t) is None]
        if tools:
            raise SystemExit(f"building the image needs {', '.join(tools)}: run `bash scripts/setup-system.sh demo` "
                             "as root (it installs the Debian packages)")
        for stale in out.glob(".tmp-*"):  # left by a killed build (we hold the lock)
            _discard(stale)
        tmp = out / f".tmp-{key}-{os.getpid()}"
        tree = tmp / "tree"
        tree.mkdir(parents=True)
        started = time.monotonic()
        try:
            _bootstrap(tree)
            _configure(tree)
            kernel = _boot_files(tree, tmp)
            shutil.copy2(tree / "etc/runsurge" / MODULES, tmp / MODULES)
            size_mb = _make_disks(tree, tmp)
            shutil.rmtree(tree)
            manifest = {
                "recipe_hash": key,
                "suite": SUITE,
                "kernel": kernel,
                "disk_mb": size_mb,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "build_s": round(time.monotonic() - started, 1),
                "files": ["disk.qcow2", "disk.vdi", "vmlinuz", "initrd.img", MODULES],
                # disk.vdi: MBR, FAT boot partition (syslinux), this root file system as partition 2
                "vdi_boot": {"loader": "syslinux", "cmdline": VDI_CMDLINE},
            }
            # The manifest is written last: its presence is what marks a directory as complete.
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
            if final.exists():
                shutil.rmtree(final)
            os.rename(tmp, final)
        except BaseException:
            _discard(tmp)
            raise
        _point_current(out, key)
        return final


def _discard(tmp: Path) -> None:
    """Delete a failed build, first unmounting whatever debootstrap or we left mounted in it."""
    prefix = str(tmp.resolve()) + "/"
    with open("/proc/mounts") as f:
        mounts = [line.split()[1] for line in f if line.split()[1].startswith(prefix)]
    for mnt in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mnt], check=False)
    shutil.rmtree(tmp, ignore_errors=True)


def _point_current(out: Path, key: str) -> None:
    """`DIR/current` -> the latest image, replaced atomically."""
    tmp_link = out / f".current-{os.getpid()}"
    tmp_link.unlink(missing_ok=True)
    tmp_link.symlink_to(key)
    os.replace(tmp_link, out / "current")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="cache directory (default $RUNSURGE_IMAGE_DIR or "
                             "/var/cache/runsurge/images)")
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    parser.add_argument("--hash", action="store_true", help="print the recipe hash and exit")
    args = parser.parse_args()
    # A terminated build unwinds like an interrupted one: its temporary directory is removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.hash:
        print(recipe_hash())
        return
    print(build(args.out, force=args.force))


if __name__ == "__main__":
    main()
