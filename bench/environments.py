"""A job's packages in QEMU VMs: what an environment costs on first and on second use.

One master and one qemu worker (real processes on loopback). Each job's task records the moment
its user code starts (its first line), so submit -> user code is measured the same way for:
  - a bare task (no requirements), the baseline;
  - the first job with `requirements = [PACKAGE]`: the master resolves and stores the wheels,
    the worker fetches them, unpacks them into a tree and an ext4 image, the VM gets the disc;
  - later jobs with the same requirements: resolution cached, image on disc: only the insert
    and the guest's mount remain.
Peer, in the same run: `pip install --target` of the same requirement into an empty folder,
from the same index, with no cache (what a worker without environments would do per job).
Targets (issue 13): second use adds <= 50 ms; first use <= 2x the pip install.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from guest import image_dir  # noqa: E402
from localnet import LocalNet  # noqa: E402
from quiet import OtherLoad  # noqa: E402

STARTED = "import time\nopen('started.txt', 'w').write(repr(time.time()))\n"
WITH_PACKAGE = STARTED + "import {module}\nprint({module}.__version__)\n"


def submit_to_start(client, script: Path, work: Path, requirements: str | None) -> float:
    """Seconds from the submit call to the task's first line (the guest's clock is set from the
    host's at the task's start)."""
    t0 = time.time()
    job = client.wait(client.submit([script], mode="single", requirements=requirements)["id"], timeout_s=1800)
    if job["status"] != "done":
        raise SystemExit(f"job failed: {job}")
    out = work / f"out-{job['id']}"
    files = {p.name: p for p in client.download_results(job["id"], out)}
    return float(files["started.txt"].read_text()) - t0


def pip_install_s(requirement: str, index: str) -> float:
    target = Path(tempfile.mkdtemp(prefix="runsurge-bench-pip-"))
    try:
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "pip", "install", "--isolated", "--no-cache-dir", "--quiet",
                        "--disable-pip-version-check", "--target", str(target), "--index-url", index,
                        requirement], check=True)
        return time.monotonic() - t0
    finally:
        shutil.rmtree(target, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--package", default="pandas")
    p.add_argument("--module", default=None, help="the module the package provides (default: its name)")
    p.add_argument("--index", default="https://pypi.org/simple")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--image-dir")
    args = p.parse_args()
    module = args.module or args.package
    work = Path(tempfile.mkdtemp(prefix="rs-benv-"))  # short: QEMU's socket paths must fit 108 bytes
    bare, pkg = work / "bare.py", work / "pkg.py"
    bare.write_text(STARTED)
    pkg.write_text(WITH_PACKAGE.format(module=module))
    load = OtherLoad()
    try:
        peer = pip_install_s(args.package, args.index)
        with LocalNet(work / "net", sandbox="qemu", slots=1, heartbeat_s=0.5,
                      extra_env={"RUNSURGE_PACKAGE_INDEX_URL": args.index,
                                 "RUNSURGE_IMAGE_DIR": str(image_dir(args.image_dir)),
                                 "RUNSURGE_POOL_SIZE": "1"}) as net:
            net.start(workers=1)
            client = net.client()
            submit_to_start(client, bare, work, None)  # the first job warms the master's paths
            bares = [submit_to_start(client, bare, work, None) for _ in range(args.repeat)]
            first = submit_to_start(client, pkg, work, args.package)
            seconds = [submit_to_start(client, pkg, work, args.package) for _ in range(args.repeat)]
            log = net.log("worker0")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = statistics.median(bares)
    second = statistics.median(seconds)
    built = [ln for ln in log.splitlines() if "environment built" in ln]
    print(f"\nJob environment `{args.package}` in QEMU VMs ({os.cpu_count()} CPUs, "
          f"{'KVM' if os.access('/dev/kvm', os.W_OK) and 'vmx' in open('/proc/cpuinfo').read() else 'TCG'}), "
          f"submit -> user code, median of {args.repeat}:")
    print("| | submit -> user code | added by the environment | target |")
    print("|---|---|---|---|")
    print(f"| bare task | {base * 1000:.0f} ms | - | |")
    print(f"| first use (resolve + fetch + unpack + image + attach) | {first:.2f} s | {first - base:.2f} s "
          f"| <= 2x pip install = {2 * peer:.2f} s: {'met' if first - base <= 2 * peer else 'NOT met'} |")
    print(f"| second use (insert the disc + mount) | {second * 1000:.0f} ms | {(second - base) * 1000:+.0f} ms "
          f"| <= 50 ms: {'met' if second - base <= 0.05 else 'NOT met'} |")
    print(f"| peer: pip install --target, no cache, same index | {peer:.2f} s | | |")
    print("worker: " + (built[0].split(" ", 3)[-1] if built else "no build logged"))
    print(load.stop())


if __name__ == "__main__":
    main()
